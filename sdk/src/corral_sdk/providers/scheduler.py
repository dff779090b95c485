"""Batch schedulers (Slurm, PBS...): submit, status, cancel, hold/release, queues, accounting.

A scheduler plugin registers a :class:`~corral_sdk.records.SchedulerRecord` whose factory is
called as ``factory(runner, config)``: ``runner`` is a :class:`~corral_sdk.transport.CommandRunner`
connected to the cluster's login node, ``config`` the record's ``config`` struct decoded from the
cluster's settings (``None`` without one). The instance lives for one unit of work and keeps no
state beyond those two; every command goes through the runner, so tests replay transcripts with
:class:`corral_sdk.testing.TranscriptRunner`.

Errors: a command that fails raises :class:`~corral_sdk.errors.ProviderError` carrying the
scheduler's own message (user-safe: it is what ``sbatch`` printed); an invalid option raises
:class:`~corral_sdk.errors.Invalid` with ``field``; the runner's
:class:`~corral_sdk.errors.TransportError` and :class:`~corral_sdk.errors.Timeout` pass through.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Protocol, runtime_checkable

import msgspec

from corral_sdk.errors import CorralError, Invalid
from corral_sdk.features import SchedulerFeature
from corral_sdk.providers._common import unsupported, unsupported_default

__all__ = [
    "SCHEDULER_FEATURE_METHODS",
    "AccountingRecord",
    "ConfigFile",
    "ElasticClusterSpec",
    "ElasticPartition",
    "JobSpec",
    "JobState",
    "JobStatus",
    "Node",
    "NodeState",
    "Partition",
    "PowerState",
    "Scheduler",
    "SchedulerBase",
    "SubmittedJob",
]


class JobState(enum.StrEnum):
    """Corral's job states; each scheduler maps its own onto these (Slurm ``CF`` is
    ``PENDING``, ``CA`` is ``CANCELLED``, PBS ``H`` is ``HELD``...)."""

    PENDING = "pending"
    """Waiting for resources, or for nodes to power up."""
    HELD = "held"
    """Kept from starting by a hold (user or admin)."""
    RUNNING = "running"
    SUSPENDED = "suspended"
    COMPLETING = "completing"
    """Finished its work; the scheduler is cleaning up."""
    COMPLETED = "completed"
    """Exited with status 0."""
    FAILED = "failed"
    """Exited non-zero, or could not start."""
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    """Killed at its time limit."""
    OUT_OF_MEMORY = "out_of_memory"
    NODE_FAIL = "node_fail"
    PREEMPTED = "preempted"
    UNKNOWN = "unknown"
    """The scheduler no longer knows the job, or reported a state with no mapping."""

    @property
    def terminal(self) -> bool:
        """Nothing more will happen to the job."""
        return self in _TERMINAL_JOB_STATES


_TERMINAL_JOB_STATES = frozenset(
    {
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.TIMEOUT,
        JobState.OUT_OF_MEMORY,
        JobState.NODE_FAIL,
        JobState.PREEMPTED,
    }
)


class JobSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A batch script and how to run it. ``None`` leaves a setting to the scheduler's default
    (or to directives already in the script)."""

    script: str
    """The script's text, starting with its ``#!`` line; directives in it are kept."""
    name: str = ""
    partition: str | None = None
    """Partition (Slurm) or queue (PBS)."""
    account: str | None = None
    qos: str | None = None
    nodes: int | None = None
    ntasks: int | None = None
    ntasks_per_node: int | None = None
    cpus_per_task: int | None = None
    gpus_per_node: str | None = None
    """A count or ``type:count`` (``a100:2``)."""
    memory_mb: int | None = None
    """Memory per node."""
    time_limit_seconds: int | None = None
    working_directory: str | None = None
    output_path: str | None = None
    error_path: str | None = None
    env: dict[str, str] = msgspec.field(default_factory=dict)
    array: str | None = None
    """Array indices (``0-9%2``); needs :attr:`~corral_sdk.features.SchedulerFeature.JOB_ARRAYS`."""
    depends_on: tuple[str, ...] = ()
    """Start only after these jobs completed successfully."""
    hold: bool = False
    """Submit held (needs :attr:`~corral_sdk.features.SchedulerFeature.HOLD_RELEASE`)."""
    exclusive: bool = False
    mail_types: tuple[str, ...] = ()
    """``BEGIN``, ``END``, ``FAIL``... as the scheduler spells them."""
    mail_user: str | None = None
    flags: dict[str, str | None] = msgspec.field(default_factory=dict)
    """Extra options by long name (``{"constraint": "ib", "requeue": None}``), passed verbatim
    after the ones above; a ``None`` value is a flag without argument."""
    script_headers: str = ""
    """Extra directive lines put after the ``#!`` line (user ``#SBATCH`` / ``#PBS`` lines)."""

    def __post_init__(self) -> None:
        if not self.script.strip():
            raise Invalid("the job script is empty", field="script")
        for field in ("nodes", "ntasks", "ntasks_per_node", "cpus_per_task", "memory_mb"):
            value = getattr(self, field)
            if value is not None and value <= 0:
                raise Invalid(f"{field} must be positive", field=field)
        if self.time_limit_seconds is not None and self.time_limit_seconds <= 0:
            raise Invalid("the time limit must be positive", field="time_limit_seconds")


