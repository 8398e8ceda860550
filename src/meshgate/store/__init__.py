"""meshgate.store."""
