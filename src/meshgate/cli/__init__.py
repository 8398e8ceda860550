"""meshgate.cli."""
