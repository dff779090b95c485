"""AWS networks: a VPC per region with its subnets, gateways, route tables, security group and
private DNS zone, in one of four networking modes (spec part 5, §3).

Modes (``NetworkSpec.mode``; empty means ``private-subnets``):

``private-subnets``
    An internet gateway, a public and a private subnet per zone, one NAT gateway per region (in
    the first zone's public subnet, with its Elastic IP). The controller goes in a public subnet,
    compute nodes in private subnets and leave through the NAT gateway.
``controller-nat``
    No NAT gateway: the controller is the nodes' NAT. The network has the internet gateway,
    public and private subnets, and one private route table per zone whose default route is set
    at cluster start by :meth:`AwsNetworks.route_through_controller` (it turns off the
    controller's source/destination check and points ``0.0.0.0/0`` at its network interface).
    The security group allows all traffic within the VPC, so nodes reach the controller. The
    private subnets of other zones route nowhere, so every partition must be in the
    controller's zone (:func:`check_cluster_zones`, which the kernel calls through
    :meth:`AwsNetworks.check_cluster_network` at cluster create, edit and start: a 422 names
    ``cloud.partitions.<i>.zones``). One controller per zone of a network can be the NAT.
``public-ips``
    An internet gateway and public subnets only (``MapPublicIpOnLaunch``): every node gets its
    own public IP. No NAT gateway, no private subnets.
``private``
    No internet gateway. With ``options.transit_gateway_peering`` the private subnets are
    attached to ``options.transit_gateway_id`` (a region may name its own in
    ``regions[].options.transit_gateway_id``: a transit gateway is regional) and their default
    route goes there. Without peering, ``options.enable_nat_gateway`` adds an internet gateway,
    public subnets that hold only the NAT gateway, and the NAT gateway with its Elastic IP; the
    controller and nodes stay in private subnets. Without either, the VPC has no way out.

Other network options: ``ssh_cidrs`` (a list of CIDRs allowed to reach port 22: the platform's
addresses; default ``["0.0.0.0/0"]``, none but the VPC in ``private`` mode) and ``dns_domain``
(default ``corral.internal``; each region's private hosted zone is
``<network>.<region>.<dns_domain>``).

Subnets: one pair (private, public) per zone of the region, or only ``regions[].zone`` when set.
They are carved from the region's CIDR: the lower half holds the private subnets, the upper half
the public ones, each half split into 2**ceil(log2(zones)) blocks taken in zone order; so
``10.0.0.0/16`` over six zones gives /20 subnets, ``us-east-1a`` private ``10.0.0.0/20`` and
public ``10.0.128.0/20``.

Every resource is tagged with ``spec.tags`` plus ``corral:network=<name>`` (and
``corral:resource``, ``corral:zone`` where they apply) and created with its tags in one call, so
:meth:`~AwsNetworks.create_network` called again after a crash finds what exists and completes
the rest, and :meth:`~AwsNetworks.delete_network` finds everything even without the stored ids.

``NetworkRegionInfo``: ``network_id`` is the VPC, ``subnet_ids`` every subnet,
``security_group_ids`` the network's security group. ``details`` keys:

- ``mode``: the networking mode; ``zones``: the zones, comma-separated, in order.
- ``zone_id.<zone>``: the AWS zone id (``use1-az4``), the same physical zone in every account.
- ``private_subnet.<zone>``, ``public_subnet.<zone>``: the subnets of a zone (absent when the
  mode has none of that kind).
- ``nodes_subnet.<zone>``: where compute nodes of that zone go; ``controller_subnet.<zone>``:
  where a controller in that zone goes.
- ``nodes_public_ip``, ``controller_public_ip``: ``"true"`` when the instance needs a public IP
  (``InstanceRequest.public_ip``), else ``"false"``.
- ``internet_gateway_id``; ``public_route_table_id``; ``private_route_table.<zone>``.
- ``nat_gateway_id``, ``nat_allocation_id``, ``nat_public_ip``: the NAT gateway and its Elastic IP.
- ``transit_gateway_id``, ``transit_gateway_attachment_id``.
- ``security_group_id``; ``dns_zone_id``, ``dns_zone_name``: the Route 53 private hosted zone.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from corral_aws.client import AwsClients, call
from corral_sdk.errors import Conflict, CorralError, Invalid, NotFound, ProviderError, Timeout
from corral_sdk.providers._common import ProgressLog, StepState
from corral_sdk.providers.cloud import (
    CloudAccount,
    NetworkInfo,
    NetworkRegionInfo,
    NetworkRegionSpec,
    NetworkSpec,
)

__all__ = [
    "DEFAULT_MODE",
    "MODES",
    "NETWORK_TAG",
    "AwsNetworks",
    "check_cluster_zones",
    "subnet_plan",
]

MODES = ("private-subnets", "controller-nat", "public-ips", "private")
"""The AWS networking modes (spec §3.4)."""
DEFAULT_MODE = "private-subnets"
NETWORK_TAG = "corral:network"
"""Tag key on every resource of a network; its value is the network's name."""
RESOURCE_TAG = "corral:resource"
ZONE_TAG = "corral:zone"

_NAME = re.compile(r"^[a-z0-9]{1,48}$")
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d+$")
_TGW_ID = re.compile(r"^tgw-[0-9a-f]{8,17}$")
_DNS_NAME = re.compile(r"^(?=.{1,200}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z]{2,63}$")
_OPTIONS = frozenset(
    {
        "transit_gateway_peering",
        "transit_gateway_id",
        "enable_nat_gateway",
        "ssh_cidrs",
        "dns_domain",
    }
)
_REGION_OPTIONS = frozenset({"transit_gateway_id"})
_LIVE_INSTANCE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]
_GONE_REASONS = {"NoSuchHostedZone", "Gateway.NotAttached", "InvalidAssociationID.NotFound"}


# --- what a spec asks for, checked before any call ----------------------------------------------


@dataclass(frozen=True)
class _Options:
    mode: str
    peering: bool
    transit_gateway_id: str
    nat_toggle: bool
    ssh_cidrs: tuple[str, ...]
    dns_domain: str

    @property
    def internet_gateway(self) -> bool:
        return self.mode != "private" or self.nat_toggle

    @property
    def nat_gateway(self) -> bool:
        return self.mode == "private-subnets" or (self.mode == "private" and self.nat_toggle)

    @property
    def public_subnets(self) -> bool:
        return self.internet_gateway

    @property
    def private_subnets(self) -> bool:
        return self.mode != "public-ips"

    @property
    def nodes_public(self) -> bool:
        return self.mode == "public-ips"

    @property
    def controller_public(self) -> bool:
        return self.mode != "private"


def _flag(options: Mapping[str, Any], key: str) -> bool:
    value = options.get(key, False)
    if not isinstance(value, bool):
        raise Invalid(f"{key} must be true or false, not {value!r}", field=f"options.{key}")
    return value


def _text(options: Mapping[str, Any], key: str, prefix: str = "options") -> str:
    value = options.get(key, "")
    if not isinstance(value, str):
        raise Invalid(f"{key} must be a string, not {value!r}", field=f"{prefix}.{key}")
    return value.strip()


def _check_tgw_id(value: str, field_name: str) -> None:
    if not _TGW_ID.match(value):
        raise Invalid(
            f"{value!r} is not a transit gateway ID (tgw- and 8 to 17 hex digits)",
            field=field_name,
        )


