"""meshgate.runtime."""
