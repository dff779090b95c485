"""Kernel tests; fixtures come from the corral_core.testing pytest plugin."""
