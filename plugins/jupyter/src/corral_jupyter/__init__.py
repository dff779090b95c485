"""Corral session plugin: jupyter."""
