"""Importing this package registers every kind (see ``meshgate.api.registry``)."""
