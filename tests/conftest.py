"""Cross-package tests: real `corral` processes, real plugin distributions, both modes."""

pytest_plugins = ["corral_core.testing"]
