"""MESH: secure mailbox messaging to the MESH API v2 contract (compatible with mesh-client)."""
