"""Outbound webhooks: endpoints an account registers, and signed deliveries of its events."""
