"""Fixed-window rate limits kept in PostgreSQL, so every server process shares them."""
