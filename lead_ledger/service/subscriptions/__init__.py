"""Webhook subscriptions: their configuration as events (`manage`), the sealed signing secret
(`signing`), and the delivery of the account's feed with a lease and a checkpoint (`delivery`).
docs/subscriptions.md describes them for receivers."""
