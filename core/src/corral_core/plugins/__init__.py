"""The plugin kernel: discovery, registration and the typed facade."""

from corral_core.plugins.manager import Kernel, PluginSource, load_kernel

__all__ = ["Kernel", "PluginSource", "load_kernel"]
