"""Kernel tests; fixtures come from the corral_core.testing pytest plugin, and ``lab`` (a
runtime, its admin, a real workspace and a workflow engine) from :mod:`workflow_lab`."""

from workflow_lab import lab

__all__ = ["lab"]
