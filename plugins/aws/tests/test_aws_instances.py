"""Instances on EC2 (moto behind the fault-injecting proxy): batched launches, idempotency,
MultiZone fallback, capacity reservations, throttling, static IPs, start/stop/delete."""

from __future__ import annotations

import base64
from typing import Any

import boto3
import pytest
from conftest import make_account
from http_faults import Ec2Extras, FaultProxy, Reservation

from corral_aws.names import compact
from corral_aws.provider import TAG_REQUEST, AwsCloud
from corral_sdk.errors import Conflict, Invalid, NotFound, ProviderError, TransportError
from corral_sdk.providers.cloud import (
    CAPACITY_UNAVAILABLE,
    CloudAccount,
    InstanceRequest,
    InstanceState,
    NetworkPlacement,
)
from corral_sdk.testing.recording import RecordingLog

pytestmark = pytest.mark.anyio
REGION = "us-east-1"
TAGS = {"Project": "proj1", "User": "alice", "corral:cluster": "c1"}


def ec2(moto: str) -> Any:
    return boto3.client(
        "ec2",
        region_name=REGION,
        endpoint_url=moto,
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="x",
    )


async def image(provider: AwsCloud, account: CloudAccount) -> str:
    images = await provider.list_images(account, REGION)
    return next(i.id for i in images if i.latest and i.architecture == "x86_64")


def request(
    image_id: str, names: tuple[str, ...], key: str = "batch-1", **kw: Any
) -> InstanceRequest:
    return InstanceRequest(
        region=REGION,
        instance_type="c5.large",
        image=image_id,
        names=names,
        idempotency_key=key,
        tags=TAGS,
        **kw,
    )


async def test_a_batch_is_one_run_instances_with_tags_groups_user_data_and_placement_group(
    provider: AwsCloud, account: CloudAccount, proxy: FaultProxy, moto: str
) -> None:
    client = ec2(moto)
    vpc = client.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]
    subnet = client.describe_subnets(
        Filters=[{"Name": "availability-zone", "Values": ["us-east-1a"]}]
    )["Subnets"][0]["SubnetId"]
    group = client.create_security_group(
        GroupName="corral-nodes", Description="nodes", VpcId=vpc["VpcId"]
    )["GroupId"]
    await provider.create_placement_group(account, REGION, "pg-c1", tags=TAGS)
    names = ("c1-00001-1-0001", "c1-00001-1-0002", "c1-00001-1-0003")
    made = await provider.create_instances(
        account,
        request(
            await image(provider, account),
            names,
            network=NetworkPlacement(
                network_id=vpc["VpcId"], subnet_id=subnet, security_group_ids=(group,)
            ),
            placement_group="pg-c1",
            user_data="#!/bin/bash\necho corral > /tmp/boot\n",
        ),
        log=RecordingLog(),
    )
    assert [i.name for i in made] == list(names)
    assert all(not i.state.gone for i in made)

    launches = proxy.sent("RunInstances")
    assert len(launches) == 1
    sent = launches[0]
    assert (sent["MinCount"], sent["MaxCount"]) == ("3", "3")
    assert sent["Placement.GroupName"] == "pg-c1"
    assert sent["SubnetId"] == subnet
    assert sent["SecurityGroupId.1"] == group

    found = await provider.describe_instances(account, REGION, tags=TAGS)
    assert sorted(i.name for i in found) == sorted(names)
    for instance in found:
        assert {k: instance.tags[k] for k in TAGS} == TAGS
        raw = client.describe_instances(InstanceIds=[instance.id])["Reservations"][0]
        described = raw["Instances"][0]
        assert [g["GroupId"] for g in described["SecurityGroups"]] == [group]
        assert described["SubnetId"] == subnet
        data = client.describe_instance_attribute(InstanceId=instance.id, Attribute="userData")
        sent_script = base64.b64decode(data["UserData"]["Value"]).decode()
        # the kernel's script, after the prelude that names the host by its launch index
        assert "meta ami-launch-index" in sent_script and "/tmp/boot\n" in sent_script
        volumes = client.describe_volumes(
            Filters=[{"Name": "attachment.instance-id", "Values": [instance.id]}]
        )["Volumes"]
        assert volumes
        for volume in volumes:
            tags = {t["Key"]: t["Value"] for t in volume.get("Tags", [])}
            assert {k: tags.get(k) for k in TAGS} == TAGS
            # one set of tags for the batch: its names, the i-th for launch index i
            assert tags.get("corral:names") == compact(names)
        assert instance.tags["Name"] == compact(names)
    # no tag call per instance: the names came with the launch
    assert not proxy.sent("CreateTags")


