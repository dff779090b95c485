"""Sessions: apps on a cluster or in the workspace, reached through the platform (spec §9)."""
