"""The hooks of the AWS plugin: the cloud and the S3 bucket storage type, registered without
importing boto3 or the providers (both are loaded on first use)."""

from __future__ import annotations

from corral_aws.settings import AwsCredentials
from corral_aws.storage import S3Options
from corral_sdk.plugin import (
    CloudFeature,
    CloudRecord,
    StorageCategory,
    StorageFeature,
    StorageTypeRecord,
    hookimpl,
)

__all__ = ["RECORD", "S3_RECORD", "corral_register_clouds", "corral_register_storage_types"]

RECORD = CloudRecord(
    name="aws",
    factory="corral_aws.provider:AwsCloud",
    credentials=AwsCredentials,
    features=frozenset(
        {
            CloudFeature.NETWORKS,
            CloudFeature.SPOT,
            CloudFeature.PLACEMENT_GROUPS,
            CloudFeature.CAPACITY_RESERVATIONS,
            CloudFeature.MULTI_ZONE,
            CloudFeature.STATIC_IPS,
            CloudFeature.OS_SNAPSHOTS,
            CloudFeature.GPUS,
            CloudFeature.INSTANCE_PRICES,
        }
    ),
    docs=(
        "Amazon Web Services: elastic Slurm clusters on EC2 in a VPC network (four networking "
        "modes), placement groups, capacity reservations, spot capacity with zone fallback, "
        "OS snapshots (AMIs) and Elastic IPs. Credentials: the 12-digit account ID, an access key "
        "ID and its secret; all work uses short-lived STS federation tokens. Account settings: "
        "endpoint_url (one endpoint for every AWS API: a regional, FIPS or GovCloud endpoint, or "
        "an emulator), endpoints (per service), region (where STS and IAM are called, default "
        "us-east-1), regions (an allow-list), max_attempts (retries with back-off for throttled "
        "calls, default 8)."
    ),
)
"""The cloud this plugin registers."""


@hookimpl
def corral_register_clouds() -> list[CloudRecord]:
    return [RECORD]


S3_RECORD = StorageTypeRecord(
    name="aws-s3",
    factory="corral_aws.storage:S3Bucket",
    config=S3Options,
    category=StorageCategory.BUCKET,
    cloud="aws",
    label="AWS S3 Bucket",
    features=frozenset({StorageFeature.TEMPORARY_CREDENTIALS}),
    docs=(
        "An S3 bucket in a region of an AWS cloud account (option: region), named "
        "corral-<name>-<id>, public access blocked, tagged with Corral's cost tags; stopping it "
        "deletes it and everything in it. Temporary credentials: a 12-hour STS federation token "
        "allowed S3 on this bucket only."
    ),
)
"""The storage type this plugin registers."""


@hookimpl
def corral_register_storage_types() -> list[StorageTypeRecord]:
    return [S3_RECORD]