async def test_a_retry_returns_the_instances_the_first_attempt_made(
    provider: AwsCloud, account: CloudAccount, proxy: FaultProxy
) -> None:
    ask = request(await image(provider, account), ("n-0001", "n-0002"))
    first = await provider.create_instances(account, ask, log=RecordingLog())
    # a new provider, as after a crash of the worker: nothing remembered but what AWS holds
    again = await AwsCloud().create_instances(account, ask, log=RecordingLog())
    assert [i.id for i in again] == [i.id for i in first]
    assert len(proxy.sent("RunInstances")) == 1
    assert all(i.tags[TAG_REQUEST] == "batch-1" for i in again)

    other = await provider.create_instances(
        account, request(ask.image, ask.names, key="batch-2"), log=RecordingLog()
    )
    assert not {i.id for i in other} & {i.id for i in first}


async def test_multizone_moves_the_whole_batch_to_the_next_zone(
    provider: AwsCloud, account: CloudAccount, proxy: FaultProxy
) -> None:
    proxy.fail(
        "RunInstances",
        times=99,
        code="InsufficientInstanceCapacity",
        message="We currently do not have sufficient c5.large capacity in us-east-1a.",
        when=lambda p: p.get("Placement.AvailabilityZone") == "us-east-1a",
    )
    log = RecordingLog()
    made = await provider.create_instances(
        account,
        request(
            await image(provider, account),
            ("m-0001", "m-0002"),
            zones=("us-east-1a", "us-east-1b", "us-east-1c"),
        ),
        log=log,
    )
    assert {i.zone for i in made} == {"us-east-1b"}
    zones = [p.get("Placement.AvailabilityZone") for p in proxy.sent("RunInstances")]
    assert zones == ["us-east-1a", "us-east-1b"]
    assert any("us-east-1a has no capacity" in line for line in log.lines)


async def test_no_zone_with_capacity_is_capacity_unavailable_and_leaves_nothing(
    provider: AwsCloud, account: CloudAccount, proxy: FaultProxy
) -> None:
    proxy.fail("RunInstances", times=99, code="InsufficientInstanceCapacity")
    with pytest.raises(ProviderError) as caught:
        await provider.create_instances(
            account,
            request(await image(provider, account), ("x-1",), zones=("us-east-1a", "us-east-1b")),
            log=RecordingLog(),
        )
    assert caught.value.reason == CAPACITY_UNAVAILABLE
    assert caught.value.retryable
    assert "us-east-1a, us-east-1b" in caught.value.message
    assert await provider.describe_instances(account, REGION, tags=TAGS) == []


async def test_a_failure_after_launch_terminates_what_was_made(
    provider: AwsCloud, account: CloudAccount, proxy: FaultProxy
) -> None:
    proxy.fail("CreateTags", times=99, code="InvalidParameterValue", message="broken tagging")
    # names with no common numbering, too many for one tag: each is tagged after the launch
    names = tuple(f"node-{letter * 30}" for letter in "abcdefghij")
    with pytest.raises(Invalid, match="broken tagging"):
        await provider.create_instances(
            account, request(await image(provider, account), names), log=RecordingLog()
        )
    left = await provider.describe_instances(account, REGION, tags=TAGS)
    assert len(left) == len(names)
    assert all(i.state.gone for i in left)


async def test_an_exhausted_capacity_reservation_is_named(
    provider: AwsCloud, account: CloudAccount, proxy: FaultProxy, extras: Ec2Extras
) -> None:
    extras.reservations["cr-0abc"] = Reservation(
        id="cr-0abc", instance_type="c5.large", zone="us-east-1a", total=4, available=1
    )
    image_id = await image(provider, account)
    with pytest.raises(ProviderError) as caught:
        await provider.create_instances(
            account,
            request(image_id, ("r-1", "r-2"), capacity_reservation_id="cr-0abc"),
            log=RecordingLog(),
        )
    assert caught.value.reason == CAPACITY_UNAVAILABLE
    assert "cr-0abc has 1 of 4 c5.large instances available; 2 were asked for" in str(
        caught.value.message
    )
    assert proxy.sent("RunInstances") == []

    with pytest.raises(NotFound, match="cr-0nope"):
        await provider.create_instances(
            account,
            request(image_id, ("r-1",), capacity_reservation_id="cr-0nope"),
            log=RecordingLog(),
        )
    made = await provider.create_instances(
        account, request(image_id, ("r-1",), capacity_reservation_id="cr-0abc"), log=RecordingLog()
    )
    assert len(made) == 1
    sent = proxy.sent("RunInstances")[0]
    key = "CapacityReservationSpecification.CapacityReservationTarget.CapacityReservationId"
    assert sent[key] == "cr-0abc"


async def test_spot_is_asked_for(
    provider: AwsCloud, account: CloudAccount, proxy: FaultProxy
) -> None:
    await provider.create_instances(
        account, request(await image(provider, account), ("s-1",), spot=True), log=RecordingLog()
    )
    assert proxy.sent("RunInstances")[0]["InstanceMarketOptions.MarketType"] == "spot"


