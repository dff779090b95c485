"""The one exception tree of Corral.

Every error carries a message that is safe to show a user, an optional log message with detail
for operators (never shown to users, never containing secrets), a short machine-readable reason
code, and whether retrying the same call may succeed. Providers wrap vendor exceptions into
these at their boundary; the API maps them to RFC 9457 problem details in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "Conflict",
    "CorralError",
    "Invalid",
    "NotAuthenticated",
    "NotFound",
    "PermissionDenied",
    "PluginError",
    "ProviderError",
    "SettingsError",
    "Timeout",
    "TransportError",
    "Unavailable",
]


class CorralError(Exception):
    """Base of every error Corral raises on purpose.

    ``message`` is shown to users; ``log_message`` is for operators; ``reason`` is a short
    stable code (``"cluster-not-found"``); ``retryable`` says whether the same call may succeed
    later; ``details`` holds structured, user-safe extras (such as the field that was invalid).
    """

    status: ClassVar[int] = 500
    default_reason: ClassVar[str] = "error"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        log_message: str | None = None,
        retryable: bool = False,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.log_message = log_message or message
        self.retryable = retryable
        self.details: dict[str, Any] = dict(details or {})

    def __str__(self) -> str:
        return self.message


class Invalid(CorralError):
    """The request or configuration is malformed; ``details['field']`` names what is wrong."""

    status = 422
    default_reason = "invalid"
    title = "Invalid input"

    def __init__(self, message: str, *, field: str | None = None, **kwargs: Any) -> None:
        details = dict(kwargs.pop("details", None) or {})
        if field is not None:
            details["field"] = field
        super().__init__(message, details=details, **kwargs)
        self.field = field


class SettingsError(Invalid):
    """The settings (``corral.toml`` or ``CORRAL_*`` variables) are invalid."""

    default_reason = "invalid-settings"
    title = "Invalid settings"


class NotAuthenticated(CorralError):
    """No valid credential came with the request."""

    status = 401
    default_reason = "not-authenticated"
    title = "Not authenticated"


class PermissionDenied(CorralError):
    """The caller is known but lacks the role or grant the operation needs."""

    status = 403
    default_reason = "permission-denied"
    title = "Permission denied"


class NotFound(CorralError):
    """The resource does not exist, or the caller may not know that it does."""

    status = 404
    default_reason = "not-found"
    title = "Not found"


class Conflict(CorralError):
    """The operation clashes with the resource's state (a duplicate name, a busy cluster)."""

    status = 409
    default_reason = "conflict"
    title = "Conflict"


class PluginError(CorralError):
    """A plugin could not be loaded or registered something invalid."""

    default_reason = "plugin-error"
    title = "Plugin error"


class ProviderError(CorralError):
    """A provider (cloud, scheduler, storage, ...) failed to do what it was asked."""

    status = 502
    default_reason = "provider-error"
    title = "Provider error"


class TransportError(ProviderError):
    """A machine could not be reached or the connection broke (SSH, subprocess)."""

    default_reason = "transport-error"
    title = "Connection failed"


class Timeout(ProviderError):
    """An operation did not finish within its bounded time."""

    status = 504
    default_reason = "timeout"
    title = "Timed out"


class Unavailable(CorralError):
    """A dependency of Corral itself (database, broker) is not available right now."""

    status = 503
    default_reason = "unavailable"
    title = "Service unavailable"

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("retryable", True)
        super().__init__(message, **kwargs)
