"""Hosts on this machine: the local cloud's instances.

Each instance is a network namespace with a veth on the local cloud's bridge, its own address and
hostname, and a mount namespace in which the directories a host keeps to itself (``/etc/slurm``,
``/etc/munge``, ``/etc/ssh``, ``/etc/corral``, ``/run``, ``/var/log``, ``/var/spool``,
``/var/lib/munge``, ``/var/lib/slurm``, ``/tmp``) are its own, while ``/home``, ``/usr`` and the
rest are the machine's: every host of a cluster shares ``/home`` as a cloud cluster shares its
home filesystem. A small init process holds the namespaces; it runs the instance's user data once,
at first boot, and every script in ``/etc/corral/boot.d`` at each boot (the bootstrap registers
its daemons there, as it would enable systemd units on a cloud image). CPU and memory are capped
with cgroups where the machine allows it.

Everything about an instance is under ``<root>/instances/<id>/``: ``instance.json`` (what
``describe`` reports), the host's private directories, the user data, its output and exit status,
and the init's console. Creating namespaces needs root; without it nothing is created and the
error says so.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from corral_sdk.errors import Conflict, Invalid, NotFound, PermissionDenied, ProviderError

__all__ = ["PRIVATE_DIRECTORIES", "HostRecord", "LocalHosts"]

PRIVATE_DIRECTORIES = (
    "etc/slurm",
    "etc/munge",
    "etc/ssh",
    "etc/corral",
    "run",
    "tmp",
    "var/log",
    "var/spool",
    "var/lib/munge",
    "var/lib/slurm",
)
"""Directories each host keeps to itself (relative to ``/``); the rest of the filesystem is the
machine's. ``etc/ssh`` and ``etc/munge`` start as copies of the machine's."""

_COPIED = ("etc/ssh", "etc/munge")
_INIT = """#!/bin/sh
# The init of a local cloud host: private directories, hostname, user data once, boot scripts.
set -e
dir="$1"; name="$2"; hosts="$3"
for cgroup in $CORRAL_CGROUPS; do echo $$ > "$cgroup/cgroup.procs"; done
for private in {private}; do
  mkdir -p "/$private"
  mount --bind "$dir/root/$private" "/$private"
done
mount --bind "$hosts" /etc/hosts
hostname "$name"
ip link set lo up
echo $$ > "$dir/init.pid"
set +e
if [ -f "$dir/user-data" ] && mkdir "$dir/user-data.ran" 2>/dev/null; then
  sh "$dir/user-data" > "$dir/user-data.log" 2>&1 < /dev/null
  echo $? > "$dir/user-data.status"
