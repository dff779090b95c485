"""Capabilities that providers declare, as enums: the kernel queries them, never string-matches.

A provider declares the features it supports in its registration record; the kernel and the UI
use them to decide what to offer (a "Spot" checkbox only where :attr:`CloudFeature.SPOT` is
declared). The conformance suites in :mod:`corral_sdk.testing` check that a provider implements
the methods each declared feature needs.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "AIFeature",
    "AuthFeature",
    "CloudFeature",
    "SchedulerFeature",
    "SessionFeature",
    "StorageCategory",
    "StorageFeature",
    "WorkflowActionFeature",
]


class CloudFeature(StrEnum):
    """What a cloud provider can do beyond launching and terminating instances."""

    NETWORKS = "networks"
    """Creates and deletes networks (VPCs / VNets / subnets) with per-region CIDRs."""
    SPOT = "spot"
    """Offers spot / preemptible capacity."""
    PLACEMENT_GROUPS = "placement-groups"
    """Places a partition's instances close together."""
    CAPACITY_RESERVATIONS = "capacity-reservations"
    """Launches into capacity reservations."""
    MULTI_ZONE = "multi-zone"
    """Falls back across availability zones when one has no capacity."""
    STATIC_IPS = "static-ips"
    """Allocates, attaches and releases static IP addresses."""
    OS_SNAPSHOTS = "os-snapshots"
    """Creates machine images from a running instance's disk."""
    GPUS = "gpus"
    """Offers instance types with accelerators."""
    BILLING_IMPORT = "billing-import"
    """Imports actual costs from the cloud's billing API."""
    INSTANCE_PRICES = "instance-prices"
    """Reports a price per hour for its instance types."""


class SchedulerFeature(StrEnum):
    """What a batch scheduler plugin supports beyond submit, status and cancel."""

    HOLD_RELEASE = "hold-release"
    JOB_ARRAYS = "job-arrays"
    ACCOUNTING = "accounting"
    PARTITIONS = "partitions"
    NODES = "nodes"
    ELASTIC_NODES = "elastic-nodes"
    """Can declare cloud nodes that are powered up and down on demand."""
    BATCH_SUBMIT = "batch-submit"
    """Submits several jobs in one command (``submit_many``)."""


class StorageCategory(StrEnum):
    """What kind of storage a storage type makes: each has its own page and rules (not a
    feature, but declared in the record the same way)."""

    BUCKET = "bucket"
    """An object store (S3, Blob, GCS): no size, temporary credentials, CSP URIs."""
    DISK = "disk"
    """A block volume in one zone, attached to one node at a time (EBS, Azure Disk, PD)."""
    NFS = "nfs"
    """A shared file system mounted over NFS (EFS, Azure Files, Filestore)."""
    LUSTRE = "lustre"
    """A parallel file system for high-I/O compute (FSx for Lustre, Azure Managed Lustre); the
    only category that may be ephemeral (created and destroyed with its cluster)."""


class StorageFeature(StrEnum):
    """What a storage type supports."""

    MOUNT = "mount"
    """Can be mounted on clusters (gives mount instructions)."""
    TEMPORARY_CREDENTIALS = "temporary-credentials"
    TRANSFER = "transfer"
    SNAPSHOTS = "snapshots"
    RESIZE = "resize"
    OBJECT_LISTING = "object-listing"


class AuthFeature(StrEnum):
    """How an auth method signs users in."""

    PASSWORD = "password"  # noqa: S105 - a capability, not a secret
    """Checks a username and password (built-in accounts, LDAP bind)."""
    REDIRECT = "redirect"
    """Sends the browser to an identity provider and handles its callback (OIDC, SAML)."""
    GROUP_SYNC = "group-sync"
    """Reports the user's groups at sign-in."""
    MFA = "mfa"


class AIFeature(StrEnum):
    """What an AI provider supports."""

    STREAMING = "streaming"
    TOOLS = "tools"
    EMBEDDINGS = "embeddings"
    VISION = "vision"


class SessionFeature(StrEnum):
    """What a session type needs or offers."""

    HTTP = "http"
    """Serves HTTP that the platform proxies."""
    WEBSOCKET = "websocket"
    HTTPS_BACKEND = "https-backend"
    NEEDS_SCHEDULER = "needs-scheduler"
    """Starts its server through the cluster's scheduler (on a compute node)."""
    WORKSPACE = "workspace"
    """Can run in the user's workspace on the Corral host."""


class WorkflowActionFeature(StrEnum):
    """What a workflow action (``uses: corral/<name>``) does."""

    NEEDS_TARGET = "needs-target"
    """Runs on the step's ``ssh`` target rather than inside Corral."""
    PRODUCES_OUTPUTS = "produces-outputs"
