"""meshgate.analysis."""
