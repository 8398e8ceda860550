"""meshgate.telemetry."""
