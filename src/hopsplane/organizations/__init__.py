"""Organizations inside an account (the plan's "Future: Organizations"): groups of the
owner's people with a delegated role each; billing stays with the account owner."""
