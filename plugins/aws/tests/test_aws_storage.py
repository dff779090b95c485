"""The ``aws-s3`` storage type against moto in server mode: the SDK's storage conformance suite
(live: buckets really made and deleted through the S3 API), a repeated provision finding the
bucket it made, a name held by a bucket Corral did not make, emptying a bucket with versions,
and 12-hour credentials that work on their bucket, asked for with a policy naming only it.

moto does not evaluate session policies (its IAM emulation ignores a policy's ``Resource``), so
the scoping is checked on what the provider sent to STS, through the tests' HTTP boundary."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import boto3
import pytest
from http_faults import FaultProxy

from corral_aws import plugin
from corral_aws.storage import TAG_STORAGE, S3Bucket, S3Options, bucket_name
from corral_sdk.errors import Conflict, Invalid
from corral_sdk.providers.cloud import CloudAccount
from corral_sdk.providers.storage import StorageInfo, StorageSpec, StorageState
from corral_sdk.records import StorageTypeRecord
from corral_sdk.testing.conformance import StorageTypeConformance
from corral_sdk.testing.recording import RecordingLog

pytestmark = pytest.mark.anyio


def spec_for(account: CloudAccount, region: str = "us-west-2", **kw: Any) -> StorageSpec:
    return StorageSpec(
        name=kw.pop("name", "data"),
        resource_id=kw.pop("resource_id", uuid.uuid4().hex[:24]),
        options=S3Options(region=region),
        account=account,
        tags={"Name": "data", "User": "alice", "OrganizationID": "acme", "Session": "00001"},
        **kw,
    )


def s3_client(endpoint: str, region: str = "us-west-2", **credentials: str) -> Any:
    return boto3.client(
        "s3",
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id=credentials.get("key", "AKIAIOSFODNN7EXAMPLE"),
        aws_secret_access_key=credentials.get("secret", "x"),
        aws_session_token=credentials.get("token"),
    )


class TestS3Conformance(StorageTypeConformance):
    @pytest.fixture
    def record(self) -> StorageTypeRecord:
        return plugin.S3_RECORD

    @pytest.fixture
    def plugin(self) -> ModuleType:
        return plugin

    @pytest.fixture
    def provider(self) -> S3Bucket:
        return S3Bucket()

    @pytest.fixture
    def storage_spec(self, account: CloudAccount) -> StorageSpec:
        return spec_for(account)

    @pytest.fixture
    def invalid_storage_spec(self, account: CloudAccount) -> StorageSpec:
        return spec_for(account, region="eu-west-1")  # not among the account's regions

    @pytest.fixture
    def live(self) -> bool:
        return True

    @pytest.fixture
    def poll_interval(self) -> float:
        return 0.1

    @pytest.fixture
    def poll_timeout(self) -> float:
        return 30.0


async def test_a_repeated_provision_finds_its_bucket(account: CloudAccount, moto: str) -> None:
    provider, spec, log = S3Bucket(), spec_for(account), RecordingLog()
    info = await provider.provision(spec, log=log)
    name = bucket_name(spec)
    assert (info.id, info.uri, info.region, info.state) == (
        name,
        f"s3://{name}",
        "us-west-2",
        StorageState.AVAILABLE,
    )
    assert name == f"corral-data-{spec.resource_id}"
    again = await provider.provision(spec, log=log)
    assert again.id == info.id
    s3 = s3_client(moto)
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [name]
    tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=name)["TagSet"]}
    assert tags[TAG_STORAGE] == spec.resource_id and tags["User"] == "alice"
    block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    assert (
        s3.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"]
        == "us-west-2"
    )
    lines = [line for line in log.lines]
    assert f"Bucket created: s3://{name} (public access blocked)" in lines
    assert f"Bucket found: s3://{name} (public access blocked)" in lines


async def test_a_bucket_corral_did_not_make_is_not_taken_over(
    account: CloudAccount, moto: str
) -> None:
    spec = spec_for(account)
    s3_client(moto).create_bucket(
        Bucket=bucket_name(spec), CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
    )
    with pytest.raises(Conflict, match="Corral did not make"):
        await S3Bucket().provision(spec, log=RecordingLog())


async def test_deprovision_empties_every_version_and_is_idempotent(
    account: CloudAccount, moto: str
) -> None:
    provider, spec, log = S3Bucket(), spec_for(account, region="us-east-1"), RecordingLog()
    info = await provider.provision(spec, log=log)
    s3 = s3_client(moto, "us-east-1")
    s3.put_bucket_versioning(Bucket=info.id, VersioningConfiguration={"Status": "Enabled"})
    for key in ("a.txt", "a.txt", "dir/b.txt"):
        s3.put_object(Bucket=info.id, Key=key, Body=b"x")
    s3.delete_object(Bucket=info.id, Key="dir/b.txt")  # a delete marker
    await provider.deprovision(spec, info, log=log)
    assert s3.list_buckets()["Buckets"] == []
    assert "Emptied bucket " + info.id + ": 4 object versions deleted" in log.lines
    assert (await provider.describe(spec, info)).state is StorageState.DELETED
    await provider.deprovision(spec, info, log=log)
    assert log.lines[-1] == f"Bucket {info.id} is already gone"
    # a provision cut short before the kernel heard of the bucket: found by the uid alone
    cut = spec_for(account, region="us-east-1")
    await provider.provision(cut, log=log)
    await provider.deprovision(cut, StorageInfo(id="", state=StorageState.UNKNOWN), log=log)
    assert s3.list_buckets()["Buckets"] == []


async def test_credentials_last_12_hours_and_reach_only_their_bucket(
    account: CloudAccount, proxy: FaultProxy, moto: str
) -> None:
    provider, spec = S3Bucket(), spec_for(account)
    info = await provider.provision(spec, log=RecordingLog())
    issued = await provider.temporary_credentials(spec, info)
    ahead = issued.expires_at - datetime.now(UTC)
    assert timedelta(hours=11, minutes=55) < ahead <= timedelta(hours=12)
    assert issued.bucket_name == info.id and issued.region == "us-west-2"
    assert issued.env["AWS_ENDPOINT_URL_S3"] == proxy.url
    assert issued.env["AWS_ACCESS_KEY_ID"] == issued.credentials["accessKeyId"]
    assert set(issued.credentials) == {"accessKeyId", "secretAccessKey", "sessionToken"}
    assert "secretAccessKey" not in repr(issued) and issued.credentials[
        "secretAccessKey"
    ] not in repr(issued)
    asked = proxy.sent("GetFederationToken")[-1]
    assert asked["DurationSeconds"] == "43200"
    policy = json.loads(asked["Policy"])
    resources = {r for statement in policy["Statement"] for r in statement["Resource"]}
    assert resources == {f"arn:aws:s3:::{info.id}", f"arn:aws:s3:::{info.id}/*"}
    assert "s3:PutObject" in json.dumps(policy) and "s3:CreateBucket" not in json.dumps(policy)

    theirs = s3_client(
        issued.endpoint_url,
        issued.region,
        key=issued.credentials["accessKeyId"],
        secret=issued.credentials["secretAccessKey"],
        token=issued.credentials["sessionToken"],
    )
    theirs.put_object(Bucket=info.id, Key="hello.txt", Body=b"hi")
    listed = theirs.list_objects_v2(Bucket=info.id)["Contents"]
    assert [o["Key"] for o in listed] == ["hello.txt"]

    read_only = await provider.temporary_credentials(spec, info, read_only=True)
    assert read_only.credentials["accessKeyId"]
    policy = json.loads(proxy.sent("GetFederationToken")[-1]["Policy"])
    assert "s3:PutObject" not in json.dumps(policy)

    await provider.deprovision(spec, info, log=RecordingLog())
    with pytest.raises(Conflict):
        await provider.temporary_credentials(spec, info)


async def test_options_are_checked_without_a_cloud_call(
    account: CloudAccount, proxy: FaultProxy
) -> None:
    with pytest.raises(Invalid) as bad:
        S3Options(region="Mars")
    assert bad.value.field == "region"
    with pytest.raises(Invalid) as far:
        await S3Bucket().validate(spec_for(account, region="eu-west-1"))
    assert far.value.field == "region" and "us-east-1, us-west-2" in far.value.message
    assert sum(proxy.calls.values()) == 0
