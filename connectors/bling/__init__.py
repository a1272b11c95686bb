"""Bling ERP (API v3): connector, OAuth, request budget, webhooks and sandbox."""
