"""syncd: keeps a seller's stock in step across sales channels from one source of truth."""

__version__ = "0.1.0"
