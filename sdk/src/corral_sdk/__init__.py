"""Corral SDK: what plugin authors and API clients build against.

This module is imported by the CLI on every start, so it stays free of heavy imports.
Plugin authors import from :mod:`corral_sdk.plugin`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
