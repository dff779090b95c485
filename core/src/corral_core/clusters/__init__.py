"""Clusters: registering the ones users already run, connecting to them over SSH, and their jobs."""
