"""The SSH transport: pooled asyncssh connections, host keys pinned on first use, and the
:class:`~corral_sdk.transport.CommandRunner` providers use to reach clusters."""

from corral_core.ssh.hostkeys import HostKeyChanged, HostKeyStore
from corral_core.ssh.pool import PoolStats, SSHEndpoint, SSHIdentity, SSHPool
from corral_core.ssh.runner import SSHRunner

__all__ = [
    "HostKeyChanged",
    "HostKeyStore",
    "PoolStats",
    "SSHEndpoint",
    "SSHIdentity",
    "SSHPool",
    "SSHRunner",
]
