"""AWS networks against moto in server mode: what each networking mode provisions, the spec's
validation rules, re-runs after a crash, adding and removing regions, and deletion."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from corral_aws.client import AwsClients
from corral_aws.networks import NETWORK_TAG, AwsNetworks, check_cluster_zones, subnet_plan
from corral_aws.settings import AwsCredentials
from corral_sdk.errors import Conflict, Invalid
from corral_sdk.providers._common import StepState
from corral_sdk.providers.cloud import (
    CloudAccount,
    NetworkInfo,
    NetworkRegionInfo,
    NetworkRegionSpec,
    NetworkSpec,
)
from corral_sdk.testing.recording import RecordingLog

pytestmark = pytest.mark.anyio

EAST = "us-east-1"
WEST = "us-west-2"
TAGS = {"Project": "p1", "OrganizationID": "org-7"}


class Networks(AwsNetworks):
    poll_interval = 0.0
    poll_timeout = 30.0

    def __init__(self) -> None:
        self.clients = AwsClients()


@pytest.fixture
def networks() -> Networks:
    return Networks()


def aws(moto: str, service: str, region: str = EAST) -> Any:
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=moto,
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="secret",
    )


def spec(
    *regions: tuple[str, str, str | None],
    mode: str = "",
    name: str = "net1",
    **options: Any,
) -> NetworkSpec:
    return NetworkSpec(
        name=name,
        regions=tuple(NetworkRegionSpec(region=r, cidr=c, zone=z) for r, c, z in regions),
        mode=mode,
        options=options,
        tags=TAGS,
    )


ONE_ZONE = (EAST, "10.0.0.0/16", "us-east-1a")


def tagged(moto: str, region: str = EAST, name: str = "net1") -> dict[str, list[str]]:
    """Every live resource of the region carrying the network's tag, by type. (moto's
    DescribeTags keeps the tags of deleted resources, so each type is described instead; NAT
    gateways that AWS keeps showing as deleted for an hour are left out.)"""
    ec2 = aws(moto, "ec2", region)
    kinds = {
        "vpc": (ec2.describe_vpcs, "Vpcs", "VpcId"),
        "subnet": (ec2.describe_subnets, "Subnets", "SubnetId"),
        "internet-gateway": (
            ec2.describe_internet_gateways,
            "InternetGateways",
            "InternetGatewayId",
        ),
        "route-table": (ec2.describe_route_tables, "RouteTables", "RouteTableId"),
        "security-group": (ec2.describe_security_groups, "SecurityGroups", "GroupId"),
        "elastic-ip": (ec2.describe_addresses, "Addresses", "AllocationId"),
        "natgateway": (ec2.describe_nat_gateways, "NatGateways", "NatGatewayId"),
    }
    found: dict[str, list[str]] = {}
    for kind, (describe, key, id_key) in kinds.items():
        for item in describe()[key]:
            tags = {t["Key"]: t["Value"] for t in item.get("Tags") or []}
            if tags.get(NETWORK_TAG) != name or item.get("State") == "deleted":
                continue
            found.setdefault(kind, []).append(item[id_key])
    route53 = aws(moto, "route53", region)
    for zone in route53.list_hosted_zones()["HostedZones"]:
        if f".{region}." not in zone["Name"]:  # Route 53 is global
            continue
        zone_id = zone["Id"].rsplit("/", 1)[-1]
        tags = route53.list_tags_for_resource(ResourceType="hostedzone", ResourceId=zone_id)
        if {"Key": NETWORK_TAG, "Value": name} in tags["ResourceTagSet"].get("Tags", []):
            found.setdefault("hosted-zone", []).append(zone_id)
    return found


def live_nat_gateways(moto: str, region: str = EAST) -> list[dict[str, Any]]:
    gateways = aws(moto, "ec2", region).describe_nat_gateways()["NatGateways"]
    return [g for g in gateways if g["State"] != "deleted"]


def default_route(moto: str, table_id: str, region: str = EAST) -> dict[str, Any] | None:
    table = aws(moto, "ec2", region).describe_route_tables(RouteTableIds=[table_id])
    for route in table["RouteTables"][0]["Routes"]:
        if route.get("DestinationCidrBlock") == "0.0.0.0/0":
            return dict(route)
    return None


def run_instance(moto: str, subnet_id: str, region: str = EAST) -> str:
    ec2 = aws(moto, "ec2", region)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    made = ec2.run_instances(
        ImageId=image, InstanceType="t3.micro", MinCount=1, MaxCount=1, SubnetId=subnet_id
    )
    return str(made["Instances"][0]["InstanceId"])


def assert_steps_finished(log: RecordingLog) -> None:
    states = log.step_states()
    assert states, "no step was reported"
    assert all(s is StepState.COMPLETED for s in states.values()), states
    for name in states:
        assert (name, StepState.RUNNING) in [(n, s) for n, s, _ in log.steps], name


# --- modes --------------------------------------------------------------------------------------


async def test_private_subnets_over_every_zone(
    networks: Networks, account: CloudAccount, moto: str
) -> None:
    log = RecordingLog()
    net = await networks.create_network(
        account, spec((EAST, "10.0.0.0/16", None), ssh_cidrs=["203.0.113.0/24"]), log=log
    )
    assert_steps_finished(log)
    (region,) = net.regions
    ec2 = aws(moto, "ec2")
    vpc = ec2.describe_vpcs(VpcIds=[region.network_id])["Vpcs"][0]
    assert vpc["CidrBlock"] == "10.0.0.0/16"
    for attribute in ("enableDnsSupport", "enableDnsHostnames"):
        answer = ec2.describe_vpc_attribute(VpcId=vpc["VpcId"], Attribute=attribute)
        assert answer[attribute[0].upper() + attribute[1:]]["Value"] is True

    zones = region.details["zones"].split(",")
    assert zones == [f"us-east-1{c}" for c in "abcdef"]
    subnets = {
        s["SubnetId"]: s
        for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])[
            "Subnets"
        ]
    }
    assert set(subnets) == set(region.subnet_ids) and len(subnets) == 12
    assert subnets[region.details["private_subnet.us-east-1a"]]["CidrBlock"] == "10.0.0.0/20"
    assert subnets[region.details["public_subnet.us-east-1a"]]["CidrBlock"] == "10.0.128.0/20"
    assert subnets[region.details["private_subnet.us-east-1f"]]["CidrBlock"] == "10.0.80.0/20"
    for zone in zones:
        assert subnets[region.details[f"private_subnet.{zone}"]]["AvailabilityZone"] == zone
        assert region.details[f"nodes_subnet.{zone}"] == region.details[f"private_subnet.{zone}"]
        assert (
            region.details[f"controller_subnet.{zone}"] == region.details[f"public_subnet.{zone}"]
        )
        assert region.details[f"zone_id.{zone}"].startswith("use1-az")
    assert region.details["nodes_public_ip"] == "false"
    assert region.details["controller_public_ip"] == "true"

    (igw,) = ec2.describe_internet_gateways(
        InternetGatewayIds=[region.details["internet_gateway_id"]]
    )["InternetGateways"]
    assert [a["VpcId"] for a in igw["Attachments"]] == [vpc["VpcId"]]

    (nat,) = live_nat_gateways(moto)
    assert nat["NatGatewayId"] == region.details["nat_gateway_id"]
    assert nat["SubnetId"] == region.details["public_subnet.us-east-1a"]
    assert nat["NatGatewayAddresses"][0]["AllocationId"] == region.details["nat_allocation_id"]
    (eip,) = ec2.describe_addresses()["Addresses"]
    assert eip["AllocationId"] == region.details["nat_allocation_id"]

    public = default_route(moto, region.details["public_route_table_id"])
    assert public is not None and public["GatewayId"] == igw["InternetGatewayId"]
    for zone in zones:
        private = default_route(moto, region.details[f"private_route_table.{zone}"])
        assert private is not None and private["NatGatewayId"] == nat["NatGatewayId"]

    (group,) = ec2.describe_security_groups(GroupIds=list(region.security_group_ids))[
        "SecurityGroups"
    ]
    rules = {
        (p["IpProtocol"], p.get("FromPort"), r["CidrIp"])
        for p in group["IpPermissions"]
        for r in p["IpRanges"]
    }
    assert rules == {("-1", None, "10.0.0.0/16"), ("tcp", 22, "203.0.113.0/24")}

    route53 = aws(moto, "route53")
    zone = route53.get_hosted_zone(Id=region.details["dns_zone_id"])
    assert zone["HostedZone"]["Name"] == "net1.us-east-1.corral.internal."
    assert zone["HostedZone"]["Config"]["PrivateZone"] is True
    assert zone["VPCs"] == [{"VPCRegion": EAST, "VPCId": vpc["VpcId"]}]

    # every resource carries the spec's tags and the network's
    for kind in ("vpc", "subnet", "internet-gateway", "route-table", "security-group"):
        assert kind in tagged(moto), kind
    vpc_tags = {t["Key"]: t["Value"] for t in vpc["Tags"]}
    assert vpc_tags[NETWORK_TAG] == "net1" and vpc_tags["Project"] == "p1"
    zone_tags = route53.list_tags_for_resource(
        ResourceType="hostedzone", ResourceId=region.details["dns_zone_id"]
    )["ResourceTagSet"]["Tags"]
    assert {"Key": NETWORK_TAG, "Value": "net1"} in zone_tags

    assert f"{EAST} VPC 10.0.0.0/16" in log.step_states()
    assert "us-east-1a private subnet 10.0.0.0/20" in log.step_states()


async def test_controller_nat_has_no_nat_gateway_and_routes_through_the_controller(
    networks: Networks, account: CloudAccount, moto: str
) -> None:
    net = await networks.create_network(
        account, spec(ONE_ZONE, mode="controller-nat"), log=RecordingLog()
    )
    (region,) = net.regions
    assert live_nat_gateways(moto) == []
    assert aws(moto, "ec2").describe_addresses()["Addresses"] == []
    table = region.details["private_route_table.us-east-1a"]
    assert default_route(moto, table) is None
    assert region.details["nodes_subnet.us-east-1a"] == region.details["private_subnet.us-east-1a"]

    controller = run_instance(moto, region.details["controller_subnet.us-east-1a"])
    log = RecordingLog()
    await networks.route_through_controller(account, region, "us-east-1a", controller, log=log)
    ec2 = aws(moto, "ec2")
    instance = ec2.describe_instances(InstanceIds=[controller])["Reservations"][0]["Instances"][0]
    eni = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    route = default_route(moto, table)
    assert route is not None and route["NetworkInterfaceId"] == eni
    check = ec2.describe_instance_attribute(InstanceId=controller, Attribute="sourceDestCheck")
    assert check["SourceDestCheck"]["Value"] is False
    # again: nothing to change
    await networks.route_through_controller(account, region, "us-east-1a", controller)

    other = run_instance(moto, region.details["controller_subnet.us-east-1a"])
    with pytest.raises(Conflict, match="another controller"):
        await networks.route_through_controller(account, region, "us-east-1a", other)

    # what the kernel asks before a cluster on it is stored or started
    await networks.check_cluster_network(
        account, region, "controller-nat", "us-east-1a", {"cpu": ["us-east-1a"]}
    )
    with pytest.raises(Invalid) as error:
        await networks.check_cluster_network(
            account, region, "controller-nat", "us-east-1a", {"cpu": ["us-east-1a", "us-east-1b"]}
        )
    assert error.value.field == "cloud.partitions.0.zones"
    assert "no subnet in us-east-1b" in error.value.message  # the network has us-east-1a only


def region_of(mode: str, zones: str = "us-east-1a,us-east-1b,us-east-1c") -> NetworkRegionInfo:
    return NetworkRegionInfo(
        region=EAST,
        cidr="10.0.0.0/16",
        network_id="vpc-1",
        details={"mode": mode, "zones": zones},
    )


def field_refused(
    region: NetworkRegionInfo, controller: str, partitions: dict[str, list[str]]
) -> tuple[str | None, str]:
    with pytest.raises(Invalid) as error:
        check_cluster_zones(region, "", controller, partitions)
    return error.value.field, error.value.message


def test_controller_nat_partitions_must_be_in_the_controller_zone() -> None:
    nat = region_of("controller-nat")
    check_cluster_zones(nat, "", "us-east-1a", {"cpu": ["us-east-1a"], "gpu": ["us-east-1a"]})
    field, message = field_refused(
        nat, "us-east-1a", {"cpu": ["us-east-1a"], "gpu": ["us-east-1b"]}
    )
    assert field == "cloud.partitions.1.zones"
    assert "gpu uses us-east-1b" in message and "controller's zone us-east-1a" in message
    # a MultiZone partition: every zone it may use must be the controller's
    field, message = field_refused(
        nat, "us-east-1a", {"cpu": ["us-east-1a", "us-east-1c", "us-east-1b"]}
    )
    assert field == "cloud.partitions.0.zones" and "uses us-east-1c, us-east-1b" in message
    # other modes route every zone through the NAT gateway, the transit gateway or public IPs
    for mode in ("private-subnets", "public-ips", "private"):
        check_cluster_zones(
            region_of(mode), "", "us-east-1a", {"gpu": ["us-east-1b", "us-east-1c"]}
        )
    # the provisioned mode decides; the mode as defined serves a region that records none
    check_cluster_zones(
        region_of("private-subnets"), "controller-nat", "us-east-1a", {"g": ["us-east-1b"]}
    )
    unrecorded = NetworkRegionInfo(region=EAST, cidr="10.0.0.0/16", network_id="vpc-1")
    check_cluster_zones(unrecorded, "", "us-east-1a", {"gpu": ["us-east-1b"]})
    with pytest.raises(Invalid):
        check_cluster_zones(unrecorded, "controller-nat", "us-east-1a", {"gpu": ["us-east-1b"]})


def test_a_cluster_uses_only_zones_the_network_has_subnets_in() -> None:
    one_zone = region_of("private-subnets", zones="us-east-1a")
    field, message = field_refused(one_zone, "us-east-1b", {"cpu": ["us-east-1b"]})
    assert field == "cloud.controller.zone" and "us-east-1b (it has us-east-1a)" in message
    field, message = field_refused(one_zone, "us-east-1a", {"cpu": ["us-east-1a", "us-east-1d"]})
    assert field == "cloud.partitions.0.zones" and "no subnet in us-east-1d" in message
    check_cluster_zones(one_zone, "", "us-east-1a", {"cpu": ["us-east-1a"]})


async def test_public_ips_mode_gives_nodes_public_subnets(
    networks: Networks, account: CloudAccount, moto: str
) -> None:
    net = await networks.create_network(
        account, spec((EAST, "10.1.0.0/16", None), mode="public-ips"), log=RecordingLog()
    )
    (region,) = net.regions
    ec2 = aws(moto, "ec2")
    subnets = ec2.describe_subnets(SubnetIds=list(region.subnet_ids))["Subnets"]
    assert len(subnets) == 6
    assert all(s["MapPublicIpOnLaunch"] for s in subnets)
    assert all(not k.startswith("private_") for k in region.details)
    assert region.details["nodes_subnet.us-east-1c"] == region.details["public_subnet.us-east-1c"]
    assert region.details["nodes_public_ip"] == "true"
    assert live_nat_gateways(moto) == []
    assert ec2.describe_addresses()["Addresses"] == []
    assert "internet_gateway_id" in region.details


async def test_private_with_peering_attaches_the_transit_gateway_and_has_no_igw_or_nat(
    networks: Networks, account: CloudAccount, moto: str
) -> None:
    ec2 = aws(moto, "ec2")
    tgw = ec2.create_transit_gateway(Description="central networking")["TransitGateway"]
    tgw_id = tgw["TransitGatewayId"]
    log = RecordingLog()
    net = await networks.create_network(
        account,
        spec(
            (EAST, "10.2.0.0/16", None),
            mode="private",
            transit_gateway_peering=True,
            transit_gateway_id=tgw_id,
        ),
        log=log,
    )
    assert_steps_finished(log)
    (region,) = net.regions
    vpc_id = region.network_id
    (attachment,) = ec2.describe_transit_gateway_vpc_attachments(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}]
    )["TransitGatewayVpcAttachments"]
    assert (
        attachment["TransitGatewayAttachmentId"] == region.details["transit_gateway_attachment_id"]
    )
    private = {region.details[f"private_subnet.{z}"] for z in region.details["zones"].split(",")}
    assert set(attachment["SubnetIds"]) == private == set(region.subnet_ids)
    assert ec2.describe_internet_gateways()["InternetGateways"] == []
    assert live_nat_gateways(moto) == []
    assert ec2.describe_addresses()["Addresses"] == []
    for zone in region.details["zones"].split(","):
        route = default_route(moto, region.details[f"private_route_table.{zone}"])
        assert route is not None and route["TransitGatewayId"] == tgw_id
    assert region.details["controller_public_ip"] == "false"

    # deleting detaches the VPC from the transit gateway, which stays (it is not ours)
    await networks.delete_network(account, net, log=RecordingLog())
    left = ec2.describe_transit_gateway_vpc_attachments(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}]
    )["TransitGatewayVpcAttachments"]
    assert [a for a in left if a["State"] != "deleted"] == []
    assert ec2.describe_transit_gateways(TransitGatewayIds=[tgw_id])["TransitGateways"]
    assert tagged(moto) == {}


async def test_private_without_peering_and_nat_on_has_a_nat_gateway(
    networks: Networks, account: CloudAccount, moto: str
) -> None:
    net = await networks.create_network(
        account, spec(ONE_ZONE, mode="private", enable_nat_gateway=True), log=RecordingLog()
    )
    (region,) = net.regions
    (nat,) = live_nat_gateways(moto)
    assert nat["SubnetId"] == region.details["public_subnet.us-east-1a"]
    route = default_route(moto, region.details["private_route_table.us-east-1a"])
    assert route is not None and route["NatGatewayId"] == nat["NatGatewayId"]
    assert (
        region.details["controller_subnet.us-east-1a"]
        == region.details["private_subnet.us-east-1a"]
    )
    assert region.details["controller_public_ip"] == "false"


async def test_private_without_peering_or_nat_has_no_way_out(
    networks: Networks, account: CloudAccount, moto: str
) -> None:
    net = await networks.create_network(account, spec(ONE_ZONE, mode="private"), log=RecordingLog())
    (region,) = net.regions
    ec2 = aws(moto, "ec2")
    assert ec2.describe_internet_gateways()["InternetGateways"] == []
    assert live_nat_gateways(moto) == []
    assert default_route(moto, region.details["private_route_table.us-east-1a"]) is None
    assert len(region.subnet_ids) == 1
    (group,) = ec2.describe_security_groups(GroupIds=list(region.security_group_ids))[
        "SecurityGroups"
    ]
    assert [r["CidrIp"] for p in group["IpPermissions"] for r in p["IpRanges"]] == ["10.0.0.0/16"]


# --- validation ---------------------------------------------------------------------------------


@pytest.fixture
def unreachable_account() -> CloudAccount:
    """An account whose endpoint nothing answers: any AWS call fails with a transport error, so
    an ``Invalid`` proves the rule was checked before any call."""
    return CloudAccount(
        name="awstest",
        credentials=AwsCredentials(
            account_id="123456789012",
            access_key_id="AKIAIOSFODNN7EXAMPLE",
            secret_access_key="secret",
        ),
        settings={"endpoint_url": "http://127.0.0.1:9", "max_attempts": 1},
    )


@pytest.mark.parametrize(
    ("mode", "options", "field"),
    [
        ("bogus", {}, "mode"),
        (
            "private-subnets",
            {"transit_gateway_id": "tgw-0123456789abcdef0"},
            "options.transit_gateway_id",
        ),
        ("public-ips", {"enable_nat_gateway": True}, "options.enable_nat_gateway"),
        ("controller-nat", {"transit_gateway_peering": True}, "options.transit_gateway_peering"),
        ("private", {"transit_gateway_peering": True}, "options.transit_gateway_id"),
        (
            "private",
            {
                "transit_gateway_peering": True,
                "transit_gateway_id": "tgw-0123456789abcdef0",
                "enable_nat_gateway": True,
            },
            "options.enable_nat_gateway",
        ),
        ("private", {"transit_gateway_id": "tgw-0123456789abcdef0"}, "options.transit_gateway_id"),
        (
            "private",
            {"transit_gateway_peering": True, "transit_gateway_id": "vpc-123"},
            "options.transit_gateway_id",
        ),
        ("private", {"enable_nat_gateway": "yes"}, "options.enable_nat_gateway"),
        ("", {"nat": True}, "options.nat"),
        ("", {"ssh_cidrs": ["10.0.0.0/33"]}, "options.ssh_cidrs.0"),
        ("", {"dns_domain": "not a domain"}, "options.dns_domain"),
    ],
)
async def test_mode_rules_are_checked_before_any_call(
    networks: Networks,
    unreachable_account: CloudAccount,
    mode: str,
    options: dict[str, Any],
    field: str,
) -> None:
    log = RecordingLog()
    with pytest.raises(Invalid) as error:
        await networks.create_network(
            unreachable_account, spec(ONE_ZONE, mode=mode, **options), log=log
        )
    assert error.value.field == field, error.value.message
    assert log.steps == []


@pytest.mark.parametrize(
    ("network", "field"),
    [
        (spec((EAST, "10.0.0.0/8", None)), "regions.0.cidr"),
        (spec((EAST, "10.0.0.0/28", None)), "regions.0.cidr"),
        (spec(("mars-1", "10.0.0.0/16", None)), "regions.0.region"),
        (spec(("us-gov-west-1", "10.0.0.0/16", None)), "regions.0.region"),
        (spec(ONE_ZONE, name="Bad_Name"), "name"),
        (
            NetworkSpec(
                name="net1",
                regions=(NetworkRegionSpec(region=EAST, cidr="10.0.0.0/16"),),
                tags={"aws:owner": "x"},
            ),
            "tags.aws:owner",
        ),
        (
            NetworkSpec(
                name="net1",
                regions=(NetworkRegionSpec(region=EAST, cidr="10.0.0.0/16", options={"vpc": "x"}),),
            ),
            "regions.0.options.vpc",
        ),
    ],
)
async def test_region_rules_are_checked_before_any_call(
    networks: Networks, unreachable_account: CloudAccount, network: NetworkSpec, field: str
) -> None:
    with pytest.raises(Invalid) as error:
        await networks.create_network(unreachable_account, network, log=RecordingLog())
    assert error.value.field == field, error.value.message


@pytest.mark.parametrize(
    ("regions", "field"),
    [
        ([(EAST, "10.0.0.0/16"), (WEST, "10.0.128.0/17")], "regions.1.cidr"),
        ([(EAST, "10.0.0.0/16"), (EAST, "10.1.0.0/16")], "regions.1.region"),
        ([(EAST, "10.0.0.0/33")], "regions.0.cidr"),
    ],
)
def test_spec_cidr_acceptance(regions: list[tuple[str, str]], field: str) -> None:
    with pytest.raises(Invalid) as error:
        NetworkSpec(
            name="net1", regions=tuple(NetworkRegionSpec(region=r, cidr=c) for r, c in regions)
        )
    assert error.value.field == field


async def test_rules_that_need_the_account_create_nothing(
    networks: Networks, account: CloudAccount, moto: str
) -> None:
    cases = [
        (spec((EAST, "10.0.0.0/16", "us-east-1z")), "regions.0.zone"),
        # six zones, two subnets each, in a /26: subnets would be /30
        (spec((EAST, "10.0.0.0/26", None)), "regions.0.cidr"),
        (
            spec(
                ONE_ZONE,
                mode="private",
                transit_gateway_peering=True,
                transit_gateway_id="tgw-0123456789abcdef0",
            ),
            "options.transit_gateway_id",
        ),
        # the first region is fine, the second is not: nothing is made in either
        (
            spec(ONE_ZONE, (WEST, "10.9.0.0/16", "us-west-2q")),
            "regions.1.zone",
        ),
    ]
    for network, field in cases:
        with pytest.raises(Invalid) as error:
            await networks.create_network(account, network, log=RecordingLog())
        assert error.value.field == field, error.value.message
    assert (
        aws(moto, "ec2").describe_vpcs(
            Filters=[{"Name": f"tag:{NETWORK_TAG}", "Values": ["net1"]}]
        )["Vpcs"]
        == []
    )


def test_subnet_plan_is_deterministic() -> None:
    # three zones take four blocks of each half
    private, public = subnet_plan("10.0.0.0/24", ["a", "b", "c"])
    assert private == {"a": "10.0.0.0/27", "b": "10.0.0.32/27", "c": "10.0.0.64/27"}
    assert public == {"a": "10.0.0.128/27", "b": "10.0.0.160/27", "c": "10.0.0.192/27"}
    assert subnet_plan("10.0.0.0/27", ["a"]) == ({"a": "10.0.0.0/28"}, {"a": "10.0.0.16/28"})


# --- idempotency, crashes, updates --------------------------------------------------------------


class CrashingLog(RecordingLog):
    """A log whose process 'dies' when a given step starts."""

    def __init__(self, crash_at: str) -> None:
        super().__init__()
        self.crash_at = crash_at

    async def step(self, name: str, state: StepState, detail: str = "") -> None:
        if name.startswith(self.crash_at) and state is StepState.RUNNING:
            raise KeyboardInterrupt  # stands for the worker being killed
        await super().step(name, state, detail)


@pytest.mark.parametrize("crash_at", [f"{EAST} NAT gateway", f"{EAST} security group"])
async def test_a_rerun_after_a_crash_finds_and_completes(
    networks: Networks, account: CloudAccount, moto: str, crash_at: str
) -> None:
    network = spec((EAST, "10.0.0.0/16", None))
    with pytest.raises(KeyboardInterrupt):
        await networks.create_network(account, network, log=CrashingLog(crash_at))
    ec2 = aws(moto, "ec2")
    made_before = tagged(moto)
    assert len(made_before["vpc"]) == 1 and len(made_before["subnet"]) == 12

    log = RecordingLog()
    net = await networks.create_network(account, network, log=log)
    assert_steps_finished(log)
    after = tagged(moto)
    for kind, ids in made_before.items():
        assert set(ids) <= set(after[kind]), kind
    counts = {kind: len(ids) for kind, ids in after.items()}
    assert counts == {
        "vpc": 1,
        "subnet": 12,
        "internet-gateway": 1,
        "route-table": 7,
        "security-group": 1,
        "elastic-ip": 1,
        "natgateway": 1,
        "hosted-zone": 1,
    }
    assert len(ec2.describe_addresses()["Addresses"]) == 1
    assert len(live_nat_gateways(moto)) == 1
    assert (
        len(
            ec2.describe_security_groups(
                Filters=[{"Name": "group-name", "Values": ["corral-net1"]}]
            )["SecurityGroups"]
        )
        == 1
    )
    details = {name: detail for name, state, detail in log.steps if state is StepState.COMPLETED}
    assert details[f"{EAST} VPC 10.0.0.0/16"].startswith("found vpc-")
    assert details[f"{EAST} NAT Elastic IP"].startswith("found eipalloc-")

    again = await networks.create_network(account, network, log=RecordingLog())
    assert again == net
    assert len(aws(moto, "route53").list_hosted_zones()["HostedZones"]) == 1


async def test_adding_a_region_runs_only_its_steps_and_removing_one_deletes_it(
    networks: Networks, account: CloudAccount, moto: str
) -> None:
    net = await networks.create_network(account, spec(ONE_ZONE), log=RecordingLog())
    log = RecordingLog()
    bigger = await networks.update_network(
        account, net, spec(ONE_ZONE, (WEST, "10.1.0.0/16", "us-west-2b")), log=log
    )
    assert_steps_finished(log)
    assert all(name.startswith(WEST) for name in log.step_states()), log.step_states()
    assert bigger.regions[0] == net.regions[0]
    assert bigger.regions[1].region == WEST
    assert tagged(moto, WEST)["vpc"] == [bigger.regions[1].network_id]
    assert len(live_nat_gateways(moto, WEST)) == 1

    # a region with an instance cannot be dropped; nothing is touched
    instance = run_instance(moto, bigger.regions[0].details["nodes_subnet.us-east-1a"])
    with pytest.raises(Conflict, match=instance):
        await networks.update_network(
            account, bigger, spec((WEST, "10.1.0.0/16", "us-west-2b")), log=RecordingLog()
        )
    assert tagged(moto)["vpc"] == [net.regions[0].network_id]
    aws(moto, "ec2").terminate_instances(InstanceIds=[instance])

    log = RecordingLog()
    smaller = await networks.update_network(
        account, bigger, spec((WEST, "10.1.0.0/16", "us-west-2b")), log=log
    )
    assert [r.region for r in smaller.regions] == [WEST]
    assert smaller.regions[0] == bigger.regions[1]
    assert tagged(moto) == {}
    assert all(name.startswith(EAST) for name in log.step_states()), log.step_states()

    with pytest.raises(Invalid) as error:
        await networks.update_network(
            account,
            smaller,
            spec((WEST, "10.1.0.0/16", "us-west-2b"), mode="public-ips"),
            log=RecordingLog(),
        )
    assert error.value.field == "mode"


# --- deletion -----------------------------------------------------------------------------------


async def test_delete_leaves_no_tagged_resource_and_is_idempotent(
    networks: Networks, account: CloudAccount, moto: str
) -> None:
    net = await networks.create_network(
        account, spec((EAST, "10.0.0.0/16", None), (WEST, "10.1.0.0/16", None)), log=RecordingLog()
    )
    east = net.regions[0]
    route53 = aws(moto, "route53")
    # what the instance provider adds for a node
    route53.change_resource_record_sets(
        HostedZoneId=east.details["dns_zone_id"],
        ChangeBatch={
            "Changes": [
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": "node1.net1.us-east-1.corral.internal",
                        "Type": "A",
                        "TTL": 60,
                        "ResourceRecords": [{"Value": "10.0.0.5"}],
                    },
                }
            ]
        },
    )
    assert {"vpc", "subnet", "internet-gateway", "route-table", "security-group"} <= set(
        tagged(moto)
    )

    log = RecordingLog()
    await networks.delete_network(account, net, log=log)
    assert_steps_finished(log)
    for region in (EAST, WEST):
        assert tagged(moto, region) == {}, region
        ec2 = aws(moto, "ec2", region)
        assert ec2.describe_addresses()["Addresses"] == []
        assert live_nat_gateways(moto, region) == []
        assert [v for v in ec2.describe_vpcs()["Vpcs"] if not v["IsDefault"]] == []
    assert route53.list_hosted_zones()["HostedZones"] == []
    names = list(log.step_states())
    assert names.index(f"{EAST} delete NAT gateway {east.details['nat_gateway_id']}") < names.index(
        f"{EAST} delete VPC {east.network_id}"
    )

    again = RecordingLog()
    await networks.delete_network(account, net, log=again)
    assert again.steps == []


async def test_delete_finds_everything_by_tag_when_the_ids_are_lost(
    networks: Networks, account: CloudAccount, moto: str
) -> None:
    with pytest.raises(KeyboardInterrupt):
        await networks.create_network(
            account, spec(ONE_ZONE), log=CrashingLog(f"{EAST} security group")
        )
    lost = NetworkInfo(
        id="net1", name="net1", regions=(NetworkRegionInfo(region=EAST, cidr="", network_id=""),)
    )
    await networks.delete_network(account, lost, log=RecordingLog())
    assert tagged(moto) == {}
    assert aws(moto, "ec2").describe_addresses()["Addresses"] == []


async def test_delete_is_refused_while_an_instance_runs(
    networks: Networks, account: CloudAccount, moto: str
) -> None:
    net = await networks.create_network(account, spec(ONE_ZONE), log=RecordingLog())
    instance = run_instance(moto, net.regions[0].details["nodes_subnet.us-east-1a"])
    log = RecordingLog()
    with pytest.raises(Conflict) as error:
        await networks.delete_network(account, net, log=log)
    assert instance in error.value.message
    assert error.value.reason == "network-in-use"
    assert log.steps == []
    assert tagged(moto)["vpc"] == [net.regions[0].network_id]
    assert len(live_nat_gateways(moto)) == 1

    aws(moto, "ec2").terminate_instances(InstanceIds=[instance])
    await networks.delete_network(account, net, log=RecordingLog())
    assert tagged(moto) == {}
