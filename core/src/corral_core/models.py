"""Every table of the kernel, imported in one place for migrations and metadata checks."""

from corral_core.audit.models import AuditRecord
from corral_core.clusters.models import (
    CapacityReservationRecord,
    CloudAccountGrant,
    CloudAccountRecord,
    ClusterJob,
    ClusterNode,
    ClusterSession,
    OrgInstancePolicy,
    ProvisionStep,
)
from corral_core.events.models import EventCursor, EventRecord
from corral_core.identity.models import (
    Credential,
    Grant,
    Group,
    GroupMember,
    Org,
    SshKey,
    User,
    UserKeyPair,
)
from corral_core.leases import Lease
from corral_core.marketplace.models import (
    MarketplaceFavorite,
    MarketplaceItem,
    MarketplaceItemGroup,
    MarketplaceSubscription,
    MarketplaceVersion,
)
from corral_core.resources.models import Resource
from corral_core.sessions.models import SessionActivity
from corral_core.ssh.models import HostKey
from corral_core.storage.models import StorageFavorite, StorageLogLine, StorageSession
from corral_core.workflows.models import (
    RunJob,
    RunLogLine,
    RunStep,
    WorkflowFavorite,
    WorkflowRun,
    WorkflowVersion,
)
from corral_core.workflows.variables import OrgVariable

__all__ = [
    "AuditRecord",
    "CapacityReservationRecord",
    "CloudAccountGrant",
    "CloudAccountRecord",
    "ClusterJob",
    "ClusterNode",
    "ClusterSession",
    "Credential",
    "EventCursor",
    "EventRecord",
    "Grant",
    "Group",
    "GroupMember",
    "HostKey",
    "Lease",
    "MarketplaceFavorite",
    "MarketplaceItem",
    "MarketplaceItemGroup",
    "MarketplaceSubscription",
    "MarketplaceVersion",
    "Org",
    "OrgInstancePolicy",
    "OrgVariable",
    "ProvisionStep",
    "Resource",
    "RunJob",
    "RunLogLine",
    "RunStep",
    "SessionActivity",
    "SshKey",
    "StorageFavorite",
    "StorageLogLine",
    "StorageSession",
    "User",
    "UserKeyPair",
    "WorkflowFavorite",
    "WorkflowRun",
    "WorkflowVersion",
]
