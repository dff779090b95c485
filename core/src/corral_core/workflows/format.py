"""The workflow YAML format (spec ``20-workflows-sessions.md`` §3-8) as msgspec structs.

These structs are both the validator (the loader converts each part of a parsed document into
them, so that an error can name its line and column) and the source of the published JSON Schema
(``/api/schema/workflow.json``, ``config/schema/workflow.schema.json``). Field names follow the
YAML keys exactly (``max-retries``, ``remoteHost``, ``working-directory``). Values that may be
expressions (``${{ ... }}``) are typed loosely where an expression can stand for a number or a
boolean; the plan checks them once they are evaluated.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

import msgspec
from msgspec import UNSET, Meta, UnsetType, field

__all__ = [
    "INPUT_TYPES",
    "Configuration",
    "Execute",
    "Input",
    "Job",
    "Matrix",
    "On",
    "PromptForName",
    "Retry",
    "SSHTarget",
    "Session",
    "Step",
    "Strategy",
    "Workflow",
    "WorkflowNeeds",
]


InputType = Literal[
    "boolean",
    "bucket",
    "color-picker",
    "compute-clusters",
    "dropdown",
    "editor",
    "group",
    "header",
    "instance-type",
    "kubernetes-clusters",
    "kubernetes-configmaps",
    "kubernetes-deployments",
    "kubernetes-namespaces",
    "kubernetes-pods",
    "kubernetes-pvc",
    "kubernetes-secrets",
    "kubernetes-services",
    "kubernetes-statefulsets",
    "kubernetes-workloads",
    "list",
    "multi-dropdown",
    "number",
    "organization-groups",
    "password",
    "region",
    "slurm-accounts",
    "slurm-partitions",
    "slurm-qos",
    "string",
    "zone",
    "step",
]
INPUT_TYPES: tuple[str, ...] = get_args(InputType)
"""Every input type of spec §5.3."""

Duration = Annotated[
    str | int,
    Meta(
        description="A duration: a number and a unit, n (nanoseconds), s, m, h or d (10s, 1m, "
        "1h30m, 1d); a bare number is seconds",
        examples=["10s", "1m", "1d"],
    ),
]
Condition = Annotated[
    str | bool,
    Meta(description="An expression; false, 0, empty or undefined skips it ({{ always }} too)"),
]
EnvValue = str | int | float | bool | None
Expression = Annotated[str, Meta(description="An expression: ${ ... }, ${{ ... }} or {{ ... }}")]


class _Format(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    pass


class SSHTarget(_Format):
    """Where steps run over SSH; ``ssh: null`` runs them in the user's workspace."""

    remoteHost: Annotated[str, Meta(description="Host or IP (host:port allowed) to run on")]
    remoteUser: str = ""
    jumpNodeHost: str = ""
    jumpNodeUser: str = ""


class Retry(_Format):
    """Attempts of a failing step: 10 retries, 5 s apart, 30 s each, unless set."""

    max_retries: int | str = field(name="max-retries", default=10)
    interval: Duration = "5s"
    timeout: Duration = "30s"


class Step(_Format):
    """One step: exactly one of ``run`` (a shell command) or ``uses`` (an action or workflow)."""

    name: str = ""
    id: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]+$")] = ""
    run: str | None = None
    uses: str | None = None
    with_: dict[str, Any] = field(name="with", default_factory=dict)
    ssh: SSHTarget | UnsetType | None = UNSET
    cleanup: str | None = None
    if_: Condition | None = field(name="if", default=None)
    retry: Retry | None = None
    env: dict[str, EnvValue] = field(default_factory=dict)
    ignore_errors: bool | str = field(name="ignore-errors", default=False)
    working_directory: str | None = field(name="working-directory", default=None)
    early_cancel: Literal["any-job-failed"] | None = field(name="early-cancel", default=None)
    timeout: Duration | None = None


