"""Corral's pbs scheduler plugin."""