fi
for script in /etc/corral/boot.d/*; do
  [ -x "$script" ] && "$script" >> "$dir/boot.log" 2>&1 < /dev/null
done
exec sleep infinity
"""


@dataclass
class HostRecord:
    """What ``instance.json`` holds about one host."""

    id: str
    name: str
    instance_type: str
    image: str
    address: str
    namespace: str
    veth: str
    vcpus: int
    memory_mib: int
    tags: dict[str, str] = field(default_factory=dict)
    idempotency_key: str = ""
    state: str = "pending"
    """``pending``/``running`` while wanted up, ``stopped``, ``terminating``."""
    launched_at: str = ""
    limits: str = ""
    """How the CPU and memory slice is enforced, or why it is not."""

    @classmethod
    def load(cls, path: Path) -> HostRecord:
        return cls(**json.loads(path.read_text()))


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60)
    if check and done.returncode != 0:
        said = done.stderr.strip() or done.stdout.strip()
        raise ProviderError(
            f"the local cloud could not run {argv[0]}: {said}",
            log_message=f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}",
        )
    return done


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalHosts:
    """The hosts of one local cloud: a bridge, an address range and a state directory."""

    def __init__(self, root: Path, subnet: str, bridge: str) -> None:
        self.root = root
        try:
            self.network = ipaddress.ip_network(subnet)
        except ValueError:
            raise Invalid(
                f"{subnet!r} is not a network such as 10.79.0.0/16", field="subnet"
            ) from None
        if self.network.num_addresses < 8:
            raise Invalid(f"{subnet} is too small for hosts", field="subnet")
        if not bridge or len(bridge) > 15:
            raise Invalid("the bridge name must have 1 to 15 characters", field="bridge")
        self.bridge = bridge
        self.gateway = str(next(self.network.hosts()))

    # --- facts --------------------------------------------------------------------------------

    @staticmethod
    def can_create() -> tuple[bool, str]:
        """Whether hosts can be created here, and why not."""
        if os.geteuid() != 0:
            return False, (
                "the local cloud makes each host a network namespace, which needs root: run "
                "Corral as root to create local clusters, or register an existing cluster"
            )
        missing = [tool for tool in ("ip", "nsenter", "unshare", "mount") if not shutil.which(tool)]
        if missing:
            return (
                False,
                f"the local cloud needs {', '.join(missing)} (Debian: iproute2, util-linux)",
            )
        return True, ""

    def _require_root(self) -> None:
        able, why = self.can_create()
        if not able:
            raise PermissionDenied(why, reason="local-cloud-needs-root")

    @property
    def _instances(self) -> Path:
        return self.root / "instances"

    def _dir(self, instance_id: str) -> Path:
        return self._instances / instance_id

    def records(self) -> list[HostRecord]:
        if not self._instances.is_dir():
            return []
        found = []
        for path in sorted(self._instances.glob("*/instance.json")):
            with contextlib.suppress(OSError, ValueError, TypeError):
                found.append(HostRecord.load(path))
        return found

    def init_pid(self, record: HostRecord) -> int | None:
        """The pid of the host's init, if it is running in the host's namespace."""
        try:
            pid = int((self._dir(record.id) / "init.pid").read_text())
            netns = os.stat(f"/run/netns/{record.namespace}").st_ino
            if _pid_alive(pid) and os.stat(f"/proc/{pid}/ns/net").st_ino == netns:
                return pid
        except (OSError, ValueError):
            pass
        return None

    def observed_state(self, record: HostRecord) -> str:
        if record.state in ("stopped", "terminating"):
            return record.state
        if self.init_pid(record) is None:
            return "pending" if record.state == "pending" else "stopped"
        return "running"

    def user_data_result(self, record: HostRecord) -> tuple[int | None, str]:
        """The user data's exit status (``None`` while it runs) and its output."""
        directory = self._dir(record.id)
        status_file, log_file = directory / "user-data.status", directory / "user-data.log"
        output = log_file.read_text(errors="replace") if log_file.exists() else ""
        try:
            return int(status_file.read_text()), output
        except (OSError, ValueError):
            return None, output

    # --- locking, the bridge and the shared hosts file --------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def ensure_bridge(self) -> None:
        """The hosts' bridge, with the gateway's address (made if missing)."""
        self._require_root()
        with self._locked():
            self._ensure_bridge()

    def _ensure_bridge(self) -> None:
        if _run("ip", "link", "show", self.bridge, check=False).returncode != 0:
            _run("ip", "link", "add", self.bridge, "type", "bridge")
        prefix = f"{self.gateway}/{self.network.prefixlen}"
        if prefix not in _run("ip", "-o", "addr", "show", "dev", self.bridge).stdout:
            _run("ip", "addr", "add", prefix, "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")

    def _write_hosts(self) -> None:
        """``<root>/hosts``, bound over every host's ``/etc/hosts``: rewritten in place, so the
        bind mounts see each change."""
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        lines += [f"{r.address}\t{r.name}" for r in self.records() if r.state != "terminating"]
        path = self.root / "hosts"
        with open(path, "a+") as hosts:
            hosts.seek(0)
            hosts.truncate()
            hosts.write("\n".join(lines) + "\n")

    def _chosen_address(self, address: str) -> str:
        try:
            chosen = ipaddress.ip_address(address)
        except ValueError:
            raise Invalid(f"{address!r} is not an IP address", field="addresses") from None
        if chosen not in self.network or str(chosen) == self.gateway:
            raise Invalid(f"{address} is not a host address of {self.network}", field="addresses")
        if any(r.address == str(chosen) for r in self.records()):
            raise Conflict(f"{address} is taken by another host", reason="address-taken")
        return str(chosen)

    def _free_address(self) -> str:
        taken = {r.address for r in self.records()} | {self.gateway}
        for address in self.network.hosts():
            if str(address) not in taken:
                return str(address)
        raise ProviderError(
            f"the local cloud's network {self.network} has no free address",
            reason="quota-exceeded",
        )

    # --- lifecycle ----------------------------------------------------------------------------

    def find(self, idempotency_key: str) -> list[HostRecord]:
        """The hosts made for ``idempotency_key``, in the order they were made (the names')."""
        found = [
            r
            for r in self.records()
            if r.idempotency_key == idempotency_key and r.state != "terminating"
        ]
        return sorted(found, key=lambda r: r.launched_at)

    def create(
        self,
        *,
        names: Sequence[str],
        instance_type: str,
        image: str,
        vcpus: int,
        memory_mib: int,
        user_data: str,
        tags: Mapping[str, str],
        idempotency_key: str,
        addresses: Sequence[str] | None = None,
    ) -> list[HostRecord]:
        """Create and boot one host per name; the same ``idempotency_key`` returns the hosts the
        first call made. A failure removes the hosts this call created. ``addresses`` (one per
        name, in the subnet and free) gives hosts the addresses another system chose, as a
        cloud's API assigns private IPs that a host then boots with."""
        self._require_root()
        if addresses is not None and len(addresses) != len(names):
            raise Invalid("one address per name", field="addresses")
        with self._locked():
            # looked up and made under one lock: two calls with one key make one set of hosts
            existing = self.find(idempotency_key)
            if not existing:
                made = self._create_all(
                    names, instance_type, image, vcpus, memory_mib, user_data, tags,
                    idempotency_key, addresses,
                )  # fmt: skip
        if existing:
            # a retry after a crash (or a call racing the first): what the first call made,
            # booted if it never got that far (_boot boots each host once)
            for record in existing:
                if record.state == "pending":
                    self._boot(record)
            return existing
        try:
            for record in made:
                self._boot(record)
        except BaseException:
            self.delete([record.id for record in made])  # a failed call leaves nothing behind
            raise
        return made

    def _create_all(
        self,
        names: Sequence[str],
        instance_type: str,
        image: str,
        vcpus: int,
        memory_mib: int,
        user_data: str,
        tags: Mapping[str, str],
        idempotency_key: str,
        addresses: Sequence[str] | None,
    ) -> list[HostRecord]:
        """The hosts' records and private directories (called under the lock)."""
        self._sweep_partial()
        self._ensure_bridge()
        made: list[HostRecord] = []
        try:
            for index, name in enumerate(names):
                made.append(
                    self._create_one(
                        name, instance_type, image, vcpus, memory_mib, user_data, tags,
                        idempotency_key, addresses[index] if addresses else None,
                    )
                )  # fmt: skip
            self._write_hosts()
        except BaseException:
            for record in made:
                self._destroy(record)
            self._write_hosts()
            raise
        return made

    def _create_one(
        self,
        name: str,
        instance_type: str,
        image: str,
        vcpus: int,
        memory_mib: int,
        user_data: str,
        tags: Mapping[str, str],
        idempotency_key: str,
        address: str | None,
    ) -> HostRecord:
        token = secrets.token_hex(4)
        record = HostRecord(
            id=f"lh-{token}",
            name=name,
            instance_type=instance_type,
            image=image,
            address=self._chosen_address(address) if address else self._free_address(),
            namespace=f"corral-lh-{token}",
            veth=f"crlh{token}",
            vcpus=vcpus,
            memory_mib=memory_mib,
            tags=dict(tags),
            idempotency_key=idempotency_key,
            launched_at=datetime.now(UTC).isoformat(),
        )
        # made aside and moved in whole: a kill half-way leaves no host without its init.sh
        directory = self._partial / record.id
        directory.mkdir(parents=True)
        for private in PRIVATE_DIRECTORIES:
            target = directory / "root" / private
            if private in _COPIED and Path("/", private).is_dir():
                shutil.copytree(Path("/", private), target, symlinks=True)
            else:
                target.mkdir(parents=True, exist_ok=True)
        ssh = directory / "root" / "etc/ssh"
        for key in ssh.glob("ssh_host_*"):
            key.unlink()  # each host has its own host keys, made at first boot by ssh-keygen -A
        (directory / "root" / "etc/corral/boot.d").mkdir(parents=True, exist_ok=True)
        if user_data:
            (directory / "user-data").write_text(user_data)
        (directory / "init.sh").write_text(
            _INIT.replace("{private}", " ".join(PRIVATE_DIRECTORIES))
        )
        self._save(record, directory)
        self._instances.mkdir(parents=True, exist_ok=True)
        directory.rename(self._dir(record.id))
        return record

    @property
    def _partial(self) -> Path:
        return self.root / "partial"

    def _sweep_partial(self) -> None:
        """Remove hosts a killed call was making (under the lock: nobody else is making one)."""
        if self._partial.is_dir():
            for left in self._partial.iterdir():
                shutil.rmtree(left, ignore_errors=True)

    def _save(self, record: HostRecord, directory: Path | None = None) -> None:
        path = (directory or self._dir(record.id)) / "instance.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(record.__dict__, indent=1))
        temporary.replace(path)

    def _network_up(self, record: HostRecord) -> None:
        namespace = Path("/run/netns", record.namespace)
        if namespace.exists() and not os.path.ismount(namespace):
            # `ip netns add` or `del` killed half-way leaves a plain file: the kernel refuses it
            # as a namespace ("RTNETLINK answers: Invalid argument")
            namespace.unlink()
        if not namespace.exists():
            _run("ip", "netns", "add", record.namespace)
        if _run("ip", "link", "show", record.veth, check=False).returncode != 0:
            # the same MAC address at every boot: the machine's neighbour cache stays right
            token = record.id.removeprefix("lh-")
            mac = "02:c0:" + ":".join(token[i : i + 2] for i in range(0, 8, 2))
            _run(
                "ip", "link", "add", record.veth, "type", "veth", "peer", "name", "eth0",
                "address", mac, "netns", record.namespace,
            )  # fmt: skip
        _run("ip", "link", "set", record.veth, "master", self.bridge, "up")
        inside = ("ip", "netns", "exec", record.namespace)
        prefix = f"{record.address}/{self.network.prefixlen}"
        if prefix not in _run(*inside, "ip", "-o", "addr", "show", "dev", "eth0").stdout:
            _run(*inside, "ip", "addr", "add", prefix, "dev", "eth0")
        _run(*inside, "ip", "link", "set", "eth0", "up")
        _run(*inside, "ip", "link", "set", "lo", "up")
        _run(*inside, "ip", "route", "replace", "default", "via", self.gateway)

    @contextlib.contextmanager
    def _booting(self, record: HostRecord) -> Iterator[None]:
        """One boot of a host at a time (released when its holder dies, as flocks are)."""
        with open(self._dir(record.id) / "boot.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _boot(self, record: HostRecord) -> None:
        """Start the host's init in its namespaces, capped to its slice where cgroups allow;
        a host whose init runs, or is starting (a process is in its namespace: a boot killed
        before it saw the init's pid), is left to it."""
        with self._booting(record):
            if self.init_pid(record) is None and self._pids(record):
                self._wait_for_init(record, self._dir(record.id) / "console.log")
            if self.init_pid(record) is not None:
                if record.state != "running":
                    record.state = "running"
                    self._save(record)
                return
            self._boot_now(record)

    def _boot_now(self, record: HostRecord) -> None:
        directory = self._dir(record.id)
        for volatile in ("run", "tmp"):  # tmpfs on a booting machine: stale pid files go
            path = directory / "root" / volatile
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True, exist_ok=True)
        (directory / "root" / "tmp").chmod(0o1777)
        with self._locked():
            self._ensure_bridge()
            self._network_up(record)
        record.limits, cgroups = _cap(record)
        console = directory / "console.log"
        console.write_bytes(b"")
        with open(console, "ab") as output:
            # setsid --fork: the init is nobody's child here, and outlives this process
            subprocess.run(
                [
                    "setsid", "--fork", "nsenter", f"--net=/run/netns/{record.namespace}",
                    "unshare", "--uts", "--mount", "--propagation", "slave", "--", "/bin/sh",
                    str(directory / "init.sh"), str(directory), record.name,
                    str(self.root / "hosts"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                check=True,
                env={**os.environ, "CORRAL_CGROUPS": " ".join(map(str, cgroups))},
            )  # fmt: skip
        record.state = "running"
        self._save(record)
        self._wait_for_init(record, console)

    def _wait_for_init(self, record: HostRecord, console: Path) -> None:
        deadline = time.monotonic() + 20
        while self.init_pid(record) is None:
            said = console.read_text(errors="replace").strip() if console.exists() else ""
            if said or time.monotonic() > deadline:
                raise ProviderError(
                    f"the local host {record.name} did not boot: "
                    f"{said[-2000:] or 'no sign of its init within 20 s'}",
                    log_message=f"init of {record.id} failed",
                )
            time.sleep(0.02)

    def start(self, instance_ids: Sequence[str]) -> None:
        self._require_root()
        records = self._known(instance_ids)
        for record in records:
            if self.init_pid(record) is None and record.state != "terminating":
                self._boot(record)

    def stop(self, instance_ids: Sequence[str]) -> None:
        self._require_root()
        for record in self._known(instance_ids):
            if record.state == "stopped":
                continue
            self._halt(record)
            record.state = "stopped"
            self._save(record)

    def delete(self, instance_ids: Sequence[str]) -> None:
        """Terminate hosts: every process in them, their namespace, veth, cgroups and files.
        Ids already gone are not an error."""
        known = {r.id: r for r in self.records()}
        targets = [known[i] for i in dict.fromkeys(instance_ids) if i in known]
        if not targets:
            return
        self._require_root()
        with self._locked():
            for record in targets:
                record.state = "terminating"
                self._save(record)
            for record in targets:
                self._destroy(record)
            self._write_hosts()

    def _known(self, instance_ids: Sequence[str]) -> list[HostRecord]:
        known = {r.id: r for r in self.records()}
        missing = [i for i in instance_ids if i not in known]
        if missing:
            raise NotFound(f"no local host {', '.join(missing)}", reason="instance-not-found")
        return [known[i] for i in dict.fromkeys(instance_ids)]

    def _halt(self, record: HostRecord) -> None:
        """Kill every process of the host and remove its network namespace."""
        for _ in range(50):
            pids = self._pids(record)
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        else:
            raise ProviderError(f"processes of the local host {record.name} would not die")
        if Path("/run/netns", record.namespace).exists():
            _run("ip", "netns", "del", record.namespace)
        _run("ip", "link", "del", record.veth, check=False)
        _uncap(record)

    def _pids(self, record: HostRecord) -> list[int]:
        """Processes in the host's network namespace, and its init's descendants that left it."""
        pids: set[int] = set()
        if Path("/run/netns", record.namespace).exists():
            listed = _run("ip", "netns", "pids", record.namespace, check=False).stdout.split()
            pids.update(int(pid) for pid in listed if pid.isdigit())
        init = self.init_pid(record)
        if init is not None:
            pids.add(init)
        pids.discard(os.getpid())
        return sorted(pids)

    def _destroy(self, record: HostRecord) -> None:
        self._halt(record)
        shutil.rmtree(self._dir(record.id), ignore_errors=True)


# --- CPU and memory slices (cgroup v1 or v2) ------------------------------------------------------

_CGROUP = Path("/sys/fs/cgroup")


def _cgroup_dirs(record: HostRecord) -> list[Path]:
    if (_CGROUP / "cgroup.controllers").exists():  # cgroup v2
        return [_CGROUP / "corral-local" / record.id]
    return [
        _CGROUP / "cpu" / "corral-local" / record.id,
        _CGROUP / "memory" / "corral-local" / record.id,
    ]


def _cap(record: HostRecord) -> tuple[str, list[Path]]:
    """Cgroups holding the host's slice, which its init joins first (and so all it starts)."""
    try:
        dirs = _cgroup_dirs(record)
        for directory in dirs:
            directory.mkdir(parents=True, exist_ok=True)
        quota = record.vcpus * 100000
        memory = record.memory_mib * 1024 * 1024
        if len(dirs) == 1:
            (dirs[0] / "cpu.max").write_text(f"{quota} 100000")
            (dirs[0] / "memory.max").write_text(str(memory))
        else:
            (dirs[0] / "cpu.cfs_period_us").write_text("100000")
            (dirs[0] / "cpu.cfs_quota_us").write_text(str(quota))
            (dirs[1] / "memory.limit_in_bytes").write_text(str(memory))
    except OSError as exc:
        return f"not enforced: the cgroups could not be set ({exc.strerror or exc})", []
    return f"{record.vcpus} CPU, {record.memory_mib} MiB (cgroups)", dirs


def _uncap(record: HostRecord) -> None:
    for directory in _cgroup_dirs(record):
        with contextlib.suppress(OSError):
            directory.rmdir()


def parse_settings(settings: Mapping[str, Any]) -> tuple[Path, str, str]:
    """The root directory, subnet and bridge of a local cloud account's settings."""
    unknown = set(settings) - {"root", "subnet", "bridge"}
    if unknown:
        raise Invalid(
            f"unknown local cloud setting {sorted(unknown)[0]!r} (known: root, subnet, bridge)",
            field="settings",
        )
    root = Path(str(settings.get("root", "/var/lib/corral-local")))
    if not root.is_absolute():
        raise Invalid(f"the local cloud's root {str(root)!r} must be absolute", field="root")
    for private in PRIVATE_DIRECTORIES:
        if root.is_relative_to(Path("/", private)):
            raise Invalid(
                f"the local cloud's root {root} is under /{private}, which every host replaces "
                "with its own: choose a directory such as /var/lib/corral-local",
                field="root",
            )
    return (
        root,
        str(settings.get("subnet", "10.79.0.0/16")),
        str(settings.get("bridge", "crlcloud0")),
    )
