"""Cross-package tests: real `corral` processes, real plugin distributions, both modes.

Fixtures come from the corral_core.testing pytest plugin.
"""