def _parse_options(spec: NetworkSpec) -> _Options:
    mode = spec.mode or DEFAULT_MODE
    if mode not in MODES:
        raise Invalid(
            f"unknown AWS networking mode {mode!r}; choose one of {', '.join(MODES)}", field="mode"
        )
    for key in spec.options:
        if key not in _OPTIONS:
            raise Invalid(
                f"unknown AWS network option {key!r} (known: {', '.join(sorted(_OPTIONS))})",
                field=f"options.{key}",
            )
    peering = _flag(spec.options, "transit_gateway_peering")
    tgw = _text(spec.options, "transit_gateway_id")
    nat_toggle = _flag(spec.options, "enable_nat_gateway")
    if mode != "private":
        for key, given in (
            ("transit_gateway_peering", peering),
            ("transit_gateway_id", bool(tgw)),
            ("enable_nat_gateway", nat_toggle),
        ):
            if given:
                raise Invalid(
                    f"{key} applies only to the private networking mode, not {mode}",
                    field=f"options.{key}",
                )
    elif peering:
        if nat_toggle:
            raise Invalid(
                "a private network peered through a transit gateway cannot have a NAT gateway: "
                "its traffic goes through the central networking account",
                field="options.enable_nat_gateway",
            )
        if not tgw and not all(r.options.get("transit_gateway_id") for r in spec.regions):
            raise Invalid(
                "a private network with transit gateway peering needs transit_gateway_id",
                field="options.transit_gateway_id",
            )
    elif tgw:
        raise Invalid(
            "transit_gateway_id is used only with transit_gateway_peering on",
            field="options.transit_gateway_id",
        )
    if tgw:
        _check_tgw_id(tgw, "options.transit_gateway_id")

    raw_ssh = spec.options.get("ssh_cidrs")
    if raw_ssh is None:
        ssh: tuple[str, ...] = () if mode == "private" else ("0.0.0.0/0",)
    else:
        if isinstance(raw_ssh, str) or not isinstance(raw_ssh, Sequence):
            raise Invalid("ssh_cidrs must be a list of CIDR blocks", field="options.ssh_cidrs")
        checked = []
        for index, cidr in enumerate(raw_ssh):
            try:
                net = ipaddress.ip_network(str(cidr), strict=True)
            except ValueError:
                raise Invalid(
                    f"{cidr!r} is not a valid CIDR block", field=f"options.ssh_cidrs.{index}"
                ) from None
            if net.version != 4:
                raise Invalid("ssh_cidrs must be IPv4", field=f"options.ssh_cidrs.{index}")
            checked.append(str(net))
        ssh = tuple(checked)
    domain = _text(spec.options, "dns_domain") or "corral.internal"
    if not _DNS_NAME.match(domain):
        raise Invalid(f"{domain!r} is not a DNS domain name", field="options.dns_domain")
    return _Options(mode, peering, tgw, nat_toggle, ssh, domain)


def _check_spec(account: CloudAccount, spec: NetworkSpec, allowed: Sequence[str]) -> _Options:
    """Every rule that needs no call: the name, mode, options, tags and each region."""
    if not _NAME.match(spec.name):
        raise Invalid("a network name is 1 to 48 lowercase letters and digits", field="name")
    options = _parse_options(spec)
    if len(spec.tags) > 40:
        raise Invalid(
            "at most 40 tags (AWS allows 50 per resource, Corral adds its own)", field="tags"
        )
    for key, value in spec.tags.items():
        if not key or len(key) > 128 or key.lower().startswith(("aws:", "corral:")):
            raise Invalid(f"tag key {key!r} is not allowed", field=f"tags.{key}")
        if len(value) > 256:
            raise Invalid("a tag value is at most 256 characters", field=f"tags.{key}")
    for index, region in enumerate(spec.regions):
        where = f"regions.{index}"
        if not _REGION.match(region.region):
            raise Invalid(f"{region.region!r} is not an AWS region", field=f"{where}.region")
        if account.govcloud != region.region.startswith("us-gov-"):
            raise Invalid(
                f"{region.region} is {'not ' if account.govcloud else ''}a GovCloud region and "
                f"the account is {'' if account.govcloud else 'not '}a GovCloud account",
                field=f"{where}.region",
            )
        if allowed and region.region not in allowed:
            raise Invalid(
                f"the account may not use {region.region} (settings.regions)",
                field=f"{where}.region",
            )
        net = ipaddress.ip_network(region.cidr)  # NetworkSpec checked that it parses
        if net.version != 4 or not 16 <= net.prefixlen <= 27:
            raise Invalid(
                f"an AWS VPC needs an IPv4 block from /16 to /27, not {region.cidr}",
                field=f"{where}.cidr",
            )
        for key in region.options:
            if key not in _REGION_OPTIONS:
                raise Invalid(f"unknown region option {key!r}", field=f"{where}.options.{key}")
        own_tgw = _text(region.options, "transit_gateway_id", f"{where}.options")
        if own_tgw:
            if not (options.mode == "private" and options.peering):
                raise Invalid(
                    "transit_gateway_id is used only by a private network with peering",
                    field=f"{where}.options.transit_gateway_id",
                )
            _check_tgw_id(own_tgw, f"{where}.options.transit_gateway_id")
    return options


def subnet_plan(
    cidr: str, zones: Sequence[str], *, field_name: str = "cidr"
) -> tuple[dict[str, str], dict[str, str]]:
    """The private and public subnet CIDR of each zone, carved from ``cidr`` (see the module
    docstring). Raises ``Invalid`` when the block is too small for subnets of /28 or more."""
    net = ipaddress.ip_network(cidr)
    bits = math.ceil(math.log2(len(zones))) if len(zones) > 1 else 0
    prefix = net.prefixlen + 1 + bits
    if prefix > 28:
        raise Invalid(
            f"{cidr} is too small for {len(zones)} zone(s): each subnet needs at least a /28; "
            f"use a /{28 - 1 - bits} or larger, or pin one zone",
            field=field_name,
        )
    private_half, public_half = net.subnets(prefixlen_diff=1)
    private = list(private_half.subnets(new_prefix=prefix))
    public = list(public_half.subnets(new_prefix=prefix))
    return (
        {zone: str(private[i]) for i, zone in enumerate(zones)},
        {zone: str(public[i]) for i, zone in enumerate(zones)},
    )


def check_cluster_zones(
    network_region: NetworkRegionInfo,
    mode: str,
    controller_zone: str,
    partition_zones: Mapping[str, Sequence[str]],
) -> None:
    """Whether a network's region serves a cluster's zones (spec §3.4), before it is stored or
    started: the controller and every partition (name → zones, in the cluster's order) must be
    in zones the network has subnets in, and on a ``controller-nat`` network every partition
    must be in the controller's zone alone, since the controller is its zone's NAT. Raises
    ``Invalid`` naming ``cloud.controller.zone`` or ``cloud.partitions.<i>.zones``.

    The mode is the one provisioned (``details["mode"]``), else ``mode`` as defined."""
    details = network_region.details
    mode = details.get("mode") or mode or DEFAULT_MODE
    served = [z for z in details.get("zones", "").split(",") if z]
    if served and controller_zone and controller_zone not in served:
        raise Invalid(
            f"the network has no subnet in the controller's zone {controller_zone} (it has "
            f"{', '.join(served)})",
            field="cloud.controller.zone",
        )
    for index, (name, zones) in enumerate(partition_zones.items()):
        field_name = f"cloud.partitions.{index}.zones"
        outside = [z for z in zones if served and z not in served]
        if outside:
            raise Invalid(
                f"partition {name}: the network has no subnet in {', '.join(outside)} (it has "
                f"{', '.join(served)})",
                field=field_name,
            )
        if mode != "controller-nat":
            continue
        elsewhere = [z for z in zones if z != controller_zone]
        if elsewhere:
            raise Invalid(
                f"partition {name} uses {', '.join(elsewhere)}, but on a controller-as-NAT "
                f"network every partition must be in the controller's zone {controller_zone}: "
                "its nodes reach the internet only through the controller",
                field=field_name,
            )


