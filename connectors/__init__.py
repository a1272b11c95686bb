"""Connectors: one package per external system, each with its client, settings and sandbox."""
