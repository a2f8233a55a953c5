"""Billing: charging metered usage to the credits ledger, prices, and balance notices."""
