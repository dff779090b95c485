"""Wire types of the kernel's own API responses (shared by the server and the CLI)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "ApiKeyCreate",
    "AuditEntry",
    "AuditList",
    "CredentialInfo",
    "GrantCreate",
    "GrantInfo",
    "GroupCreate",
    "GroupInfo",
    "GroupRoles",
    "GroupUpdate",
    "Health",
    "IssuedCredential",
    "LoginRequest",
    "OrgAdmin",
    "OrgCreate",
    "OrgInfo",
    "Page",
    "PluginInfo",
    "Problem",
    "Registered",
    "ResourceCreate",
    "ResourceInfo",
    "ResourceList",
    "ResourceUpdate",
    "SshKeyCreate",
    "SshKeyInfo",
    "TokenCreate",
    "UserCreate",
    "UserInfo",
    "UserList",
    "UserUpdate",
    "VersionInfo",
    "Whoami",
]


class Registered(msgspec.Struct, frozen=True, kw_only=True):
    """What a plugin registers of one kind: ``scheduler`` → ``["slurm"]``."""

    kind: str
    names: list[str]


class PluginInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One plugin as the kernel found it."""

    name: str
    distribution: str
    version: str
    status: Literal["loaded", "failed", "denied"]
    reason: str = ""
    """Why it failed or was denied; empty when loaded."""
    builtin: bool = False
    registers: list[Registered] = msgspec.field(default_factory=list)


class Health(msgspec.Struct, frozen=True, kw_only=True):
    status: Literal["ok", "degraded"]
    version: str
    mode: str
    checks: dict[str, str] = msgspec.field(default_factory=dict)


class VersionInfo(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    components: dict[str, str] = msgspec.field(default_factory=dict)


class Problem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem details body."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str = ""
    instance: str = ""
    reason: str = ""
    errors: list[dict[str, Any]] = msgspec.field(default_factory=list)


# --- identity -----------------------------------------------------------------------------------


class _Request(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Request bodies reject unknown fields, so a typo is an error rather than ignored."""


class LoginRequest(_Request, frozen=True, kw_only=True):
    username: str
    password: str
    method: str = "password"


class Whoami(msgspec.Struct, frozen=True, kw_only=True):
    username: str
    org: str
    roles: list[str]
    groups: list[str] = msgspec.field(default_factory=list)
    credential: str
    """How this request authenticated: ``session``, ``apikey`` or ``token``."""
    credential_id: int | None = None
    credential_expires_at: datetime | None = None


class ApiKeyCreate(_Request, frozen=True, kw_only=True):
    name: str
    expiration_days: Annotated[int, msgspec.Meta(ge=0, le=100_000)] | None = None
    """None (no expiry), 7, 30, 60 or 90, as the organization's policy allows."""


class TokenCreate(_Request, frozen=True, kw_only=True):
    expiration_hours: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 24
    """1 to 24."""


class CredentialInfo(msgspec.Struct, frozen=True, kw_only=True):
    """An API key or token as listed: never its secret."""

    id: int
    kind: str
    name: str
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None


class IssuedCredential(msgspec.Struct, frozen=True, kw_only=True):
    """A new API key or token: ``secret`` is shown this once and cannot be retrieved again."""

    id: int
    kind: str
    name: str
    created_at: datetime
    expires_at: datetime | None = None
    secret: str


class SshKeyCreate(_Request, frozen=True, kw_only=True):
    name: str
    key: str


class SshKeyInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    key: str
    fingerprint: str
    created_at: datetime | None = None
    system: bool = False
    """The platform's own key for this user (not deletable)."""


class OrgAdmin(_Request, frozen=True, kw_only=True):
    username: str
    password: str | None = None
    email: str = ""


class OrgCreate(_Request, frozen=True, kw_only=True):
    name: str
    display_name: str = ""
    seats: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] = 0
    """0 means unlimited."""
    admin: OrgAdmin | None = None
    """The organization's first user, made a member of ``org-admins`` (``org:admin``)."""


class OrgInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    display_name: str
    seats: int
    managed_by: str | None = None
    created_at: datetime


class UserCreate(_Request, frozen=True, kw_only=True):
    username: str
    name: str = ""
    email: str = ""
    password: str | None = None
    groups: list[str] = msgspec.field(default_factory=list)


class UserUpdate(_Request, frozen=True, kw_only=True):
    name: str | None = None
    email: str | None = None
    password: str | None = None
    disabled: bool | None = None
    no_seat: bool | None = None


class UserInfo(msgspec.Struct, frozen=True, kw_only=True):
    username: str
    name: str
    email: str
    org: str
    status: Literal["active", "disabled"]
    no_seat: bool = False
    created_at: datetime
    last_login_at: datetime | None = None


class Page(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    limit: int
    offset: int


class UserList(Page, frozen=True, kw_only=True):
    items: list[UserInfo]


class GroupCreate(_Request, frozen=True, kw_only=True):
    name: str
    description: str = ""


class GroupUpdate(_Request, frozen=True, kw_only=True):
    description: str | None = None
    allocation_total: float | None = None


class GroupRoles(_Request, frozen=True, kw_only=True):
    roles: list[str]


class GroupInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    description: str
    roles: list[str]
    members: int
    allocation_total: float | None = None
    created_at: datetime


class ResourceCreate(_Request, frozen=True, kw_only=True):
    kind: str
    name: str
    display_name: str = ""
    description: str = ""
    tags: list[str] = msgspec.field(default_factory=list)
    spec: dict[str, Any] = msgspec.field(default_factory=dict)
    desired_state: str | None = None


class ResourceUpdate(_Request, frozen=True, kw_only=True):
    desired_state: str | None = None
    spec: dict[str, Any] | None = None


class ResourceInfo(msgspec.Struct, frozen=True, kw_only=True):
    uri: str
    kind: str
    owner: str
    name: str
    display_name: str
    description: str
    tags: list[str]
    spec: dict[str, Any]
    desired_state: str
    observed_state: str
    reason: str
    generation: int
    observed_generation: int
    created_at: datetime
    updated_at: datetime


class ResourceList(Page, frozen=True, kw_only=True):
    items: list[ResourceInfo]


class GrantCreate(_Request, frozen=True, kw_only=True):
    level: str


class GrantInfo(msgspec.Struct, frozen=True, kw_only=True):
    group: str
    level: str
    created_at: datetime


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    source: str
    outcome: str


class AuditList(Page, frozen=True, kw_only=True):
    items: list[AuditEntry]
