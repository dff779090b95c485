"""AWS S3 buckets as a Corral storage type (``aws-s3``, spec 30 §2.4.1, §2.7).

A bucket is named ``corral-<storage name>-<uid>`` (the kernel's per-session uid, unique across
installations, so the global bucket namespace is no problem) and tagged ``corral:storage`` =
that uid and with the kernel's cost tags. Provisioning is idempotent: a repeat finds the bucket by
its name and checks the tag. Public access is blocked on every bucket. Deprovisioning empties it
(every object version and delete marker) and deletes it; a bucket already gone is fine.

Temporary credentials are an STS federation token (``GetFederationToken``, called with the
account's own access key, for 12 hours by default) with an inline session policy that allows S3
on this bucket and its objects only: the token's permissions are the intersection of that policy
and the IAM user's own. ``AssumeRole`` would need a role made in every account; federation
tokens need only ``sts:GetFederationToken``, which the AWS plugin needs anyway (and moto
answers it). Read-only tokens allow listing and reading only.

The IAM user needs :data:`STORAGE_ACTIONS` besides the plugin's other permissions.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from corral_aws.client import AwsClients, call
from corral_sdk.errors import Conflict, Invalid
from corral_sdk.providers._common import ProgressLog
from corral_sdk.providers.storage import (
    StorageBase,
    StorageInfo,
    StorageSpec,
    StorageState,
    TemporaryCredentials,
)

__all__ = [
    "CREDENTIALS_SECONDS",
    "STORAGE_ACTIONS",
    "TAG_STORAGE",
    "S3Bucket",
    "S3Options",
    "bucket_name",
    "bucket_policy",
]

TAG_STORAGE = "corral:storage"
"""Tag on every bucket: the kernel's uid of the session that made it."""
CREDENTIALS_SECONDS = 12 * 3600
"""Spec §2.7: AWS bucket credentials live 12 hours."""
STORAGE_ACTIONS: tuple[str, ...] = (
    "s3:CreateBucket",
    "s3:DeleteBucket",
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:GetBucketTagging",
    "s3:PutBucketTagging",
    "s3:PutBucketPublicAccessBlock",
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "sts:GetFederationToken",
)
"""What the account's IAM user needs for buckets (the plugin's README lists them)."""

_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")
_UID = re.compile(r"^[a-z0-9]{8,32}$")
_READ = ("s3:GetObject", "s3:GetObjectVersion")
_WRITE = ("s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload")
_BUCKET_READ = ("s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads")


