"""Starts PostgreSQL, PgBouncer and the web server natively, for `make run` and tests."""
