"""Core: settings, envelope store, database tables, broker topology, publishing, replay."""
