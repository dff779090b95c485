"""What a session resource stores in its ``spec``, its states and its name rule (spec §7, §9)."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "SESSION_KIND",
    "SESSION_NAME_PATTERN",
    "SESSION_NAME_RULE",
    "SESSION_STATES",
    "WORKSPACE",
    "SessionSpec",
]

SESSION_KIND = "session"
SESSION_NAME_PATTERN = r"[a-z0-9]{2,255}"
SESSION_NAME_RULE = (
    "between 2-255 characters, and use only lowercase letters and numbers, unique among all "
    "your resources of every kind"
)
SESSION_STATES = ("creating", "installing", "starting", "running", "failed", "stopped")
"""``creating`` until it is filled in (a workflow's session: by ``update-session``),
``installing`` and ``starting`` while its type brings its service up, ``running`` once the
service answers through the tunnel, ``failed`` (with the reason), ``stopped``."""
WORKSPACE = "user-workspace"


class SessionSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    type: str = "tunnel"
    """A session type: ``tunnel`` or ``link`` (built in), or a plugin's."""
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    """The type's options (decoded by its record's ``config``: a directory, a geometry)."""
    target: str = WORKSPACE
    """Where the app runs: ``user-workspace`` or a cluster (``pw://owner/name``)."""
    remote_host: str = "localhost"
    """The app's host as seen from the target."""
    remote_port: int | None = None
    """The app's port (required for a tunnel before it can run)."""
    local_port: int = 0
    """The forward's port on the Corral host; 0 picks a free one."""
    slug: str = ""
    """Appended to the session's URL, for apps whose base path is not ``/``."""
    use_tls: bool = False
    """The app itself serves HTTPS."""
    use_custom_domain: bool = False
    url: str = ""
    """A link session's URL."""
    openai: bool = False
    """The app serves an OpenAI-compatible API (for the chat interface)."""
    run_id: int | None = None
    """The workflow run that created it (declared under ``sessions:``)."""
    run_session: str = ""
    """Its name under the run's ``sessions:``."""
    detach: bool = False
    """Outlives its run; removed only when its owner deletes it."""
    redirect: bool = False
    """The run's page sends the user to it once it runs."""
