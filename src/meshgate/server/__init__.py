"""meshgate.server."""
