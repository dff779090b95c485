"""What a resource kind's reconciler sees and returns.

The kernel owns persistence: a reconciler receives a snapshot of the resource, looks at the world
(a cloud API, a cluster over SSH), acts to move it towards the desired state, and returns the
observed state. Reconcilers must be idempotent and level-triggered: the kernel may call them again
for the same generation (after a crash, at the periodic sweep), so they observe before they act.
The kernel guarantees that at most one reconcile of a resource runs at a time, across processes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import msgspec

__all__ = ["ReconcileContext", "ReconcileResult", "Reconciler", "ResourceSnapshot"]


class ResourceSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """A resource as stored when its reconcile started."""

    id: int
    kind: str
    org: str
    owner: str
    name: str
    spec: dict[str, Any]
    desired_state: str
    observed_state: str
    generation: int
    """Grows by one each time the desired state or spec changes."""
    observed_generation: int
    """The generation that ``observed_state`` was last reconciled for."""
    status: dict[str, Any]
    """Whatever the reconciler stored last time (provider ids, addresses...)."""
    updated_at: datetime


class ReconcileResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a reconcile found and did.

    ``requeue_after`` (seconds) asks for another reconcile even if nothing changes, for states
    that are still moving (``provisioning``); ``None`` means the resource is settled.
    """

    observed_state: str
    reason: str = ""
    status: dict[str, Any] | None = None
    """Replaces the stored status when given."""
    requeue_after: float | None = None


@runtime_checkable
class ReconcileContext(Protocol):
    """Services the kernel lends a reconciler for one call."""

    @property
    def settings(self) -> Any:
        """The plugin's own settings (``[plugins.<name>]``), decoded, or ``None``."""
        ...

    async def heartbeat(self) -> None:
        """Extend this reconcile's lease; call it during long actions (the lease expires otherwise
        and another worker may start reconciling the same resource)."""
        ...

    async def emit(self, type: str, data: dict[str, Any] | None = None) -> None:
        """Append an event about this resource to the durable event log."""
        ...


@runtime_checkable
class Reconciler(Protocol):
    """Drives one kind of resource from its observed state towards its desired state."""

    async def reconcile(self, resource: ResourceSnapshot, ctx: ReconcileContext) -> ReconcileResult:
        """Observe, act if needed, and report the observed state. Must be idempotent."""
        ...
