"""Buying credits with Stripe: top-ups, webhook fulfilment, refunds and reconciliation."""
