"""``slurm.conf`` and ``gres.conf`` for elastic partitions whose nodes a cloud powers up and
down on demand (Slurm's power saving with ``State=CLOUD`` nodes)."""

from __future__ import annotations

import re

from corral_sdk.errors import Invalid
from corral_sdk.providers.scheduler import ConfigFile, ElasticClusterSpec, ElasticPartition
from corral_slurm.hostlist import hostlist_range

__all__ = ["ELASTIC_CONF", "GRES_CONF", "MAX_ELASTIC_NODES", "elastic_files"]

ELASTIC_CONF = "corral-elastic.conf"
"""The ``slurm.conf`` fragment, in the configuration directory; ``slurm.conf`` includes it
with ``Include <dir>/corral-elastic.conf``."""

GRES_CONF = "gres.conf"

MAX_ELASTIC_NODES = 9999
"""Node names end in a four-digit index."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]*$")
_PROGRAM = re.compile(r"^/\S+$")


def _check(cluster: ElasticClusterSpec) -> None:
    if not cluster.partitions:
        raise Invalid("an elastic cluster needs at least one partition", field="partitions")
    for field in ("resume_program", "suspend_program"):
        if not _PROGRAM.match(getattr(cluster, field)):
            raise Invalid(
                f"{field.replace('_', ' ')} must be an absolute path without spaces", field=field
            )
    if cluster.mail_program and not _PROGRAM.match(cluster.mail_program):
        raise Invalid(
            "the mail program must be an absolute path without spaces", field="mail_program"
        )
    for field in ("suspend_time_seconds", "resume_timeout_seconds", "suspend_timeout_seconds"):
        if getattr(cluster, field) <= 0:
            raise Invalid(f"{field.replace('_', ' ')} must be positive", field=field)
    if cluster.return_to_service not in (0, 1, 2):
        raise Invalid("return to service must be 0, 1 or 2", field="return_to_service")
    names = [p.name for p in cluster.partitions]
    prefixes = [p.node_prefix for p in cluster.partitions]
    if len(set(names)) != len(names):
        raise Invalid("partition names must be unique", field="partitions")
    if len(set(prefixes)) != len(prefixes):
        raise Invalid("partitions must not share a node prefix", field="partitions")
    if sum(p.default for p in cluster.partitions) > 1:
        raise Invalid("at most one partition can be the default", field="partitions")
    for partition in cluster.partitions:
        _check_partition(partition)


def _check_partition(partition: ElasticPartition) -> None:
    if not _NAME.match(partition.name) or partition.name.upper() == "DEFAULT":
        # PartitionName=DEFAULT sets every partition's defaults in slurm.conf
        raise Invalid(f"{partition.name!r} cannot name a Slurm partition", field="partitions")
    if not _PREFIX.match(partition.node_prefix):
        raise Invalid(
            f"{partition.node_prefix!r} cannot start Slurm node names (letters first, then "
            "letters, digits, '-', '_' or '.')",
            field="partitions",
        )
    if not 1 <= partition.max_nodes <= MAX_ELASTIC_NODES:
        raise Invalid(
            f"partition {partition.name!r} needs 1 to {MAX_ELASTIC_NODES} nodes",
            field="partitions",
        )
    if partition.cpus <= 0 or partition.memory_mb <= 0 or partition.gpus < 0:
        raise Invalid(
            f"partition {partition.name!r} needs positive CPUs and memory", field="partitions"
        )
    if partition.gpu_type and not _NAME.match(partition.gpu_type):
        raise Invalid(f"{partition.gpu_type!r} cannot name a GPU type", field="partitions")
    for feature in partition.features:
        if not _NAME.match(feature):
            raise Invalid(f"{feature!r} cannot name a node feature", field="partitions")


def _gres(partition: ElasticPartition) -> str:
    if partition.gpu_type:
        return f"gpu:{partition.gpu_type}:{partition.gpus}"
    return f"gpu:{partition.gpus}"


def _slurm_conf(cluster: ElasticClusterSpec, *, path: str, cloud_dns: bool) -> str:
    # names in DNS, or addresses learnt when each node's slurmd registers
    parameters = "cloud_dns" if cloud_dns else "cloud_reg_addrs"
    parameters += ",idle_on_node_suspend"
    lines = [
        f"# Corral: the elastic nodes of cluster {cluster.cluster_name} "
        f"(controller {cluster.controller_host}).",
        f"# Written by Corral; slurm.conf includes it with: Include {path}",
        f"SuspendProgram={cluster.suspend_program}",
        f"ResumeProgram={cluster.resume_program}",
        f"SuspendTime={cluster.suspend_time_seconds}",
        f"SuspendTimeout={cluster.suspend_timeout_seconds}",
        f"ResumeTimeout={cluster.resume_timeout_seconds}",
        f"ReturnToService={cluster.return_to_service}",
        "# cloud nodes have no address in slurm.conf: slurmd must not relay messages to others",
        "TreeWidth=65533",
        f"SlurmctldParameters={parameters}",
        "# addresses change as nodes come and go",
        "CommunicationParameters=NoAddrCache",
        "# show powered-down cloud nodes in sinfo (Slurm before 23.02; later ones always do)",
        "PrivateData=cloud",
    ]
    if any(p.gpus for p in cluster.partitions):
        lines.append("GresTypes=gpu")
    if cluster.mail_program:
        lines.append(f"MailProg={cluster.mail_program}")
    lines.append("")
    for partition in cluster.partitions:
        nodes = hostlist_range(partition.node_prefix, partition.max_nodes)
        node_line = (
            f"NodeName={nodes} State=CLOUD CPUs={partition.cpus} RealMemory={partition.memory_mb}"
        )
        if partition.gpus:
            node_line += f" Gres={_gres(partition)}"
        if partition.features:
            node_line += f" Features={','.join(partition.features)}"
        lines.append(node_line)
    for partition in cluster.partitions:
        nodes = hostlist_range(partition.node_prefix, partition.max_nodes)
        default = "YES" if partition.default else "NO"
        lines.append(
            f"PartitionName={partition.name} Nodes={nodes} Default={default} "
            "MaxTime=INFINITE State=UP"
        )
    return "\n".join(lines) + "\n"


def _gres_conf(cluster: ElasticClusterSpec) -> str:
    lines = [f"# Corral: the GPUs of the elastic nodes of cluster {cluster.cluster_name}."]
    for partition in cluster.partitions:
        if not partition.gpus:
            continue
        nodes = hostlist_range(partition.node_prefix, partition.max_nodes)
        devices = "/dev/nvidia0" if partition.gpus == 1 else f"/dev/nvidia[0-{partition.gpus - 1}]"
        kind = f" Type={partition.gpu_type}" if partition.gpu_type else ""
        lines.append(f"NodeName={nodes} Name=gpu{kind} File={devices}")
    return "\n".join(lines) + "\n"


def elastic_files(
    cluster: ElasticClusterSpec, *, config_dir: str, cloud_dns: bool
) -> list[ConfigFile]:
    """The ``slurm.conf`` fragment for ``cluster`` and, when a partition has GPUs, its
    ``gres.conf``; raises ``Invalid`` for what Slurm could not be configured with."""
    _check(cluster)
    directory = config_dir.rstrip("/")
    conf_path = f"{directory}/{ELASTIC_CONF}"
    files = [
        ConfigFile(
            path=conf_path, content=_slurm_conf(cluster, path=conf_path, cloud_dns=cloud_dns)
        )
    ]
    if any(p.gpus for p in cluster.partitions):
        files.append(ConfigFile(path=f"{directory}/{GRES_CONF}", content=_gres_conf(cluster)))
    return files
