"""Cloud providers: accounts, regions, instance catalogues, instances, networks, billing.

A cloud plugin registers a :class:`~corral_sdk.records.CloudRecord` whose factory is called with
no arguments and returns a :class:`CloudProvider`. Providers are stateless: every call receives the
:class:`CloudAccount` (decoded credentials included) and the kernel stores whatever ids the
provider returns. Vendor SDKs are imported inside the methods that use them and blocking calls run
in a thread, so importing a cloud plugin stays cheap and the event loop never blocks.

Errors, for every method: credentials that do not authenticate raise
:class:`~corral_sdk.errors.NotAuthenticated`; missing cloud permissions raise
:class:`~corral_sdk.errors.PermissionDenied`; bad input raises
:class:`~corral_sdk.errors.Invalid` with ``field``; a resource that does not exist raises
:class:`~corral_sdk.errors.NotFound`; an unreachable API raises
:class:`~corral_sdk.errors.TransportError` (``retryable=True``); anything else the cloud refuses
is a :class:`~corral_sdk.errors.ProviderError` with one of the ``reason`` codes below where one
fits. Vendor exceptions never escape a provider.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import msgspec

from corral_sdk.errors import Invalid
from corral_sdk.features import CloudFeature
from corral_sdk.providers._common import (
    ProgressLog,
    redacted_repr,
    unsupported,
    unsupported_default,
    unsupported_stream,
)

__all__ = [
    "CAPACITY_UNAVAILABLE",
    "CLOUD_FEATURE_METHODS",
    "COST_ALLOCATION_TAGS",
    "QUOTA_EXCEEDED",
    "Architecture",
    "BillingState",
    "BillingStatus",
    "CapacityReservation",
    "CloudAccount",
    "CloudProvider",
    "CloudProviderBase",
    "CostItem",
    "CredentialCheck",
    "Image",
    "ImageSource",
    "ImageState",
    "Instance",
    "InstanceRequest",
    "InstanceState",
    "InstanceType",
    "NetworkInfo",
    "NetworkPlacement",
    "NetworkRegionInfo",
    "NetworkRegionSpec",
    "NetworkSpec",
    "PlacementGroup",
    "Region",
    "StaticIp",
]

CAPACITY_UNAVAILABLE = "capacity-unavailable"
"""``reason`` when no zone tried had capacity for a batch (``retryable=True``)."""
QUOTA_EXCEEDED = "quota-exceeded"
"""``reason`` when the account's quota forbids the request."""

COST_ALLOCATION_TAGS: tuple[str, ...] = (
    "Date",
    "GroupID",
    "Name",
    "OrganizationID",
    "Pool",
    "Project",
    "Session",
    "SessionID",
    "User",
)
"""The tag keys the kernel sets on everything it asks a cloud to create; billing import groups
costs by them. Clouds whose labels must be lowercase (Google) lower-case the keys and map them
back in :meth:`CloudProvider.import_costs`."""


# --- accounts and catalogue ---------------------------------------------------------------------


class CloudAccount(msgspec.Struct, frozen=True, kw_only=True):
    """One cloud account as the kernel hands it to a provider.

    ``credentials`` is an instance of the record's ``credentials`` struct, decrypted for this
    call only; its ``repr`` is hidden so it does not end up in logs.
    """

    name: str
    credentials: Any
    govcloud: bool = False
    """Provision in government regions (AWS GovCloud, Azure Government, Assured Workloads)."""
    settings: dict[str, Any] = msgspec.field(default_factory=dict)
    """Account-level extras that are not secret (a default region, a project)."""

    def __repr__(self) -> str:
        return redacted_repr(self, frozenset({"credentials"}))


