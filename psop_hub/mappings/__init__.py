"""Canonical message models, field formats and identifier checks (pure functions, no I/O)."""