# --- small helpers ------------------------------------------------------------------------------


class _Step:
    __slots__ = ("detail",)

    def __init__(self) -> None:
        self.detail = ""


@asynccontextmanager
async def _step(log: ProgressLog, name: str) -> AsyncIterator[_Step]:
    """Report one resource as a step: running, then completed with ``detail`` or failed."""
    step = _Step()
    await log.step(name, StepState.RUNNING)
    try:
        yield step
    except CorralError as exc:
        await log.step(name, StepState.FAILED, exc.message)
        raise
    except Exception:
        await log.step(name, StepState.FAILED, "unexpected error")
        raise
    await log.step(name, StepState.COMPLETED, step.detail)


def _tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _tags_of(resource: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or []}


def _ours(resource: Mapping[str, Any], network: str, role: str | None = None) -> bool:
    tags = _tags_of(resource)
    if tags.get(NETWORK_TAG) != network:
        return False
    return role is None or tags.get(RESOURCE_TAG) == role


def _by_network(network: str) -> list[dict[str, Any]]:
    return [{"Name": f"tag:{NETWORK_TAG}", "Values": [network]}]


def _by_vpc(vpc_id: str) -> list[dict[str, Any]]:
    return [{"Name": "vpc-id", "Values": [vpc_id]}]


async def _gone_ok(doing: str, fn: Callable[..., Any], /, **kwargs: Any) -> bool:
    """Run a delete call; a resource that is already gone is not an error. True if it ran."""
    try:
        await call(doing, fn, **kwargs)
    except NotFound:
        return False
    except ProviderError as exc:
        if exc.reason in _GONE_REASONS:
            return False
        raise
    return True


@dataclass
class _Region:
    """One region as it will be built: the spec's, checked against the account."""

    spec: NetworkRegionSpec
    index: int
    zones: tuple[str, ...]
    zone_ids: dict[str, str]
    private_cidrs: dict[str, str]
    public_cidrs: dict[str, str]
    transit_gateway_id: str = ""

    @property
    def name(self) -> str:
        return self.spec.region


@dataclass
class _Built:
    """What a region's provisioning found or made so far."""

    vpc_id: str = ""
    details: dict[str, str] = field(default_factory=dict)
    subnets: list[str] = field(default_factory=list)
    security_group: str = ""


# --- the mixin ----------------------------------------------------------------------------------


