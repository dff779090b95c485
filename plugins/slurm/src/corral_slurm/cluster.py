"""Partitions and nodes as ``sinfo`` prints them with a format string.

22.05's ``sinfo --json`` lists nodes only and 23.02 replaced it with a list of node groups,
while these format letters mean the same on every version since 14: the plugin reads text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from corral_sdk.providers.scheduler import Node, Partition
from corral_slurm.states import node_state
from corral_slurm.values import gpu_count, parse_duration

__all__ = [
    "SINFO_NODE_FORMAT",
    "SINFO_PARTITION_FORMAT",
    "parse_sinfo_nodes",
    "parse_sinfo_partitions",
]

SINFO_PARTITION_FORMAT = "%P|%a|%l|%s|%D|%F|%C|%G"
"""Partition (``*`` marks the default), availability, time limit, maximum nodes per job,
node count, nodes ``allocated/idle/other/total``, CPUs ``allocated/idle/other/total``,
generic resources per node. ``sinfo`` prints one line per group of alike nodes, so lines of
one partition add up."""

SINFO_NODE_FORMAT = "%N|%R|%T|%c|%C|%m|%G|%f|%E"
"""Node, partition, state with its suffixes, CPUs, CPUs ``allocated/idle/other/total``,
memory (MB), generic resources, features, and the reason last (it may hold spaces and
``|``). With ``--Node`` a node in two partitions has two lines."""


def _fields(line: str, count: int) -> list[str] | None:
    fields = line.split("|", count - 1)
    return fields if len(fields) == count else None


def _number(text: str) -> int:
    text = text.strip().rstrip("+")  # 8000+: nodes of the line differ; the least is shown
    return int(text) if text.isdigit() else 0


def _counts(text: str) -> tuple[int, int, int, int]:
    """``A/I/O/T`` -> four integers (zeros when malformed)."""
    parts = text.strip().split("/")
    if len(parts) != 4 or not all(part.isdigit() for part in parts):
        return 0, 0, 0, 0
    allocated, idle, other, total = (int(part) for part in parts)
    return allocated, idle, other, total


@dataclass
class _PartitionSum:
    name: str
    default: bool = False
    available: bool = True
    max_time_seconds: int | None = None
    max_nodes: int | None = None
    nodes_total: int = 0
    nodes_idle: int = 0
    cpus_total: int = 0
    gpus_total: int = 0


def parse_sinfo_partitions(stdout: str) -> list[Partition]:
    """Partitions from ``sinfo --noheader --format=<SINFO_PARTITION_FORMAT>``, in order."""
    sums: dict[str, _PartitionSum] = {}
    count = SINFO_PARTITION_FORMAT.count("|") + 1
    for line in stdout.splitlines():
        fields = _fields(line, count)
        if fields is None:
            continue
        raw_name, availability, time_limit, max_nodes, node_count = fields[:5]
        nodes_by_state, cpus_by_state, gres = fields[5:]
        name = raw_name.strip().rstrip("*")
        if not name:
            continue
        part = sums.get(name)
        if part is None:
            seconds = parse_duration(time_limit)
            part = sums[name] = _PartitionSum(
                name=name,
                default=raw_name.strip().endswith("*"),
                available=availability.strip().lower() == "up",
                max_time_seconds=int(seconds) if seconds is not None else None,
                # "1-infinite": the least and most nodes a job may ask for
                max_nodes=_number(max_nodes.rpartition("-")[2]) or None,
            )
        _, idle, _, total = _counts(nodes_by_state)
        part.nodes_total += total
        part.nodes_idle += idle
        part.cpus_total += _counts(cpus_by_state)[3]
        part.gpus_total += _number(node_count) * gpu_count(gres)
    return [
        Partition(
            name=part.name,
            default=part.default,
            available=part.available,
            nodes_total=part.nodes_total,
            nodes_idle=part.nodes_idle,
            cpus_total=part.cpus_total,
            gpus_total=part.gpus_total,
            max_time_seconds=part.max_time_seconds,
            max_nodes=part.max_nodes,
        )
        for part in sums.values()
    ]


@dataclass
class _NodeLines:
    fields: list[str]
    partitions: list[str] = field(default_factory=list)


def _features(text: str) -> tuple[str, ...]:
    text = text.strip()
    if text in ("", "(null)"):
        return ()
    return tuple(feature for feature in text.split(",") if feature)


def parse_sinfo_nodes(stdout: str) -> list[Node]:
    """Nodes from ``sinfo --Node --noheader --format=<SINFO_NODE_FORMAT>``, one per node with
    all its partitions, in order."""
    nodes: dict[str, _NodeLines] = {}
    count = SINFO_NODE_FORMAT.count("|") + 1
    for line in stdout.splitlines():
        fields = _fields(line, count)
        if fields is None or not fields[0].strip():
            continue
        name = fields[0].strip()
        entry = nodes.setdefault(name, _NodeLines(fields=fields))
        partition = fields[1].strip()
        if partition and partition not in entry.partitions:
            entry.partitions.append(partition)
    result = []
    for name, entry in nodes.items():
        _, _, native, cpus, cpus_by_state, memory, gres, features, reason = entry.fields
        state, power, responding = node_state(native)
        reason = reason.strip()
        if reason.lower() == "none":
            reason = ""
        if not responding and not reason:
            reason = "not responding"
        result.append(
            Node(
                name=name,
                state=state,
                native_state=native.strip(),
                power=power,
                partitions=tuple(entry.partitions),
                cpus=_number(cpus),
                cpus_allocated=_counts(cpus_by_state)[0],
                memory_mb=_number(memory),
                gpus=gpu_count(gres),
                features=_features(features),
                reason=reason,
            )
        )
    return result
