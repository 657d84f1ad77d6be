"""Security: OAuth2 tokens, principals, national RBAC and legitimate relationships."""
