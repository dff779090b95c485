"""Provider protocols: the async, stateless interfaces that plugins implement.

Hooks register providers (:mod:`corral_sdk.hookspecs`); providers do the I/O. Each kind has a
:class:`typing.Protocol`, frozen msgspec structs for what goes in and out, and a table of the
methods each declared feature needs:

============================  =============================  ==============================
kind (module)                 the factory is called as       feature table
============================  =============================  ==============================
:class:`CloudProvider`        ``factory()``                  ``CLOUD_FEATURE_METHODS``
:class:`Scheduler`            ``factory(runner, config)``    ``SCHEDULER_FEATURE_METHODS``
:class:`StorageType`          ``factory()``                  ``STORAGE_FEATURE_METHODS``
:class:`AuthMethod`           ``factory(config)``            ``AUTH_FEATURE_METHODS``
:class:`AIProvider`           ``factory(config)``            ``AI_FEATURE_METHODS``
:class:`SessionType`          ``factory()``                  ``SESSION_FEATURE_METHODS``
:class:`WorkflowAction`       ``factory()``                  ``ACTION_FEATURE_METHODS``
:class:`WorkflowSource`       ``factory()``                  (no features)
============================  =============================  ==============================

``config`` is the record's ``config`` struct decoded from the resource's settings (``None`` when
the record has none), ``runner`` a :class:`~corral_sdk.transport.CommandRunner`. Everything else a
call needs (credentials, specs, previously returned ids) is passed to each method, and the kernel
owns persistence, retries, caching and secrets.

**Unsupported operations.** Every method of a protocol exists on every provider. Methods named in
a feature table are needed only when the provider declares that feature; the optional
``*Base`` mixins (:class:`CloudProviderBase`, :class:`SchedulerBase`, :class:`StorageBase`,
:class:`AuthMethodBase`, :class:`AIProviderBase`) implement them all as defaults that raise
``ProviderError(reason="unsupported")`` (:func:`unsupported`) and carry the
:func:`unsupported_default` mark. A provider that declares a feature must override its methods:
the conformance suites in :mod:`corral_sdk.testing` fail when a declared feature's method is still
a marked default. Providers written without the mixins raise :func:`unsupported` themselves.

**Methods.** Every protocol method is either ``async def`` (awaited once) or a ``def`` returning an
``AsyncIterator`` that implementations write as ``async def ... yield`` (:class:`MethodKind`).
"""

from corral_sdk.providers._common import (
    UNSUPPORTED,
    MethodKind,
    ProgressLog,
    StepState,
    is_unsupported,
    is_unsupported_default,
    optional_methods,
    protocol_methods,
    required_methods,
    unsupported,
    unsupported_default,
)
from corral_sdk.providers.action import (
    ACTION_FEATURE_METHODS,
    ActionContext,
    ReleasingAction,
    WorkflowAction,
)
from corral_sdk.providers.ai import AI_FEATURE_METHODS, AIProvider, AIProviderBase
from corral_sdk.providers.auth import AUTH_FEATURE_METHODS, AuthMethod, AuthMethodBase
from corral_sdk.providers.cloud import CLOUD_FEATURE_METHODS, CloudProvider, CloudProviderBase
from corral_sdk.providers.scheduler import (
    SCHEDULER_FEATURE_METHODS,
    JobState,
    Scheduler,
    SchedulerBase,
)
from corral_sdk.providers.session import SESSION_FEATURE_METHODS, SessionType
from corral_sdk.providers.storage import STORAGE_FEATURE_METHODS, StorageBase, StorageType
from corral_sdk.providers.workflow_source import ResolvedWorkflow, WorkflowSource

__all__ = [
    "ACTION_FEATURE_METHODS",
    "AI_FEATURE_METHODS",
    "AUTH_FEATURE_METHODS",
    "CLOUD_FEATURE_METHODS",
    "SCHEDULER_FEATURE_METHODS",
    "SESSION_FEATURE_METHODS",
    "STORAGE_FEATURE_METHODS",
    "UNSUPPORTED",
    "AIProvider",
    "AIProviderBase",
    "ActionContext",
    "AuthMethod",
    "AuthMethodBase",
    "CloudProvider",
    "CloudProviderBase",
    "JobState",
    "MethodKind",
    "ProgressLog",
    "ReleasingAction",
    "ResolvedWorkflow",
    "Scheduler",
    "SchedulerBase",
    "SessionType",
    "StepState",
    "StorageBase",
    "StorageType",
    "WorkflowAction",
    "WorkflowSource",
    "is_unsupported",
    "is_unsupported_default",
    "optional_methods",
    "protocol_methods",
    "required_methods",
    "unsupported",
    "unsupported_default",
]
