"""The shell script that makes a fresh host a Slurm controller or compute node of an elastic
cluster: munge with the cluster's key, ``slurm.conf`` with the elastic partitions, the resume and
suspend programs that hand node names to Corral, and the daemons started now and at each boot."""

from __future__ import annotations

import base64
import binascii
import re
import shlex

from corral_sdk.errors import Invalid
from corral_sdk.providers.scheduler import ElasticClusterSpec
from corral_slurm.elastic import ELASTIC_CONF, elastic_files

__all__ = ["BOOT_SCRIPT", "ROLES", "bootstrap_script", "reconfigure_script"]

ROLES = ("controller", "compute")
BOOT_SCRIPT = "/etc/corral/boot.d/50-slurm"
"""Started by the host at each boot (the local cloud runs ``/etc/corral/boot.d``; on a systemd
image the bootstrap enables the Debian units instead)."""

_CLUSTER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


def _heredoc(path: str, content: str, mode: str = "0644") -> str:
    marker = "CORRAL_SLURM_EOF"
    if marker in content:
        raise Invalid(f"the content of {path} cannot contain {marker}")
    return (
        f"cat > {shlex.quote(path)} <<'{marker}'\n{content}{marker}\n"
        f"chmod {mode} {shlex.quote(path)}\n"
    )


def _base_conf(cluster: ElasticClusterSpec, config_dir: str) -> str:
    controller = cluster.controller_host
    if cluster.controller_address:
        controller = f"{controller}({cluster.controller_address})"
    name = cluster.cluster_name.lower()[:40]
    return f"""# Written by Corral for the elastic cluster {cluster.cluster_name}.
ClusterName={name}
SlurmctldHost={controller}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
# the node sizes are the instance types': trust them over what slurmd detects
SlurmdParameters=config_overrides
MinJobAge=300
SlurmdTimeout=60
InactiveLimit=0
KillWait=10
PrologSlurmctld={PROLOG_SLURMCTLD}
Include {config_dir}/{ELASTIC_CONF}
"""


_CGROUP_CONF = """# Written by Corral: without systemd, slurmd makes its cgroup hierarchy itself.
CgroupPlugin=autodetect
IgnoreSystemdOnFailure=yes
"""

PROLOG_SLURMCTLD = "/etc/corral/bin/prolog-slurmctld"

_PROLOG = """#!/bin/sh
# Slurm's PrologSlurmctld, written by Corral. Slurm 22.05 starts a batch job whose nodes it powered
# up only at its 30-second job check; when this prolog ends, slurmctld starts the job at once. It
# ends as soon as the job's nodes answer (or after the resume timeout), and always succeeds.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
nodes="${{SLURM_JOB_NODELIST:-}}"
[ -n "$nodes" ] || exit 0
i=0
while [ $i -lt {tries} ]; do
  states=$(sinfo -h -N -n "$nodes" -o '%t' 2>/dev/null) || states='?'
  case "$states" in
    ''|*'#'*|*'~'*|*'*'*|*'%'*|*'?'*) ;;
    *) exit 0 ;;
  esac
  sleep 0.5
  i=$((i + 1))
done
exit 0
"""

_NODE_PROGRAM = """#!/bin/sh
# Slurm's {kind} program, written by Corral: hands the node names to Corral.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
exec {command} {action} $(scontrol show hostnames "$1")
"""

_START = """#!/bin/sh
# Written by Corral: start munge and {daemon} unless they run (at bootstrap and each boot).
alive() {{ [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }}
install -d -m 0755 -o munge -g munge /run/munge
if ! alive /run/munge/munged.pid; then
  rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
  runuser -u munge -- /usr/sbin/munged || exit 1
fi
i=0
while [ ! -S /run/munge/munge.socket.2 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
alive {pidfile} || {command} || exit 1
"""


