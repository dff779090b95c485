"""The hooks of the desktop plugin: one session type, registered without importing the session
type itself (it is loaded on first use)."""

from __future__ import annotations

from corral_desktop.options import DesktopOptions
from corral_sdk.plugin import SessionFeature, SessionTypeRecord, hookimpl

__all__ = ["RECORD", "corral_register_session_types"]

RECORD = SessionTypeRecord(
    name="desktop",
    factory="corral_desktop.desktop:Desktop",
    config=DesktopOptions,
    features=frozenset({SessionFeature.HTTP, SessionFeature.WEBSOCKET, SessionFeature.WORKSPACE}),
    docs=(
        "A Linux desktop in the browser: TigerVNC's Xvnc with an xterm (or the program given "
        "as `command`), shown by noVNC through websockify, started as the user in the "
        "workspace or on a cluster's login node. The target needs the Debian packages "
        "tigervnc-standalone-server, websockify and novnc (contrib/lab/desktop.sh installs "
        "them); VNC listens on a private Unix socket only and websockify on 127.0.0.1 with a "
        "per-session token, so only Corral's proxy, behind the sign-in, reaches the desktop."
    ),
)
"""The session type this plugin registers."""


@hookimpl
def corral_register_session_types() -> list[SessionTypeRecord]:
    return [RECORD]
