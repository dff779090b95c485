"""Local hosts, for real (as root): what a host is, what it keeps to itself, and that deleting it
leaves nothing of it behind."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from corral_local.hosts import HostRecord, LocalHosts, parse_settings

from corral_sdk.errors import Invalid

T = TypeVar("T")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="hosts are network namespaces: root")

USER_DATA = """#!/bin/sh
set -e
echo "user data on $(hostname) as $(id -un)"
cat > /etc/corral/boot.d/10-listen <<'EOS'
#!/bin/sh
python3 -c '
import socket, os
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7777)); s.listen()
if os.fork() == 0:
    while True:
        c, _ = s.accept(); c.sendall(socket.gethostname().encode()); c.close()
' &
EOS
chmod +x /etc/corral/boot.d/10-listen
echo private > /etc/slurm/mine
echo shared > /home/corral-local-test-$(hostname)
"""


@pytest.fixture
def hosts() -> Iterator[LocalHosts]:
    root = Path("/var/lib/corral-local-tests") / uuid.uuid4().hex[:8]
    hosts = LocalHosts(root, "10.82.0.0/24", "crltest1")
    yield hosts
    hosts.delete([record.id for record in hosts.records()])
    shutil.rmtree(root, ignore_errors=True)


def _wait(check: Callable[[], T], what: str, within: float = 20) -> T:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {within}s")


def _finished(hosts: LocalHosts, record: HostRecord) -> tuple[int, str] | None:
    status, output = hosts.user_data_result(record)
    return None if status is None else (status, output)


def _answer(address: str) -> str:
    try:
        with socket.create_connection((address, 7777), timeout=1) as connection:
            return connection.recv(100).decode()
    except OSError:
        return ""


def _traces(record: HostRecord) -> list[str]:
    """Everything of a host the machine could still hold."""
    found = []
    if Path("/run/netns", record.namespace).exists():
        found.append(f"namespace {record.namespace}")
    shown = subprocess.run(["ip", "link", "show", record.veth], check=False, capture_output=True)
    if shown.returncode == 0:
        found.append(f"veth {record.veth}")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if record.id in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                found.append(f"process {pid}")
        except OSError:
            pass
    if any(record.namespace in line for line in Path("/proc/mounts").read_text().splitlines()):
        found.append("mount")
    return found


def test_hosts_have_their_own_name_address_and_private_directories(hosts: LocalHosts) -> None:
    made = hosts.create(
        names=("t-mgmt", "t-node"),
        instance_type="local.small",
        image="host",
        vcpus=1,
        memory_mib=1024,
        user_data=USER_DATA,
        tags={"Cluster": "t"},
        idempotency_key="k1",
    )
    assert [r.name for r in made] == ["t-mgmt", "t-node"]
    assert hosts.create(
        names=("t-mgmt", "t-node"), instance_type="local.small", image="host", vcpus=1,
        memory_mib=1024, user_data="", tags={}, idempotency_key="k1",
    ) == made, "the same idempotency key returns the same hosts"  # fmt: skip
    for record in made:
        status, output = _wait(lambda r=record: _finished(hosts, r), f"user data of {record.name}")
        assert status == 0, output
        assert output.strip() == f"user data on {record.name} as root"
        assert _wait(lambda r=record: _answer(r.address), "the boot script") == record.name
        assert Path(f"/home/corral-local-test-{record.name}").read_text() == "shared\n"
        Path(f"/home/corral-local-test-{record.name}").unlink()
    assert not Path("/etc/slurm/mine").exists(), "/etc/slurm is each host's own"
    mgmt, node = made
    hosts_file = (hosts.root / "hosts").read_text()
    assert f"{mgmt.address}\tt-mgmt" in hosts_file and f"{node.address}\tt-node" in hosts_file
    assert mgmt.address != node.address

    hosts.stop([mgmt.id])
    assert _answer(mgmt.address) == "" and hosts.observed_state(HostRecord.load(
        hosts.root / "instances" / mgmt.id / "instance.json")) == "stopped"  # fmt: skip
    hosts.start([mgmt.id])
    assert _wait(lambda: _answer(mgmt.address), "the boot script after a restart") == "t-mgmt"
    status, _ = hosts.user_data_result(mgmt)
    assert status == 0, "the user data ran once; the boot scripts ran again"

    hosts.delete([mgmt.id, node.id])
    for record in made:
        assert _wait(lambda r=record: not _traces(r), f"{record.name} gone", within=10)
    assert not list((hosts.root / "instances").iterdir())
    hosts.delete([mgmt.id])  # already gone: no error


def test_a_failing_user_data_is_reported_with_its_output(hosts: LocalHosts) -> None:
    (record,) = hosts.create(
        names=("t-bad",), instance_type="local.small", image="host", vcpus=1, memory_mib=512,
        user_data="echo about to fail\nexit 7\n", tags={}, idempotency_key="k2",
    )  # fmt: skip
    status, output = _wait(lambda: _finished(hosts, record), "the user data")
    assert status == 7 and output == "about to fail\n"
    assert hosts.observed_state(record) == "running", "the host stays up for inspection"


def test_settings_are_checked() -> None:
    with pytest.raises(Invalid, match="under /tmp"):
        parse_settings({"root": "/tmp/x"})
    with pytest.raises(Invalid, match="unknown local cloud setting 'subnett'"):
        parse_settings({"subnett": "10.0.0.0/8"})
    with pytest.raises(Invalid, match="not a network"):
        LocalHosts(Path("/var/lib/x"), "10.0.0.300/8", "b")
