"""Corral session plugin: desktop."""
