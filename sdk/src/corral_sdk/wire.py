"""Wire types of the kernel's own API responses (shared by the server and the CLI)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "ApiKeyCreate",
    "AuditEntry",
    "AuditList",
    "CapacityReservationCreate",
    "CapacityReservationInfo",
    "CloudAccountAccess",
    "CloudAccountCreate",
    "CloudAccountInfo",
    "CloudAccountUpdate",
    "CloudClusterDefinition",
    "CloudController",
    "CloudPartition",
    "CloudPermissions",
    "ClusterAdvanced",
    "ClusterCreate",
    "ClusterDuplicate",
    "ClusterEstimate",
    "ClusterInfo",
    "ClusterList",
    "ClusterLogs",
    "ClusterStatus",
    "ClusterType",
    "ClusterUpdate",
    "CredentialInfo",
    "GrantCreate",
    "GrantInfo",
    "GroupCreate",
    "GroupInfo",
    "GroupRoles",
    "GroupUpdate",
    "Health",
    "HostKeyAccept",
    "HostKeyInfo",
    "HourlyCost",
    "InstanceTypeInfo",
    "InstanceTypeList",
    "InstanceTypePolicy",
    "InstanceTypePolicyUpdate",
    "IssuedCredential",
    "JobInfo",
    "JobList",
    "JobStateName",
    "JobSubmit",
    "LoginRequest",
    "MarketplaceFork",
    "MarketplaceForked",
    "MarketplaceItemInfo",
    "MarketplaceList",
    "MarketplacePrivacy",
    "MarketplacePublish",
    "MarketplaceType",
    "MarketplaceUpdate",
    "MarketplaceUse",
    "MarketplaceVersionCreate",
    "MarketplaceVersionInfo",
    "NetworkCreate",
    "NetworkDetails",
    "NetworkList",
    "NetworkRegionDefinition",
    "NetworkRegionResources",
    "NetworkStatus",
    "NetworkStep",
    "NetworkUpdate",
    "NodeCallback",
    "NodeInfo",
    "OrgAdmin",
    "OrgCreate",
    "OrgInfo",
    "OrgVariableInfo",
    "OrgVariableSet",
    "OsSnapshotCreate",
    "OsSnapshotInfo",
    "OsSnapshotList",
    "OsSnapshotStatus",
    "Page",
    "PartitionInfo",
    "PluginInfo",
    "Problem",
    "ProvisionStepInfo",
    "Registered",
    "ResourceCreate",
    "ResourceInfo",
    "ResourceList",
    "ResourceStep",
    "ResourceUpdate",
    "RunClean",
    "RunCleaned",
    "RunError",
    "RunInfo",
    "RunJobInfo",
    "RunList",
    "RunLogEnd",
    "RunLogLineInfo",
    "RunLogs",
    "RunStart",
    "RunStepInfo",
    "SshKeyCreate",
    "SshKeyInfo",
    "StaticIpCreate",
    "StaticIpInfo",
    "StaticIpList",
    "StaticIpStatus",
    "StorageCategoryName",
    "StorageCreate",
    "StorageCredentials",
    "StorageDetails",
    "StorageList",
    "StorageLogLine",
    "StorageLogs",
    "StoragePermission",
    "StorageSessionInfo",
    "StorageSessionList",
    "StorageSessionStatus",
    "StorageShare",
    "StorageShareInfo",
    "StorageStatus",
    "StorageSummary",
    "StorageTypeInfo",
    "StorageUpdate",
    "TokenCreate",
    "UserCreate",
    "UserInfo",
    "UserList",
    "UserUpdate",
    "VersionInfo",
    "Whoami",
    "WorkflowCheck",
    "WorkflowCreate",
    "WorkflowInfo",
    "WorkflowList",
    "WorkflowMarketplace",
    "WorkflowProblemInfo",
    "WorkflowUpdate",
    "WorkflowVersionInfo",
]


class Registered(msgspec.Struct, frozen=True, kw_only=True):
    """What a plugin registers of one kind: ``scheduler`` → ``["slurm"]``."""

    kind: str
    names: list[str]


class PluginInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One plugin as the kernel found it."""

    name: str
    distribution: str
    version: str
    status: Literal["loaded", "failed", "denied"]
    reason: str = ""
    """Why it failed or was denied; empty when loaded."""
    builtin: bool = False
    registers: list[Registered] = msgspec.field(default_factory=list)


class Health(msgspec.Struct, frozen=True, kw_only=True):
    status: Literal["ok", "degraded"]
    version: str
    mode: str
    checks: dict[str, str] = msgspec.field(default_factory=dict)


