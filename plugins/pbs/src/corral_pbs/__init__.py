"""corral-pbs: Corral's scheduler plugin for PBS Professional and OpenPBS.

The hooks are in :mod:`corral_pbs.plugin`, the scheduler in :mod:`corral_pbs.scheduler` (imported
only when a PBS cluster is used), its settings in :mod:`corral_pbs.config`.
"""

__all__: list[str] = []
