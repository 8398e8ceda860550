"""meshgate.validation."""
