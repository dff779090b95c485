"""Corral's Slurm scheduler plugin: the ``slurm`` scheduler, in :mod:`corral_slurm.scheduler`,
configured by :class:`corral_slurm.config.SlurmConfig`."""

__all__: list[str] = []
