"""Wire types of the kernel's own API responses (shared by the server and the CLI)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = ["Health", "PluginInfo", "Problem", "Registered", "VersionInfo"]


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
