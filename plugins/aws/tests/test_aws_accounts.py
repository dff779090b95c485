"""AWS accounts against moto: credentials (moto's IAM authentication switched on), the
permission check, key rotation, regions, the instance-type catalogue and images."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import MOTO_ACCOUNT_ID, make_account
from http_faults import FaultProxy

from corral_aws import catalogue
from corral_aws.provider import AwsCloud
from corral_aws.settings import AwsCredentials
from corral_sdk.errors import Invalid, NotAuthenticated, NotFound
from corral_sdk.providers.cloud import CloudAccount, ImageSource, ImageState, InstanceRequest
from corral_sdk.testing.recording import RecordingLog

pytestmark = pytest.mark.anyio


def _auth(moto: str, count: str) -> None:
    post = urllib.request.Request(
        f"{moto}/moto-api/reset-auth",
        data=count.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(post, timeout=30) as answer:
        answer.read()


def iam_user(moto: str, name: str, statements: list[dict[str, Any]]) -> AwsCredentials:
    iam = boto3.client(
        "iam",
        region_name="us-east-1",
        endpoint_url=moto,
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="x",
    )
    iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name,
        PolicyName="corral",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return AwsCredentials(
        account_id=MOTO_ACCOUNT_ID,
        access_key_id=key["AccessKeyId"],
        secret_access_key=key["SecretAccessKey"],
    )


@pytest.fixture
def iam_auth(moto: str) -> Iterator[None]:
    """moto checks signatures and IAM policies from the next request on."""
    _auth(moto, "0")
    try:
        yield
    finally:
        _auth(moto, "inf")


def with_credentials(account: CloudAccount, credentials: AwsCredentials) -> CloudAccount:
    return CloudAccount(name=account.name, credentials=credentials, settings=account.settings)


ALLOW_ALL = {"Effect": "Allow", "Action": "*", "Resource": "*"}


async def test_a_key_aws_rejects_is_not_authenticated(
    provider: AwsCloud, account: CloudAccount, iam_auth: None
) -> None:
    with pytest.raises(NotAuthenticated, match="InvalidClientTokenId"):
        await provider.validate_credentials(account)


async def test_a_key_of_another_account_is_invalid(provider: AwsCloud, proxy: FaultProxy) -> None:
    account = make_account(proxy.url)
    other = AwsCredentials(
        account_id="210987654321",
        access_key_id=account.credentials.access_key_id,
        secret_access_key=account.credentials.secret_access_key,
    )
    with pytest.raises(Invalid) as caught:
        await provider.validate_credentials(with_credentials(account, other))
    assert caught.value.field == "credentials.account_id"
    assert "123456789012, not 210987654321" in caught.value.message


def test_malformed_credentials_are_refused_before_any_call() -> None:
    with pytest.raises(Invalid) as caught:
        AwsCredentials(
            account_id="1234567890123", access_key_id="AKIA0000000000000000", secret_access_key="s"
        )
    assert caught.value.field == "credentials.account_id"


async def test_a_missing_permission_is_insufficient_with_the_guide(
    provider: AwsCloud, account: CloudAccount, moto: str, proxy: FaultProxy
) -> None:
    restricted = iam_user(
        moto,
        "restricted",
        [ALLOW_ALL, {"Effect": "Deny", "Action": "ec2:RunInstances", "Resource": "*"}],
    )
    admin = iam_user(moto, "admin", [ALLOW_ALL])
    _auth(moto, "0")
    try:
        check = await provider.validate_credentials(with_credentials(account, restricted))
        good = await provider.validate_credentials(with_credentials(account, admin))
    finally:
        _auth(moto, "inf")
    assert not check.sufficient
    assert check.missing_permissions == ("ec2:RunInstances",)
    assert check.guide_url
    assert check.principal == restricted.access_key_id
    assert "restricted" in check.message
    assert good.sufficient, good.message
    assert good.missing_permissions == ()
    assert proxy.calls["SimulatePrincipalPolicy"] >= 1  # tried first; moto lacks it


async def test_work_runs_on_federation_tokens(
    provider: AwsCloud, account: CloudAccount, proxy: FaultProxy
) -> None:
    await provider.describe_instances(account, "us-east-1", tags={"a": "b"})
    assert proxy.calls["GetFederationToken"] == 1
    for record in proxy.recorded:
        if record.action == "DescribeInstances":
            assert record.service == "ec2"
    assert not any(
        r.action == "DescribeInstances" and "AKIAIOSFODNN7EXAMPLE" in str(r.params)
        for r in proxy.recorded
    )


async def test_rotation_retires_the_typed_key(
    provider: AwsCloud, account: CloudAccount, moto: str
) -> None:
    """Spec 2.3.1: the typed key stops working, the account still validates. In two checks, as
    the kernel makes them: the first returns a new key to store, the second (with it) deletes
    the typed one, the third has nothing left to do."""
    typed = iam_user(moto, "rotated", [ALLOW_ALL])
    _auth(moto, "0")
    try:
        first = await provider.validate_credentials(with_credentials(account, typed))
        rotated = first.credentials
        assert isinstance(rotated, AwsCredentials) and first.sufficient
        assert rotated.access_key_id != typed.access_key_id
        assert rotated.corral_key_id == rotated.access_key_id
        assert rotated.retired_key_id == typed.access_key_id
        assert "secret" not in repr(first).lower().replace("secret_access_key=<redacted>", "")
        second = await provider.validate_credentials(with_credentials(account, rotated))
        assert second.sufficient and "was deleted" in second.message
        cleaned = second.credentials
        assert isinstance(cleaned, AwsCredentials) and cleaned.retired_key_id == ""
        third = await provider.validate_credentials(with_credentials(account, cleaned))
        assert third.sufficient and third.credentials is None
        with pytest.raises(NotAuthenticated):
            await AwsCloud().validate_credentials(with_credentials(account, typed))
    finally:
        _auth(moto, "inf")


async def test_regions_follow_govcloud_and_the_allow_list(
    provider: AwsCloud, proxy: FaultProxy
) -> None:
    listed = await provider.list_regions(make_account(proxy.url))
    assert [r.name for r in listed] == ["us-east-1", "us-west-2"]
    assert "us-east-1a" in listed[0].zones

    everything = await provider.list_regions(make_account(proxy.url, regions=[]))
    names = {r.name for r in everything}
    assert {"eu-west-1", "us-east-2"} <= names
    assert not any(n.startswith(("us-gov-", "cn-")) for n in names)

    gov = CloudAccount(
        name="gov",
        credentials=make_account(proxy.url).credentials,
        govcloud=True,
        settings={"endpoint_url": proxy.url},
    )
    gov_regions = await provider.list_regions(gov)
    assert {r.name for r in gov_regions} == {"us-gov-east-1", "us-gov-west-1"}
    assert all(r.gov for r in gov_regions)


async def test_instance_types_are_the_catalogue_the_region_offers(
    provider: AwsCloud, proxy: FaultProxy
) -> None:
    account = make_account(proxy.url, regions=["us-east-1", "us-east-2"])
    east = {t.name: t for t in await provider.list_instance_types(account, "us-east-1")}
    assert east["c5.large"].price_per_hour == Decimal("0.085")
    assert (east["c5.large"].vcpus, east["c5.large"].memory_gib) == (2, 4.0)
    assert "us-east-1a" in east["c5.large"].zones
    p4d = east["p4d.24xlarge"]
    assert (p4d.gpus, p4d.gpu_model, p4d.gpu_memory_gib) == (8, "NVIDIA A100", 40.0)
    assert east["c7g.large"].architecture == "arm64"
    assert "hpc6a.48xlarge" not in east  # not sold in us-east-1
    ohio = {t.name: t for t in await provider.list_instance_types(account, "us-east-2")}
    assert ohio["hpc6a.48xlarge"].price_per_hour == Decimal("2.88")
    with pytest.raises(NotFound, match="eu-west-1"):
        await provider.list_instance_types(account, "eu-west-1")  # not in the allow-list


async def test_images_are_base_images_and_the_accounts_snapshots(
    provider: AwsCloud, account: CloudAccount
) -> None:
    images = await provider.list_images(account, "us-east-1")
    latest = [i for i in images if i.latest]
    assert sorted(i.architecture for i in latest) == ["arm64", "x86_64"]
    assert images[0].latest and images[0].architecture == "x86_64"
    assert all(i.name.startswith("al2023-ami-2023.") for i in images)

    made = await provider.create_instances(
        account,
        InstanceRequest(
            region="us-east-1",
            instance_type="t3.micro",
            image=images[0].id,
            names=("snap-src",),
            idempotency_key="snap-src",
        ),
        log=RecordingLog(),
    )
    log = RecordingLog()
    with pytest.raises(Invalid) as caught:
        await provider.create_image(account, "us-east-1", made[0].id, "My-Snap", log=log)
    assert caught.value.field == "name"
    for bad in ("ab", "1abc", "a" * 37):
        with pytest.raises(Invalid):
            await provider.create_image(account, "us-east-1", made[0].id, bad, log=log)

    snap = await provider.create_image(
        account, "us-east-1", made[0].id, "snap-one", tags={"Project": "p"}, log=log
    )
    assert snap.source is ImageSource.ACCOUNT
    assert snap.state in (ImageState.PENDING, ImageState.AVAILABLE)
    again = await provider.create_image(account, "us-east-1", made[0].id, "snap-one", log=log)
    assert again.id == snap.id
    listed = {i.id: i for i in await provider.list_images(account, "us-east-1")}
    assert listed[snap.id].name == "snap-one"
    assert listed[snap.id].source is ImageSource.ACCOUNT

    ec2 = provider.ec2(account, "us-east-1")
    snapshots = [
        m["Ebs"]["SnapshotId"]
        for m in ec2.describe_images(ImageIds=[snap.id])["Images"][0]["BlockDeviceMappings"]
        if "Ebs" in m
    ]
    assert snapshots
    await provider.delete_image(account, "us-east-1", snap.id)
    await provider.delete_image(account, "us-east-1", snap.id)
    assert snap.id not in {i.id for i in await provider.list_images(account, "us-east-1")}
    left = ec2.describe_snapshots(Filters=[{"Name": "snapshot-id", "Values": snapshots}])
    assert left["Snapshots"] == []


def test_the_shipped_catalogue_is_dated_and_priced() -> None:
    shipped = catalogue.shipped()
    assert shipped.date == "2025-01-15"
    families = {name.split(".")[0] for name in shipped.types}
    wanted = {"c5", "c6a", "c6i", "c7g", "m5", "m6i", "r6i", "t3", "p4d", "p5", "g5", "g6"}
    assert wanted | {"hpc6a", "hpc7g"} <= families
    assert all(entry["prices"] for entry in shipped.types.values())


def test_refresh_reads_specs_from_describe_instance_types(moto: str, tmp_path: Path) -> None:
    def ec2_in(region: str) -> Any:
        return boto3.client(
            "ec2",
            region_name=region,
            endpoint_url=moto,
            aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
            aws_secret_access_key="x",
        )

    document, notes = catalogue.refresh(ec2_in, ["us-east-1"], families=["c5", "p4d"])
    types = document["types"]
    assert set(types) >= {"c5.large", "c5.18xlarge", "p4d.24xlarge"}
    assert {n.split(".")[0] for n in types} == {"c5", "p4d"}
    assert types["c5.18xlarge"]["vcpus"] == 72 and types["c5.18xlarge"]["memory_gib"] == 144
    assert types["p4d.24xlarge"]["gpus"] == 8
    assert types["c5.large"]["prices"]["us-east-1"] == "0.085"  # kept: no Price List API here
    assert any("prices kept" in n for n in notes)

    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps(document))
    loaded = catalogue.load(str(path))
    made = loaded.instance_type("c5.large", "eu-west-1", ["eu-west-1a"])
    assert made is not None and made.price_per_hour == Decimal("0.085")
    assert "us-east-1's shown" in made.description
    with pytest.raises(Invalid) as caught:
        catalogue.load(str(tmp_path / "missing.json"))
    assert caught.value.field == "settings.catalogue"


def test_refresh_command_writes_a_catalogue(
    moto: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    out = tmp_path / "c.json"
    code = catalogue.main(
        ["--region", "us-east-1", "--out", str(out), "--endpoint-url", moto, "--no-pricing"]
    )
    assert code == 0
    assert "m6i.large" in json.loads(out.read_text())["types"]
    assert "instance types written" in capsys.readouterr().out
