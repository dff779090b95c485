"""Corral's local cloud: instances are hosts on this machine."""
