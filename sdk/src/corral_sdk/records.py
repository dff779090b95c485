"""Registration records: what registration hooks return.

Each record is a frozen msgspec struct naming one provider, the factory that builds it (a class,
or a ``"module:attribute"`` string imported only when the provider is first used, so listing
plugins stays cheap), the struct that decodes its configuration, the features it declares and its
docs.
The kernel refuses two records of one kind with the same name, naming both distributions.
"""

from __future__ import annotations

import importlib
import re
from typing import Any, ClassVar

import msgspec

from corral_sdk.errors import PluginError
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

__all__ = [
    "AIProviderRecord",
    "AuthMethodRecord",
    "CloudRecord",
    "Registration",
    "ResourceKindRecord",
    "SchedulerRecord",
    "SessionTypeRecord",
    "StorageTypeRecord",
    "WorkflowActionRecord",
    "WorkflowSourceRecord",
    "load_object",
]

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")
NAME_MAX = 63


def load_object(ref: str) -> Any:
    """Import ``"package.module:attribute"`` and return the attribute."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise PluginError(f"factory reference {ref!r} is not of the form 'module:attribute'")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PluginError(f"factory reference {ref!r}: {module_name} has no {attr}") from None
    return obj


class Registration(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Fields common to every registration record.

    ``name`` is lowercase letters, digits and single ``-`` or ``_`` separators, at most 63
    characters; it is what users type (``type = "slurm"``) and what the API shows.
    """

    kind: ClassVar[str] = "provider"

    name: str
    factory: str | type[Any]
    """The provider class, or ``"module:Class"`` imported lazily on first use."""
    config: Any = None
    """The msgspec struct that decodes this provider's per-resource configuration (or a union
    of tagged structs), or ``None``."""
    docs: str = ""
    """One paragraph for users: what it is and what it needs."""

    def __post_init__(self) -> None:
        if len(self.name) > NAME_MAX or not NAME_PATTERN.match(self.name):
            raise PluginError(
                f"{self.kind} name {self.name!r} must be lowercase letters and digits "
                f"separated by single '-' or '_', at most {NAME_MAX} characters"
            )
        if isinstance(self.factory, str) and ":" not in self.factory:
            raise PluginError(
                f"{self.kind} {self.name!r}: factory {self.factory!r} must be 'module:attribute'"
            )

    def load(self) -> Any:
        """Return the factory, importing it first when it is given as a string."""
        if isinstance(self.factory, str):
            return load_object(self.factory)
        return self.factory

    def create(self, *args: Any, **kwargs: Any) -> Any:
        """Build a provider instance from the factory."""
        return self.load()(*args, **kwargs)


class CloudRecord(Registration, frozen=True, kw_only=True):
    """A cloud provider (``aws``, ``azure``, ``local``...) implementing ``CloudProvider``."""

    kind: ClassVar[str] = "cloud"
    features: frozenset[CloudFeature] = frozenset()
    credentials: type[msgspec.Struct] | None = None
    """The struct of a cloud account's credential fields (encrypted at rest by the kernel)."""


class SchedulerRecord(Registration, frozen=True, kw_only=True):
    """A batch scheduler (``slurm``, ``pbs``) implementing ``Scheduler``."""

    kind: ClassVar[str] = "scheduler"
    features: frozenset[SchedulerFeature] = frozenset()


class StorageTypeRecord(Registration, frozen=True, kw_only=True):
    """A storage type (``aws-s3``, ``nfs``, ``lustre``...) implementing ``StorageType``.

    ``category`` says which page and rules its storage follows (only ``lustre`` may be
    ephemeral); ``cloud`` names the cloud (a :class:`CloudRecord` name, also the ``csp`` users
    filter on) whose accounts hold its storage: the kernel hands the resource's cloud account
    to every call in :attr:`~corral_sdk.providers.storage.StorageSpec.account`. Empty for
    storage outside any cloud (an NFS server of the site)."""

    kind: ClassVar[str] = "storage_type"
    category: StorageCategory
    cloud: str = ""
    label: str = ""
    """What users see in the Storage Type list (``AWS S3 Bucket``); the name when empty."""
    features: frozenset[StorageFeature] = frozenset()


class AuthMethodRecord(Registration, frozen=True, kw_only=True):
    """A way to sign in (``password``, ``ldap``, ``oidc``) implementing ``AuthMethod``."""

    kind: ClassVar[str] = "auth_method"
    features: frozenset[AuthFeature] = frozenset()


class AIProviderRecord(Registration, frozen=True, kw_only=True):
    """A model vendor (``openai``-compatible...) implementing ``AIProvider``."""

    kind: ClassVar[str] = "ai_provider"
    features: frozenset[AIFeature] = frozenset()


class SessionTypeRecord(Registration, frozen=True, kw_only=True):
    """An interactive session type (``jupyter``, ``desktop``, ``tunnel``...) implementing
    ``SessionType``."""

    kind: ClassVar[str] = "session_type"
    features: frozenset[SessionFeature] = frozenset()


class WorkflowActionRecord(Registration, frozen=True, kw_only=True):
    """A workflow action, used in YAML as ``uses: corral/<name>``, implementing
    ``WorkflowAction``."""

    kind: ClassVar[str] = "workflow_action"
    features: frozenset[WorkflowActionFeature] = frozenset()


WORKFLOW_SOURCE_RESERVED = frozenset({"workflow", "corral", "parallelworks"})
"""``uses:`` prefixes no workflow source may take: the user's own workflows, and actions."""


class WorkflowSourceRecord(Registration, frozen=True, kw_only=True):
    """Where ``uses: <name>/...`` workflows come from (``github``, ``marketplace``),
    implementing ``WorkflowSource``; ``name`` is the prefix before the first ``/``. The factory
    is called with no arguments. ``workflow``, ``corral`` and ``parallelworks`` are taken."""

    kind: ClassVar[str] = "workflow_source"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.name in WORKFLOW_SOURCE_RESERVED:
            raise PluginError(
                f"workflow source name {self.name!r} is taken: `uses: {self.name}/...` names "
                + ("the user's own workflows" if self.name == "workflow" else "actions")
            )


class ResourceKindRecord(Registration, frozen=True, kw_only=True):
    """A kind of long-lived resource whose state the kernel reconciles.

    The kernel stores every resource in one table (owner, name, desired and observed state,
    generation, ``spec`` decoded by ``config``); ``factory`` builds the kind's ``Reconciler``.
    ``states`` lists every observed state; ``terminal_states`` those from which nothing more
    happens until the desired state changes again (the periodic sweep skips them when they
    match the desired state).
    """

    kind: ClassVar[str] = "resource_kind"
    states: tuple[str, ...]
    initial_state: str
    terminal_states: frozenset[str] = frozenset()
    share_levels: tuple[str, ...] = ("view", "edit")
    """The levels at which a resource of this kind may be shared with a group, lowest first
    (clusters: ``login``, ``sudo``, ``writer``, ``admin``; storage: ``mount``, ``view_edit``)."""
    name_pattern: str = ""
    """A regular expression the whole name must match, when the kind names its resources
    differently from the default (lowercase letters, digits and hyphens, 2 to 63)."""
    name_max_length: int = 63
    name_rule: str = ""
    """The rule in words, for the error message (with ``name_pattern``)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.initial_state not in self.states:
            raise PluginError(
                f"resource kind {self.name!r}: initial state {self.initial_state!r} "
                f"is not one of its states {list(self.states)}"
            )
        unknown = sorted(self.terminal_states - set(self.states))
        if unknown:
            raise PluginError(
                f"resource kind {self.name!r}: terminal states {unknown} are not among its states"
            )
