"""The hooks of the jupyter plugin: one session type, registered without importing the session
type itself (it is loaded on first use)."""

from __future__ import annotations

from corral_jupyter.options import JupyterOptions
from corral_sdk.plugin import SessionFeature, SessionTypeRecord, hookimpl

__all__ = ["RECORD", "corral_register_session_types"]

RECORD = SessionTypeRecord(
    name="jupyter",
    factory="corral_jupyter.jupyter:Jupyter",
    config=JupyterOptions,
    features=frozenset(
        {
            SessionFeature.HTTP,
            SessionFeature.WEBSOCKET,
            SessionFeature.WORKSPACE,
            SessionFeature.NEEDS_SCHEDULER,
        }
    ),
    docs=(
        "JupyterLab (or the classic notebook) started as the user on a cluster's login host or "
        "in the workspace, or (placement `compute`) on a compute node as a batch job of the "
        "cluster's scheduler (partition, time limit, CPUs, memory, GPUs, account, QoS, extra "
        "options), with `jupyter` from the target (the `command` option names another). "
        "It demands a random token kept in the user's home (on a login host it listens on "
        "127.0.0.1, on a node on the node's addresses); Corral's proxy adds the token, so only "
        "signed-in users the session is shared with reach it."
    ),
)
"""The session type this plugin registers."""


@hookimpl
def corral_register_session_types() -> list[SessionTypeRecord]:
    return [RECORD]