class AwsNetworks:
    """The network methods of the AWS provider: ``check_network``, ``check_cluster_network``,
    ``create_network``, ``update_network`` and ``delete_network``."""

    clients: AwsClients
    poll_interval: float = 5.0
    """Seconds between looks at a NAT gateway or transit gateway attachment that is changing."""
    poll_timeout: float = 900.0
    """How long to wait for one to become available or deleted."""

    # --- public methods

    async def check_network(self, account: CloudAccount, spec: NetworkSpec) -> None:
        """The rules that need no call (spec 3.4: modes, peering, NAT, sizes, regions)."""
        _check_spec(account, spec, self.clients.settings(account).regions)

    async def check_cluster_network(
        self,
        account: CloudAccount,
        network: NetworkRegionInfo,
        mode: str,
        controller_zone: str,
        partition_zones: Mapping[str, Sequence[str]],
    ) -> None:
        """The zones a cluster may use on the network: see :func:`check_cluster_zones`."""
        check_cluster_zones(network, mode, controller_zone, partition_zones)

    async def create_network(
        self, account: CloudAccount, spec: NetworkSpec, *, log: ProgressLog
    ) -> NetworkInfo:
        options = _check_spec(account, spec, self.clients.settings(account).regions)
        plans = [
            await self._plan_region(account, spec, options, i) for i in range(len(spec.regions))
        ]
        regions = [
            await self._provision_region(account, spec, options, plan, log) for plan in plans
        ]
        return NetworkInfo(id=spec.name, name=spec.name, regions=tuple(regions))

    async def update_network(
        self, account: CloudAccount, network: NetworkInfo, spec: NetworkSpec, *, log: ProgressLog
    ) -> NetworkInfo:
        options = _check_spec(account, spec, self.clients.settings(account).regions)
        if spec.name != network.name:
            raise Invalid(
                f"a network cannot be renamed ({network.name} to {spec.name})", field="name"
            )
        current = {r.region: r for r in network.regions}
        wanted = {r.region: r for r in spec.regions}
        for asked in spec.regions:
            have = current.get(asked.region)
            if have is not None and have.details.get("mode", options.mode) != options.mode:
                raise Invalid(
                    f"the networking mode of a provisioned network cannot change "
                    f"({have.details.get('mode')} to {options.mode}); create a new network",
                    field="mode",
                )
        changed = {
            name
            for name, have in current.items()
            if name in wanted and wanted[name].cidr != have.cidr
        }
        dropped = [r for r in network.regions if r.region not in wanted or r.region in changed]
        added = [
            i for i, r in enumerate(spec.regions) if r.region not in current or r.region in changed
        ]
        plans = [await self._plan_region(account, spec, options, i) for i in added]
        for gone in dropped:
            await self._refuse_if_instances(account, network.name, gone.region, gone)
        for gone in dropped:
            await self._deprovision_region(account, network.name, gone.region, gone, log)
        made = {}
        for plan in plans:
            made[plan.name] = await self._provision_region(account, spec, options, plan, log)
        regions = tuple(made.get(r.region) or current[r.region] for r in spec.regions)
        return NetworkInfo(id=network.id, name=network.name, regions=regions)

    async def delete_network(
        self, account: CloudAccount, network: NetworkInfo, *, log: ProgressLog
    ) -> None:
        known = {r.region: r for r in network.regions}
        names = list(known) or await self._account_regions(account)
        for name in names:
            await self._refuse_if_instances(account, network.name, name, known.get(name))
        for name in names:
            await self._deprovision_region(account, network.name, name, known.get(name), log)

    async def route_through_controller(
        self,
        account: CloudAccount,
        network_region: NetworkRegionInfo,
        zone: str,
        instance_id: str,
        *,
        log: ProgressLog | None = None,
    ) -> None:
        """On a ``controller-nat`` network, make the controller ``instance_id`` the NAT of the
        private subnet of ``zone``: its source/destination check is turned off and the zone's
        private route table sends ``0.0.0.0/0`` to its primary network interface. (The
        controller itself masquerades: that is its boot script's part.) Raises ``Conflict``
        when another live controller already is that zone's NAT."""
        if network_region.details.get("mode") != "controller-nat":
            raise Invalid(
                "only a controller-nat network routes through its controller", field="mode"
            )
        table = network_region.details.get(f"private_route_table.{zone}")
        if not table:
            raise Invalid(f"the network has no private subnet in {zone}", field="zone")
        ec2 = await self._ec2(account, network_region.region)
        found = await call(
            "look up the controller", ec2.describe_instances, InstanceIds=[instance_id]
        )
        instances = [i for r in found["Reservations"] for i in r["Instances"]]
        if not instances:
            raise NotFound(f"instance {instance_id} not found in {network_region.region}")
        interfaces = sorted(
            instances[0].get("NetworkInterfaces") or [],
            key=lambda n: n.get("Attachment", {}).get("DeviceIndex", 0),
        )
        if not interfaces:
            raise Conflict(f"instance {instance_id} has no network interface yet")
        eni = interfaces[0]["NetworkInterfaceId"]
        await call(
            "turn off the controller's source/destination check",
            ec2.modify_instance_attribute,
            InstanceId=instance_id,
            SourceDestCheck={"Value": False},
        )
        tables = await call(
            "look up the private route table", ec2.describe_route_tables, RouteTableIds=[table]
        )
        route = _default_route(tables["RouteTables"][0])
        if (
            route is not None
            and route.get("NetworkInterfaceId") not in (None, eni)
            and route.get("State") != "blackhole"
        ):
            raise Conflict(
                f"the private subnet of {zone} already goes out through another controller "
                f"({route.get('InstanceId') or route.get('NetworkInterfaceId')})"
            )
        await _set_default_route(ec2, tables["RouteTables"][0], {"NetworkInterfaceId": eni})
        if log is not None:
            await log.log(f"{zone}: nodes now go out through controller {instance_id}")

    # --- clients and look-ups

    async def _ec2(self, account: CloudAccount, region: str) -> Any:
        return await call(
            f"connect to EC2 in {region}", self.clients.client, account, "ec2", region
        )

    async def _route53(self, account: CloudAccount, region: str) -> Any:
        return await call("connect to Route 53", self.clients.client, account, "route53", region)

    async def _account_regions(self, account: CloudAccount) -> list[str]:
        settings = self.clients.settings(account)
        if settings.regions:
            return list(settings.regions)
        ec2 = await self._ec2(account, settings.home_region(account.govcloud))
        found = await call("list the account's regions", ec2.describe_regions)
        return sorted(r["RegionName"] for r in found["Regions"])

    async def _plan_region(
        self, account: CloudAccount, spec: NetworkSpec, options: _Options, index: int
    ) -> _Region:
        """Check a region against the account (zones, transit gateway) and carve its subnets;
        only look-ups, nothing is created."""
        region = spec.regions[index]
        where = f"regions.{index}"
        ec2 = await self._ec2(account, region.region)
        found = await call(f"list the zones of {region.region}", ec2.describe_availability_zones)
        zones = {
            z["ZoneName"]: z.get("ZoneId", "")
            for z in found["AvailabilityZones"]
            if z.get("ZoneType", "availability-zone") == "availability-zone"
            and z.get("State", "available") == "available"
        }
        if region.zone is not None:
            if region.zone not in zones:
                raise Invalid(
                    f"{region.zone} is not an available zone of {region.region}",
                    field=f"{where}.zone",
                )
            chosen: tuple[str, ...] = (region.zone,)
        else:
            chosen = tuple(sorted(zones))
        if not chosen:
            raise Invalid(f"{region.region} has no available zone", field=f"{where}.region")
        private, public = subnet_plan(region.cidr, chosen, field_name=f"{where}.cidr")
        tgw = ""
        if options.mode == "private" and options.peering:
            tgw = _text(region.options, "transit_gateway_id") or options.transit_gateway_id
            tgw_field = (
                f"{where}.options.transit_gateway_id"
                if region.options.get("transit_gateway_id")
                else "options.transit_gateway_id"
            )
            try:
                gateways = await call(
                    f"look up transit gateway {tgw}",
                    ec2.describe_transit_gateways,
                    TransitGatewayIds=[tgw],
                )
            except NotFound:
                gateways = {"TransitGateways": []}
            live = [
                g
                for g in gateways["TransitGateways"]
                if g.get("State") not in ("deleting", "deleted")
            ]
            if not live:
                raise Invalid(
                    f"transit gateway {tgw} is not found in {region.region} (is it shared "
                    "with this account?)",
                    field=tgw_field,
                )
        return _Region(
            spec=region,
            index=index,
            zones=chosen,
            zone_ids={z: zones[z] for z in chosen},
            private_cidrs=private if options.private_subnets else {},
            public_cidrs=public if options.public_subnets else {},
            transit_gateway_id=tgw,
        )

    # --- provisioning

    async def _provision_region(
        self,
        account: CloudAccount,
        spec: NetworkSpec,
        options: _Options,
        plan: _Region,
        log: ProgressLog,
    ) -> NetworkRegionInfo:
        ec2 = await self._ec2(account, plan.name)
        built = _Built()
        built.details["mode"] = options.mode
        built.details["zones"] = ",".join(plan.zones)
        for zone, zone_id in plan.zone_ids.items():
            if zone_id:
                built.details[f"zone_id.{zone}"] = zone_id
        tagger = _Tagger(spec, plan.name)

        await self._ensure_vpc(ec2, spec, plan, tagger, built, log)
        await self._ensure_subnets(ec2, spec, options, plan, tagger, built, log)
        if options.internet_gateway:
            await self._ensure_internet_gateway(ec2, spec, plan, tagger, built, log)
            await self._ensure_public_routes(ec2, spec, plan, tagger, built, log)
        if options.nat_gateway:
            await self._ensure_nat_gateway(ec2, spec, plan, tagger, built, log)
        if plan.transit_gateway_id:
            await self._ensure_transit_attachment(ec2, spec, plan, tagger, built, log)
        if options.private_subnets:
            await self._ensure_private_routes(ec2, spec, options, plan, tagger, built, log)
        await self._ensure_security_group(ec2, spec, options, plan, tagger, built, log)
        await self._ensure_dns_zone(account, spec, options, plan, built, log)

        for zone in plan.zones:
            private = built.details.get(f"private_subnet.{zone}", "")
            public = built.details.get(f"public_subnet.{zone}", "")
            built.details[f"nodes_subnet.{zone}"] = public if options.nodes_public else private
            built.details[f"controller_subnet.{zone}"] = (
                public if options.controller_public else private
            )
        built.details["nodes_public_ip"] = str(options.nodes_public).lower()
        built.details["controller_public_ip"] = str(options.controller_public).lower()
        return NetworkRegionInfo(
            region=plan.name,
            cidr=plan.spec.cidr,
            network_id=built.vpc_id,
            subnet_ids=tuple(built.subnets),
            security_group_ids=(built.security_group,),
            details=built.details,
        )

    async def _ensure_vpc(
        self,
        ec2: Any,
        spec: NetworkSpec,
        plan: _Region,
        tagger: _Tagger,
        built: _Built,
        log: ProgressLog,
    ) -> None:
        async with _step(log, f"{plan.name} VPC {plan.spec.cidr}") as step:
            found = await call(
                "look up the network's VPC", ec2.describe_vpcs, Filters=_by_network(spec.name)
            )
            vpcs = [v for v in found["Vpcs"] if _ours(v, spec.name)]
            if len(vpcs) > 1:
                raise Conflict(
                    f"{plan.name} has {len(vpcs)} VPCs tagged {NETWORK_TAG}={spec.name}: "
                    f"{', '.join(v['VpcId'] for v in vpcs)}"
                )
            if vpcs:
                vpc = vpcs[0]
                if vpc["CidrBlock"] != plan.spec.cidr:
                    raise Conflict(
                        f"the network's VPC {vpc['VpcId']} in {plan.name} has CIDR "
                        f"{vpc['CidrBlock']}, not {plan.spec.cidr}",
                        details={"field": f"regions.{plan.index}.cidr"},
                    )
                step.detail = f"found {vpc['VpcId']}"
            else:
                vpc = (
                    await call(
                        "create the VPC",
                        ec2.create_vpc,
                        CidrBlock=plan.spec.cidr,
                        TagSpecifications=[tagger.spec("vpc", "vpc")],
                    )
                )["Vpc"]
                step.detail = vpc["VpcId"]
            built.vpc_id = vpc["VpcId"]
            for attribute in ("EnableDnsSupport", "EnableDnsHostnames"):
                await call(
                    "turn on the VPC's DNS",
                    ec2.modify_vpc_attribute,
                    VpcId=built.vpc_id,
                    **{attribute: {"Value": True}},
                )

    async def _ensure_subnets(
        self,
        ec2: Any,
        spec: NetworkSpec,
        options: _Options,
        plan: _Region,
        tagger: _Tagger,
        built: _Built,
        log: ProgressLog,
    ) -> None:
        found = await call(
            "look up the network's subnets", ec2.describe_subnets, Filters=_by_vpc(built.vpc_id)
        )
        existing = {s["CidrBlock"]: s for s in found["Subnets"]}
        for kind, cidrs in (("private", plan.private_cidrs), ("public", plan.public_cidrs)):
            for zone, cidr in cidrs.items():
                async with _step(log, f"{zone} {kind} subnet {cidr}") as step:
                    subnet = existing.get(cidr)
                    if subnet is not None:
                        if not _ours(subnet, spec.name) or subnet["AvailabilityZone"] != zone:
                            raise Conflict(
                                f"subnet {subnet['SubnetId']} ({cidr}) in the network's VPC is "
                                f"not the network's {kind} subnet of {zone}"
                            )
                        step.detail = f"found {subnet['SubnetId']}"
                    else:
                        subnet = (
                            await call(
                                f"create the {kind} subnet of {zone}",
                                ec2.create_subnet,
                                VpcId=built.vpc_id,
                                CidrBlock=cidr,
                                AvailabilityZone=zone,
                                TagSpecifications=[
                                    tagger.spec("subnet", f"{kind}-subnet", zone=zone)
                                ],
                            )
                        )["Subnet"]
                        step.detail = subnet["SubnetId"]
                    if kind == "public" and options.nodes_public:
                        await call(
                            "give the public subnet's instances public IPs",
                            ec2.modify_subnet_attribute,
                            SubnetId=subnet["SubnetId"],
                            MapPublicIpOnLaunch={"Value": True},
                        )
                    built.details[f"{kind}_subnet.{zone}"] = subnet["SubnetId"]
                    built.subnets.append(subnet["SubnetId"])

    async def _ensure_internet_gateway(
        self,
        ec2: Any,
        spec: NetworkSpec,
        plan: _Region,
        tagger: _Tagger,
        built: _Built,
        log: ProgressLog,
    ) -> None:
        async with _step(log, f"{plan.name} internet gateway") as step:
            found = await call(
                "look up the internet gateway",
                ec2.describe_internet_gateways,
                Filters=_by_network(spec.name),
            )
            gateways = [g for g in found["InternetGateways"] if _ours(g, spec.name)]
            if gateways:
                gateway = gateways[0]
                step.detail = f"found {gateway['InternetGatewayId']}"
            else:
                gateway = (
                    await call(
                        "create the internet gateway",
                        ec2.create_internet_gateway,
                        TagSpecifications=[tagger.spec("internet-gateway", "internet-gateway")],
                    )
                )["InternetGateway"]
                step.detail = gateway["InternetGatewayId"]
            gateway_id = gateway["InternetGatewayId"]
            attached = {a["VpcId"] for a in gateway.get("Attachments") or []}
            if built.vpc_id not in attached:
                await call(
                    "attach the internet gateway to the VPC",
                    ec2.attach_internet_gateway,
                    InternetGatewayId=gateway_id,
                    VpcId=built.vpc_id,
                )
            built.details["internet_gateway_id"] = gateway_id

    async def _route_table(
        self, ec2: Any, spec: NetworkSpec, built: _Built, tagger: _Tagger, role: str, zone: str = ""
    ) -> tuple[dict[str, Any], bool]:
        """The route table of ``role`` (and ``zone``) in the VPC, made if missing; True when
        found."""
        found = await call(
            "look up the route tables", ec2.describe_route_tables, Filters=_by_vpc(built.vpc_id)
        )
        for table in found["RouteTables"]:
            if _ours(table, spec.name, role) and _tags_of(table).get(ZONE_TAG, "") == zone:
                return table, True
        made = await call(
            "create a route table",
            ec2.create_route_table,
            VpcId=built.vpc_id,
            TagSpecifications=[tagger.spec("route-table", role, zone=zone or None)],
        )
        return made["RouteTable"], False

    async def _associate(self, ec2: Any, table: Mapping[str, Any], subnet_id: str) -> None:
        associated = {a.get("SubnetId") for a in table.get("Associations") or []}
        if subnet_id not in associated:
            await call(
                "associate a subnet with its route table",
                ec2.associate_route_table,
                RouteTableId=table["RouteTableId"],
                SubnetId=subnet_id,
            )

    async def _ensure_public_routes(
        self,
        ec2: Any,
        spec: NetworkSpec,
        plan: _Region,
        tagger: _Tagger,
        built: _Built,
        log: ProgressLog,
    ) -> None:
        async with _step(log, f"{plan.name} public route table") as step:
            table, found = await self._route_table(ec2, spec, built, tagger, "public-route-table")
            gateway = built.details["internet_gateway_id"]
            await _set_default_route(ec2, table, {"GatewayId": gateway})
            for zone in plan.public_cidrs:
                await self._associate(ec2, table, built.details[f"public_subnet.{zone}"])
            built.details["public_route_table_id"] = table["RouteTableId"]
            step.detail = (
                f"{'found ' if found else ''}{table['RouteTableId']}: 0.0.0.0/0 to {gateway}"
            )

    async def _ensure_nat_gateway(
        self,
        ec2: Any,
        spec: NetworkSpec,
        plan: _Region,
        tagger: _Tagger,
        built: _Built,
        log: ProgressLog,
    ) -> None:
        found = await call(
            "look up the NAT gateway", ec2.describe_nat_gateways, Filters=_by_vpc(built.vpc_id)
        )
        gateways = [
            g
            for g in found["NatGateways"]
            if _ours(g, spec.name) and g.get("State") in ("pending", "available")
        ]
        async with _step(log, f"{plan.name} NAT Elastic IP") as step:
            if gateways:
                address = (gateways[0].get("NatGatewayAddresses") or [{}])[0]
                allocation, public_ip = address.get("AllocationId", ""), address.get("PublicIp", "")
                step.detail = f"found {allocation} ({public_ip})"
            else:
                addresses = await call(
                    "look up the NAT's Elastic IP",
                    ec2.describe_addresses,
                    Filters=_by_network(spec.name),
                )
                mine = [
                    a
                    for a in addresses["Addresses"]
                    if _ours(a, spec.name, "nat-eip") and not a.get("AssociationId")
                ]
                if mine:
                    allocation, public_ip = mine[0]["AllocationId"], mine[0].get("PublicIp", "")
                    step.detail = f"found {allocation} ({public_ip})"
                else:
                    made = await call(
                        "allocate the NAT's Elastic IP",
                        ec2.allocate_address,
                        Domain="vpc",
                        TagSpecifications=[tagger.spec("elastic-ip", "nat-eip")],
                    )
                    allocation, public_ip = made["AllocationId"], made.get("PublicIp", "")
                    step.detail = f"{allocation} ({public_ip})"
            built.details["nat_allocation_id"] = allocation
            built.details["nat_public_ip"] = public_ip
        async with _step(log, f"{plan.name} NAT gateway") as step:
            if gateways:
                gateway = gateways[0]
                step.detail = f"found {gateway['NatGatewayId']}"
            else:
                subnet = built.details[f"public_subnet.{plan.zones[0]}"]
                gateway = (
                    await call(
                        "create the NAT gateway",
                        ec2.create_nat_gateway,
                        SubnetId=subnet,
                        AllocationId=allocation,
                        TagSpecifications=[tagger.spec("natgateway", "nat-gateway")],
                    )
                )["NatGateway"]
                step.detail = gateway["NatGatewayId"]
            await self._wait_nat(ec2, gateway["NatGatewayId"], "available")
            built.details["nat_gateway_id"] = gateway["NatGatewayId"]

    async def _wait_nat(self, ec2: Any, gateway_id: str, target: str) -> None:
        async def state() -> str:
            try:
                found = await call(
                    "look up the NAT gateway", ec2.describe_nat_gateways, NatGatewayIds=[gateway_id]
                )
            except NotFound:
                return "deleted"
            gateways = found["NatGateways"]
            if not gateways:
                return "deleted"
            if gateways[0]["State"] == "failed" and target == "available":
                raise ProviderError(
                    f"NAT gateway {gateway_id} failed: {gateways[0].get('FailureMessage', '')}",
                    reason=gateways[0].get("FailureCode") or None,
                )
            return str(gateways[0]["State"])

        await self._wait(f"NAT gateway {gateway_id}", state, target)

    async def _wait(self, what: str, state: Callable[[], Awaitable[str]], target: str) -> None:
        deadline = time.monotonic() + self.poll_timeout
        while True:
            now = await state()
            if now == target:
                return
            if time.monotonic() > deadline:
                raise Timeout(
                    f"{what} is still {now} after {self.poll_timeout:.0f} s", retryable=True
                )
            await asyncio.sleep(self.poll_interval)

    async def _ensure_transit_attachment(
        self,
        ec2: Any,
        spec: NetworkSpec,
        plan: _Region,
        tagger: _Tagger,
        built: _Built,
        log: ProgressLog,
    ) -> None:
        tgw = plan.transit_gateway_id
        async with _step(log, f"{plan.name} transit gateway attachment to {tgw}") as step:
            attachment = await _transit_attachment(ec2, built.vpc_id, tgw)
            if attachment is not None:
                step.detail = f"found {attachment['TransitGatewayAttachmentId']}"
            else:
                attachment = (
                    await call(
                        "attach the VPC to the transit gateway",
                        ec2.create_transit_gateway_vpc_attachment,
                        TransitGatewayId=tgw,
                        VpcId=built.vpc_id,
                        SubnetIds=[built.details[f"private_subnet.{z}"] for z in plan.zones],
                        TagSpecifications=[
                            tagger.spec("transit-gateway-attachment", "transit-gateway-attachment")
                        ],
                    )
                )["TransitGatewayVpcAttachment"]
                step.detail = attachment["TransitGatewayAttachmentId"]
            attachment_id = attachment["TransitGatewayAttachmentId"]

            async def state() -> str:
                found = await call(
                    "look up the transit gateway attachment",
                    ec2.describe_transit_gateway_vpc_attachments,
                    TransitGatewayAttachmentIds=[attachment_id],
                )
                items = found["TransitGatewayVpcAttachments"]
                now = str(items[0]["State"]) if items else "deleted"
                if now in ("failed", "rejected", "deleted"):
                    raise ProviderError(
                        f"the transit gateway attachment {attachment_id} is {now}"
                        + (" (the networking account rejected it)" if now == "rejected" else "")
                    )
                return now

            await self._wait(f"transit gateway attachment {attachment_id}", state, "available")
            built.details["transit_gateway_id"] = tgw
            built.details["transit_gateway_attachment_id"] = attachment_id

    async def _ensure_private_routes(
        self,
        ec2: Any,
        spec: NetworkSpec,
        options: _Options,
        plan: _Region,
        tagger: _Tagger,
        built: _Built,
        log: ProgressLog,
    ) -> None:
        target: dict[str, str] = {}
        if "nat_gateway_id" in built.details:
            target = {"NatGatewayId": built.details["nat_gateway_id"]}
        elif "transit_gateway_id" in built.details:
            target = {"TransitGatewayId": built.details["transit_gateway_id"]}
        for zone in plan.zones:
            async with _step(log, f"{zone} private route table") as step:
                table, found = await self._route_table(
                    ec2, spec, built, tagger, "private-route-table", zone
                )
                if target:
                    await _set_default_route(ec2, table, target)
                await self._associate(ec2, table, built.details[f"private_subnet.{zone}"])
                built.details[f"private_route_table.{zone}"] = table["RouteTableId"]
                way = (
                    f"0.0.0.0/0 to {next(iter(target.values()))}"
                    if target
                    else "0.0.0.0/0 set at cluster start to the controller"
                    if options.mode == "controller-nat"
                    else "no route out"
                )
                step.detail = f"{'found ' if found else ''}{table['RouteTableId']}: {way}"

    async def _ensure_security_group(
        self,
        ec2: Any,
        spec: NetworkSpec,
        options: _Options,
        plan: _Region,
        tagger: _Tagger,
        built: _Built,
        log: ProgressLog,
    ) -> None:
        group_name = f"corral-{spec.name}"
        async with _step(log, f"{plan.name} security group {group_name}") as step:
            found = await call(
                "look up the security group",
                ec2.describe_security_groups,
                Filters=[*_by_vpc(built.vpc_id), {"Name": "group-name", "Values": [group_name]}],
            )
            groups = [g for g in found["SecurityGroups"] if g.get("GroupName") == group_name]
            if groups:
                group_id = groups[0]["GroupId"]
                permissions = groups[0].get("IpPermissions") or []
                step.detail = f"found {group_id}"
            else:
                made = await call(
                    "create the security group",
                    ec2.create_security_group,
                    GroupName=group_name,
                    Description=f"Corral network {spec.name}: all traffic within the VPC, SSH",
                    VpcId=built.vpc_id,
                    TagSpecifications=[tagger.spec("security-group", "security-group")],
                )
                group_id, permissions = made["GroupId"], []
                step.detail = group_id
            have = {
                (p.get("IpProtocol"), p.get("FromPort"), r.get("CidrIp"))
                for p in permissions
                for r in p.get("IpRanges") or []
            }
            wanted = [("-1", None, plan.spec.cidr)] + [("tcp", 22, c) for c in options.ssh_cidrs]
            missing = [w for w in wanted if w not in have]
            if missing:
                await call(
                    "allow traffic in the security group",
                    ec2.authorize_security_group_ingress,
                    GroupId=group_id,
                    IpPermissions=[
                        {
                            "IpProtocol": protocol,
                            **({"FromPort": port, "ToPort": port} if port is not None else {}),
                            "IpRanges": [
                                {
                                    "CidrIp": cidr,
                                    "Description": "the VPC" if port is None else "SSH",
                                }
                            ],
                        }
                        for protocol, port, cidr in missing
                    ],
                )
            built.security_group = group_id
            built.details["security_group_id"] = group_id

    async def _ensure_dns_zone(
        self,
        account: CloudAccount,
        spec: NetworkSpec,
        options: _Options,
        plan: _Region,
        built: _Built,
        log: ProgressLog,
    ) -> None:
        name = f"{spec.name}.{plan.name}.{options.dns_domain}"
        async with _step(log, f"{plan.name} DNS zone {name}") as step:
            route53 = await self._route53(account, plan.name)
            zone_id = await _hosted_zone(route53, built.vpc_id, plan.name, name)
            if zone_id:
                step.detail = f"found {zone_id}"
            else:
                made = await call(
                    "create the private hosted zone",
                    route53.create_hosted_zone,
                    Name=name,
                    CallerReference=f"corral-{spec.name}-{built.vpc_id}",
                    VPC={"VPCRegion": plan.name, "VPCId": built.vpc_id},
                    HostedZoneConfig={
                        "Comment": f"Corral network {spec.name} in {plan.name}",
                        "PrivateZone": True,
                    },
                )
                zone_id = made["HostedZone"]["Id"].rsplit("/", 1)[-1]
                step.detail = zone_id
            await call(
                "tag the private hosted zone",
                route53.change_tags_for_resource,
                ResourceType="hostedzone",
                ResourceId=zone_id,
                AddTags=_tag_list(_Tagger(spec, plan.name).tags("dns-zone")),
            )
            built.details["dns_zone_id"] = zone_id
            built.details["dns_zone_name"] = name

    # --- deprovisioning

    async def _vpcs(
        self, ec2: Any, network: str, info: NetworkRegionInfo | None
    ) -> list[dict[str, Any]]:
        found = await call(
            "look up the network's VPC", ec2.describe_vpcs, Filters=_by_network(network)
        )
        vpcs = {v["VpcId"]: v for v in found["Vpcs"] if _ours(v, network)}
        if info is not None and info.network_id and info.network_id not in vpcs:
            try:
                known = await call(
                    "look up the network's VPC", ec2.describe_vpcs, VpcIds=[info.network_id]
                )
            except NotFound:
                known = {"Vpcs": []}
            for vpc in known["Vpcs"]:
                vpcs[vpc["VpcId"]] = vpc
        return list(vpcs.values())

    async def _refuse_if_instances(
        self, account: CloudAccount, network: str, region: str, info: NetworkRegionInfo | None
    ) -> None:
        ec2 = await self._ec2(account, region)
        vpcs = await self._vpcs(ec2, network, info)
        if not vpcs:
            return
        found = await call(
            "look up instances in the network",
            ec2.describe_instances,
            Filters=[
                {"Name": "vpc-id", "Values": [v["VpcId"] for v in vpcs]},
                {"Name": "instance-state-name", "Values": _LIVE_INSTANCE_STATES},
            ],
        )
        ids = [i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]]
        if ids:
            shown = ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else "")
            raise Conflict(
                f"network {network} still has {len(ids)} instance(s) in {region} ({shown}); "
                "stop the clusters that use it first",
                reason="network-in-use",
            )

    async def _deprovision_region(
        self,
        account: CloudAccount,
        network: str,
        region: str,
        info: NetworkRegionInfo | None,
        log: ProgressLog,
    ) -> None:
        ec2 = await self._ec2(account, region)
        details = info.details if info is not None else {}
        for vpc in await self._vpcs(ec2, network, info):
            vpc_id = vpc["VpcId"]
            await self._delete_dns_zones(account, network, region, vpc_id, details, log)
            await self._delete_transit_attachments(ec2, region, vpc_id, log)
            await self._delete_nat_gateways(ec2, network, region, vpc_id, log)
            await self._release_addresses(ec2, network, region, log)
            await self._delete_route_tables(ec2, network, region, vpc_id, log)
            await self._delete_internet_gateways(ec2, network, region, log)
            await self._delete_subnets(ec2, network, region, vpc_id, log)
            await self._delete_security_groups(ec2, network, region, vpc_id, log)
            async with _step(log, f"{region} delete VPC {vpc_id}") as step:
                ran = await _gone_ok("delete the VPC", ec2.delete_vpc, VpcId=vpc_id)
                step.detail = "deleted" if ran else "already gone"
        # What can outlive the VPC after a crash: the Elastic IP and the internet gateway.
        await self._release_addresses(ec2, network, region, log)
        await self._delete_internet_gateways(ec2, network, region, log)

    async def _delete_dns_zones(
        self,
        account: CloudAccount,
        network: str,
        region: str,
        vpc_id: str,
        details: Mapping[str, str],
        log: ProgressLog,
    ) -> None:
        route53 = await self._route53(account, region)
        prefix = f"{network}.{region}."
        zone_ids = []
        ours = await _private_zones(
            route53,
            vpc_id,
            region,
            lambda zone_id, name: name.startswith(prefix) or zone_id == details.get("dns_zone_id"),
        )
        for zone_id, _ in ours:
            tags = await call(
                "look up the hosted zone's tags",
                route53.list_tags_for_resource,
                ResourceType="hostedzone",
                ResourceId=zone_id,
            )
            # untagged: made, then a crash before it was tagged; the VPC and its name are ours
            owner = _tags_of(tags["ResourceTagSet"]).get(NETWORK_TAG, network)
            if owner == network:
                zone_ids.append(zone_id)
        for zone_id in zone_ids:
            async with _step(log, f"{region} delete DNS zone {zone_id}") as step:
                records = await call(
                    "list the hosted zone's records",
                    route53.list_resource_record_sets,
                    HostedZoneId=zone_id,
                )
                extra = [r for r in records["ResourceRecordSets"] if r["Type"] not in ("SOA", "NS")]
                if extra:
                    await call(
                        "delete the hosted zone's records",
                        route53.change_resource_record_sets,
                        HostedZoneId=zone_id,
                        ChangeBatch={
                            "Changes": [{"Action": "DELETE", "ResourceRecordSet": r} for r in extra]
                        },
                    )
                ran = await _gone_ok(
                    "delete the private hosted zone", route53.delete_hosted_zone, Id=zone_id
                )
                step.detail = "deleted" if ran else "already gone"

    async def _delete_transit_attachments(
        self, ec2: Any, region: str, vpc_id: str, log: ProgressLog
    ) -> None:
        found = await call(
            "look up transit gateway attachments",
            ec2.describe_transit_gateway_vpc_attachments,
            Filters=_by_vpc(vpc_id),
        )
        for attachment in found["TransitGatewayVpcAttachments"]:
            if attachment.get("State") in ("deleted", "deleting", "failed", "rejected"):
                continue
            attachment_id = attachment["TransitGatewayAttachmentId"]
            async with _step(
                log, f"{region} delete transit gateway attachment {attachment_id}"
            ) as step:
                await _gone_ok(
                    "delete the transit gateway attachment",
                    ec2.delete_transit_gateway_vpc_attachment,
                    TransitGatewayAttachmentId=attachment_id,
                )

                async def state(attachment_id: str = attachment_id) -> str:
                    try:
                        now = await call(
                            "look up the transit gateway attachment",
                            ec2.describe_transit_gateway_vpc_attachments,
                            TransitGatewayAttachmentIds=[attachment_id],
                        )
                    except NotFound:
                        return "deleted"
                    items = now["TransitGatewayVpcAttachments"]
                    return str(items[0]["State"]) if items else "deleted"

                await self._wait(f"transit gateway attachment {attachment_id}", state, "deleted")
                step.detail = "deleted"

    async def _delete_nat_gateways(
        self, ec2: Any, network: str, region: str, vpc_id: str, log: ProgressLog
    ) -> None:
        found = await call(
            "look up the NAT gateway", ec2.describe_nat_gateways, Filters=_by_vpc(vpc_id)
        )
        for gateway in found["NatGateways"]:
            if not _ours(gateway, network) or gateway.get("State") in ("deleted", "failed"):
                continue
            gateway_id = gateway["NatGatewayId"]
            async with _step(log, f"{region} delete NAT gateway {gateway_id}") as step:
                if gateway.get("State") != "deleting":
                    await _gone_ok(
                        "delete the NAT gateway", ec2.delete_nat_gateway, NatGatewayId=gateway_id
                    )
                await self._wait_nat(ec2, gateway_id, "deleted")
                step.detail = "deleted"

    async def _release_addresses(
        self, ec2: Any, network: str, region: str, log: ProgressLog
    ) -> None:
        found = await call(
            "look up the network's Elastic IPs",
            ec2.describe_addresses,
            Filters=_by_network(network),
        )
        for address in found["Addresses"]:
            if not _ours(address, network):
                continue
            allocation = address["AllocationId"]
            async with _step(
                log, f"{region} release Elastic IP {address.get('PublicIp', allocation)}"
            ) as step:
                if address.get("AssociationId"):
                    await _gone_ok(
                        "detach the Elastic IP",
                        ec2.disassociate_address,
                        AssociationId=address["AssociationId"],
                    )
                ran = await _gone_ok(
                    "release the Elastic IP", ec2.release_address, AllocationId=allocation
                )
                step.detail = "released" if ran else "already gone"

    async def _delete_route_tables(
        self, ec2: Any, network: str, region: str, vpc_id: str, log: ProgressLog
    ) -> None:
        found = await call(
            "look up the route tables", ec2.describe_route_tables, Filters=_by_vpc(vpc_id)
        )
        for table in found["RouteTables"]:
            associations = table.get("Associations") or []
            if not _ours(table, network) or any(a.get("Main") for a in associations):
                continue
            table_id = table["RouteTableId"]
            async with _step(log, f"{region} delete route table {table_id}") as step:
                for association in associations:
                    await _gone_ok(
                        "detach a subnet from its route table",
                        ec2.disassociate_route_table,
                        AssociationId=association["RouteTableAssociationId"],
                    )
                ran = await _gone_ok(
                    "delete the route table", ec2.delete_route_table, RouteTableId=table_id
                )
                step.detail = "deleted with its routes" if ran else "already gone"

    async def _delete_internet_gateways(
        self, ec2: Any, network: str, region: str, log: ProgressLog
    ) -> None:
        found = await call(
            "look up the internet gateway",
            ec2.describe_internet_gateways,
            Filters=_by_network(network),
        )
        for gateway in found["InternetGateways"]:
            if not _ours(gateway, network):
                continue
            gateway_id = gateway["InternetGatewayId"]
            async with _step(log, f"{region} delete internet gateway {gateway_id}") as step:
                for attachment in gateway.get("Attachments") or []:
                    await _gone_ok(
                        "detach the internet gateway",
                        ec2.detach_internet_gateway,
                        InternetGatewayId=gateway_id,
                        VpcId=attachment["VpcId"],
                    )
                ran = await _gone_ok(
                    "delete the internet gateway",
                    ec2.delete_internet_gateway,
                    InternetGatewayId=gateway_id,
                )
                step.detail = "detached and deleted" if ran else "already gone"

    async def _delete_subnets(
        self, ec2: Any, network: str, region: str, vpc_id: str, log: ProgressLog
    ) -> None:
        found = await call("look up the subnets", ec2.describe_subnets, Filters=_by_vpc(vpc_id))
        for subnet in found["Subnets"]:
            if not _ours(subnet, network):
                continue
            subnet_id = subnet["SubnetId"]
            async with _step(
                log, f"{subnet['AvailabilityZone']} delete subnet {subnet['CidrBlock']}"
            ) as step:
                ran = await _gone_ok("delete a subnet", ec2.delete_subnet, SubnetId=subnet_id)
                step.detail = f"{subnet_id} deleted" if ran else "already gone"

    async def _delete_security_groups(
        self, ec2: Any, network: str, region: str, vpc_id: str, log: ProgressLog
    ) -> None:
        found = await call(
            "look up the security group", ec2.describe_security_groups, Filters=_by_vpc(vpc_id)
        )
        for group in found["SecurityGroups"]:
            if not (_ours(group, network) or group.get("GroupName") == f"corral-{network}"):
                continue
            group_id = group["GroupId"]
            async with _step(log, f"{region} delete security group {group_id}") as step:
                ran = await _gone_ok(
                    "delete the security group", ec2.delete_security_group, GroupId=group_id
                )
                step.detail = "deleted" if ran else "already gone"


