"""The elastic bootstrap script: what it writes and starts, and what it refuses."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from corral_sdk.errors import Invalid
from corral_sdk.providers.scheduler import ElasticClusterSpec, ElasticPartition
from corral_slurm.bootstrap import BOOT_SCRIPT, bootstrap_script, reconfigure_script
from corral_slurm.elastic import elastic_files

KEY = base64.b64encode(bytes(range(64))).decode()
CLUSTER = ElasticClusterSpec(
    cluster_name="demo",
    controller_host="alice-demo-00001-mgmt",
    partitions=(
        ElasticPartition(
            name="compute",
            node_prefix="alice-demo-00001-1-",
            max_nodes=3,
            cpus=2,
            memory_mb=900,
            default=True,
        ),
    ),
    resume_program="/etc/corral/bin/resume",
    suspend_program="/etc/corral/bin/suspend",
)


def script(role: str, cluster: ElasticClusterSpec = CLUSTER, **kwargs: str) -> str:
    options = {"auth_key": KEY, "node_command": "/etc/corral/bin/corral-nodes", **kwargs}
    return bootstrap_script(cluster, role=role, config_dir="/etc/slurm", cloud_dns=True, **options)


@pytest.mark.parametrize("role", ["controller", "compute"])
def test_the_script_is_valid_shell(role: str) -> None:
    checked = subprocess.run(
        ["sh", "-n"], check=False, input=script(role), text=True, capture_output=True
    )
    assert checked.returncode == 0, checked.stderr


def test_the_controller_runs_slurmctld_with_resume_and_suspend_programs_that_call_corral() -> None:
    text = script("controller")
    assert "Include /etc/slurm/corral-elastic.conf" in text
    assert "NodeName=alice-demo-00001-1-[0001-0003] State=CLOUD CPUs=2 RealMemory=900" in text
    assert 'exec /etc/corral/bin/corral-nodes resume $(scontrol show hostnames "$1")' in text
    assert "exec /etc/corral/bin/corral-nodes suspend" in text
    assert "/usr/sbin/slurmctld -i" in text and text.rstrip().endswith(BOOT_SCRIPT)
    # the controller learns its own address, which the compute nodes are given
    assert "SlurmctldHost=alice-demo-00001-mgmt($address)" in text


def test_compute_nodes_run_slurmd_reporting_a_boot_and_know_the_controller_address() -> None:
    text = script("compute", _with_address(CLUSTER))
    assert "SlurmctldHost=alice-demo-00001-mgmt(10.79.0.2)" in text
    assert "/usr/sbin/slurmd -b" in text
    assert "corral-nodes resume" not in text


def _with_address(cluster: ElasticClusterSpec) -> ElasticClusterSpec:
    import msgspec

    return msgspec.structs.replace(cluster, controller_address="10.79.0.2")


@pytest.mark.parametrize(
    ("role", "change", "message"),
    [
        ("login", {}, "role must be one of"),
        ("compute", {"auth_key": "not base64!"}, "base64"),
        ("compute", {"auth_key": base64.b64encode(b"short").decode()}, "at least 32 bytes"),
        ("compute", {"node_command": "corral-nodes"}, "absolute path"),
    ],
)
def test_bad_input_is_refused(role: str, change: dict[str, str], message: str) -> None:
    with pytest.raises(Invalid, match=message):
        script(role, **change)


def test_reconfiguring_with_the_files_in_place_changes_nothing(tmp_path: Path) -> None:
    """The other branches (scontrol reconfigure, a slurmctld restart) run against a live
    controller in tests/test_local_cloud.py."""
    for file in elastic_files(CLUSTER, config_dir=str(tmp_path), cloud_dns=True):
        Path(file.path).write_text(file.content)
    before = {p.name: p.read_text() for p in tmp_path.iterdir()}
    text = reconfigure_script(CLUSTER, config_dir=str(tmp_path), cloud_dns=True)
    done = subprocess.run(["sh", "-c", text], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "the configuration was already in place"
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == before
