"""Persistence: ORM records, the database lifecycle and the one store every query goes through."""
