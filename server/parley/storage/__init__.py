"""Persistence: Postgres is the record, Redis holds live state."""
