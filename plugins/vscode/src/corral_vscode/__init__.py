"""Corral session plugin: vscode."""
