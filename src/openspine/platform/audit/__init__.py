"""Audit: a controlled vocabulary of events, hash-chained in the store, verifiable end to end."""
