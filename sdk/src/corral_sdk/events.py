"""Events: what happened, for webhooks, costs, notifications and live views to consume."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

__all__ = ["Event"]


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """One durable event. ``id`` grows monotonically, so followers resume from an offset.

    ``type`` is dotted, most general first: ``resource.state_changed``, ``cluster.started``.
    ``subject`` names what it is about (``resource:42``); ``org`` scopes who may see it.
    """

    id: int
    type: str
    subject: str = ""
    org: str | None = None
    actor: str | None = None
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    created_at: datetime
