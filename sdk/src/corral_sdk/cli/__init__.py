"""The ``corral`` command-line interface (also installed as ``pw``)."""