class Matrix(_Format):
    """Axes are the other keys (each an array); ``include`` adds or extends combinations,
    ``exclude`` removes them."""

    include: list[dict[str, Any]] = field(default_factory=list)
    exclude: list[dict[str, Any]] = field(default_factory=list)


class Strategy(_Format):
    matrix: dict[str, Any]
    fail_fast: bool = field(name="fail-fast", default=True)
    max_parallel: Annotated[int, Meta(ge=1)] | None = field(name="max-parallel", default=None)


class Job(_Format):
    """Jobs run in parallel unless ``needs`` orders them; steps run in order."""

    steps: Annotated[list[Step], Meta(min_length=1)]
    needs: list[str] | str = field(default_factory=list)
    ssh: SSHTarget | UnsetType | None = UNSET
    if_: Condition | None = field(name="if", default=None)
    env: dict[str, EnvValue] = field(default_factory=dict)
    working_directory: str | None = field(name="working-directory", default=None)
    timeout: Duration | None = None
    strategy: Strategy | None = None
    outputs: dict[str, str] = field(default_factory=dict)


class Option(_Format):
    label: str = ""
    value: Any = None


class Input(_Format):
    """A form input (spec §5). Attributes other than the universal ones belong to some types;
    the loader says which."""

    type: InputType
    label: str = ""
    description: str = ""
    tooltip: str = ""
    default: Any = None
    disabled: bool | str = False
    hidden: bool | str = False
    ignore: bool = False
    optional: bool | str | UnsetType = UNSET
    # string / editor
    placeholder: str = ""
    textarea: bool = False
    prefillDefault: bool = False
    language: str = ""
    # number
    min: float | None = None
    max: float | None = None
    step: float | None = None
    slider: bool = False
    # dropdowns; a step's nested inputs
    options: list[Option] | dict[str, Any] | None = None
    option_key: str | None = field(name="option-key", default=None)
    # group / list
    items: dict[str, Any] | None = None
    collapsed: bool = False
    template: dict[str, Any] | None = None
    items_collapsible: bool = field(name="items-collapsible", default=False)
    # header / step
    text: str = ""
    bold: bool = False
    size: str | int | None = None
    title: str = ""
    nextLabel: str = ""
    prevLabel: str = ""
    # resource pickers
    csp: str | list[str] | None = None
    provider: str | None = None
    include_workspace: bool = field(name="include-workspace", default=False)
    autoselect: bool = False
    generateCredentials: bool = False
    region: str | None = None
    resource: str | None = None
    account: str | None = None
    partition: str | None = None
    clusterName: str | None = None
    namespace: str | None = None


class Execute(_Format):
    inputs: dict[str, Any] = field(default_factory=dict)


class On(_Format):
    execute: Execute | None = None


class PromptForName(_Format):
    default: str = ""


class Session(_Format):
    """A session a run creates (spec §7); ``parallelworks/update-session`` fills it in."""

    type: Literal["tunnel", "link"] = "tunnel"
    openAI: bool = False
    prompt_for_name: PromptForName | UnsetType | None = field(name="prompt-for-name", default=UNSET)
    redirect: bool = False
    useTLS: bool = False
    useCustomDomain: bool = False
    detach: bool = False


class Configuration(_Format):
    inputs: dict[str, Any] = field(default_factory=dict)


class WorkflowNeeds(_Format):
    organizationVariables: list[str] = field(default_factory=list)


class Workflow(_Format):
    """A workflow: at least one job, each with at least one step."""

    jobs: Annotated[dict[str, Job], Meta(min_length=1)]
    on: On | None = None
    env: dict[str, EnvValue] = field(default_factory=dict)
    timeout: Duration | None = None
    needs: WorkflowNeeds | None = None
    permissions: list[str] = field(default_factory=list)
    configurations: dict[str, Configuration] = field(default_factory=dict)
    sessions: dict[str, Session | None] = field(default_factory=dict)
