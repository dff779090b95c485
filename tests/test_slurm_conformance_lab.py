"""The Slurm plugin passes the SDK's scheduler conformance suite against the real Slurm lab,
through Corral's real SSH transport (its own tests replay transcripts; this runs the commands)."""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import corral_slurm.plugin
from corral_core.db import Database
from corral_core.migrations import upgrade
from corral_core.settings import SSHSettings
from corral_core.ssh import HostKeyStore, SSHEndpoint, SSHIdentity, SSHPool, SSHRunner
from corral_sdk.errors import ProviderError
from corral_sdk.providers.scheduler import JobSpec
from corral_sdk.records import SchedulerRecord
from corral_sdk.testing import SchedulerConformance
from corral_slurm.plugin import RECORD
from tests.lab import SlurmLab


@pytest.fixture(scope="module")
def lab_runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHRunner]:
    lab = SlurmLab.up()
    private = Ed25519PrivateKey.generate()
    public = (
        private.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    alice = pwd.getpwnam("alice")
    ssh_dir = Path(alice.pw_dir) / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    authorized = ssh_dir / "authorized_keys"
    authorized.write_text(public + " conformance\n")
    for path in (ssh_dir, authorized):
        os.chown(path, alice.pw_uid, alice.pw_gid)
    authorized.chmod(0o600)
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('conformance') / 'corral.db'}")
    upgrade(db)
    pool = SSHPool(SSHSettings(connect_timeout=10), HostKeyStore(db))
    try:
        yield SSHRunner(
            pool,
            SSHIdentity(name="conformance", label="alice", private_key=pem),
            SSHEndpoint(host=lab.login_host, port=lab.login_port, username="alice"),
        )
    finally:
        pool.close()
        authorized.unlink(missing_ok=True)
        lab.run("exec", "scancel", "--user", "alice")


class TestSlurmOnTheLab(SchedulerConformance):
    @pytest.fixture
    def record(self) -> SchedulerRecord:
        return RECORD

    @pytest.fixture
    def plugin(self) -> ModuleType:
        return corral_slurm.plugin

    @pytest.fixture
    def runner(self, lab_runner: SSHRunner) -> SSHRunner:
        return lab_runner

    @pytest.fixture
    def provider(self, record: SchedulerRecord, runner: SSHRunner) -> Any:
        return record.create(runner, None)

    @pytest.mark.anyio
    async def test_accounting(
        self, record: SchedulerRecord, provider: Any, job_spec: JobSpec
    ) -> None:
        """The lab runs no slurmdbd: what users of such a cluster get is the plugin's clear
        "accounting-disabled" (the plugin's transcript tests cover sacct's records)."""
        job = await provider.submit(job_spec)
        with pytest.raises(ProviderError) as disabled:
            await provider.accounting(job_ids=[job.job_id])
        assert disabled.value.reason == "accounting-disabled"
