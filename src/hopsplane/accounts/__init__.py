"""Users and their roles: first sign-in creates an account owner; profiles; admin views."""