# --- module helpers that need a client ----------------------------------------------------------


class _Tagger:
    """The tags of one region's resources: the spec's, the network's, a Name, a role, a zone."""

    def __init__(self, spec: NetworkSpec, region: str) -> None:
        self._spec = spec
        self._region = region

    def tags(self, role: str, zone: str | None = None) -> dict[str, str]:
        tags = {"Name": f"{self._spec.name}-{zone or self._region}-{role}"}
        tags.update(self._spec.tags)
        tags[NETWORK_TAG] = self._spec.name
        tags[RESOURCE_TAG] = role
        if zone:
            tags[ZONE_TAG] = zone
        return tags

    def spec(self, resource_type: str, role: str, zone: str | None = None) -> dict[str, Any]:
        return {"ResourceType": resource_type, "Tags": _tag_list(self.tags(role, zone))}


def _default_route(table: Mapping[str, Any]) -> dict[str, Any] | None:
    for route in table.get("Routes") or []:
        if route.get("DestinationCidrBlock") == "0.0.0.0/0":
            return dict(route)
    return None


async def _set_default_route(ec2: Any, table: Mapping[str, Any], target: Mapping[str, str]) -> None:
    """Make ``0.0.0.0/0`` in ``table`` go to ``target`` (``{"NatGatewayId": ...}``)."""
    route = _default_route(table)
    ((key, value),) = target.items()
    if route is not None and route.get(key) == value and route.get("State") != "blackhole":
        return
    action = ec2.replace_route if route is not None else ec2.create_route
    await call(
        f"route 0.0.0.0/0 to {value}",
        action,
        RouteTableId=table["RouteTableId"],
        DestinationCidrBlock="0.0.0.0/0",
        **target,
    )