class CredentialCheck(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of :meth:`CloudProvider.validate_credentials` for credentials that work."""

    principal: str
    """The main credential identifier shown to admins (an access key id, an SA email)."""
    sufficient: bool = True
    """Whether the credentials hold every permission Corral needs."""
    missing_permissions: tuple[str, ...] = ()
    """Cloud permission names that are missing (``ec2:RunInstances``)."""
    guide_url: str = ""
    """Where the admin learns which permissions to grant."""
    message: str = ""
    credentials: Any = None
    """Credentials to store in place of the account's (an instance of the record's
    ``credentials`` struct), for a provider that replaces the credentials it was given (AWS
    rotates the access key an admin typed). The kernel stores them encrypted, then validates
    again with them, until a check returns none: a provider retires what they replace in that
    next check, once they are known to be stored."""

    def __repr__(self) -> str:
        return redacted_repr(self, frozenset({"credentials"}))


class Region(msgspec.Struct, frozen=True, kw_only=True):
    """A region the account may use."""

    name: str
    display_name: str = ""
    zones: tuple[str, ...] = ()
    """Availability zones, in the cloud's order; empty when the cloud has none."""
    gov: bool = False


class Architecture(enum.StrEnum):
    """CPU architecture of an instance type or image."""

    X86_64 = "x86_64"
    ARM64 = "arm64"


class InstanceType(msgspec.Struct, frozen=True, kw_only=True):
    """One instance type (size, flavor) offered in a region."""

    name: str
    vcpus: int
    memory_gib: float
    gpus: int = 0
    gpu_model: str = ""
    gpu_memory_gib: float = 0.0
    """Memory per GPU."""
    architecture: Architecture = Architecture.X86_64
    price_per_hour: Decimal | None = None
    """On-demand price in ``currency``; ``None`` when unknown (always set with
    :attr:`~corral_sdk.features.CloudFeature.INSTANCE_PRICES`)."""
    spot_price_per_hour: Decimal | None = None
    currency: str = "USD"
    zones: tuple[str, ...] = ()
    """Zones that offer it; empty means every zone of the region."""
    local_disk_gib: float = 0.0
    network_gbps: float | None = None
    description: str = ""


class ImageSource(enum.StrEnum):
    """Where an image comes from."""

    PROVIDER = "provider"
    """A base image offered by the cloud or the plugin."""
    ACCOUNT = "account"
    """An OS snapshot made in this account (:meth:`CloudProvider.create_image`)."""


class ImageState(enum.StrEnum):
    PENDING = "pending"
    AVAILABLE = "available"
    FAILED = "failed"
    DELETED = "deleted"


class Image(msgspec.Struct, frozen=True, kw_only=True):
    """An OS image instances boot from."""

    id: str
    name: str
    region: str = ""
    architecture: Architecture = Architecture.X86_64
    source: ImageSource = ImageSource.PROVIDER
    state: ImageState = ImageState.AVAILABLE
    latest: bool = False
    """The recommended default of its family (shown as ``latest``)."""
    os: str = ""
    description: str = ""
    size_gib: float | None = None
    created_at: datetime | None = None
    tags: dict[str, str] = msgspec.field(default_factory=dict)


# --- instances ----------------------------------------------------------------------------------


class NetworkPlacement(msgspec.Struct, frozen=True, kw_only=True):
    """Where in a network (:meth:`CloudProvider.create_network`) instances are attached."""

    network_id: str
    subnet_id: str | None = None
    security_group_ids: tuple[str, ...] = ()


class InstanceRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A batch of identical instances to create in one call (a controller, a partition's nodes).

    One instance is created per entry of ``names``. With several ``zones`` the provider places the
    batch by its cloud's rules, and with :attr:`~corral_sdk.features.CloudFeature.MULTI_ZONE`
    falls back to the next zone when one lacks capacity for the whole batch.
    """

    region: str
    instance_type: str
    image: str
    names: tuple[str, ...]
    idempotency_key: str
    """Stable for one logical request: a retry after a crash must return the instances the first
    attempt created instead of creating more (use the cloud's client token, or tag with it)."""
    zones: tuple[str, ...] = ()
    """Zones in order of preference; empty lets the provider choose."""
    root_disk_gib: int = 100
    network: NetworkPlacement | None = None
    public_ip: bool = False
    static_ip: str | None = None
    """Id of a static IP to attach (:attr:`~corral_sdk.features.CloudFeature.STATIC_IPS`);
    only for a batch of one."""
    spot: bool = False
    """Spot / preemptible capacity (:attr:`~corral_sdk.features.CloudFeature.SPOT`)."""
    placement_group: str | None = None
    capacity_reservation_id: str | None = None
    ssh_public_keys: tuple[str, ...] = ()
    user_data: str = ""
    """A script the instance runs once at first boot."""
    tags: dict[str, str] = msgspec.field(default_factory=dict)
    """Applied to every resource created for the batch (see :data:`COST_ALLOCATION_TAGS`)."""
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    """Provider-specific settings (Google Tier 1 networking...), decoded by the plugin."""

    def __post_init__(self) -> None:
        if not self.names:
            raise Invalid("an instance request needs at least one name", field="names")
        if len(set(self.names)) != len(self.names):
            raise Invalid("instance names in one request must be unique", field="names")
        if self.static_ip is not None and len(self.names) != 1:
            raise Invalid("a static IP can be attached to a single instance", field="static_ip")
        if self.root_disk_gib <= 0:
            raise Invalid("the root disk size must be positive", field="root_disk_gib")


class InstanceState(enum.StrEnum):
    """Lifecycle of an instance, mapped from the cloud's own states."""

    PENDING = "pending"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    TERMINATING = "terminating"
    TERMINATED = "terminated"
    UNKNOWN = "unknown"

    @property
    def gone(self) -> bool:
        """The instance is being or has been deleted."""
        return self in (InstanceState.TERMINATING, InstanceState.TERMINATED)


class Instance(msgspec.Struct, frozen=True, kw_only=True):
    """An instance as the cloud reports it."""

    id: str
    name: str
    state: InstanceState
    region: str
    zone: str = ""
    instance_type: str = ""
    image: str = ""
    private_ip: str | None = None
    public_ip: str | None = None
    spot: bool = False
    launched_at: datetime | None = None
    tags: dict[str, str] = msgspec.field(default_factory=dict)
    details: dict[str, str] = msgspec.field(default_factory=dict)
    """Provider-specific facts worth showing (a state reason, a host id)."""


# --- networks and other resources ---------------------------------------------------------------


class NetworkRegionSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One region of a network, with its own CIDR."""

    region: str
    cidr: str
    zone: str | None = None
    options: dict[str, Any] = msgspec.field(default_factory=dict)


class NetworkSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What a network should look like. CIDRs are checked here: valid, one per region, and
    none overlapping another."""

    name: str
    regions: tuple[NetworkRegionSpec, ...]
    mode: str = ""
    """Provider-specific networking mode (AWS: ``private-subnets``, ``controller-nat``...)."""
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    tags: dict[str, str] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        import ipaddress

        if not self.regions:
            raise Invalid("a network needs at least one region", field="regions")
        seen: dict[str, int] = {}
        nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for index, region in enumerate(self.regions):
            if region.region in seen:
                raise Invalid(
                    f"region {region.region} is listed twice", field=f"regions.{index}.region"
                )
            seen[region.region] = index
            try:
                net = ipaddress.ip_network(region.cidr, strict=True)
            except ValueError:
                raise Invalid(
                    f"{region.cidr!r} is not a valid CIDR block", field=f"regions.{index}.cidr"
                ) from None
            for other_index, other in enumerate(nets):
                if net.version == other.version and net.overlaps(other):
                    raise Invalid(
                        f"{region.cidr} overlaps {self.regions[other_index].cidr}",
                        field=f"regions.{index}.cidr",
                    )
            nets.append(net)


class NetworkRegionInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The cloud resources of one region of a network."""

    region: str
    cidr: str
    network_id: str
    """The VPC / VNet id in this region."""
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    details: dict[str, str] = msgspec.field(default_factory=dict)


class NetworkInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A provisioned network; the kernel stores it and passes it back to update or delete."""

    id: str
    name: str
    regions: tuple[NetworkRegionInfo, ...] = ()


class PlacementGroup(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    region: str
    strategy: str = "cluster"


class CapacityReservation(msgspec.Struct, frozen=True, kw_only=True):
    """A capacity reservation made in the cloud's console."""

    id: str
    region: str
    instance_type: str
    zone: str = ""
    total: int = 0
    available: int = 0
    active: bool = True
    ends_at: datetime | None = None


class StaticIp(msgspec.Struct, frozen=True, kw_only=True):
    """A static public IP address, kept across cluster starts."""

    id: str
    address: str
    region: str
    attached_to: str | None = None


class BillingState(enum.StrEnum):
    PROVISIONED = "provisioned"
    """Billing data was found for the account."""
    UNPROVISIONED = "unprovisioned"
    """No billing data (yet)."""


class BillingStatus(msgspec.Struct, frozen=True, kw_only=True):
    state: BillingState
    last_data_at: datetime | None = None
    """The newest cost data seen."""
    message: str = ""


class CostItem(msgspec.Struct, frozen=True, kw_only=True):
    """One line of actual cost imported from the cloud's billing export."""

    start: datetime
    end: datetime
    amount: Decimal
    currency: str = "USD"
    service: str = ""
    """The cloud's service name (``AmazonEC2``)."""
    cost_type: str = ""
    """Corral's cost category (``Compute``, ``Storage-EBS``, ``Storage-Image``, ``Network``)."""
    resource_id: str = ""
    region: str = ""
    usage_quantity: float | None = None
    usage_unit: str = ""
    tags: dict[str, str] = msgspec.field(default_factory=dict)
    """The :data:`COST_ALLOCATION_TAGS` found on the line, with their original keys."""


# --- the protocol -------------------------------------------------------------------------------


@runtime_checkable
class CloudProvider(Protocol):
    """What a cloud plugin implements. See the module docstring for errors.

    Methods listed in :data:`CLOUD_FEATURE_METHODS` are needed only with their feature; a
    provider without it inherits a default from :class:`CloudProviderBase` that raises
    :func:`~corral_sdk.providers.unsupported` (but for :meth:`check_cluster_network`, whose
    default accepts every cluster).
    """

    async def validate_credentials(self, account: CloudAccount) -> CredentialCheck:
        """Check that the account's credentials authenticate, and whether their permissions
        suffice.

        Malformed credentials (a bad OCID, a 13-digit AWS account id) raise ``Invalid`` before
        any network call; credentials the cloud rejects raise ``NotAuthenticated``. Credentials
        that work but lack permissions return ``sufficient=False`` with the missing ones.
        """
        ...

    async def list_regions(self, account: CloudAccount) -> Sequence[Region]:
        """The regions (and their zones) the account may use; government regions only when
        ``account.govcloud``."""
        ...

    async def list_instance_types(
        self, account: CloudAccount, region: str
    ) -> Sequence[InstanceType]:
        """The instance types offered in ``region``, with vCPUs, memory, GPUs and prices.

        Raises ``NotFound`` for an unknown region.
        """
        ...

    async def list_images(self, account: CloudAccount, region: str) -> Sequence[Image]:
        """The images instances can boot from in ``region``: the provider's base images
        (one marked ``latest``) and the account's own OS snapshots."""
        ...

    async def create_instances(
        self, account: CloudAccount, request: InstanceRequest, *, log: ProgressLog
    ) -> Sequence[Instance]:
        """Create one instance per name in ``request``, all in one zone, and return them
        (usually ``pending``) without waiting for them to run.

        Idempotent on ``request.idempotency_key``. When no allowed zone can hold the whole
        batch raise ``ProviderError(reason=CAPACITY_UNAVAILABLE, retryable=True)``; quota
        limits raise ``ProviderError(reason=QUOTA_EXCEEDED)``. Instances created before a
        failure are deleted again, so a failed call leaves nothing running.
        """
        ...

    async def describe_instances(
        self,
        account: CloudAccount,
        region: str,
        *,
        instance_ids: Sequence[str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Sequence[Instance]:
        """Look up many instances in one call, by id and/or by tags (all must match).

        Ids the cloud no longer knows are left out rather than raising, and instances deleted
        a while ago may show as ``terminated`` or be left out: reconcilers treat both as gone.
        """
        ...

    async def start_instances(
        self, account: CloudAccount, region: str, instance_ids: Sequence[str]
    ) -> None:
        """Start stopped instances; already running ones are left alone. Raises ``NotFound``
        naming ids that do not exist."""
        ...

    async def stop_instances(
        self, account: CloudAccount, region: str, instance_ids: Sequence[str]
    ) -> None:
        """Stop instances, keeping their disks; already stopped ones are left alone. Raises
        ``NotFound`` naming ids that do not exist, and ``Conflict`` for instances that cannot be
        stopped (spot capacity on some clouds)."""
        ...

    async def delete_instances(
        self, account: CloudAccount, region: str, instance_ids: Sequence[str]
    ) -> None:
        """Terminate instances and their non-persistent disks. Idempotent: ids that are already
        gone are not an error. Returns once the cloud accepted the request."""
        ...

    # --- CloudFeature.NETWORKS

    async def check_network(self, account: CloudAccount, spec: NetworkSpec) -> None:
        """Refuse what the provider cannot provision in ``spec`` (its mode, options, regions,
        sizes) before the kernel stores it, raising ``Invalid`` with the field (``mode``,
        ``options.transit_gateway_id``, ``regions.1.cidr``). No cloud call is needed; what needs
        one is found by :meth:`create_network`."""
        ...

    async def check_cluster_network(
        self,
        account: CloudAccount,
        network: NetworkRegionInfo,
        mode: str,
        controller_zone: str,
        partition_zones: Mapping[str, Sequence[str]],
    ) -> None:
        """Refuse a cluster its network cannot serve, before the kernel stores or starts it
        (at cluster create, at an edit of its cloud definition, and at every start).

        ``network`` is the region of the cluster's network that holds its controller, as
        :meth:`create_network` reported it; ``mode`` is the network's mode as defined (empty:
        the provider's default). ``controller_zone`` is the controller's zone and
        ``partition_zones`` maps each partition's name to the zones its nodes may use, in the
        cluster's order, both as the kernel resolved them (a partition that names no zones
        gets the controller's; either may be empty on a cloud without zones). Raise
        ``Invalid`` with the cluster's field: ``cloud.controller.zone``, or
        ``cloud.partitions.<i>.zones`` for the ``i``-th partition (AWS: on a ``controller-nat``
        network, every partition in the controller's zone). No cloud call is needed.

        The default accepts every cluster: a provider whose networks have no rules for the
        clusters on them need not override it.
        """
        ...

    async def create_network(
        self, account: CloudAccount, spec: NetworkSpec, *, log: ProgressLog
    ) -> NetworkInfo:
        """Provision a network (VPC, subnets, gateways, firewall rules, DNS) in every region of
        ``spec``, reporting each resource as a step on ``log``.

        Idempotent: called again with the same spec it finds what exists (by the tags in
        ``spec.tags``) and completes it.
        """
        ...

    async def update_network(
        self, account: CloudAccount, network: NetworkInfo, spec: NetworkSpec, *, log: ProgressLog
    ) -> NetworkInfo:
        """Bring a provisioned network to ``spec``: add new regions, remove dropped ones.
        Raises ``Conflict`` when a region to remove still has instances."""
        ...

    async def delete_network(
        self, account: CloudAccount, network: NetworkInfo, *, log: ProgressLog
    ) -> None:
        """Deprovision every resource of the network. Idempotent. Raises ``Conflict`` while
        instances still use it."""
        ...

    # --- CloudFeature.PLACEMENT_GROUPS

    async def create_placement_group(
        self,
        account: CloudAccount,
        region: str,
        name: str,
        *,
        strategy: str = "cluster",
        tags: Mapping[str, str] | None = None,
    ) -> PlacementGroup:
        """Create (or return the existing) placement group ``name`` in ``region``."""
        ...

    async def delete_placement_group(self, account: CloudAccount, region: str, name: str) -> None:
        """Delete a placement group; idempotent. Raises ``Conflict`` while it has instances."""
        ...

    # --- CloudFeature.CAPACITY_RESERVATIONS

    async def describe_capacity_reservation(
        self, account: CloudAccount, region: str, reservation_id: str
    ) -> CapacityReservation:
        """Look up a capacity reservation; raises ``NotFound`` when the account has none with
        that id."""
        ...

    # --- CloudFeature.STATIC_IPS

    async def allocate_static_ip(
        self,
        account: CloudAccount,
        region: str,
        name: str,
        *,
        tags: Mapping[str, str] | None = None,
    ) -> StaticIp:
        """Allocate a static public IP address (or return the one already allocated under
        ``name``)."""
        ...

    async def release_static_ip(self, account: CloudAccount, region: str, ip_id: str) -> None:
        """Release a static IP; idempotent. Raises ``Conflict`` while it is attached."""
        ...

    # --- CloudFeature.OS_SNAPSHOTS

    async def create_image(
        self,
        account: CloudAccount,
        region: str,
        instance_id: str,
        name: str,
        *,
        tags: Mapping[str, str] | None = None,
        log: ProgressLog,
    ) -> Image:
        """Start making an OS snapshot of an instance's root disk and return it (``pending``
        until :meth:`list_images` shows it ``available``). Idempotent on ``name``."""
        ...

    async def delete_image(self, account: CloudAccount, region: str, image_id: str) -> None:
        """Delete an OS snapshot and its disk snapshots; idempotent."""
        ...

    # --- CloudFeature.BILLING_IMPORT

    async def provision_billing(
        self, account: CloudAccount, region: str, *, log: ProgressLog
    ) -> BillingStatus:
        """Create the cloud's billing export (cost report and bucket, cost export, BigQuery
        dataset). Idempotent; skips steps already done."""
        ...

    async def deprovision_billing(self, account: CloudAccount, *, log: ProgressLog) -> None:
        """Remove what :meth:`provision_billing` created; idempotent."""
        ...

    async def billing_status(self, account: CloudAccount) -> BillingStatus:
        """Whether cost data for this account can be found (the kernel checks hourly)."""
        ...

    def import_costs(
        self, account: CloudAccount, start: datetime, end: datetime
    ) -> AsyncIterator[CostItem]:
        """Yield the account's actual costs for usage between ``start`` and ``end`` (the export
        lags 24-48 hours). Raises ``Conflict`` when billing is not provisioned."""
        ...


CLOUD_FEATURE_METHODS: Mapping[CloudFeature, tuple[str, ...]] = MappingProxyType(
    {
        CloudFeature.NETWORKS: (
            "check_network",
            "check_cluster_network",
            "create_network",
            "update_network",
            "delete_network",
        ),
        CloudFeature.SPOT: (),
        CloudFeature.PLACEMENT_GROUPS: ("create_placement_group", "delete_placement_group"),
        CloudFeature.CAPACITY_RESERVATIONS: ("describe_capacity_reservation",),
        CloudFeature.MULTI_ZONE: (),
        CloudFeature.STATIC_IPS: ("allocate_static_ip", "release_static_ip"),
        CloudFeature.OS_SNAPSHOTS: ("create_image", "delete_image"),
        CloudFeature.GPUS: (),
        CloudFeature.BILLING_IMPORT: (
            "provision_billing",
            "deprovision_billing",
            "billing_status",
            "import_costs",
        ),
        CloudFeature.INSTANCE_PRICES: (),
    }
)
"""The methods each :class:`~corral_sdk.features.CloudFeature` needs; features mapped to ``()``
are flags on :class:`InstanceRequest` or facts in :class:`InstanceType`."""


class CloudProviderBase:
    """Optional mixin: every feature method raises ``ProviderError(reason="unsupported")``,
    but for ``check_cluster_network``, which accepts every cluster (a check with no rules).

    Subclass it and override the methods of the features you declare; the required methods
    (``validate_credentials`` ... ``delete_instances``) have no default.
    """

    @unsupported_default
    async def check_network(self, account: CloudAccount, spec: NetworkSpec) -> None:
        raise unsupported(self, "check_network")

    async def check_cluster_network(
        self,
        account: CloudAccount,
        network: NetworkRegionInfo,
        mode: str,
        controller_zone: str,
        partition_zones: Mapping[str, Sequence[str]],
    ) -> None:
        return None  # no rules for the clusters on a network: nothing to refuse

    @unsupported_default
    async def create_network(
        self, account: CloudAccount, spec: NetworkSpec, *, log: ProgressLog
    ) -> NetworkInfo:
        raise unsupported(self, "create_network")

    @unsupported_default
    async def update_network(
        self, account: CloudAccount, network: NetworkInfo, spec: NetworkSpec, *, log: ProgressLog
    ) -> NetworkInfo:
        raise unsupported(self, "update_network")

    @unsupported_default
    async def delete_network(
        self, account: CloudAccount, network: NetworkInfo, *, log: ProgressLog
    ) -> None:
        raise unsupported(self, "delete_network")

    @unsupported_default
    async def create_placement_group(
        self,
        account: CloudAccount,
        region: str,
        name: str,
        *,
        strategy: str = "cluster",
        tags: Mapping[str, str] | None = None,
    ) -> PlacementGroup:
        raise unsupported(self, "create_placement_group")

    @unsupported_default
    async def delete_placement_group(self, account: CloudAccount, region: str, name: str) -> None:
        raise unsupported(self, "delete_placement_group")

    @unsupported_default
    async def describe_capacity_reservation(
        self, account: CloudAccount, region: str, reservation_id: str
    ) -> CapacityReservation:
        raise unsupported(self, "describe_capacity_reservation")

    @unsupported_default
    async def allocate_static_ip(
        self,
        account: CloudAccount,
        region: str,
        name: str,
        *,
        tags: Mapping[str, str] | None = None,
    ) -> StaticIp:
        raise unsupported(self, "allocate_static_ip")

    @unsupported_default
    async def release_static_ip(self, account: CloudAccount, region: str, ip_id: str) -> None:
        raise unsupported(self, "release_static_ip")

    @unsupported_default
    async def create_image(
        self,
        account: CloudAccount,
        region: str,
        instance_id: str,
        name: str,
        *,
        tags: Mapping[str, str] | None = None,
        log: ProgressLog,
    ) -> Image:
        raise unsupported(self, "create_image")

    @unsupported_default
    async def delete_image(self, account: CloudAccount, region: str, image_id: str) -> None:
        raise unsupported(self, "delete_image")

    @unsupported_default
    async def provision_billing(
        self, account: CloudAccount, region: str, *, log: ProgressLog
    ) -> BillingStatus:
        raise unsupported(self, "provision_billing")

    @unsupported_default
    async def deprovision_billing(self, account: CloudAccount, *, log: ProgressLog) -> None:
        raise unsupported(self, "deprovision_billing")

    @unsupported_default
    async def billing_status(self, account: CloudAccount) -> BillingStatus:
        raise unsupported(self, "billing_status")

    @unsupported_default
    def import_costs(
        self, account: CloudAccount, start: datetime, end: datetime
    ) -> AsyncIterator[CostItem]:
        return unsupported_stream(self, "import_costs")