async def test_throttled_calls_are_retried_with_back_off(
    provider: AwsCloud, account: CloudAccount, proxy: FaultProxy
) -> None:
    image_id = await image(provider, account)
    proxy.fail("RunInstances", times=2, status=400, code="RequestLimitExceeded")
    proxy.fail("DescribeInstances", times=1, status=503, code="Throttling", message="Rate exceeded")
    made = await provider.create_instances(
        account, request(image_id, ("t-1", "t-2")), log=RecordingLog()
    )
    assert len(made) == 2
    assert proxy.calls["RunInstances"] == 3
    assert len({p["ClientToken"] for p in proxy.sent("RunInstances")}) == 1


async def test_throttling_beyond_the_retries_is_a_retryable_transport_error(
    provider: AwsCloud, proxy: FaultProxy, extras: Ec2Extras
) -> None:
    account = make_account(proxy.url, max_attempts=2)
    image_id = await image(provider, account)
    proxy.fail("RunInstances", times=99, status=503, code="Throttling", message="Rate exceeded")
    with pytest.raises(TransportError) as caught:
        await provider.create_instances(account, request(image_id, ("t-1",)), log=RecordingLog())
    assert caught.value.retryable
    assert "Throttling" in caught.value.message
    assert proxy.calls["RunInstances"] == 2


async def test_start_stop_delete_are_idempotent_and_name_unknown_ids(
    provider: AwsCloud, account: CloudAccount
) -> None:
    made = await provider.create_instances(
        account, request(await image(provider, account), ("l-1", "l-2")), log=RecordingLog()
    )
    ids = [i.id for i in made]
    await provider.stop_instances(account, REGION, ids)
    await provider.stop_instances(account, REGION, ids)
    states = {i.state for i in await provider.describe_instances(account, REGION, instance_ids=ids)}
    assert states <= {InstanceState.STOPPED, InstanceState.STOPPING}
    await provider.start_instances(account, REGION, ids)
    await provider.start_instances(account, REGION, ids)
    with pytest.raises(NotFound, match="i-0123456789abcdef0"):
        await provider.stop_instances(account, REGION, [ids[0], "i-0123456789abcdef0"])
    await provider.delete_instances(account, REGION, ids)
    await provider.delete_instances(account, REGION, [*ids, "i-0123456789abcdef0", "bogus"])
    assert all(
        i.state.gone for i in await provider.describe_instances(account, REGION, instance_ids=ids)
    )


async def test_static_ips(
    provider: AwsCloud, account: CloudAccount, proxy: FaultProxy, moto: str
) -> None:
    ip = await provider.allocate_static_ip(account, REGION, "ctl-ip", tags=TAGS)
    assert ip.address and ip.id.startswith("eipalloc-")
    same = await provider.allocate_static_ip(account, REGION, "ctl-ip", tags=TAGS)
    assert same.id == ip.id
    assert proxy.calls["AllocateAddress"] == 1

    made = await provider.create_instances(
        account,
        request(await image(provider, account), ("ctl",), static_ip=ip.id),
        log=RecordingLog(),
    )
    attached = await provider.allocate_static_ip(account, REGION, "ctl-ip")
    assert attached.attached_to == made[0].id
    seen = await provider.describe_instances(account, REGION, instance_ids=[made[0].id])
    assert seen[0].public_ip == ip.address
    with pytest.raises(Conflict, match=made[0].id):
        await provider.release_static_ip(account, REGION, ip.id)

    ec2(moto).disassociate_address(PublicIp=ip.address)
    await provider.release_static_ip(account, REGION, ip.id)
    await provider.release_static_ip(account, REGION, ip.id)
    assert ec2(moto).describe_addresses()["Addresses"] == []


async def test_placement_groups_are_idempotent(
    provider: AwsCloud, account: CloudAccount, proxy: FaultProxy
) -> None:
    group = await provider.create_placement_group(account, REGION, "pg-a")
    again = await provider.create_placement_group(account, REGION, "pg-a")
    assert group.id == again.id and group.strategy == "cluster"
    assert proxy.calls["CreatePlacementGroup"] == 1
    with pytest.raises(Invalid):
        await provider.create_placement_group(account, REGION, "pg-b", strategy="clumped")
    await provider.delete_placement_group(account, REGION, "pg-a")
    await provider.delete_placement_group(account, REGION, "pg-a")
    assert proxy.calls["DeletePlacementGroup"] == 1


async def test_bad_launch_options_are_named(provider: AwsCloud, account: CloudAccount) -> None:
    with pytest.raises(Invalid) as caught:
        await provider.create_instances(
            account, request("ami-1", ("o-1",), options={"colour": "red"}), log=RecordingLog()
        )
    assert caught.value.field == "options"
    with pytest.raises(NotFound, match="ami-0000000000000dead"):
        await provider.create_instances(
            account, request("ami-0000000000000dead", ("o-1",)), log=RecordingLog()
        )