async def _transit_attachment(ec2: Any, vpc_id: str, tgw: str) -> dict[str, Any] | None:
    found = await call(
        "look up the transit gateway attachment",
        ec2.describe_transit_gateway_vpc_attachments,
        Filters=[*_by_vpc(vpc_id), {"Name": "transit-gateway-id", "Values": [tgw]}],
    )
    for attachment in found["TransitGatewayVpcAttachments"]:
        if attachment.get("State") not in ("deleted", "deleting", "failed", "rejected"):
            return dict(attachment)
    return None


async def _private_zones(
    route53: Any, vpc_id: str, region: str, wanted: Callable[[str, str], bool]
) -> list[tuple[str, str]]:
    """(id, name without the final dot) of the private hosted zones associated with the VPC
    for which ``wanted(id, name)`` holds (checked first, to look up only those zones).

    ListHostedZones and GetHostedZone rather than ListHostedZonesByVPC: the spec's
    ``pw-route53-mgmt`` policy grants only the former."""
    zones: list[tuple[str, str]] = []
    marker = ""
    while True:
        page = await call(
            "list the hosted zones",
            route53.list_hosted_zones,
            **({"Marker": marker} if marker else {}),
        )
        for zone in page["HostedZones"]:
            zone_id = str(zone["Id"]).rsplit("/", 1)[-1]
            name = str(zone["Name"]).rstrip(".")
            if not zone.get("Config", {}).get("PrivateZone") or not wanted(zone_id, name):
                continue
            try:
                full = await call("look up a hosted zone", route53.get_hosted_zone, Id=zone_id)
            except NotFound:
                continue
            except ProviderError as exc:
                if exc.reason in _GONE_REASONS:
                    continue
                raise
            vpcs = {(v.get("VPCId"), v.get("VPCRegion")) for v in full.get("VPCs") or []}
            if (vpc_id, region) in vpcs:
                zones.append((zone_id, name))
        if not page.get("IsTruncated"):
            return zones
        marker = page["NextMarker"]


async def _hosted_zone(route53: Any, vpc_id: str, region: str, name: str) -> str:
    """The id of the private hosted zone ``name`` associated with the VPC, or ``""``."""
    found = await _private_zones(route53, vpc_id, region, lambda _, zone: zone == name)
    return found[0][0] if found else ""