class S3Options(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An S3 bucket's options (the Add Storage form: Region, required)."""

    region: str
    """The AWS region the bucket is in (``us-east-1``)."""

    def __post_init__(self) -> None:
        if not _REGION.match(self.region):
            raise Invalid(f"{self.region!r} is not an AWS region (us-east-1...)", field="region")


def bucket_name(spec: StorageSpec) -> str:
    """``corral-<name>-<uid>``: at most 56 characters of lowercase letters, digits and hyphens,
    valid for S3 whatever the storage's name (Corral's are lowercase letters and digits)."""
    uid = spec.resource_id.lower()
    if not _UID.match(uid):
        raise Invalid(f"resource id {spec.resource_id!r} cannot name a bucket", field="resource_id")
    name = re.sub(r"[^a-z0-9]", "", spec.name.lower())[:24]
    return f"corral-{name}-{uid}" if name else f"corral-{uid}"


def bucket_policy(bucket: str, *, partition: str = "aws", read_only: bool = False) -> str:
    """The session policy of a bucket's credentials: S3 on ``bucket`` and its objects only."""
    arn = f"arn:{partition}:s3:::{bucket}"
    objects = [*_READ] if read_only else [*_READ, *_WRITE]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": list(_BUCKET_READ), "Resource": [arn]},
                {"Effect": "Allow", "Action": objects, "Resource": [f"{arn}/*"]},
            ],
        },
        separators=(",", ":"),
    )


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class S3Bucket(StorageBase):
    """Stateless but for its clients' cache (short-lived credentials per account)."""

    def __init__(self) -> None:
        self.clients = AwsClients()

    def _s3(self, spec: StorageSpec, region: str) -> Any:
        """An S3 client in ``region`` (blocking: call it in a thread)."""
        if spec.account is None:
            raise Invalid("an S3 bucket needs an AWS cloud account", field="cloud_account")
        return self.clients.client(spec.account, "s3", region)

    @staticmethod
    def _options(spec: StorageSpec) -> S3Options:
        if not isinstance(spec.options, S3Options):
            raise Invalid("an S3 bucket needs its options (region)", field="region")
        return spec.options

    async def validate(self, spec: StorageSpec) -> None:
        options = self._options(spec)
        if spec.account is None:
            raise Invalid("an S3 bucket needs an AWS cloud account", field="cloud_account")
        allowed = self.clients.settings(spec.account).regions
        if allowed and options.region not in allowed:
            raise Invalid(
                f"cloud account {spec.account.name!r} may use {', '.join(allowed)}, not "
                f"{options.region}",
                field="region",
            )
        if spec.resource_id:
            bucket_name(spec)

    async def estimate_cost(self, spec: StorageSpec) -> None:
        return None  # S3 is billed by what is stored and moved, not by the hour

    def _info(self, spec: StorageSpec, bucket: str, region: str) -> StorageInfo:
        partition = "aws-us-gov" if spec.account is not None and spec.account.govcloud else "aws"
        return StorageInfo(
            id=bucket,
            state=StorageState.AVAILABLE,
            uri=f"s3://{bucket}",
            region=region,
            details={"arn": f"arn:{partition}:s3:::{bucket}"},
        )

    async def provision(self, spec: StorageSpec, *, log: ProgressLog) -> StorageInfo:
        region = self._options(spec).region
        bucket = bucket_name(spec)
        uid = spec.resource_id.lower()
        await log.log("Authenticating cloud client")
        s3 = await call("reach S3", self._s3, spec, region)
        await log.log(f"Creating bucket {bucket} in {region}")

        def create() -> bool:
            """``True`` when it made the bucket, ``False`` when it was there already."""
            try:
                s3.head_bucket(Bucket=bucket)
            except Exception as exc:
                if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                    if _code(exc) in ("403", "AccessDenied"):
                        raise Conflict(
                            f"the S3 bucket name {bucket} belongs to another AWS account"
                        ) from None
                    raise
            else:
                tags = {t["Key"]: t["Value"] for t in _tags(s3, bucket)}
                if tags.get(TAG_STORAGE) != uid:
                    raise Conflict(
                        f"an S3 bucket named {bucket} exists that Corral did not make for this "
                        "storage"
                    )
                return False
            settings: dict[str, Any] = {}
            if region != "us-east-1":
                settings["CreateBucketConfiguration"] = {"LocationConstraint": region}
            try:
                s3.create_bucket(Bucket=bucket, **settings)
            except Exception as exc:
                if _code(exc) == "BucketAlreadyOwnedByYou":
                    return False
                if _code(exc) == "BucketAlreadyExists":
                    raise Conflict(
                        f"the S3 bucket name {bucket} is taken (bucket names are global)"
                    ) from None
                raise
            return True

        made = await call(f"create S3 bucket {bucket}", create)
        tags = {**spec.tags, TAG_STORAGE: uid}

        def configure() -> None:
            s3.put_public_access_block(
                Bucket=bucket,
                PublicAccessBlockConfiguration={
                    "BlockPublicAcls": True,
                    "IgnorePublicAcls": True,
                    "BlockPublicPolicy": True,
                    "RestrictPublicBuckets": True,
                },
            )
            s3.put_bucket_tagging(
                Bucket=bucket,
                Tagging={"TagSet": [{"Key": k, "Value": v[:256]} for k, v in tags.items()]},
            )

        await call(f"configure S3 bucket {bucket}", configure)
        await log.log(
            f"Bucket {'created' if made else 'found'}: s3://{bucket} (public access blocked)"
        )
        return self._info(spec, bucket, region)

    async def describe(self, spec: StorageSpec, info: StorageInfo) -> StorageInfo:
        bucket = info.id or bucket_name(spec)
        region = info.region or self._options(spec).region

        def exists() -> bool:
            try:
                self._s3(spec, region).head_bucket(Bucket=bucket)
            except Exception as exc:
                if _code(exc) in ("404", "NoSuchBucket", "NotFound"):
                    return False
                raise
            return True

        if await call(f"look at S3 bucket {bucket}", exists):
            return self._info(spec, bucket, region)
        return msgspec.structs.replace(info, id=bucket, state=StorageState.DELETED)

    async def deprovision(self, spec: StorageSpec, info: StorageInfo, *, log: ProgressLog) -> None:
        bucket = info.id or bucket_name(spec)
        region = info.region or self._options(spec).region
        s3 = await call("reach S3", self._s3, spec, region)

        def empty() -> int | None:
            """Delete every object version and delete marker; ``None`` if the bucket is gone."""
            deleted = 0
            try:
                pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
                for page in pages:
                    keys = [
                        {"Key": o["Key"], "VersionId": o["VersionId"]}
                        for o in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
                    ]
                    for start in range(0, len(keys), 1000):
                        batch = keys[start : start + 1000]
                        s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
                        deleted += len(batch)
            except Exception as exc:
                if _code(exc) == "NoSuchBucket":
                    return None
                raise
            return deleted

        deleted = await call(f"empty S3 bucket {bucket}", empty)
        if deleted is None:
            await log.log(f"Bucket {bucket} is already gone")
            return
        await log.log(f"Emptied bucket {bucket}: {deleted} object versions deleted")

        def remove() -> None:
            try:
                s3.delete_bucket(Bucket=bucket)
            except Exception as exc:
                if _code(exc) != "NoSuchBucket":
                    raise

        await call(f"delete S3 bucket {bucket}", remove)
        await log.log(f"Bucket {bucket} deleted")

    async def temporary_credentials(
        self,
        spec: StorageSpec,
        info: StorageInfo,
        *,
        read_only: bool = False,
        ttl_seconds: int | None = None,
    ) -> TemporaryCredentials:
        if spec.account is None:
            raise Invalid("an S3 bucket needs an AWS cloud account", field="cloud_account")
        account = spec.account
        if (await self.describe(spec, info)).state is not StorageState.AVAILABLE:
            raise Conflict(f"the S3 bucket {info.id} does not exist (is the storage active?)")
        bucket, region = info.id, info.region or self._options(spec).region
        seconds = ttl_seconds or CREDENTIALS_SECONDS
        partition = "aws-us-gov" if account.govcloud else "aws"
        policy = bucket_policy(bucket, partition=partition, read_only=read_only)

        def federate() -> dict[str, Any]:
            sts = self.clients.long_term_client(account, "sts")
            token: dict[str, Any] = sts.get_federation_token(
                Name=f"corral-{spec.resource_id}"[:32], Policy=policy, DurationSeconds=seconds
            )["Credentials"]
            return token

        token = await call(f"make credentials for S3 bucket {bucket}", federate)
        expires = token.get("Expiration")
        expires_at = (
            expires.astimezone(UTC)
            if isinstance(expires, datetime)
            else datetime.now(UTC) + timedelta(seconds=seconds)
        )
        endpoint = self.clients.settings(account).endpoint("s3") or ""
        env = {
            "AWS_ACCESS_KEY_ID": token["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": token["SecretAccessKey"],
            "AWS_SESSION_TOKEN": token["SessionToken"],
            "AWS_DEFAULT_REGION": region,
            "BUCKET_NAME": bucket,
        }
        if endpoint:
            env["AWS_ENDPOINT_URL_S3"] = endpoint
        return TemporaryCredentials(
            env=env,
            expires_at=expires_at,
            uri=f"s3://{bucket}",
            commands=(
                f"aws s3 ls s3://{bucket}/",
                f"aws s3 cp ./file.txt s3://{bucket}/file.txt",
                f"aws s3 cp s3://{bucket}/file.txt ./file.txt",
                f"aws s3 rm s3://{bucket}/file.txt",
            ),
            credentials={
                "accessKeyId": token["AccessKeyId"],
                "secretAccessKey": token["SecretAccessKey"],
                "sessionToken": token["SessionToken"],
            },
            bucket_name=bucket,
            region=region,
            endpoint_url=endpoint,
        )


def _tags(s3: Any, bucket: str) -> list[dict[str, str]]:
    try:
        tags: list[dict[str, str]] = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    except Exception as exc:
        if _code(exc) == "NoSuchTagSet":
            return []
        raise
    return tags
