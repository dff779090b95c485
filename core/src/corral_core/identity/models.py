"""Identity tables: organizations, users, groups, credentials, SSH keys, grants."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from corral_core.db import utcnow

__all__ = ["Credential", "Grant", "Group", "GroupMember", "Org", "SshKey", "User", "UserKeyPair"]


class Org(SQLModel, table=True):
    """An organization: the tenant boundary. ``seats`` = 0 means unlimited."""

    __tablename__ = "org"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=63, unique=True)
    display_name: str = Field(default="", max_length=255)
    seats: int = 0
    managed_by: int | None = Field(default=None, foreign_key="org.id")
    api_key_max_days: int | None = None
    """Org policy: the longest API key expiry users may choose (``None``: no limit)."""
    api_key_user_expiration: bool = True
    """Org policy: users choose their own API key expiry; otherwise the org default applies."""
    api_key_default_days: int | None = 90
    created_at: datetime = Field(default_factory=utcnow)


class User(SQLModel, table=True):
    """A named user; ``username`` is also their namespace (``pw://<username>/<name>``)."""

    __tablename__ = "user_account"
    # Lists page through an org's users by name without sorting them all.
    __table_args__ = (Index("ix_user_account_org_username", "org_id", "username"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="org.id", index=True)
    username: str = Field(max_length=255, unique=True)
    name: str = Field(default="", max_length=255)
    email: str = Field(default="", max_length=320)
    password_hash: str | None = Field(default=None, max_length=255)
    password_changed_at: datetime | None = None
    disabled: bool = False
    no_seat: bool = False
    posix_uid: int | None = None
    failed_logins: int = 0
    locked_until: datetime | None = None
    last_login_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Group(SQLModel, table=True):
    """A group of users in an org: roles, sharing and cost allocation go through groups."""

    __tablename__ = "user_group"
    __table_args__ = (UniqueConstraint("org_id", "name", name="uq_group_org_name"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="org.id", index=True)
    name: str = Field(max_length=63)
    description: str = Field(default="", max_length=1000)
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    allocation_total: float | None = None
    posix_gid: int | None = None
    created_at: datetime = Field(default_factory=utcnow)


class GroupMember(SQLModel, table=True):
    __tablename__ = "group_member"

    group_id: int = Field(foreign_key="user_group.id", primary_key=True, ondelete="CASCADE")
    user_id: int = Field(foreign_key="user_account.id", primary_key=True, ondelete="CASCADE")
    added_at: datetime = Field(default_factory=utcnow)


class Credential(SQLModel, table=True):
    """An API key, a short-lived token or a browser session; only a hash of the secret is kept.

    A credential reads ``<kind>_<public_id>_<secret>``; ``public_id`` finds the row, the secret
    is compared in constant time against ``secret_hash``.
    """

    __tablename__ = "credential"
    __table_args__ = (Index("ix_credential_user_kind", "user_id", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(max_length=32, unique=True)
    user_id: int = Field(foreign_key="user_account.id", ondelete="CASCADE")
    kind: str = Field(max_length=16)  # "apikey" | "token" | "session" | "run"
    name: str = Field(default="", max_length=255)
    scope: str = Field(default="", max_length=255)
    """What the credential may do: ``""`` all its user may, ``run:<id>:sessions`` only what a
    run's token without ``permissions: ['*']`` may (update the run's sessions)."""
    secret_hash: str = Field(max_length=128)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None
    last_used_at: datetime | None = None


class SshKey(SQLModel, table=True):
    """A user's public SSH key, for clusters' ``AuthorizedKeysCommand``."""

    __tablename__ = "ssh_key"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_ssh_key_user_name"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=255)
    public_key: str
    fingerprint: str = Field(max_length=128)
    created_at: datetime = Field(default_factory=utcnow)


class UserKeyPair(SQLModel, table=True):
    """The key pair Corral uses to reach clusters on the user's behalf; the private half is
    encrypted with the platform key and never leaves the server."""

    __tablename__ = "user_key_pair"

    user_id: int = Field(foreign_key="user_account.id", primary_key=True, ondelete="CASCADE")
    public_key: str
    private_key_encrypted: str
    created_at: datetime = Field(default_factory=utcnow)


class Grant(SQLModel, table=True):
    """A resource shared with a group at a level the resource's kind defines."""

    __tablename__ = "resource_grant"
    __table_args__ = (UniqueConstraint("resource_id", "group_id", name="uq_grant_resource_group"),)

    id: int | None = Field(default=None, primary_key=True)
    resource_id: int = Field(foreign_key="resource.id", index=True, ondelete="CASCADE")
    group_id: int = Field(foreign_key="user_group.id", index=True, ondelete="CASCADE")
    level: str = Field(max_length=32)
    created_at: datetime = Field(default_factory=utcnow)