class VersionInfo(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    components: dict[str, str] = msgspec.field(default_factory=dict)


class Problem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem details body."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str = ""
    instance: str = ""
    reason: str = ""
    errors: list[dict[str, Any]] = msgspec.field(default_factory=list)


# --- identity -----------------------------------------------------------------------------------


class _Request(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Request bodies reject unknown fields, so a typo is an error rather than ignored."""


class LoginRequest(_Request, frozen=True, kw_only=True):
    username: str
    password: str
    method: str = "password"


class Whoami(msgspec.Struct, frozen=True, kw_only=True):
    username: str
    org: str
    roles: list[str]
    groups: list[str] = msgspec.field(default_factory=list)
    credential: str
    """How this request authenticated: ``session``, ``apikey`` or ``token``."""
    credential_id: int | None = None
    credential_expires_at: datetime | None = None


class ApiKeyCreate(_Request, frozen=True, kw_only=True):
    name: str
    expiration_days: Annotated[int, msgspec.Meta(ge=0, le=100_000)] | None = None
    """None (no expiry), 7, 30, 60 or 90, as the organization's policy allows."""


class TokenCreate(_Request, frozen=True, kw_only=True):
    expiration_hours: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 24
    """1 to 24."""


class CredentialInfo(msgspec.Struct, frozen=True, kw_only=True):
    """An API key or token as listed: never its secret."""

    id: int
    kind: str
    name: str
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None


class IssuedCredential(msgspec.Struct, frozen=True, kw_only=True):
    """A new API key or token: ``secret`` is shown this once and cannot be retrieved again."""

    id: int
    kind: str
    name: str
    created_at: datetime
    expires_at: datetime | None = None
    secret: str


class SshKeyCreate(_Request, frozen=True, kw_only=True):
    name: str
    key: str


class SshKeyInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    key: str
    fingerprint: str
    created_at: datetime | None = None
    system: bool = False
    """The platform's own key for this user (not deletable)."""


class OrgAdmin(_Request, frozen=True, kw_only=True):
    username: str
    password: str | None = None
    email: str = ""


class OrgCreate(_Request, frozen=True, kw_only=True):
    name: str
    display_name: str = ""
    seats: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] = 0
    """0 means unlimited."""
    admin: OrgAdmin | None = None
    """The organization's first user, made a member of ``org-admins`` (``org:admin``)."""


class OrgInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    display_name: str
    seats: int
    managed_by: str | None = None
    created_at: datetime


class OrgVariableSet(_Request, frozen=True, kw_only=True):
    value: str
    """At most 64 KiB; workflows read it as ``${{ org.<key> }}``."""


class OrgVariableInfo(msgspec.Struct, frozen=True, kw_only=True):
    """An organization workflow variable (``org.<key>`` in workflows)."""

    key: str
    value: str
    updated_by: str
    updated_at: datetime


class UserCreate(_Request, frozen=True, kw_only=True):
    username: str
    name: str = ""
    email: str = ""
    password: str | None = None
    groups: list[str] = msgspec.field(default_factory=list)


class UserUpdate(_Request, frozen=True, kw_only=True):
    name: str | None = None
    email: str | None = None
    password: str | None = None
    disabled: bool | None = None
    no_seat: bool | None = None


class UserInfo(msgspec.Struct, frozen=True, kw_only=True):
    username: str
    name: str
    email: str
    org: str
    status: Literal["active", "disabled"]
    no_seat: bool = False
    created_at: datetime
    last_login_at: datetime | None = None


class Page(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    limit: int
    offset: int


class UserList(Page, frozen=True, kw_only=True):
    items: list[UserInfo]


class GroupCreate(_Request, frozen=True, kw_only=True):
    name: str
    description: str = ""


class GroupUpdate(_Request, frozen=True, kw_only=True):
    description: str | None = None
    allocation_total: float | None = None


class GroupRoles(_Request, frozen=True, kw_only=True):
    roles: list[str]


class GroupInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    description: str
    roles: list[str]
    members: int
    allocation_total: float | None = None
    created_at: datetime


class ResourceCreate(_Request, frozen=True, kw_only=True):
    kind: str
    name: str
    display_name: str = ""
    description: str = ""
    tags: list[str] = msgspec.field(default_factory=list)
    spec: dict[str, Any] = msgspec.field(default_factory=dict)
    desired_state: str | None = None


class ResourceUpdate(_Request, frozen=True, kw_only=True):
    desired_state: str | None = None
    spec: dict[str, Any] | None = None


class ResourceInfo(msgspec.Struct, frozen=True, kw_only=True):
    uri: str
    kind: str
    owner: str
    name: str
    display_name: str
    description: str
    tags: list[str]
    spec: dict[str, Any]
    desired_state: str
    observed_state: str
    reason: str
    generation: int
    observed_generation: int
    created_at: datetime
    updated_at: datetime


class ResourceList(Page, frozen=True, kw_only=True):
    items: list[ResourceInfo]


class GrantCreate(_Request, frozen=True, kw_only=True):
    level: str


class GrantInfo(msgspec.Struct, frozen=True, kw_only=True):
    group: str
    level: str
    created_at: datetime


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    source: str
    outcome: str


class AuditList(Page, frozen=True, kw_only=True):
    items: list[AuditEntry]


# --- clusters -------------------------------------------------------------------------------------

ClusterStatus = Literal[
    "off", "connecting", "provisioning", "active", "stopping", "stopped", "destroying", "failed"
]


class CloudController(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where and on what a cloud cluster's controller runs; empty fields take the provider's
    first region and zone and its smallest instance type."""

    region: str = ""
    zone: str = ""
    instance_type: str = ""
    image: str = "latest"
    """An image id of the provider, or ``latest`` for its recommended one."""
    root_size_gib: int = 100
    static_ip: str = ""
    """A static IP's id, or empty for an address assigned automatically."""


class CloudPartition(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A partition of elastic nodes, created when jobs need them and deleted when idle."""

    name: str
    instance_type: str = ""
    max_nodes: int = 1
    default: bool = False
    """The scheduler's default partition; forced on when the cluster has one partition."""
    elastic_image: str = "latest"
    zones: list[str] = msgspec.field(default_factory=list)
    multi_zone: bool = False
    use_placement_group: bool = False
    preemptible: bool = False
    capacity_reservation: bool = False
    """Launch the partition's nodes into ``capacity_reservation_id``: a reservation your
    organization mapped to a group you belong to (its costs go to that group)."""
    capacity_reservation_id: str = ""
    placement_group: str = ""


class ClusterAdvanced(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Advanced settings of a cloud cluster (scheduler timings are in seconds)."""

    debug_mode: bool = False
    """Keep the hosts of a failed start for inspection; the owner may sign in as root."""
    user_bootstrap: str = ""
    """A script run as the owner once a host has started."""
    bootstrap_controller: bool = False
    bootstrap_compute: bool = False
    health_check: str = ""
    """A script run on the controller after its bootstrap; non-zero fails the start."""
    suspend_time: int = 300
    resume_timeout: int = 1200
    suspend_timeout: int = 300
    return_to_service: Literal["non-responsive", "any-reason"] = "non-responsive"


class CloudClusterDefinition(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An elastic cluster built on a cloud account: a controller and elastic partitions."""

    cloud_account: str
    network: str = ""
    """A provisioned network of the same cloud account (``corral networks``) holding the
    controller's region; required by providers with networks (not by the local cloud)."""
    controller: CloudController = msgspec.field(default_factory=CloudController)
    partitions: list[CloudPartition] = msgspec.field(default_factory=list)
    advanced: ClusterAdvanced = msgspec.field(default_factory=ClusterAdvanced)


class HourlyCost(msgspec.Struct, frozen=True, kw_only=True):
    """One line of a cloud cluster's hourly estimate."""

    item: str
    instance_type: str = ""
    unit_cost: str = ""
    """Per node per hour, in ``currency``; empty when the provider gives no price."""
    max_cost: str = ""
    """``unit_cost`` times the most nodes the line can have."""
    currency: str = "USD"


class ClusterCreate(_Request, frozen=True, kw_only=True):
    """Register a cluster. ``type = "existing"``: a cluster you already run, reached over SSH at
    its login node (``__USER__`` in ``username`` becomes each user's own username).
    ``type = "cloud"``: an elastic cluster Corral builds on a cloud account (``cloud``)."""

    name: str
    display_name: str = ""
    description: str = ""
    tags: list[str] = msgspec.field(default_factory=list)
    type: Literal["existing", "cloud"] = "existing"
    group: str = ""
    """The group the cluster's use is accounted to (a group of your organization)."""
    scheduler: str = "slurm"
    cloud: CloudClusterDefinition | None = None
    login_host: str = ""
    port: int = 22
    username: str = "__USER__"
    jump_host: str = ""
    jump_user: str = ""
    jump_port: int = 22
    working_directory: str = ""
    scheduler_config: dict[str, Any] = msgspec.field(default_factory=dict)
    """Settings of the scheduler plugin (its own struct decodes them)."""


class ClusterUpdate(_Request, frozen=True, kw_only=True):
    """Change a cluster's definition; fields left out keep their value."""

    display_name: str | None = None
    description: str | None = None
    tags: list[str] | None = None
    group: str | None = None
    scheduler: str | None = None
    login_host: str | None = None
    port: int | None = None
    username: str | None = None
    jump_host: str | None = None
    jump_user: str | None = None
    jump_port: int | None = None
    working_directory: str | None = None
    scheduler_config: dict[str, Any] | None = None
    cloud: CloudClusterDefinition | None = None
    """A cloud cluster's whole definition, replacing the current one."""


class PartitionInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    default: bool = False
    available: bool = True
    nodes_total: int = 0
    nodes_idle: int = 0
    cpus_total: int = 0
    gpus_total: int = 0
    max_time_seconds: int | None = None


class NodeInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    state: str
    power: str = "on"
    partitions: list[str] = msgspec.field(default_factory=list)
    cpus: int = 0
    cpus_allocated: int = 0
    memory_mb: int = 0
    gpus: int = 0
    reason: str = ""


class ClusterInfo(msgspec.Struct, frozen=True, kw_only=True):
    uri: str
    owner: str
    name: str
    display_name: str
    description: str
    tags: list[str]
    type: str
    type_label: str
    """What the cluster is, for lists (``Slurm existing cluster``)."""
    status: ClusterStatus
    desired_state: str
    reason: str
    """Why the cluster failed (or what it is waiting for)."""
    group: str
    scheduler: str
    login_host: str
    port: int
    username: str
    jump_host: str
    jump_user: str
    jump_port: int
    working_directory: str
    partitions: list[PartitionInfo] = msgspec.field(default_factory=list)
    nodes: list[NodeInfo] = msgspec.field(default_factory=list)
    checked_at: datetime | None = None
    """When Corral last reached the cluster."""
    created_at: datetime
    updated_at: datetime
    cloud: CloudClusterDefinition | None = None
    session: int = 0
    """A cloud cluster's start count; it names the hosts (``<user>-<cluster>-<NNNNN>-mgmt``)."""
    controller_address: str = ""


class ProvisionStepInfo(msgspec.Struct, frozen=True, kw_only=True):
    log: Literal["provision", "deletion", "scheduler"]
    name: str
    state: Literal["pending", "running", "completed", "failed", "skipped"]
    detail: str = ""
    updated_at: datetime


class ClusterType(msgspec.Struct, frozen=True, kw_only=True):
    """A cloud provider's clusters, and whether the caller may start them: a provider that makes
    networks needs the ``network`` permission on one of its cloud accounts."""

    provider: str
    available: bool
    reason: str = ""
    """Why not, when ``available`` is false."""


class ClusterLogs(msgspec.Struct, frozen=True, kw_only=True):
    """The provisioning log of a cloud cluster's session: steps and lines per tab."""

    session: int
    steps: list[ProvisionStepInfo]
    lines: list[str]


class ClusterEstimate(msgspec.Struct, frozen=True, kw_only=True):
    items: list[HourlyCost]
    max_total: str
    currency: str = "USD"


class NodeCallback(_Request, frozen=True, kw_only=True):
    """What a cloud cluster's scheduler asks of Corral (its resume and suspend programs)."""

    action: Literal["resume", "suspend"]
    nodes: Annotated[list[str], msgspec.Meta(max_length=10000)]


class ClusterDuplicate(_Request, frozen=True, kw_only=True):
    name: str
    display_name: str = ""


class CloudAccountCreate(_Request, frozen=True, kw_only=True):
    name: str
    provider: str
    govcloud: bool = False
    settings: dict[str, Any] = msgspec.field(default_factory=dict)
    credentials: dict[str, Any] = msgspec.field(default_factory=dict)
    """Secret: encrypted at rest, never returned."""


class CloudAccountUpdate(_Request, frozen=True, kw_only=True):
    """New credentials and/or settings of a cloud account; fields left out keep their value
    (credential fields merge over the stored ones). Any change of credentials, settings or
    ``govcloud`` starts a new validation. ``name`` and ``provider`` cannot change: giving
    either is refused (422)."""

    credentials: dict[str, Any] | None = None
    """Secret: encrypted at rest, never returned."""
    settings: dict[str, Any] | None = None
    govcloud: bool | None = None
    name: str | None = None
    """Refused: a cloud account's name is immutable."""
    provider: str | None = None
    """Refused: a cloud account's provider is immutable."""


CloudPermissions = Literal["unchecked", "checking", "sufficient", "insufficient", "error"]


class CloudAccountInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A cloud account; its credentials are never returned.

    ``permissions`` is the last validation's outcome: ``checking`` while one runs (after
    create, update or ``POST .../validate``), then ``sufficient``, ``insufficient`` (with the
    ``missing_permissions`` and the provider's ``guide_url``) or ``error`` (``message`` says
    why: credentials the cloud rejects, an unreachable API)."""

    name: str
    provider: str
    govcloud: bool
    settings: dict[str, Any]
    principal: str
    permissions: CloudPermissions
    message: str
    credentials_updated_at: datetime
    created_at: datetime
    missing_permissions: list[str] = msgspec.field(default_factory=list)
    guide_url: str = ""
    validated_at: datetime | None = None
    """When the last validation finished."""
    deleting: bool = False
    """A delete was accepted: the account's networks are being deprovisioned, then it goes."""


class InstanceTypeInfo(msgspec.Struct, frozen=True, kw_only=True):
    """An instance type of a cloud account's region. Prices are decimal strings per hour in
    ``currency`` (empty when the provider gives none)."""

    name: str
    vcpus: int
    memory_gib: float
    gpus: int = 0
    gpu_model: str = ""
    gpu_memory_gib: float = 0.0
    architecture: str = "x86_64"
    price_per_hour: str = ""
    spot_price_per_hour: str = ""
    currency: str = "USD"
    zones: list[str] = msgspec.field(default_factory=list)
    allowed: bool = True
    """Whether your organization's instance type policy allows it."""


class InstanceTypeList(msgspec.Struct, frozen=True, kw_only=True):
    account: str
    provider: str
    region: str
    items: list[InstanceTypeInfo]


class InstanceTypePolicy(msgspec.Struct, frozen=True, kw_only=True):
    """An organization's allowed instance types. ``default``: every type is allowed.
    ``custom``: each provider named in ``allowed`` is restricted to its list (an empty list
    allows none of its types); providers not named are not restricted."""

    mode: Literal["default", "custom"] = "default"
    allowed: dict[str, list[str]] = msgspec.field(default_factory=dict)
    updated_by: str = ""
    updated_at: datetime | None = None


class InstanceTypePolicyUpdate(_Request, frozen=True, kw_only=True):
    mode: Literal["default", "custom"]
    allowed: dict[str, list[str]] = msgspec.field(default_factory=dict)
    """Provider name (an installed cloud plugin) to the instance type names it may use."""


class CapacityReservationCreate(_Request, frozen=True, kw_only=True):
    """Map a capacity reservation made in a cloud's console to one group."""

    reservation_id: str
    group: str
    description: str = ""


class CapacityReservationInfo(msgspec.Struct, frozen=True, kw_only=True):
    reservation_id: str
    group: str
    description: str = ""
    created_by: str = ""
    created_at: datetime | None = None


class CloudAccountAccess(_Request, frozen=True, kw_only=True):
    """Who holds the ``network`` permission on a cloud account: the whole organization
    (every group, present and future) and/or some groups. Org admins always hold it."""

    org_wide: bool = False
    groups: list[str] = msgspec.field(default_factory=list)


# --- networks -------------------------------------------------------------------------------------

NetworkStatus = Literal["Pending", "Provisioning", "Provisioned", "Failed", "Deleting"]


class NetworkRegionDefinition(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True
):
    """One region of a network with its own CIDR block; ``options`` are the provider's."""

    region: str
    cidr: str
    zone: str = ""
    options: dict[str, Any] = msgspec.field(default_factory=dict)


class NetworkCreate(_Request, frozen=True, kw_only=True):
    """A network in a cloud account of your organization; provisioning starts at once.
    ``mode`` and ``options`` are the provider's (AWS: the networking mode,
    ``transit_gateway_peering``, ``transit_gateway_id``, ``enable_nat_gateway``)."""

    name: str
    cloud_account: str
    regions: list[NetworkRegionDefinition]
    mode: str = ""
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    description: str = ""


class NetworkUpdate(_Request, frozen=True, kw_only=True):
    """Change a network; fields left out keep their value. Saving re-provisions it."""

    regions: list[NetworkRegionDefinition] | None = None
    mode: str | None = None
    options: dict[str, Any] | None = None
    description: str | None = None


class NetworkStep(msgspec.Struct, frozen=True, kw_only=True):
    """One resource of a network at the cloud and how far its provisioning got."""

    name: str
    status: NetworkStatus
    detail: str = ""
    updated_at: datetime


class NetworkRegionResources(msgspec.Struct, frozen=True, kw_only=True):
    """The cloud resources of one provisioned region, as the provider reported them."""

    region: str
    cidr: str
    network_id: str
    subnet_ids: list[str] = msgspec.field(default_factory=list)
    security_group_ids: list[str] = msgspec.field(default_factory=list)
    details: dict[str, str] = msgspec.field(default_factory=dict)


class NetworkDetails(msgspec.Struct, frozen=True, kw_only=True):
    """A network: its definition, status, the status of each of its resources at the cloud
    (``steps``) and their ids (``resources``, once provisioned)."""

    name: str
    cloud_account: str
    provider: str
    mode: str
    regions: list[NetworkRegionDefinition]
    options: dict[str, Any]
    description: str
    status: NetworkStatus
    reason: str
    """Why the network failed."""
    steps: list[NetworkStep] = msgspec.field(default_factory=list)
    log: list[str] = msgspec.field(default_factory=list)
    """The provider's log lines of the last operation."""
    resources: list[NetworkRegionResources] = msgspec.field(default_factory=list)
    created_at: datetime
    updated_at: datetime


class NetworkList(Page, frozen=True, kw_only=True):
    items: list[NetworkDetails]


# --- OS snapshots and static IPs ---------------------------------------------------------------

OsSnapshotStatus = Literal["provisioning", "provisioned", "failed", "deleting", "deleted"]
StaticIpStatus = Literal["provisioning", "provisioned", "failed", "deleting"]


class ResourceStep(msgspec.Struct, frozen=True, kw_only=True):
    """One step of an OS snapshot's or a static IP's provisioning log."""

    name: str
    state: Literal["pending", "running", "completed", "failed", "skipped", "deleting"]
    detail: str = ""
    updated_at: datetime


class OsSnapshotCreate(_Request, frozen=True, kw_only=True):
    """An OS snapshot of a running cloud cluster's controller root disk (OS, data, installed
    software), usable by name as a new cluster's controller ``image`` or a partition's
    ``elastic_image``."""

    name: str
    """3-36 characters: lowercase letters, digits and hyphens, starting with a letter."""
    cluster: str
    """The running cloud cluster it is taken from: ``pw://owner/name``, ``owner/name`` or a
    name of yours (you need its ``admin`` level)."""
    description: str = ""
    """At most 100 characters."""
    tags: list[str] = msgspec.field(default_factory=list)


class OsSnapshotInfo(msgspec.Struct, frozen=True, kw_only=True):
    """An OS snapshot: ``provisioning`` until the cloud has made the image, then
    ``provisioned`` (or ``failed`` with ``reason``); once deleted, ``deleted`` for an hour
    (``deleted_at``), then gone."""

    uri: str
    owner: str
    name: str
    description: str
    tags: list[str]
    cluster: str
    """The cluster it was taken from."""
    cloud_account: str = ""
    provider: str = ""
    region: str = ""
    image_id: str = ""
    """The cloud's id of the image (an AMI on AWS)."""
    size_gib: float | None = None
    status: OsSnapshotStatus
    reason: str = ""
    steps: list[ResourceStep] = msgspec.field(default_factory=list)
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None


class OsSnapshotList(Page, frozen=True, kw_only=True):
    items: list[OsSnapshotInfo]


class StaticIpCreate(_Request, frozen=True, kw_only=True):
    """A static public IP address in a region of a cloud account, kept across a cluster's
    starts and stops; attach it by naming it as a cloud cluster's ``controller.static_ip``."""

    name: str
    cloud_account: str
    region: str
    description: str = ""
    """At most 100 characters."""
    tags: list[str] = msgspec.field(default_factory=list)


class StaticIpInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A static IP: ``provisioning`` until the cloud has allocated it, then ``provisioned`` with
    its ``address`` (or ``failed`` with ``reason``); ``deleting`` until released, then gone."""

    uri: str
    owner: str
    name: str
    description: str
    tags: list[str]
    cloud_account: str
    provider: str = ""
    region: str
    address: str = ""
    ip_id: str = ""
    """The cloud's id of the address (an allocation id on AWS)."""
    used_by: list[str] = msgspec.field(default_factory=list)
    """Clusters that are not off whose controller uses it."""
    status: StaticIpStatus
    reason: str = ""
    steps: list[ResourceStep] = msgspec.field(default_factory=list)
    created_at: datetime
    updated_at: datetime


class StaticIpList(Page, frozen=True, kw_only=True):
    items: list[StaticIpInfo]


# --- storage ----------------------------------------------------------------------------------

StorageStatus = Literal["stopped", "starting", "active", "stopping", "failed"]
StorageCategoryName = Literal["bucket", "disk", "nfs", "lustre"]
StorageSessionStatus = Literal["provisioning", "active", "failed", "deleting", "deleted"]
StoragePermission = Literal["owner", "view_edit", "mount"]


class StorageTypeInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A storage type an installed plugin offers (``GET /api/storage/types``)."""

    name: str
    label: str
    category: StorageCategoryName
    csp: str
    """The cloud whose accounts hold it (``aws``); empty outside any cloud."""
    features: list[str]
    docs: str = ""


class StorageCreate(_Request, frozen=True, kw_only=True):
    """A storage; it is created ``stopped`` (start it to provision it)."""

    name: str
    """2-255 lowercase letters and digits, unique among your resources."""
    type: str
    """An installed storage type (``aws-s3``); ``GET /api/storage/types`` lists them."""
    cloud_account: str = ""
    """Your organization's cloud account it lives in (of the type's cloud)."""
    storage_options: dict[str, Any] = msgspec.field(default_factory=dict)
    """The type's options, e.g. ``{"region": "us-east-1"}``."""
    ephemeral: bool = False
    """Created and destroyed with its cluster: Lustre types only."""
    group: str = ""
    """The group its costs are allocated to."""
    description: str = ""
    """At most 100 characters."""
    tags: list[str] = msgspec.field(default_factory=list)
    display_name: str = ""


class StorageUpdate(_Request, frozen=True, kw_only=True):
    """Changes to a storage; what is left out stays. Its definition (``storage_options``,
    ``ephemeral``, ``cloud_account``) changes only while it is stopped; ``cloud_account`` and
    ``group`` only by its owner."""

    storage_options: dict[str, Any] | None = None
    ephemeral: bool | None = None
    cloud_account: str | None = None
    group: str | None = None
    description: str | None = None
    tags: list[str] | None = None
    display_name: str | None = None


class StorageSummary(msgspec.Struct, frozen=True, kw_only=True):
    """A storage as lists show it, to everyone who may see it (its definition is in
    :class:`StorageDetails`)."""

    uri: str
    """``pw://<owner>/<name>``."""
    owner: str
    name: str
    display_name: str
    type: str
    type_label: str
    category: StorageCategoryName
    csp: str
    ephemeral: bool
    status: StorageStatus
    reason: str = ""
    csp_uri: str = ""
    """How the cloud's tools address it (``s3://<bucket>``) while it is provisioned."""
    permission: StoragePermission
    """What the caller holds: ``owner`` (or an org admin), ``view_edit`` or ``mount``."""
    favorite: bool = False
    """A favourite of the caller's."""
    created_at: datetime
    updated_at: datetime


class StorageDetails(StorageSummary, frozen=True, kw_only=True):
    """A storage with its definition (``view_edit`` or more)."""

    description: str = ""
    tags: list[str] = msgspec.field(default_factory=list)
    cloud_account: str = ""
    group: str = ""
    storage_options: dict[str, Any] = msgspec.field(default_factory=dict)
    session: str = ""
    """The current session (``00001``) while one is open."""
    region: str = ""
    provider_id: str = ""
    """The cloud's id of what the current session made (the bucket's name)."""


class StorageList(Page, frozen=True, kw_only=True):
    items: list[StorageSummary]


class StorageSessionInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One start of a storage, until its stop."""

    session: str
    """Zero-padded: ``00001``."""
    status: StorageSessionStatus
    reason: str = ""
    csp_uri: str = ""
    created_at: datetime
    deleted_at: datetime | None = None


class StorageSessionList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[StorageSessionInfo]


class StorageLogLine(msgspec.Struct, frozen=True, kw_only=True):
    offset: int
    at: datetime
    message: str


class StorageLogs(msgspec.Struct, frozen=True, kw_only=True):
    """Lines of a session's Provision or Deletion log from an offset; ask again from
    ``next_offset`` for more."""

    session: str
    log: Literal["provision", "deletion"]
    lines: list[StorageLogLine]
    next_offset: int
    finished: bool
    """Nothing more will be written to this log."""


class StorageShare(_Request, frozen=True, kw_only=True):
    """A group's access to a storage; both false stops sharing it with the group."""

    view_edit: bool = False
    """See and change its definition, start and stop it (includes ``mount``)."""
    mount: bool = False
    """Mount it on their clusters and use its credentials."""


class StorageShareInfo(msgspec.Struct, frozen=True, kw_only=True):
    group: str
    view_edit: bool
    mount: bool


class StorageCredentials(msgspec.Struct, frozen=True, kw_only=True):
    """Short-lived credentials scoped to one active bucket (AWS: 12 hours)."""

    uri: str
    """``pw://<owner>/<name>``."""
    csp: str
    csp_uri: str
    bucket_name: str = msgspec.field(name="bucketName")
    region: str
    endpoint_url: str = ""
    """The cloud API's endpoint when it is not the public default (an emulator, GovCloud)."""
    credentials: dict[str, str]
    """AWS: ``accessKeyId``, ``secretAccessKey``, ``sessionToken``."""
    env: dict[str, str]
    """The same as environment variables for the cloud's CLI (``AWS_ACCESS_KEY_ID``...)."""
    commands: list[str] = msgspec.field(default_factory=list)
    expires_at: datetime


class ClusterList(Page, frozen=True, kw_only=True):
    items: list[ClusterInfo]


JobStateName = Literal[
    "pending",
    "held",
    "running",
    "suspended",
    "completing",
    "completed",
    "failed",
    "cancelled",
    "timeout",
    "out_of_memory",
    "node_fail",
    "preempted",
    "unknown",
]


class JobSubmit(_Request, frozen=True, kw_only=True):
    """A batch job for the cluster's scheduler; unset options keep the scheduler's defaults."""

    script: str
    """The script, starting with its ``#!`` line; ``#SBATCH``/``#PBS`` directives are kept."""
    name: str = ""
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    nodes: int | None = None
    ntasks: int | None = None
    ntasks_per_node: int | None = None
    cpus_per_task: int | None = None
    gpus_per_node: str | None = None
    memory_mb: int | None = None
    time_limit_seconds: int | None = None
    working_directory: str | None = None
    env: dict[str, str] = msgspec.field(default_factory=dict)
    array: str | None = None
    depends_on: list[str] = msgspec.field(default_factory=list)
    hold: bool = False
    exclusive: bool = False


class JobInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    """Corral's id of the job (the scheduler's is ``job_id``)."""
    cluster: str
    job_id: str
    name: str
    user: str
    state: JobStateName
    native_state: str
    reason: str
    exit_code: int | None
    partition: str
    nodes: list[str]
    output_path: str
    submitted_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    updated_at: datetime


class JobList(Page, frozen=True, kw_only=True):
    items: list[JobInfo]


class HostKeyInfo(msgspec.Struct, frozen=True, kw_only=True):
    host: str
    port: int
    fingerprint: str
    public_key: str
    trusted: bool
    first_seen_at: datetime
    last_offered_at: datetime
    accepted_by: str


class HostKeyAccept(_Request, frozen=True, kw_only=True):
    host: str
    port: int = 22
    fingerprint: str


# --- workflows ----------------------------------------------------------------------------------


class WorkflowCreate(_Request, frozen=True, kw_only=True):
    """Add a workflow. ``source = "local"``: ``yaml`` is stored in Corral (each change is a
    new version); ``"remote"``: the YAML is fetched from ``url`` (a git repository, at ``ref``,
    file ``path``) at every run."""

    name: str
    """2-255 characters: lowercase letters, digits and '_'; unique among your resources."""
    description: str = ""
    """At most 100 characters."""
    tags: list[str] = msgspec.field(default_factory=list)
    app: bool = False
    source: Literal["local", "remote"] = "local"
    yaml: str = ""
    url: str = ""
    ref: str = ""
    path: str = "workflow.yaml"


class WorkflowUpdate(_Request, frozen=True, kw_only=True):
    """Change a workflow; fields left out keep their value. A new ``yaml`` is a new version."""

    description: str | None = None
    tags: list[str] | None = None
    app: bool | None = None
    yaml: str | None = None
    url: str | None = None
    ref: str | None = None
    path: str | None = None


class WorkflowMarketplace(msgspec.Struct, frozen=True, kw_only=True):
    """What a marketplace workflow (one you use from the marketplace) runs."""

    slug: str
    """The item's slug (``uses: marketplace/<slug>``)."""
    version: str
    """``latest`` (follows the item's newest version) or the pinned version."""
    runs: str = ""
    """The version a run would run now; empty when it is broken or no longer visible."""
    broken: str = ""
    """Why it can no longer run (its item or pinned version was deleted); empty if it can."""


class WorkflowInfo(msgspec.Struct, frozen=True, kw_only=True):
    uri: str
    owner: str
    name: str
    """A marketplace workflow's is ``marketplace.<slug>.<version>``."""
    description: str
    tags: list[str]
    app: bool
    source: str
    """``local``, ``remote`` or ``marketplace`` (listed under Marketplace Workflows)."""
    url: str = ""
    ref: str = ""
    path: str = ""
    version: int
    """The current version of a local workflow (0 for a remote or marketplace one)."""
    favorite: bool = False
    """A favourite of the caller's."""
    yaml: str = ""
    """The current YAML (a local workflow; in ``get`` only, not in lists)."""
    created_at: datetime
    updated_at: datetime
    display_name: str = ""
    """A marketplace workflow's ``<item name> <version>``."""
    marketplace: WorkflowMarketplace | None = None
    """Set for a marketplace workflow (``source = "marketplace"``)."""


class WorkflowList(Page, frozen=True, kw_only=True):
    items: list[WorkflowInfo]


class WorkflowVersionInfo(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    created_by: str
    created_at: datetime
    yaml: str = ""


class WorkflowProblemInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A problem of a workflow's YAML, where it is (1-based line and column; 0 for the whole)."""

    line: int
    column: int
    message: str
    path: str = ""


class WorkflowCheck(msgspec.Struct, frozen=True, kw_only=True):
    """What ``POST /api/workflows/lint`` found: ``valid`` and every problem with its place."""

    valid: bool
    problems: list[WorkflowProblemInfo] = msgspec.field(default_factory=list)


class RunStart(_Request, frozen=True, kw_only=True):
    """Run a workflow with these input values (over a saved ``configuration``'s, if named)."""

    inputs: dict[str, Any] = msgspec.field(default_factory=dict)
    configuration: str = ""


class RunStepInfo(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    kind: str
    """``step`` or ``cleanup``."""
    name: str
    status: str
    """pending, running, completed, error, canceled or skipped."""
    attempt: int = 0
    exit_status: int | None = None
    reason: str = ""
    outputs: dict[str, str] = msgspec.field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None


class RunJobInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    job: str
    """The job of the YAML (a matrix instance's name adds its values)."""
    status: str
    reason: str = ""
    matrix: dict[str, Any] = msgspec.field(default_factory=dict)
    needs: list[str] = msgspec.field(default_factory=list)
    outputs: dict[str, Any] = msgspec.field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    steps: list[RunStepInfo] = msgspec.field(default_factory=list)


class RunInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    number: int
    """Per workflow: shown zero-padded (``00001``)."""
    slug: str
    workflow: str
    """``pw://owner/name`` of the workflow."""
    username: str
    status: str
    """queued, running, completed, error or canceled."""
    reason: str = ""
    version: int = 0
    inputs: dict[str, Any] = msgspec.field(default_factory=dict)
    """Passwords masked."""
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    runtime_seconds: float | None = None
    jobs: list[RunJobInfo] = msgspec.field(default_factory=list)
    """The run graph (in ``GET /api/runs/{id}``; empty in lists)."""


class RunList(Page, frozen=True, kw_only=True):
    items: list[RunInfo]


class RunLogLineInfo(msgspec.Struct, frozen=True, kw_only=True):
    offset: int
    job: str
    step: int | None = None
    at: datetime
    line: str


class RunLogs(msgspec.Struct, frozen=True, kw_only=True):
    """Lines from ``offset``; ask again from ``next_offset`` (no line is lost or repeated)."""

    lines: list[RunLogLineInfo]
    next_offset: int
    status: str
    finished: bool


class RunLogEnd(msgspec.Struct, frozen=True, kw_only=True):
    """The last event (``event: end``) of ``GET /api/runs/{ref}/logs/stream``: the run is
    finished and every line was sent."""

    status: str
    reason: str = ""
    next_offset: int
    """The offset after the last line of the run's log."""


class RunError(msgspec.Struct, frozen=True, kw_only=True):
    """A failed step (or a job, or the run, that failed without a failed step) with the end of
    its log (``GET /api/runs/{ref}/errors``)."""

    job: str
    """The job's name (a matrix instance's included); empty for the run itself."""
    step: int | None = None
    """The step's index in its job; None for a job or the run."""
    name: str = ""
    kind: str = ""
    """``step``, ``cleanup``, ``job`` or ``run``."""
    status: str
    exit_status: int | None = None
    reason: str = ""
    log_tail: list[str] = msgspec.field(default_factory=list)


class RunClean(_Request, frozen=True, kw_only=True):
    """Delete your finished runs matching every filter given (at least one)."""

    older_than_days: Annotated[int, msgspec.Meta(ge=0, le=36500)] | None = None
    """Runs created more than this many days ago."""
    slugs: Annotated[list[Annotated[str, msgspec.Meta(max_length=255)]],
                     msgspec.Meta(max_length=1000)] | None = None  # fmt: skip
    status: Literal["completed", "error", "canceled"] | None = None


class RunCleaned(msgspec.Struct, frozen=True, kw_only=True):
    deleted: list[str]
    """The slugs of the runs deleted."""
    skipped: list[str] = msgspec.field(default_factory=list)
    """Slugs named in ``slugs`` that were not deleted: unfinished, unknown or not yours."""


# --- sessions ---------------------------------------------------------------------------------


class SessionCreate(_Request, frozen=True, kw_only=True):
    """A session made by hand (not by a workflow run): its owner removes it."""

    name: str = ""
    """Lowercase letters and digits, 2-255; by default ``<type><unix time>``."""
    type: str = "tunnel"
    """``tunnel``, ``link``, or an installed plugin's type (``jupyter``, ``desktop``...)."""
    target: str = "user-workspace"
    """``user-workspace`` or a cluster you can log in to (``pw://owner/name`` or a name)."""
    remote_host: str = "localhost"
    remote_port: int | None = None
    local_port: int = 0
    slug: str = ""
    use_tls: bool = False
    url: str = ""
    """A link's URL."""
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    """The type's options (a Jupyter directory, a desktop geometry)."""


class SessionInfo(msgspec.Struct, frozen=True, kw_only=True):
    uri: str
    owner: str
    name: str
    type: str
    target: str
    status: str
    """creating, installing, starting, running, failed or stopped."""
    reason: str = ""
    remote_host: str = ""
    remote_port: int | None = None
    local_port: int = 0
    slug: str = ""
    open_url: str = ""
    """What to open in a browser: the session's page on the platform, or a link's URL."""
    run_id: int | None = None
    """The workflow run that made it, if one did."""
    created_at: datetime
    updated_at: datetime


class SessionList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[SessionInfo]
    total: int


# --- marketplace --------------------------------------------------------------------------------

MarketplaceType = Literal["workflow", "compute", "storage"]
MarketplacePrivacy = Literal["everyone", "org_and_partners", "org", "groups"]
"""Who sees an item: everyone; users of the publisher's organization and its partners (the
organization that manages it and those it manages); only its organization; or members of
``groups`` (groups of its organization the publisher belongs to)."""


class MarketplacePublish(_Request, frozen=True, kw_only=True):
    """Publish one of your workflows or clusters; its first version, ``v1.0.0``, is a snapshot
    of it now. ``verified``, ``featured`` and ``publish_as_organization`` need org:admin or
    org:settings."""

    source: str
    """The resource to publish: ``pw://owner/name``, ``owner/name`` or your ``name``."""
    name: str
    """Unique in your organization's marketplace; 1-255 characters."""
    slug: str
    """Unique in your organization's marketplace, the item's URL and ``uses: marketplace/<slug>``:
    1-63 lowercase letters, digits, '-' and '_', starting and ending with a letter or digit."""
    privacy: MarketplacePrivacy = "org"
    groups: list[str] = msgspec.field(default_factory=list)
    """For ``privacy = "groups"``: groups of your organization you are a member of."""
    summary: str = ""
    """At most 200 characters, shown on the item's card."""
    description: str = ""
    """Markdown shown on the item's page."""
    verified: bool = False
    featured: bool = False
    publish_as_organization: bool = False


class MarketplaceUpdate(_Request, frozen=True, kw_only=True):
    """Edit an item; fields left out keep their value."""

    name: str | None = None
    slug: str | None = None
    privacy: MarketplacePrivacy | None = None
    groups: list[str] | None = None
    summary: str | None = None
    description: str | None = None
    verified: bool | None = None
    featured: bool | None = None
    publish_as_organization: bool | None = None


class MarketplaceVersionCreate(_Request, frozen=True, kw_only=True):
    version: str
    """``v`` followed by at least two letters, digits, '.', '-' or '_' (``v1.0.0``, ``v10``)."""
    resource: str = ""
    """The resource whose definition becomes this version (of the item's kind); by default
    the one the item was published from."""


class MarketplaceVersionInfo(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    source: str
    """The resource it was taken from (``pw://owner/name``), for those who may edit the item."""
    created_by: str
    created_at: datetime
    definition: dict[str, Any] = msgspec.field(default_factory=dict)
    """The snapshot (a workflow's ``yaml``, a cluster's configuration); in ``get`` only."""


class MarketplaceItemInfo(msgspec.Struct, frozen=True, kw_only=True):
    slug: str
    name: str
    org: str
    """The publisher's organization."""
    type: MarketplaceType
    subtype: str
    type_label: str
    """``<subtype> <type>``: ``local workflow``, ``aws compute``, ``existing compute``."""
    publisher: str
    """Who the card says published it: the organization's name with
    ``publish_as_organization``, else the owner's username."""
    owner: str
    """The username of who published it; empty when published as the organization (unless you
    may edit it)."""
    privacy: MarketplacePrivacy
    groups: list[str] = msgspec.field(default_factory=list)
    summary: str = ""
    description: str = ""
    verified: bool = False
    featured: bool = False
    publish_as_organization: bool = False
    latest: str
    """The newest version: what ``latest`` means now."""
    versions: list[str] = msgspec.field(default_factory=list)
    """Newest first."""
    source: str = ""
    """What new versions are taken from by default (for those who may edit it)."""
    favorite: bool = False
    """One of your favourites."""
    modifiable: bool = False
    """You may edit it (its publisher, or an org admin of its organization)."""
    created_at: datetime
    updated_at: datetime


class MarketplaceList(Page, frozen=True, kw_only=True):
    """Without ``type``: the home page, at most 10 items of each type (featured first);
    ``counts`` says how many match of each type. With ``type``: every match, a page at a
    time."""

    items: list[MarketplaceItemInfo]
    counts: dict[str, int] = msgspec.field(default_factory=dict)


class MarketplaceUse(_Request, frozen=True, kw_only=True):
    """Use (subscribe to) a workflow item: a marketplace workflow of yours named
    ``marketplace.<slug>.<version>``, shown as ``<Name> <version>`` and tagged with the
    version. ``latest`` follows the item; a pinned version never changes."""

    version: str = "latest"


class MarketplaceFork(_Request, frozen=True, kw_only=True):
    """Fork an item into an independent resource of yours (a workflow or a cluster) from a
    version's snapshot, tagged with that version; later changes to the item do not change it."""

    name: str
    """The new resource's name (the rules of its kind)."""
    version: str = "latest"
    display_name: str = ""
    persistent: bool | None = None
    """Storage only: whether the new storage is persistent (``false``: ephemeral, Lustre
    only); by default as the version's."""


class MarketplaceForked(msgspec.Struct, frozen=True, kw_only=True):
    type: MarketplaceType
    kind: str
    """The new resource's kind (``workflow``, ``cluster``)."""
    uri: str
    owner: str
    name: str
    version: str
    """The version it was forked from."""
    tags: list[str]
