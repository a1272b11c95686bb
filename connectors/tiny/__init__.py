"""Tiny (Olist ERP) API v3: the ERP connector, its OAuth2 tokens and a sandbox that behaves like it."""
