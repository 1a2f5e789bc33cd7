"""Helpers shared by the end-to-end suites (throw-away PostgreSQL clusters, ...)."""
