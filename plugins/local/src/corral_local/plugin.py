"""The hooks of the local cloud plugin: one cloud record, registered without importing the
provider (loaded on first use)."""

from __future__ import annotations

from corral_sdk.plugin import CloudFeature, CloudRecord, hookimpl

__all__ = ["RECORD", "corral_register_clouds"]

RECORD = CloudRecord(
    name="local",
    factory="corral_local.provider:LocalCloud",
    features=frozenset({CloudFeature.INSTANCE_PRICES}),
    docs=(
        "The local cloud: every instance is a host on the machine Corral runs on (a network "
        "namespace with its own address and hostname, private /etc/slurm, /etc/ssh, /run and "
        "/var, and the machine's /home and programs), capped to its CPU and memory slice. "
        "Creating hosts needs root; without it the account validates as insufficient and says "
        "why. Account settings: root (state directory, default /var/lib/corral-local), subnet "
        "(default 10.79.0.0/16) and bridge (default crlcloud0)."
    ),
)
"""The cloud this plugin registers."""


@hookimpl
def corral_register_clouds() -> list[CloudRecord]:
    return [RECORD]
