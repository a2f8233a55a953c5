"""The credits ledger: append-only postings with a database-enforced running balance."""
