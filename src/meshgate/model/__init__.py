"""meshgate.model."""