def bootstrap_script(
    cluster: ElasticClusterSpec,
    *,
    role: str,
    auth_key: str,
    node_command: str,
    config_dir: str,
    cloud_dns: bool,
) -> str:
    if role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}", field="role")
    if not _CLUSTER_NAME.match(cluster.cluster_name.lower()[:40]):
        raise Invalid(f"{cluster.cluster_name!r} cannot name a Slurm cluster", field="cluster_name")
    try:
        if len(base64.b64decode(auth_key, validate=True)) < 32:
            raise Invalid("the munge key must be at least 32 bytes", field="auth_key")
    except binascii.Error:
        raise Invalid("the auth key must be base64", field="auth_key") from None
    if not re.match(r"^/\S+$", node_command):
        raise Invalid("the node command must be an absolute path", field="node_command")
    directory = config_dir.rstrip("/")
    files = elastic_files(cluster, config_dir=directory, cloud_dns=cloud_dns)
    controller = role == "controller"
    daemon = "slurmctld" if controller else "slurmd"
    parts = [
        f"# Slurm {role} of {cluster.cluster_name}, written by corral-slurm",
        "set -eu",
        "umask 022",
        f"install -d -m 0755 {shlex.quote(directory)} /etc/corral/boot.d /var/log/slurm "
        "/var/spool/slurmd",
        "install -d -m 0700 /var/spool/slurmctld",
        "install -d -m 0700 -o munge -g munge /etc/munge /var/lib/munge /var/log/munge",
        f"printf '%s' {shlex.quote(auth_key)} | base64 -d > /etc/munge/munge.key",
        "chown munge:munge /etc/munge/munge.key",
        "chmod 0400 /etc/munge/munge.key",
        _heredoc(f"{directory}/slurm.conf", _base_conf(cluster, directory)),
        _heredoc(f"{directory}/cgroup.conf", _CGROUP_CONF),
    ]
    parts += [_heredoc(file.path, file.content, f"{file.mode:04o}") for file in files]
    if controller:
        parts.append("install -d -m 0755 /etc/corral/bin")
        parts.append(
            _heredoc(
                PROLOG_SLURMCTLD,
                _PROLOG.format(tries=cluster.resume_timeout_seconds * 2),
                "0755",
            )
        )
        for kind, program, action in (
            ("resume", cluster.resume_program, "resume"),
            ("suspend", cluster.suspend_program, "suspend"),
        ):
            parts.append(f"install -d -m 0755 {shlex.quote(program.rsplit('/', 1)[0] or '/')}")
            parts.append(
                _heredoc(
                    program,
                    _NODE_PROGRAM.format(kind=kind, command=node_command, action=action),
                    "0755",
                )
            )
    if controller and not cluster.controller_address:
        # the compute nodes' slurm.conf names the controller's address: so must its own
        conf = shlex.quote(f"{directory}/slurm.conf")
        parts.append(
            "address=$(hostname -I | cut -d' ' -f1)\n"
            f'sed -i "s|^SlurmctldHost=.*|SlurmctldHost={cluster.controller_host}($address)|" '
            f"{conf}"
        )
    # -b: report a boot at each start, so a node that did not reboot (a local cloud host, a
    # resumed VM) still counts as powered up
    command = "/usr/sbin/slurmctld -i" if controller else "/usr/sbin/slurmd -b"
    parts.append(
        _heredoc(
            BOOT_SCRIPT,
            _START.format(daemon=daemon, pidfile=f"/run/{daemon}.pid", command=command),
            "0755",
        )
    )
    parts.append(BOOT_SCRIPT)
    return "\n".join(parts) + "\n"


_RECONFIGURE = """
# nodes or partitions added or removed: slurmctld must restart (its state keeps the jobs);
# anything else: scontrol reconfigure
if [ "$nodes_changed" = 1 ]; then
  if [ -f /run/slurmctld.pid ]; then
    pid=$(cat /run/slurmctld.pid)
    kill "$pid" 2>/dev/null || true
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
  fi
  {boot}
  i=0
  until scontrol ping >/dev/null 2>&1; do
    [ $i -lt 300 ] || {{ echo 'slurmctld did not come back' >&2; exit 1; }}
    sleep 0.1; i=$((i + 1))
  done
  echo 'slurmctld restarted with the new nodes and partitions'
elif [ "$changed" = 1 ]; then
  scontrol reconfigure
  echo 'slurmctld re-read its configuration'
else
  echo 'the configuration was already in place'
fi
"""


def reconfigure_script(cluster: ElasticClusterSpec, *, config_dir: str, cloud_dns: bool) -> str:
    """A POSIX shell script, run as root on the running controller, that puts the elastic
    files in place and makes slurmctld use them (see ``Scheduler.elastic_reconfigure``)."""
    directory = config_dir.rstrip("/")
    files = elastic_files(cluster, config_dir=directory, cloud_dns=cloud_dns)
    parts = ["set -eu", "umask 022", "changed=0", "nodes_changed=0"]
    for file in files:
        path = shlex.quote(file.path)
        fresh = shlex.quote(file.path + ".corral-new")
        parts.append(_heredoc(file.path + ".corral-new", file.content, f"{file.mode:04o}"))
        parts.append(
            f"if cmp -s {fresh} {path}; then rm -f {fresh}; else\n"
            f"  old=$(grep -E '^(NodeName|PartitionName|GresTypes)' {path} 2>/dev/null || true)\n"
            f"  new=$(grep -E '^(NodeName|PartitionName|GresTypes)' {fresh} || true)\n"
            '  [ "$old" = "$new" ] || nodes_changed=1\n'
            f"  mv -f {fresh} {path}; changed=1\n"
            "fi"
        )
    parts.append(_RECONFIGURE.format(boot=BOOT_SCRIPT))
    return "\n".join(parts) + "\n"
