"""Everything a plugin author needs in one import::

from corral_sdk.plugin import hookimpl, SchedulerRecord, SchedulerFeature

@hookimpl
def corral_register_schedulers():
    return [SchedulerRecord(name="myscheduler", factory="corral_mine.scheduler:Mine")]
"""

from __future__ import annotations

import pluggy

from corral_sdk.config import PluginConfig
from corral_sdk.errors import (
    Conflict,
    CorralError,
    Invalid,
    NotFound,
    PermissionDenied,
    ProviderError,
    Timeout,
    TransportError,
)
from corral_sdk.events import Event
from corral_sdk.features import (
    AIFeature,
    AuthFeature,
    CloudFeature,
    SchedulerFeature,
    SessionFeature,
    StorageCategory,
    StorageFeature,
    WorkflowActionFeature,
)
from corral_sdk.hookspecs import PROJECT_NAME
from corral_sdk.reconcile import ReconcileContext, Reconciler, ReconcileResult, ResourceSnapshot
from corral_sdk.records import (
    AIProviderRecord,
    AuthMethodRecord,
    CloudRecord,
    ResourceKindRecord,
    SchedulerRecord,
    SessionTypeRecord,
    StorageTypeRecord,
    WorkflowActionRecord,
)

__all__ = [
    "AIFeature",
    "AIProviderRecord",
    "AuthFeature",
    "AuthMethodRecord",
    "CloudFeature",
    "CloudRecord",
    "Conflict",
    "CorralError",
    "Event",
    "Invalid",
    "NotFound",
    "PermissionDenied",
    "PluginConfig",
    "ProviderError",
    "ReconcileContext",
    "ReconcileResult",
    "Reconciler",
    "ResourceKindRecord",
    "ResourceSnapshot",
    "SchedulerFeature",
    "SchedulerRecord",
    "SessionFeature",
    "SessionTypeRecord",
    "StorageCategory",
    "StorageFeature",
    "StorageTypeRecord",
    "Timeout",
    "TransportError",
    "WorkflowActionFeature",
    "WorkflowActionRecord",
    "hookimpl",
]

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marks a function as the implementation of a hook in :mod:`corral_sdk.hookspecs`."""
