pytest_plugins = ["corral_core.testing"]
