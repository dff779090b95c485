"""Roles, granted to users only through the groups they belong to."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

__all__ = ["Principal", "Role"]


class Role(StrEnum):
    PLATFORM_ADMIN = "platform:admin"
    """Runs the platform: creates and deletes orgs, acts in every org."""
    ORG_ADMIN = "org:admin"
    """Full control over an organization; the only org role that assigns roles."""
    ORG_SETTINGS = "org:settings"
    """Manages organization settings."""
    ORG_USERS = "org:users"
    """Creates and manages users."""
    ORG_GROUPS = "org:groups"
    """Creates and manages groups, except groups holding ``org:admin``."""


@dataclass(frozen=True)
class Principal:
    """Who is calling, resolved from a credential on every request."""

    user_id: int
    username: str
    org_id: int
    org: str
    roles: frozenset[Role] = field(default_factory=frozenset)
    group_ids: frozenset[int] = field(default_factory=frozenset)
    credential_kind: str = "session"
    credential_id: int | None = None
    credential_expires_at: datetime | None = None
    scope: str = ""
    """``""``: everything the user may do; else the credential's narrower scope (a run's
    token without ``permissions: ['*']``: ``run:<id>:sessions``)."""

    @property
    def platform_admin(self) -> bool:
        return Role.PLATFORM_ADMIN in self.roles

    def has(self, *roles: Role) -> bool:
        """Holds any of ``roles``; org:admin and platform:admin hold every org role."""
        return self.platform_admin or Role.ORG_ADMIN in self.roles or bool(self.roles & set(roles))
