"""API keys of customers: a program reads its own account without a person's session."""
