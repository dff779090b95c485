"""Corral's slurm scheduler plugin."""
