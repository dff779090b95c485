"""Corral's HTTP API (Litestar) and the server commands."""

__version__ = "0.1.0"

__all__ = ["__version__"]
