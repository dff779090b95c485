"""The kernel's own routes: health, version, plugins."""

from __future__ import annotations

from typing import Any

from litestar import get
from litestar.datastructures import State
from sqlalchemy import text

from corral_api.security import PUBLIC
from corral_core.runtime import Runtime
from corral_sdk import __version__
from corral_sdk.wire import Health, PluginInfo, VersionInfo

__all__ = ["system_routes"]


def _runtime(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime


@get("/api/health", tags=["system"], summary="Is Corral up?", opt=PUBLIC)
async def health(state: State) -> Health:
    """200 with ``status: ok`` when the database answers; ``degraded`` names what does not."""
    runtime = _runtime(state)
    checks: dict[str, str] = {}
    try:
        async with runtime.db.session() as session:
            await session.exec(text("SELECT 1"))  # type: ignore[call-overload]
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    status = "ok" if all(v == "ok" for v in checks.values()) else "degraded"
    return Health(status=status, version=__version__, mode=runtime.settings.mode, checks=checks)


@get("/api/version", tags=["system"], summary="Versions of Corral's components", opt=PUBLIC)
async def version() -> VersionInfo:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    components: dict[str, str] = {}
    for dist in ("corral-sdk", "corral-core", "corral-api"):
        try:
            components[dist] = dist_version(dist)
        except PackageNotFoundError:
            continue
    return VersionInfo(version=__version__, components=components)


@get("/api/plugins", tags=["system"], summary="Every plugin and what it registers")
async def plugins(state: State) -> list[PluginInfo]:
    """Built-ins first, then installed plugins; failed ones carry the reason."""
    return _runtime(state).kernel.plugins()


def system_routes() -> list[Any]:
    return [health, version, plugins]
