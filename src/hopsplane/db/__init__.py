"""Database access: engines and sessions, the embedded server, models and migrations."""
