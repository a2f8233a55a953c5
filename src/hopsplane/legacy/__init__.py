"""The one-off cleanup of the 17-table legacy database (plan, backup, transform, verify,
drop, restore, generate)."""
