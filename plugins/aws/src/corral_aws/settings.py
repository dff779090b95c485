"""What an AWS cloud account holds: its credentials (encrypted at rest by the kernel) and its
settings (not secret). Both are decoded and checked here, before any network call."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from corral_sdk.errors import Invalid
from corral_sdk.providers._common import redacted_repr

__all__ = ["AwsCredentials", "AwsSettings", "parse_settings"]

_ACCOUNT_ID = re.compile(r"^\d{12}$")
_ACCESS_KEY_ID = re.compile(r"^[A-Z0-9]{16,128}$")

DEFAULT_IMAGES = ("al2023-ami-2023.*-x86_64", "al2023-ami-2023.*-arm64")
"""Amazon Linux 2023 (not the minimal variant), both architectures."""


class AwsCredentials(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The AWS credential fields of a cloud account (spec: Account ID, AWS Access Key ID, AWS
    Secret Access Key)."""

    account_id: str
    """The 12-digit AWS account ID."""
    access_key_id: str
    """The IAM user's access key ID: the account's principal."""
    secret_access_key: str
    corral_key_id: str = ""
    """Set by Corral: the access key it made itself when it rotated the one typed in (a key
    that is not this one gets rotated)."""
    retired_key_id: str = ""
    """Set by Corral: the typed key a rotation replaced, deleted once the new one is stored."""

    def __post_init__(self) -> None:
        if not _ACCOUNT_ID.match(self.account_id):
            raise Invalid(
                f"the AWS account ID must be 12 digits, not {self.account_id!r}",
                field="credentials.account_id",
            )
        if not _ACCESS_KEY_ID.match(self.access_key_id):
            raise Invalid(
                "the AWS access key ID must be 16 to 128 uppercase letters and digits",
                field="credentials.access_key_id",
            )
        if not self.secret_access_key.strip():
            raise Invalid(
                "the AWS secret access key is empty", field="credentials.secret_access_key"
            )

    def __repr__(self) -> str:
        return redacted_repr(self, frozenset({"secret_access_key"}))


class AwsSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A cloud account's non-secret AWS settings (``CloudAccount.settings``)."""

    endpoint_url: str = ""
    """One endpoint for every AWS API (an emulator, a VPC endpoint); empty for AWS's own."""
    endpoints: dict[str, str] = msgspec.field(default_factory=dict)
    """Per-service endpoints (``{"ec2": "https://ec2.us-gov-west-1.amazonaws.com"}``)."""
    region: str = ""
    """Where STS and IAM are called; default ``us-east-1`` (``us-gov-west-1`` with GovCloud)."""
    regions: list[str] = msgspec.field(default_factory=list)
    """Regions the account may use; empty for every region the account has enabled."""
    rotate_keys: bool = True
    """Replace the access key an admin typed by one only Corral knows (spec: the typed key stops
    working); needs iam:CreateAccessKey and iam:DeleteAccessKey on the user itself."""
    max_attempts: int = 8
    """Attempts per API call when AWS throttles or fails transiently (exponential back-off)."""
    verify_tls: bool = True
    catalogue: str = ""
    """A catalogue file written by ``python -m corral_aws.catalogue``; empty for the shipped one."""
    images: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_IMAGES))
    """Name patterns (``DescribeImages`` ``name`` filter) of the base images offered; the newest
    match of each architecture is marked ``latest``."""
    image_owners: list[str] = msgspec.field(default_factory=lambda: ["amazon"])
    """Owners of the base images (an alias such as ``amazon`` or account IDs)."""

    def __post_init__(self) -> None:
        for field, url in [("endpoint_url", self.endpoint_url), *self.endpoints.items()]:
            if url and not url.startswith(("http://", "https://")):
                raise Invalid(f"{url!r} is not an http(s) URL", field=f"settings.{field}")
        if not self.images:
            raise Invalid("give at least one image name pattern", field="settings.images")
        if not 1 <= self.max_attempts <= 20:
            raise Invalid("max_attempts must be between 1 and 20", field="settings.max_attempts")

    def endpoint(self, service: str) -> str | None:
        return self.endpoints.get(service) or self.endpoint_url or None

    def home_region(self, govcloud: bool) -> str:
        return self.region or ("us-gov-west-1" if govcloud else "us-east-1")


def parse_settings(raw: dict[str, Any]) -> AwsSettings:
    try:
        return msgspec.convert(raw, AwsSettings)
    except msgspec.ValidationError as exc:
        raise Invalid(f"AWS account settings: {exc}", field="settings") from None
