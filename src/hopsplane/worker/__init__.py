"""`hopsplane worker`: scheduled and retried jobs on a PostgreSQL-backed queue (no broker)."""
