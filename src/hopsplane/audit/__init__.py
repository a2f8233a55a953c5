"""The audit log: who decided what, on which account, before and after (see README.md)."""
