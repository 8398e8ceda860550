"""meshgate.translate."""
