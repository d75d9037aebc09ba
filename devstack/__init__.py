"""Starts PostgreSQL, PgBouncer and the web server natively (make run, tests)."""
