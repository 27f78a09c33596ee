"""Dramatiq actors and the domain handlers that keep the service state."""
