"""The hooks of the vscode plugin: one session type, registered without importing the session
type itself (it is loaded on first use)."""

from __future__ import annotations

from corral_sdk.plugin import SessionFeature, SessionTypeRecord, hookimpl
from corral_vscode.options import VSCodeOptions

__all__ = ["RECORD", "corral_register_session_types"]

RECORD = SessionTypeRecord(
    name="vscode",
    factory="corral_vscode.vscode:VSCode",
    config=VSCodeOptions,
    features=frozenset({SessionFeature.HTTP, SessionFeature.WEBSOCKET, SessionFeature.WORKSPACE}),
    docs=(
        "VS Code in the browser: code-server, else openvscode-server, started as the user on a "
        "cluster's login host or in the workspace when the target has one (it fails at once "
        "saying what to install when it has neither). The server listens on 127.0.0.1 and "
        "demands a token made on the target: code-server's the proxy sends as a cookie, "
        "openvscode-server's the browser gets when it opens the session."
    ),
)
"""The session type this plugin registers."""


@hookimpl
def corral_register_session_types() -> list[SessionTypeRecord]:
    return [RECORD]
