"""Corral's kernel: plugins, settings, persistence, reconcilers, background work and events."""

__version__ = "0.1.0"

__all__ = ["__version__"]
