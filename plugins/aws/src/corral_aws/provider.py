"""Amazon Web Services as a :class:`~corral_sdk.providers.cloud.CloudProvider`.

Every method runs its boto3 calls in a thread (:func:`~corral_aws.client.call`), on short-lived
STS federation credentials, with AWS errors mapped to Corral's. Batches of instances are one
``RunInstances`` call (``MinCount = MaxCount`` = the number of names), so a batch lands in one
zone or not at all; MultiZone moves the whole batch to the next zone when one lacks capacity.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

import msgspec

from corral_aws import permissions
from corral_aws.bootstrap import user_data
from corral_aws.catalogue import load as load_catalogue
from corral_aws.client import AwsClients, aws_errors, call, map_error
from corral_aws.names import MAX_TAG, compact, expand
from corral_aws.networks import AwsNetworks
from corral_aws.settings import AwsCredentials
from corral_sdk.errors import (
    Conflict,
    CorralError,
    Invalid,
    NotAuthenticated,
    NotFound,
    ProviderError,
)
from corral_sdk.providers._common import ProgressLog, StepState
from corral_sdk.providers.cloud import (
    CAPACITY_UNAVAILABLE,
    Architecture,
    CapacityReservation,
    CloudAccount,
    CloudProviderBase,
    CredentialCheck,
    Image,
    ImageSource,
    ImageState,
    Instance,
    InstanceRequest,
    InstanceState,
    InstanceType,
    NetworkRegionInfo,
    PlacementGroup,
    Region,
    StaticIp,
)

__all__ = ["TAG_REQUEST", "TAG_SNAPSHOT", "AwsCloud", "LaunchOptions"]

T = TypeVar("T")

TAG_REQUEST = "corral:request"
"""Tag on every instance of a batch: the request's idempotency key (a retry finds them by it)."""
TAG_SNAPSHOT = "corral:snapshot"
"""Tag on an OS snapshot (AMI) Corral made: its name."""
TAG_NAMES = "corral:names"
"""The names of a batch launched together, by launch index (:mod:`corral_aws.names`)."""
SNAPSHOT_NAME = re.compile(r"^[a-z][a-z0-9-]{2,35}$")
"""Spec §5.9: begins with a letter, 3-36 lowercase letters, digits and hyphens."""

_STATES = {
    "pending": InstanceState.PENDING,
    "running": InstanceState.RUNNING,
    "stopping": InstanceState.STOPPING,
    "stopped": InstanceState.STOPPED,
    "shutting-down": InstanceState.TERMINATING,
    "terminated": InstanceState.TERMINATED,
}
_IMAGE_STATES = {
    "pending": ImageState.PENDING,
    "available": ImageState.AVAILABLE,
    "failed": ImageState.FAILED,
    "error": ImageState.FAILED,
    "invalid": ImageState.FAILED,
    "deregistered": ImageState.DELETED,
}
_CAPACITY_CODES = {
    "InsufficientInstanceCapacity",
    "InsufficientCapacity",
    "InsufficientHostCapacity",
    "InsufficientReservedInstanceCapacity",
    "ReservationCapacityExceeded",
    "Unsupported",
}
_TAGGING_THREADS = 16
_REGIONS_TTL = 300.0
_INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")
_FILTER_VALUES = 200


class LaunchOptions:
    """What ``InstanceRequest.options`` may hold for AWS (all optional):

    - ``subnets``: ``{zone: subnet_id}``, the network's subnet in each zone (MultiZone needs one
      per zone of the request; ``network.subnet_id`` serves a zone without its own);
    - ``key_name``: an EC2 key pair; ``iam_instance_profile``: an instance profile name or ARN;
    - ``volume_type``: the root volume's type (default ``gp3``);
    - ``running_timeout``: seconds to wait for the instance to run before attaching a static IP
      (default 300);
    - ``network`` and ``role`` (set by the kernel for a cluster on a network, see
      ``corral_core.networks.placement``): the network's region as :mod:`corral_aws.networks`
      reported it, and ``controller`` or ``compute``. The subnet of each zone, and whether the
      instance needs a public IP, come from its details for that role (``controller_subnet.<zone>``
      or ``nodes_subnet.<zone>``, ``controller_public_ip`` or ``nodes_public_ip``); a controller on
      a ``controller-nat`` network becomes its zone's NAT once it runs.
    """

    def __init__(self, raw: Mapping[str, Any]) -> None:
        known = {
            "subnets", "key_name", "iam_instance_profile", "volume_type", "running_timeout",
            "network", "role",
        }  # fmt: skip
        unknown = sorted(set(raw) - known)
        if unknown:
            raise Invalid(f"unknown AWS launch options: {', '.join(unknown)}", field="options")
        subnets = raw.get("subnets", {})
        if not isinstance(subnets, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in subnets.items()
        ):
            raise Invalid("options.subnets must map zones to subnet ids", field="options.subnets")
        self.role = str(raw.get("role", ""))
        network = raw.get("network") or {}
        if not isinstance(network, dict):
            raise Invalid("options.network must be the network's region", field="options.network")
        self.network: dict[str, Any] = network
        details: dict[str, str] = dict(network.get("details") or {})
        self.network_mode = str(details.get("mode") or network.get("mode") or "")
        kind = "controller" if self.role == "controller" else "nodes"
        from_network = {
            key.removeprefix(f"{kind}_subnet."): value
            for key, value in details.items()
            if key.startswith(f"{kind}_subnet.")
        }
        self.subnets: dict[str, str] = {**from_network, **subnets}
        self.public_ip = details.get(f"{kind}_public_ip") == "true"
        self.key_name = str(raw.get("key_name", ""))
        self.iam_instance_profile = str(raw.get("iam_instance_profile", ""))
        self.volume_type = str(raw.get("volume_type", "gp3"))
        self.running_timeout = float(raw.get("running_timeout", 300))


