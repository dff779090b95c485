"""Workflows: the YAML format, expressions, plans and runs."""