class SubmittedJob(msgspec.Struct, frozen=True, kw_only=True):
    """A job the scheduler accepted."""

    job_id: str
    """The scheduler's id (``12345``, ``12345.pbs01``); for arrays the array's id."""
    message: str = ""
    """What the submit command printed, for the run log."""


class JobStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One job as the scheduler reports it."""

    job_id: str
    state: JobState
    native_state: str = ""
    """The scheduler's own state (``CONFIGURING``, ``R``), shown next to Corral's."""
    reason: str = ""
    """Why it is pending or how it ended (``Resources``, ``NonZeroExitCode``)."""
    name: str = ""
    user: str = ""
    partition: str = ""
    nodes: tuple[str, ...] = ()
    exit_code: int | None = None
    submit_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    array_job_id: str | None = None
    array_task_id: str | None = None


class Partition(msgspec.Struct, frozen=True, kw_only=True):
    """A partition (Slurm) or queue (PBS)."""

    name: str
    default: bool = False
    available: bool = True
    nodes_total: int = 0
    nodes_idle: int = 0
    cpus_total: int = 0
    gpus_total: int = 0
    max_time_seconds: int | None = None
    """``None`` for no limit (``infinite``)."""
    max_nodes: int | None = None


class NodeState(enum.StrEnum):
    IDLE = "idle"
    MIXED = "mixed"
    """Some of its CPUs are allocated."""
    ALLOCATED = "allocated"
    DRAINING = "draining"
    DRAINED = "drained"
    DOWN = "down"
    UNKNOWN = "unknown"


class PowerState(enum.StrEnum):
    """Power state of an elastic node (Slurm's ``~``, ``#``, ``%`` suffixes)."""

    ON = "on"
    OFF = "off"
    POWERING_UP = "powering_up"
    POWERING_DOWN = "powering_down"


class Node(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    state: NodeState
    native_state: str = ""
    power: PowerState = PowerState.ON
    partitions: tuple[str, ...] = ()
    cpus: int = 0
    cpus_allocated: int = 0
    memory_mb: int = 0
    gpus: int = 0
    features: tuple[str, ...] = ()
    reason: str = ""


class AccountingRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A job from the scheduler's accounting (``sacct``, ``qstat -x``), finished or not."""

    job_id: str
    state: JobState
    native_state: str = ""
    name: str = ""
    user: str = ""
    account: str = ""
    partition: str = ""
    exit_code: int | None = None
    submit_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    elapsed_seconds: int | None = None
    nodes: int = 0
    cpus: int = 0
    gpus: int = 0
    cpu_seconds: float | None = None
    max_rss_mb: float | None = None


class ElasticPartition(msgspec.Struct, frozen=True, kw_only=True):
    """A partition whose nodes a cloud powers up and down on demand."""

    name: str
    node_prefix: str
    """Node names are the prefix followed by a four-digit index (``demo-00060-1-0001``)."""
    max_nodes: int
    cpus: int
    memory_mb: int
    gpus: int = 0
    gpu_type: str = ""
    default: bool = False
    features: tuple[str, ...] = ()


class ElasticClusterSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What an elastic cluster's scheduler configuration must describe."""

    cluster_name: str
    controller_host: str
    partitions: tuple[ElasticPartition, ...]
    controller_address: str = ""
    """The controller's IP address, when known (compute nodes are configured after it runs)."""
    resume_program: str
    """Run by the scheduler with node names to power them up."""
    suspend_program: str
    suspend_time_seconds: int = 300
    resume_timeout_seconds: int = 1200
    suspend_timeout_seconds: int = 300
    return_to_service: int = 1
    """1: only nodes down for not responding come back (``Non Responsive``); 2: any reason."""
    mail_program: str = ""
    """The program the scheduler calls for job notifications (posts to Corral)."""


class ConfigFile(msgspec.Struct, frozen=True, kw_only=True):
    """A file to write on the controller."""

    path: str
    content: str
    mode: int = 0o644


@runtime_checkable
class Scheduler(Protocol):
    """What a scheduler plugin implements. See the module docstring for construction and errors.

    Methods in :data:`SCHEDULER_FEATURE_METHODS` are needed only with their feature;
    :class:`SchedulerBase` gives "unsupported" defaults for them.
    """

    async def submit(self, job: JobSpec) -> SubmittedJob:
        """Submit a batch job and return its id as soon as the scheduler accepted it.

        Options the scheduler cannot express raise ``Invalid`` naming the field (``array``
        without job arrays); a rejected submission raises ``ProviderError`` with the
        scheduler's message.
        """
        ...

    async def status(self, job_ids: Sequence[str]) -> Mapping[str, JobStatus]:
        """The status of many jobs, in as few commands as the scheduler allows.

        Every id asked about is a key of the result. Jobs that left the queue are looked up in
        accounting where there is one; jobs the scheduler does not know at all are ``UNKNOWN``.
        An empty ``job_ids`` returns an empty mapping without running any command.
        """
        ...

    async def cancel(self, job_ids: Sequence[str]) -> None:
        """Cancel jobs, in one command where possible. Idempotent: finished or unknown jobs
        are not an error. An empty ``job_ids`` runs nothing."""
        ...

    async def queue(
        self, *, user: str | None = None, partition: str | None = None
    ) -> Sequence[JobStatus]:
        """The jobs in the queue (pending and running), optionally of one user or partition."""
        ...

    # --- SchedulerFeature.BATCH_SUBMIT

    async def submit_many(self, jobs: Sequence[JobSpec]) -> Sequence[SubmittedJob | CorralError]:
        """Submit several jobs in one round trip.

        One result per job, in order: the job as :meth:`submit` would return it, or the error
        :meth:`submit` would have raised for that job alone. An error that stops them all (the
        connection is lost) is raised. An empty ``jobs`` runs nothing.
        """
        ...

    # --- SchedulerFeature.HOLD_RELEASE

    async def hold(self, job_ids: Sequence[str]) -> None:
        """Keep pending jobs from starting. Raises ``Conflict`` for a job already running."""
        ...

    async def release(self, job_ids: Sequence[str]) -> None:
        """Let held jobs start again; jobs not held are left alone."""
        ...

    # --- SchedulerFeature.PARTITIONS

    async def partitions(self) -> Sequence[Partition]:
        """The partitions (queues), with at most one marked default."""
        ...

    # --- SchedulerFeature.NODES

    async def nodes(self, *, partition: str | None = None) -> Sequence[Node]:
        """The compute nodes and their state, optionally of one partition."""
        ...

    # --- SchedulerFeature.ACCOUNTING

    async def accounting(
        self,
        *,
        job_ids: Sequence[str] | None = None,
        since: datetime | None = None,
        user: str | None = None,
    ) -> Sequence[AccountingRecord]:
        """Jobs from accounting: the given ids, or those submitted since ``since`` (by
        ``user``). Raises ``ProviderError(reason="accounting-disabled")`` when the cluster
        keeps no accounting."""
        ...

    # --- SchedulerFeature.ELASTIC_NODES

    async def elastic_config(self, cluster: ElasticClusterSpec) -> Sequence[ConfigFile]:
        """The configuration files declaring the elastic partitions, their powered-down nodes
        and the power-saving settings (Slurm: ``slurm.conf`` fragments). Runs no command."""
        ...

    async def elastic_bootstrap(
        self, cluster: ElasticClusterSpec, *, role: str, auth_key: str, node_command: str
    ) -> str:
        """A POSIX shell script, run as root on a fresh host of an elastic cluster, that
        configures the scheduler and starts its daemons (``role``: ``controller`` or
        ``compute``), and starts them again at each boot.

        ``auth_key`` is a base64 secret shared by the cluster's hosts (Slurm: the munge key).
        The scheduler's resume and suspend programs (``cluster.resume_program`` and
        ``suspend_program``) must call ``node_command resume|suspend NAME...`` with the node
        names, one per argument. Runs no command itself."""
        ...

    async def elastic_reconfigure(self, cluster: ElasticClusterSpec) -> str:
        """Make the running controller of an elastic cluster use ``cluster``'s configuration:
        write the files of :meth:`elastic_config` through the runner (as root) and have the
        scheduler read them, restarting its controller daemon when nodes or partitions were
        added or removed (queued and running jobs survive it). Nodes that are up keep
        running. Idempotent; returns one line saying what was done, for the cluster's log."""
        ...


SCHEDULER_FEATURE_METHODS: Mapping[SchedulerFeature, tuple[str, ...]] = MappingProxyType(
    {
        SchedulerFeature.HOLD_RELEASE: ("hold", "release"),
        SchedulerFeature.JOB_ARRAYS: (),
        SchedulerFeature.ACCOUNTING: ("accounting",),
        SchedulerFeature.PARTITIONS: ("partitions",),
        SchedulerFeature.NODES: ("nodes",),
        SchedulerFeature.ELASTIC_NODES: (
            "elastic_config",
            "elastic_bootstrap",
            "elastic_reconfigure",
        ),
        SchedulerFeature.BATCH_SUBMIT: ("submit_many",),
    }
)
"""The methods each :class:`~corral_sdk.features.SchedulerFeature` needs; ``JOB_ARRAYS`` is the
``array`` option of :meth:`Scheduler.submit`."""


class SchedulerBase:
    """Optional mixin: every feature method raises ``ProviderError(reason="unsupported")``."""

    @unsupported_default
    async def submit_many(self, jobs: Sequence[JobSpec]) -> Sequence[SubmittedJob | CorralError]:
        raise unsupported(self, "submit_many")

    @unsupported_default
    async def hold(self, job_ids: Sequence[str]) -> None:
        raise unsupported(self, "hold")

    @unsupported_default
    async def release(self, job_ids: Sequence[str]) -> None:
        raise unsupported(self, "release")

    @unsupported_default
    async def partitions(self) -> Sequence[Partition]:
        raise unsupported(self, "partitions")

    @unsupported_default
    async def nodes(self, *, partition: str | None = None) -> Sequence[Node]:
        raise unsupported(self, "nodes")

    @unsupported_default
    async def accounting(
        self,
        *,
        job_ids: Sequence[str] | None = None,
        since: datetime | None = None,
        user: str | None = None,
    ) -> Sequence[AccountingRecord]:
        raise unsupported(self, "accounting")

    @unsupported_default
    async def elastic_config(self, cluster: ElasticClusterSpec) -> Sequence[ConfigFile]:
        raise unsupported(self, "elastic_config")

    @unsupported_default
    async def elastic_bootstrap(
        self, cluster: ElasticClusterSpec, *, role: str, auth_key: str, node_command: str
    ) -> str:
        raise unsupported(self, "elastic_bootstrap")

    @unsupported_default
    async def elastic_reconfigure(self, cluster: ElasticClusterSpec) -> str:
        raise unsupported(self, "elastic_reconfigure")
