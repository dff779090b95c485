"""Corral's built-in plugin: what ships with the kernel, registered through the public hooks.

The built-in password sign-in, the tunnel and link session types and the workspace executor are
added here by the issues that build them, through the same hooks third parties use, so the kernel
dogfoods its own plugin API. It is listed by ``corral plugins ls`` like any other plugin.
"""

__all__: list[str] = []