def _tags(raw: Iterable[Mapping[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in raw or ()}


def _tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _client_token(request: InstanceRequest, names: Sequence[str], zone: str) -> str:
    """AWS's idempotency token (64 ASCII characters at most): one per batch, zone and names, as
    AWS refuses a token reused with other parameters."""
    raw = "\0".join([request.idempotency_key, zone, *names])
    return hashlib.sha256(raw.encode()).hexdigest()[:64]


def _request_tag(key: str) -> str:
    return key if len(key) <= 256 else hashlib.sha256(key.encode()).hexdigest()


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _instance(raw: Mapping[str, Any], region: str) -> Instance:
    tags = _tags(raw.get("Tags"))
    placement = raw.get("Placement", {})
    details: dict[str, str] = {}
    reason = raw.get("StateReason", {}).get("Message")
    if reason:
        details["state_reason"] = str(reason)
    if placement.get("GroupName"):
        details["placement_group"] = str(placement["GroupName"])
    reservation = raw.get("CapacityReservationId")
    if reservation:
        details["capacity_reservation"] = str(reservation)
    if raw.get("SubnetId"):
        details["subnet"] = str(raw["SubnetId"])
    launched = raw.get("LaunchTime")
    name = tags.get("Name", "")
    if tags.get(TAG_NAMES):
        listed = expand(tags[TAG_NAMES])
        index = int(raw.get("AmiLaunchIndex", 0))
        name = listed[index] if 0 <= index < len(listed) else name
    return Instance(
        id=raw["InstanceId"],
        name=name,
        state=_STATES.get(raw.get("State", {}).get("Name", ""), InstanceState.UNKNOWN),
        region=region,
        zone=str(placement.get("AvailabilityZone", "")),
        instance_type=str(raw.get("InstanceType", "")),
        image=str(raw.get("ImageId", "")),
        private_ip=raw.get("PrivateIpAddress") or None,
        public_ip=raw.get("PublicIpAddress") or None,
        spot=raw.get("InstanceLifecycle") == "spot",
        launched_at=launched if isinstance(launched, datetime) else None,
        tags=tags,
        details=details,
    )


def _image(raw: Mapping[str, Any], region: str, source: ImageSource) -> Image:
    tags = _tags(raw.get("Tags"))
    created = raw.get("CreationDate")
    size = sum(
        float(m.get("Ebs", {}).get("VolumeSize", 0)) for m in raw.get("BlockDeviceMappings", [])
    )
    return Image(
        id=raw["ImageId"],
        name=tags.get(TAG_SNAPSHOT) or str(raw.get("Name", raw["ImageId"])),
        region=region,
        architecture=Architecture.ARM64
        if raw.get("Architecture") == "arm64"
        else Architecture.X86_64,
        source=source,
        state=_IMAGE_STATES.get(str(raw.get("State", "")), ImageState.PENDING),
        os=str(raw.get("PlatformDetails", "") or "Linux/UNIX"),
        description=str(raw.get("Description", "")),
        size_gib=size or None,
        created_at=datetime.fromisoformat(created.replace("Z", "+00:00")) if created else None,
        tags=tags,
    )


def _chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class AwsCloud(AwsNetworks, CloudProviderBase):
    """Stateless but for its caches: short-lived credentials and clients, and each account's
    regions for five minutes."""

    def __init__(self) -> None:
        self.clients = AwsClients()
        self._regions: dict[str, tuple[float, list[Region]]] = {}
        self._regions_lock = threading.Lock()

    # --- plumbing

    def ec2(self, account: CloudAccount, region: str) -> Any:
        """An EC2 client (blocking: call it inside a thread)."""
        return self.clients.client(account, "ec2", region)

    async def _ec2_call(
        self, account: CloudAccount, region: str, doing: str, work: Callable[[Any], T]
    ) -> T:
        def run() -> T:
            return work(self.ec2(account, region))

        result: T = await call(doing, run)
        return result

    # --- credentials

    async def validate_credentials(self, account: CloudAccount) -> CredentialCheck:
        credentials = self.clients.credentials(account)
        settings = self.clients.settings(account)

        def check() -> CredentialCheck:
            sts = self.clients.long_term_client(account, "sts")
            identity = self._identity(sts, fresh=bool(credentials.retired_key_id))
            if identity.get("Account") != credentials.account_id:
                raise Invalid(
                    f"the access key belongs to AWS account {identity.get('Account')}, not "
                    f"{credentials.account_id}",
                    field="credentials.account_id",
                )
            arn = str(identity.get("Arn", ""))
            how = "IAM policy simulator"
            try:
                iam = self.clients.long_term_client(account, "iam", max_attempts=1)
                missing = permissions.simulate_missing(iam, arn) if ":user/" in arn else []
            except Exception as exc:
                if isinstance(map_error(exc, "check"), NotAuthenticated):
                    raise
                how = "EC2 dry runs (the IAM policy simulator could not be used)"
                ec2 = self.clients.long_term_client(account, "ec2")
                missing = permissions.dry_run_missing(ec2)
            try:  # every call Corral makes runs on a federation token: it must be granted
                sts.get_federation_token(Name="corral-check", DurationSeconds=900)
            except Exception as exc:
                if _code(exc) not in {"AccessDenied", "AccessDeniedException"}:
                    raise
                missing.append("sts:GetFederationToken")
            replaced, rotation = (
                self._rotation(account, credentials) if settings.rotate_keys else (None, "")
            )
            if missing:
                return CredentialCheck(
                    principal=credentials.access_key_id,
                    sufficient=False,
                    missing_permissions=tuple(sorted(set(missing))),
                    guide_url=permissions.GUIDE_URL,
                    message=f"{arn} lacks {len(set(missing))} permissions (checked with {how})"
                    + rotation,
                    credentials=replaced,
                )
            return CredentialCheck(
                principal=credentials.access_key_id,
                message=f"{arn}: every permission Corral needs (checked with {how})" + rotation,
                credentials=replaced,
            )

        result: CredentialCheck = await call("check the AWS credentials", check)
        return result

    def _rotation(
        self, account: CloudAccount, credentials: AwsCredentials
    ) -> tuple[AwsCredentials | None, str]:
        """Spec §2.3.1, in two checks so that a crash never loses the only working key: a typed
        key (not the one Corral made) gets a new key of the same user, returned for the kernel
        to store; the check after that, made with the new key, deletes the typed one. Returns
        the credentials to store (or ``None``) and what to add to the message (blocking)."""
        iam = self.clients.long_term_client(account, "iam")
        if credentials.retired_key_id:
            try:
                iam.delete_access_key(AccessKeyId=credentials.retired_key_id)
            except Exception as exc:
                if _code(exc) != "NoSuchEntity":
                    return None, f"; the replaced key could not be deleted yet: {_code(exc)}"
            return msgspec.structs.replace(credentials, retired_key_id=""), (
                f"; the typed key {credentials.retired_key_id} was deleted"
            )
        if credentials.access_key_id == credentials.corral_key_id:
            return None, ""
        try:
            made = iam.create_access_key()["AccessKey"]
        except Exception as exc:
            if isinstance(map_error(exc, "rotate"), NotAuthenticated):
                raise
            return None, f"; the typed key could not be rotated ({_code(exc) or exc})"
        return AwsCredentials(
            account_id=credentials.account_id,
            access_key_id=made["AccessKeyId"],
            secret_access_key=made["SecretAccessKey"],
            corral_key_id=made["AccessKeyId"],
            retired_key_id=credentials.access_key_id,
        ), f"; the typed key was replaced by {made['AccessKeyId']}"

    @staticmethod
    def _identity(sts: Any, *, fresh: bool) -> Any:
        """GetCallerIdentity; a key made moments ago (a rotation's) may take AWS some seconds
        to accept everywhere, so it is given up to 30 s."""
        deadline = time.monotonic() + (30 if fresh else 0)
        while True:
            try:
                return sts.get_caller_identity()
            except Exception as exc:
                retry = isinstance(map_error(exc, "check"), NotAuthenticated)
                if not retry or time.monotonic() > deadline:
                    raise
                time.sleep(2)

    # --- catalogue

    async def list_regions(self, account: CloudAccount) -> Sequence[Region]:
        settings = self.clients.settings(account)
        key = f"{account.name}\0{account.govcloud}\0{account.settings!r}"
        with self._regions_lock:
            cached = self._regions.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return list(cached[1])
        home = settings.home_region(account.govcloud)

        def names(ec2: Any) -> list[str]:
            found = [r["RegionName"] for r in ec2.describe_regions()["Regions"]]
            return sorted(
                n
                for n in found
                if n.startswith("us-gov-") == account.govcloud
                and not n.startswith("cn-")
                and (not settings.regions or n in settings.regions)
            )

        regions = await self._ec2_call(account, home, "list the AWS regions", names)

        def zones(region: str) -> Region:
            ec2 = self.ec2(account, region)
            found = ec2.describe_availability_zones(
                Filters=[{"Name": "zone-type", "Values": ["availability-zone"]}]
            )["AvailabilityZones"]
            return Region(
                name=region,
                display_name=region,
                zones=tuple(sorted(z["ZoneName"] for z in found if z.get("State") == "available")),
                gov=region.startswith("us-gov-"),
            )

        listed = await asyncio.gather(*(call(f"list the zones of {r}", zones, r) for r in regions))
        with self._regions_lock:
            self._regions[key] = (time.monotonic() + _REGIONS_TTL, list(listed))
        return listed

    async def _known_region(self, account: CloudAccount, region: str) -> Region:
        for known in await self.list_regions(account):
            if known.name == region:
                return known
        raise NotFound(f"AWS region {region!r} is not offered to account {account.name!r}")

    async def list_instance_types(
        self, account: CloudAccount, region: str
    ) -> Sequence[InstanceType]:
        await self._known_region(account, region)
        catalogue = load_catalogue(self.clients.settings(account).catalogue)

        def offered(ec2: Any) -> dict[str, set[str]]:
            zones: dict[str, set[str]] = {}
            paginator = ec2.get_paginator("describe_instance_type_offerings")
            for page in paginator.paginate(LocationType="availability-zone"):
                for offer in page.get("InstanceTypeOfferings", []):
                    zones.setdefault(offer["InstanceType"], set()).add(offer["Location"])
            return zones

        zones = await self._ec2_call(
            account, region, f"list the instance types of {region}", offered
        )
        types = (catalogue.instance_type(name, region, z) for name, z in sorted(zones.items()))
        return [t for t in types if t is not None]

    async def list_images(self, account: CloudAccount, region: str) -> Sequence[Image]:
        await self._known_region(account, region)
        settings = self.clients.settings(account)

        def images(ec2: Any) -> list[Image]:
            own = ec2.describe_images(
                Owners=["self"], Filters=[{"Name": "tag-key", "Values": [TAG_SNAPSHOT]}]
            )["Images"]
            base: list[Image] = []
            latest: dict[Architecture, Image] = {}
            for pattern in settings.images:
                found = ec2.describe_images(
                    Owners=settings.image_owners,
                    Filters=[
                        {"Name": "name", "Values": [pattern]},
                        {"Name": "state", "Values": ["available"]},
                    ],
                )["Images"]
                for raw in sorted(found, key=lambda i: i.get("CreationDate", ""), reverse=True):
                    image = _image(raw, region, ImageSource.PROVIDER)
                    if any(b.id == image.id for b in base):
                        continue
                    base.append(image)
                    if image.architecture not in latest:
                        latest[image.architecture] = image
                    break  # the newest of each pattern
            marked = [
                Image(**{**_fields(i), "latest": latest.get(i.architecture) is i}) for i in base
            ]
            marked.sort(key=lambda i: (i.architecture != Architecture.X86_64, not i.latest))
            return marked + [_image(raw, region, ImageSource.ACCOUNT) for raw in own]

        return await self._ec2_call(account, region, f"list the images of {region}", images)

    # --- instances

    async def create_instances(
        self, account: CloudAccount, request: InstanceRequest, *, log: ProgressLog
    ) -> Sequence[Instance]:
        options = LaunchOptions(request.options)
        region = request.region
        found = await self._by_request(account, region, request.idempotency_key)
        have = {i.name: i for i in found if i.name in request.names}
        missing = [n for n in request.names if n not in have]
        if not missing:
            await log.log(f"{len(have)} instances of this request exist already")
            return [have[n] for n in request.names]
        if have:
            await log.log(f"{len(have)} instances exist already; launching {len(missing)} more")
        if request.capacity_reservation_id:
            await self._check_reservation(
                account, region, request.capacity_reservation_id, len(missing)
            )
        zones: list[str] = list(request.zones) or [""]
        refused: list[str] = []
        for index, zone in enumerate(zones):
            where = zone or region
            try:
                made = await self._ec2_call(
                    account,
                    region,
                    f"launch {len(missing)} {request.instance_type} instances in {where}",
                    functools.partial(
                        self._launch, request=request, names=missing, zone=zone, options=options
                    ),
                )
            except ProviderError as exc:
                if exc.reason != CAPACITY_UNAVAILABLE:
                    raise
                refused.append(f"{where}: {exc.message}")
                more = index + 1 < len(zones)
                await log.log(
                    f"{where} has no capacity for {len(missing)} {request.instance_type}"
                    + (f"; trying {zones[index + 1]}" if more else "")
                )
                continue
            ids = [i["InstanceId"] for i in made]
            try:
                await self._ec2_call(
                    account,
                    region,
                    f"name the instances {', '.join(missing)}",
                    functools.partial(self._name, made=made, names=missing),
                )
                if request.static_ip:
                    await self._attach_static_ip(account, region, ids[0], request, options)
                if options.role == "controller" and options.network_mode == "controller-nat":
                    network_region = msgspec.convert(options.network, NetworkRegionInfo)
                    zone_of = str(made[0].get("Placement", {}).get("AvailabilityZone", zone))
                    await self.route_through_controller(
                        account, network_region, zone_of, ids[0], log=log
                    )
            except BaseException:
                await log.log(f"launched {', '.join(ids)} but could not finish: terminating")
                await self.delete_instances(account, region, ids)
                raise
            await log.log(f"launched {', '.join(ids)} in {where}")
            for name, raw in zip(missing, made, strict=True):
                launched = _instance(raw, region)
                have[name] = Instance(
                    **{**_fields(launched), "name": name, "tags": {**launched.tags, "Name": name}}
                )
            return [have[n] for n in request.names]
        tried = ", ".join(z or region for z in zones)
        raise ProviderError(
            f"no zone tried ({tried}) had capacity for {len(missing)} {request.instance_type} "
            "instances",
            reason=CAPACITY_UNAVAILABLE,
            retryable=True,
            log_message="; ".join(refused),
        )

    async def _by_request(self, account: CloudAccount, region: str, key: str) -> list[Instance]:
        found = await self.describe_instances(
            account, region, tags={TAG_REQUEST: _request_tag(key)}
        )
        return [i for i in found if not i.state.gone]

    async def _check_reservation(
        self, account: CloudAccount, region: str, reservation_id: str, count: int
    ) -> None:
        reservation = await self.describe_capacity_reservation(account, region, reservation_id)
        if not reservation.active:
            raise Conflict(
                f"capacity reservation {reservation_id} is not active",
                details={"field": "capacity_reservation_id"},
            )
        if reservation.available < count:
            raise ProviderError(
                f"capacity reservation {reservation_id} has {reservation.available} of "
                f"{reservation.total} {reservation.instance_type} instances available; "
                f"{count} were asked for",
                reason=CAPACITY_UNAVAILABLE,
                retryable=True,
                details={"field": "capacity_reservation_id", "reservation": reservation_id},
            )

    def _launch(
        self,
        ec2: Any,
        request: InstanceRequest,
        names: Sequence[str],
        zone: str,
        options: LaunchOptions,
    ) -> list[dict[str, Any]]:
        """One ``RunInstances`` for the whole batch (blocking). Capacity refusals come back as
        ``ProviderError(reason=CAPACITY_UNAVAILABLE)`` so the caller can try the next zone."""
        tags = {**request.tags, TAG_REQUEST: _request_tag(request.idempotency_key)}
        listed = compact(names)
        # the batch's names in one tag, the i-th for launch index i (see corral_aws.names);
        # only a list too long for a tag needs a Name tag per instance afterwards (_name)
        fits = len(listed) <= MAX_TAG
        tags["Name"] = listed if fits and len(names) > 1 else names[0]
        if fits:
            tags[TAG_NAMES] = listed
        spec: list[dict[str, Any]] = [
            {"ResourceType": kind, "Tags": _tag_list(tags)}
            for kind in ("instance", "volume", "network-interface")
        ]
        params: dict[str, Any] = {
            "ImageId": request.image,
            "InstanceType": request.instance_type,
            "MinCount": len(names),
            "MaxCount": len(names),
            "ClientToken": _client_token(request, names, zone),
            "TagSpecifications": spec,
            "BlockDeviceMappings": [
                {
                    "DeviceName": self._root_device(ec2, request.image),
                    "Ebs": {
                        "VolumeSize": request.root_disk_gib,
                        "VolumeType": options.volume_type,
                        "DeleteOnTermination": True,
                    },
                }
            ],
        }
        if request.user_data:
            script = request.user_data
            # a shell script learns its host's name at boot (corral_aws.bootstrap)
            nat_for = ""
            if options.role == "controller" and options.network_mode == "controller-nat":
                nat_for = str(options.network.get("cidr", ""))
            params["UserData"] = (
                user_data(script, names, nat_for=nat_for) if script.startswith("#!") else script
            )
        # IMDSv2 only (session tokens), with the instance's tags readable there
        params["MetadataOptions"] = {
            "HttpTokens": "required",
            "HttpEndpoint": "enabled",
            "InstanceMetadataTags": "enabled",
        }
        placement: dict[str, Any] = {}
        if zone:
            placement["AvailabilityZone"] = zone
        if request.placement_group:
            placement["GroupName"] = request.placement_group
        if placement:
            params["Placement"] = placement
        if request.capacity_reservation_id:
            params["CapacityReservationSpecification"] = {
                "CapacityReservationTarget": {
                    "CapacityReservationId": request.capacity_reservation_id
                }
            }
        if request.spot:
            params["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {
                    "SpotInstanceType": "one-time",
                    "InstanceInterruptionBehavior": "terminate",
                },
            }
        if options.key_name:
            params["KeyName"] = options.key_name
        if options.iam_instance_profile:
            profile = options.iam_instance_profile
            params["IamInstanceProfile"] = (
                {"Arn": profile} if profile.startswith("arn:") else {"Name": profile}
            )
        network = request.network
        subnet = options.subnets.get(zone) if zone else None
        subnet = subnet or (network.subnet_id if network else None)
        if zone and len(request.zones) > 1 and network and zone not in options.subnets:
            raise Invalid(
                f"MultiZone needs a subnet in {zone}: give options.subnets",
                field="options.subnets",
            )
        groups = list(network.security_group_ids) if network else []
        if request.public_ip or options.public_ip:  # only an interface spec can ask for one
            interface: dict[str, Any] = {
                "DeviceIndex": 0,
                "DeleteOnTermination": True,
                "AssociatePublicIpAddress": True,
            }
            if subnet:
                interface["SubnetId"] = subnet
            if groups:
                interface["Groups"] = groups
            params["NetworkInterfaces"] = [interface]
        else:
            if subnet:
                params["SubnetId"] = subnet
            if groups:
                params["SecurityGroupIds"] = groups
        try:
            answer = ec2.run_instances(**params)
        except Exception as exc:
            code = _code(exc)
            if code in _CAPACITY_CODES:
                error = map_error(exc, "launch instances")
                raise ProviderError(
                    error.message, reason=CAPACITY_UNAVAILABLE, retryable=True
                ) from None
            raise
        made: list[dict[str, Any]] = answer["Instances"]
        made.sort(key=lambda i: int(i.get("AmiLaunchIndex", 0)))
        return made

    def _root_device(self, ec2: Any, image: str) -> str:
        try:
            found = ec2.describe_images(ImageIds=[image])["Images"]
        except Exception as exc:
            if _code(exc).startswith("InvalidAMIID"):
                raise NotFound(f"image {image!r} does not exist") from None
            raise
        if not found:
            raise NotFound(f"image {image!r} does not exist")
        return str(found[0].get("RootDeviceName") or "/dev/xvda")

    def _name(self, ec2: Any, made: Sequence[Mapping[str, Any]], names: Sequence[str]) -> None:
        """Give each instance (and its volumes) its own ``Name`` tag when the batch's names did
        not fit in one tag: AWS takes one set of tags per call, so these calls run side by
        side."""
        if len(names) == 1 or len(compact(names)) <= MAX_TAG:
            return  # named at launch

        def name(pair: tuple[Mapping[str, Any], str]) -> None:
            raw, value = pair
            resources = [raw["InstanceId"]] + [
                m["Ebs"]["VolumeId"]
                for m in raw.get("BlockDeviceMappings", [])
                if m.get("Ebs", {}).get("VolumeId")
            ]
            with aws_errors(f"tag {raw['InstanceId']}"):
                ec2.create_tags(Resources=resources, Tags=[{"Key": "Name", "Value": value}])

        with ThreadPoolExecutor(max_workers=_TAGGING_THREADS) as pool:
            list(pool.map(name, zip(made, names, strict=True)))

    async def _attach_static_ip(
        self,
        account: CloudAccount,
        region: str,
        instance_id: str,
        request: InstanceRequest,
        options: LaunchOptions,
    ) -> None:
        assert request.static_ip is not None
        address = request.static_ip
        deadline = time.monotonic() + options.running_timeout
        while True:  # an address can be associated only with a running instance
            seen = await self.describe_instances(account, region, instance_ids=[instance_id])
            if seen and seen[0].state is InstanceState.RUNNING:
                break
            if time.monotonic() > deadline:
                raise ProviderError(
                    f"{instance_id} did not run within {options.running_timeout:g} s, so the "
                    f"static IP {address} was not attached"
                )
            await asyncio.sleep(2)
        await self._ec2_call(
            account,
            region,
            f"attach the static IP {address} to {instance_id}",
            lambda ec2: ec2.associate_address(
                AllocationId=address, InstanceId=instance_id, AllowReassociation=False
            ),
        )

    async def describe_instances(
        self,
        account: CloudAccount,
        region: str,
        *,
        instance_ids: Sequence[str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Sequence[Instance]:
        filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in (tags or {}).items()]
        if instance_ids is not None:
            ids = [i for i in dict.fromkeys(instance_ids) if _INSTANCE_ID.match(i)]
            if not ids:
                return []
            batches: list[list[dict[str, Any]]] = [
                [*filters, {"Name": "instance-id", "Values": list(chunk)}]
                for chunk in _chunks(ids, _FILTER_VALUES)
            ]
        else:
            batches = [filters]

        def describe(ec2: Any) -> list[Instance]:
            found: dict[str, Instance] = {}
            paginator = ec2.get_paginator("describe_instances")
            for batch in batches:
                pages = paginator.paginate(**({"Filters": batch} if batch else {}))
                for page in pages:
                    for reservation in page.get("Reservations", []):
                        for raw in reservation.get("Instances", []):
                            found[raw["InstanceId"]] = _instance(raw, region)
            return list(found.values())

        return await self._ec2_call(account, region, "describe instances", describe)

    async def _existing(
        self, account: CloudAccount, region: str, instance_ids: Sequence[str]
    ) -> list[Instance]:
        """The instances of ``instance_ids``, raising ``NotFound`` naming the unknown ones."""
        found = await self.describe_instances(account, region, instance_ids=instance_ids)
        known = {i.id for i in found if i.state is not InstanceState.TERMINATED}
        unknown = [i for i in dict.fromkeys(instance_ids) if i not in known]
        if unknown:
            raise NotFound(f"no instance {', '.join(unknown)} in {region}")
        return list(found)

    async def start_instances(
        self, account: CloudAccount, region: str, instance_ids: Sequence[str]
    ) -> None:
        if not instance_ids:
            return
        found = await self._existing(account, region, instance_ids)
        gone = [i.id for i in found if i.state.gone]
        if gone:
            raise Conflict(f"instances {', '.join(gone)} are being terminated")
        stopped = [
            i.id for i in found if i.state in (InstanceState.STOPPED, InstanceState.STOPPING)
        ]
        if stopped:
            await self._ec2_call(
                account,
                region,
                f"start {', '.join(stopped)}",
                lambda ec2: ec2.start_instances(InstanceIds=stopped),
            )

    async def stop_instances(
        self, account: CloudAccount, region: str, instance_ids: Sequence[str]
    ) -> None:
        if not instance_ids:
            return
        found = await self._existing(account, region, instance_ids)
        spot = [i.id for i in found if i.spot]
        if spot:
            raise Conflict(f"spot instances {', '.join(spot)} cannot be stopped, only deleted")
        running = [i.id for i in found if i.state in (InstanceState.PENDING, InstanceState.RUNNING)]
        if running:
            await self._ec2_call(
                account,
                region,
                f"stop {', '.join(running)}",
                lambda ec2: ec2.stop_instances(InstanceIds=running),
            )

    async def delete_instances(
        self, account: CloudAccount, region: str, instance_ids: Sequence[str]
    ) -> None:
        if not instance_ids:
            return
        found = await self.describe_instances(account, region, instance_ids=instance_ids)
        alive = [i.id for i in found if not i.state.gone]
        if not alive:
            return

        def terminate(ec2: Any) -> None:
            for chunk in _chunks(alive, 1000):
                ec2.terminate_instances(InstanceIds=list(chunk))

        await self._ec2_call(account, region, f"terminate {len(alive)} instances", terminate)

    # --- placement groups

    async def create_placement_group(
        self,
        account: CloudAccount,
        region: str,
        name: str,
        *,
        strategy: str = "cluster",
        tags: Mapping[str, str] | None = None,
    ) -> PlacementGroup:
        if strategy not in ("cluster", "spread", "partition"):
            raise Invalid(
                f"placement strategy {strategy!r} is not cluster, spread or partition",
                field="strategy",
            )

        def create(ec2: Any) -> PlacementGroup:
            found = self._placement_groups(ec2, name)
            if not found:
                params: dict[str, Any] = {"GroupName": name, "Strategy": strategy}
                if tags:
                    params["TagSpecifications"] = [
                        {"ResourceType": "placement-group", "Tags": _tag_list(tags)}
                    ]
                try:
                    ec2.create_placement_group(**params)
                except Exception as exc:
                    if _code(exc) != "InvalidPlacementGroup.Duplicate":
                        raise
                found = self._placement_groups(ec2, name)
            group = found[0]
            return PlacementGroup(
                id=str(group.get("GroupId", name)),
                name=name,
                region=region,
                strategy=str(group.get("Strategy", strategy)),
            )

        return await self._ec2_call(account, region, f"create the placement group {name}", create)

    @staticmethod
    def _placement_groups(ec2: Any, name: str) -> list[dict[str, Any]]:
        groups = ec2.describe_placement_groups(Filters=[{"Name": "group-name", "Values": [name]}])[
            "PlacementGroups"
        ]
        return [g for g in groups if g.get("State") not in ("deleting", "deleted")]

    async def delete_placement_group(self, account: CloudAccount, region: str, name: str) -> None:
        def delete(ec2: Any) -> None:
            if not self._placement_groups(ec2, name):
                return
            try:
                ec2.delete_placement_group(GroupName=name)
            except Exception as exc:
                if _code(exc) == "InvalidPlacementGroup.InUse":
                    raise Conflict(f"placement group {name} still has instances") from None
                if _code(exc) != "InvalidPlacementGroup.Unknown":
                    raise

        await self._ec2_call(account, region, f"delete the placement group {name}", delete)

    # --- capacity reservations

    async def describe_capacity_reservation(
        self, account: CloudAccount, region: str, reservation_id: str
    ) -> CapacityReservation:
        def describe(ec2: Any) -> CapacityReservation:
            try:
                found = ec2.describe_capacity_reservations(CapacityReservationIds=[reservation_id])[
                    "CapacityReservations"
                ]
            except Exception as exc:
                if "NotFound" in _code(exc) or "Malformed" in _code(exc):
                    found = []
                else:
                    raise
            if not found:
                raise NotFound(
                    f"capacity reservation {reservation_id} does not exist in {region}",
                    details={"field": "capacity_reservation_id"},
                )
            raw = found[0]
            ends = raw.get("EndDate")
            return CapacityReservation(
                id=reservation_id,
                region=region,
                instance_type=str(raw.get("InstanceType", "")),
                zone=str(raw.get("AvailabilityZone", "")),
                total=int(raw.get("TotalInstanceCount", 0)),
                available=int(raw.get("AvailableInstanceCount", 0)),
                active=raw.get("State") == "active",
                ends_at=ends if isinstance(ends, datetime) else None,
            )

        return await self._ec2_call(
            account, region, f"look up capacity reservation {reservation_id}", describe
        )

    # --- static IPs

    async def allocate_static_ip(
        self,
        account: CloudAccount,
        region: str,
        name: str,
        *,
        tags: Mapping[str, str] | None = None,
    ) -> StaticIp:
        if not name.strip():
            raise Invalid("a static IP needs a name", field="name")

        def allocate(ec2: Any) -> StaticIp:
            found = ec2.describe_addresses(Filters=[{"Name": "tag:Name", "Values": [name]}])[
                "Addresses"
            ]
            if found:
                raw = found[0]
            else:
                made = ec2.allocate_address(
                    Domain="vpc",
                    TagSpecifications=[
                        {
                            "ResourceType": "elastic-ip",
                            "Tags": _tag_list({**(tags or {}), "Name": name}),
                        }
                    ],
                )
                raw = made
            return StaticIp(
                id=str(raw["AllocationId"]),
                address=str(raw["PublicIp"]),
                region=region,
                attached_to=raw.get("InstanceId") or None,
            )

        return await self._ec2_call(account, region, f"allocate the static IP {name}", allocate)

    async def release_static_ip(self, account: CloudAccount, region: str, ip_id: str) -> None:
        def release(ec2: Any) -> None:
            found = ec2.describe_addresses(Filters=[{"Name": "allocation-id", "Values": [ip_id]}])[
                "Addresses"
            ]
            if not found:
                return
            attached = found[0].get("InstanceId") or found[0].get("NetworkInterfaceId")
            if found[0].get("AssociationId") or attached:
                raise Conflict(f"static IP {found[0].get('PublicIp')} is attached to {attached}")
            ec2.release_address(AllocationId=ip_id)

        await self._ec2_call(account, region, f"release the static IP {ip_id}", release)

    # --- OS snapshots

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
        if not SNAPSHOT_NAME.match(name):
            raise Invalid(
                f"snapshot name {name!r} must begin with a letter and have 3 to 36 lowercase "
                "letters, digits and hyphens",
                field="name",
            )
        step = f"OS snapshot {name}"
        await log.step(step, StepState.RUNNING)

        def create(ec2: Any) -> Image:
            mine = ec2.describe_images(
                Owners=["self"], Filters=[{"Name": f"tag:{TAG_SNAPSHOT}", "Values": [name]}]
            )["Images"]
            if not mine:
                all_tags = _tag_list({**(tags or {}), TAG_SNAPSHOT: name, "Name": name})
                made = ec2.create_image(
                    InstanceId=instance_id,
                    Name=name,
                    Description=f"Corral OS snapshot {name} of {instance_id}",
                    NoReboot=True,
                    TagSpecifications=[{"ResourceType": "image", "Tags": all_tags}],
                )
                mine = ec2.describe_images(ImageIds=[made["ImageId"]])["Images"]
                # the disk snapshots get the tags too (for billing): those already listed
                snapshots = [
                    m["Ebs"]["SnapshotId"]
                    for m in mine[0].get("BlockDeviceMappings", [])
                    if m.get("Ebs", {}).get("SnapshotId")
                ]
                if snapshots:
                    ec2.create_tags(Resources=snapshots, Tags=all_tags)
            return _image(mine[0], region, ImageSource.ACCOUNT)

        try:
            image = await self._ec2_call(account, region, f"snapshot {instance_id}", create)
        except CorralError as exc:
            await log.step(step, StepState.FAILED, exc.message)
            raise
        await log.step(step, StepState.COMPLETED, image.id)
        return image

    async def delete_image(self, account: CloudAccount, region: str, image_id: str) -> None:
        def delete(ec2: Any) -> None:
            found = ec2.describe_images(
                Owners=["self"], Filters=[{"Name": "image-id", "Values": [image_id]}]
            )["Images"]
            if found:
                ec2.deregister_image(ImageId=image_id)
                snapshots = [
                    m["Ebs"]["SnapshotId"]
                    for m in found[0].get("BlockDeviceMappings", [])
                    if m.get("Ebs", {}).get("SnapshotId")
                ]
            else:  # deregistered before: its snapshots may be left, found by their tag
                snapshots = []
            tagged = ec2.describe_snapshots(
                OwnerIds=["self"],
                Filters=[{"Name": "description", "Values": [f"*{image_id}*"]}],
            )["Snapshots"]
            for snapshot in dict.fromkeys(snapshots + [s["SnapshotId"] for s in tagged]):
                try:
                    ec2.delete_snapshot(SnapshotId=snapshot)
                except Exception as exc:
                    if "NotFound" not in _code(exc):
                        raise

        await self._ec2_call(account, region, f"delete the OS snapshot {image_id}", delete)


def _fields(struct: Any) -> dict[str, Any]:
    return {f: getattr(struct, f) for f in struct.__struct_fields__}
