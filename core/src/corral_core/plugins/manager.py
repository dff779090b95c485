"""Plugin discovery and the typed facade the rest of the kernel calls.

Built-ins load first, then every entry point in the ``corral.plugins`` group. A plugin that fails
to import or register is skipped with one log line and shown as ``failed`` with the reason; with
``strict_plugins`` (``CORRAL_STRICT_PLUGINS=1``) that is fatal. Denied plugins are never imported.
Plugins whose distribution requires a ``corral-sdk`` range that excludes this SDK are skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import import_module
from importlib.metadata import Distribution, entry_points
from typing import Any, TypeVar

import pluggy
from packaging.requirements import InvalidRequirement, Requirement

import corral_sdk
from corral_sdk import hookspecs
from corral_sdk.config import PluginConfig
from corral_sdk.errors import NotFound, PluginError
from corral_sdk.events import Event
from corral_sdk.records import (
    AIProviderRecord,
    AuthMethodRecord,
    CloudRecord,
    Registration,
    ResourceKindRecord,
    SchedulerRecord,
    SessionTypeRecord,
    StorageTypeRecord,
    WorkflowActionRecord,
    WorkflowSourceRecord,
)
from corral_sdk.wire import PluginInfo, Registered

__all__ = ["BUILTIN_PLUGINS", "ENTRY_POINT_GROUP", "Kernel", "PluginSource", "load_kernel"]

log = logging.getLogger("corral.plugins")

ENTRY_POINT_GROUP = "corral.plugins"
CORE_DISTRIBUTION = "corral-core"
BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (("builtin", "corral_core.plugins.builtin"),)

R = TypeVar("R", bound=Registration)

# hook name -> (kind shown to users, record type)
REGISTRATION_HOOKS: dict[str, tuple[str, type[Registration]]] = {
    "corral_register_clouds": ("cloud", CloudRecord),
    "corral_register_schedulers": ("scheduler", SchedulerRecord),
    "corral_register_storage_types": ("storage_type", StorageTypeRecord),
    "corral_register_auth_methods": ("auth_method", AuthMethodRecord),
    "corral_register_ai_providers": ("ai_provider", AIProviderRecord),
    "corral_register_session_types": ("session_type", SessionTypeRecord),
    "corral_register_workflow_actions": ("workflow_action", WorkflowActionRecord),
    "corral_register_resource_kinds": ("resource_kind", ResourceKindRecord),
    "corral_register_workflow_sources": ("workflow_source", WorkflowSourceRecord),
}


@dataclass(frozen=True)
class PluginSource:
    """A plugin before it is imported: where it comes from and how to import it."""

    name: str
    distribution: str
    version: str
    load: Callable[[], object]
    requires_sdk: str | None = None
    builtin: bool = False


@dataclass
class _Loaded:
    source: PluginSource
    status: str = "loaded"
    reason: str = ""
    registers: dict[str, list[str]] = field(default_factory=dict)

    def info(self) -> PluginInfo:
        return PluginInfo(
            name=self.source.name,
            distribution=self.source.distribution,
            version=self.source.version,
            status=self.status,  # type: ignore[arg-type]
            reason=self.reason,
            builtin=self.source.builtin,
            registers=[
                Registered(kind=k, names=sorted(v)) for k, v in sorted(self.registers.items())
            ],
        )


def builtin_sources() -> list[PluginSource]:
    from corral_core import __version__

    return [
        PluginSource(
            name=name,
            distribution=CORE_DISTRIBUTION,
            version=__version__,
            load=lambda module=module: import_module(module),  # type: ignore[misc]
            builtin=True,
        )
        for name, module in BUILTIN_PLUGINS
    ]


def _sdk_requirement(dist: Distribution | None) -> str | None:
    for line in (dist.requires or []) if dist else []:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.name.lower().replace("_", "-") == "corral-sdk" and not requirement.marker:
            return str(requirement.specifier) or None
    return None


def entry_point_sources() -> list[PluginSource]:
    sources = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = ep.dist
        sources.append(
            PluginSource(
                name=ep.name,
                distribution=dist.metadata["Name"] if dist else "unknown",
                version=dist.version if dist else "unknown",
                load=ep.load,
                requires_sdk=_sdk_requirement(dist),
            )
        )
    return sources


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class Kernel:
    """The plugin manager behind a typed facade: ``kernel.schedulers()``, ``kernel.cloud("x")``."""

    def __init__(self, pm: pluggy.PluginManager, loaded: Sequence[_Loaded]) -> None:
        self._pm = pm
        self._loaded = list(loaded)
        self._records: dict[str, dict[str, Registration]] = {}
        self._owner: dict[tuple[str, str], _Loaded] = {}

    # --- registry -------------------------------------------------------------------------------

    def _build_registry(self) -> None:
        by_name = {entry.source.name: entry for entry in self._loaded}
        for hook_name, (kind, record_type) in REGISTRATION_HOOKS.items():
            records = self._records.setdefault(kind, {})
            for impl in getattr(self._pm.hook, hook_name).get_hookimpls():
                entry = by_name[impl.plugin_name]
                if entry.status != "loaded":
                    continue
                try:
                    result = list(impl.function() or [])
                    bad = [r for r in result if not isinstance(r, record_type)]
                    if bad:
                        raise PluginError(
                            f"{hook_name} returned {type(bad[0]).__name__}, "
                            f"expected {record_type.__name__}"
                        )
                except Exception as exc:
                    self._fail(entry, f"{hook_name} failed: {_describe(exc)}")
                    continue
                for record in result:
                    other = self._owner.get((kind, record.name))
                    if other is not None:
                        raise PluginError(
                            f"{kind} {record.name!r} is registered twice: by "
                            f"{other.source.distribution} (plugin {other.source.name}) and by "
                            f"{entry.source.distribution} (plugin {entry.source.name})",
                            reason="duplicate-registration",
                        )
                    records[record.name] = record
                    self._owner[(kind, record.name)] = entry
                    entry.registers.setdefault(kind, []).append(record.name)
        # A plugin that failed part-way through registering keeps nothing.
        for entry in self._loaded:
            if entry.status == "failed" and entry.registers:
                for kind, names in entry.registers.items():
                    for name in names:
                        self._records[kind].pop(name, None)
                        self._owner.pop((kind, name), None)
                entry.registers.clear()

    def _fail(self, entry: _Loaded, reason: str) -> None:
        entry.status, entry.reason = "failed", reason
        log.error(
            "plugin %s (%s %s) failed: %s",
            entry.source.name,
            entry.source.distribution,
            entry.source.version,
            reason,
        )
        plugin = self._pm.get_plugin(entry.source.name)
        if plugin is not None:
            self._pm.unregister(plugin)

    def plugins(self) -> list[PluginInfo]:
        """Every plugin found, in load order, with its status."""
        return [entry.info() for entry in self._loaded]

    def failed(self) -> list[PluginInfo]:
        return [info for info in self.plugins() if info.status == "failed"]

    def _get(self, kind: str, name: str) -> Registration:
        records = self._records.get(kind, {})
        try:
            return records[name]
        except KeyError:
            known = ", ".join(sorted(records)) or "none"
            label = kind.replace("_", " ")
            raise NotFound(
                f"no {label} named {name!r} is installed (installed: {known})",
                reason=f"unknown-{kind.replace('_', '-')}",
            ) from None

    def distribution_of(self, kind: str, name: str) -> str:
        self._get(kind, name)
        return self._owner[(kind, name)].source.distribution

    def clouds(self) -> Mapping[str, CloudRecord]:
        return self._records["cloud"]  # type: ignore[return-value]

    def cloud(self, name: str) -> CloudRecord:
        return self._get("cloud", name)  # type: ignore[return-value]

    def schedulers(self) -> Mapping[str, SchedulerRecord]:
        return self._records["scheduler"]  # type: ignore[return-value]

    def scheduler(self, name: str) -> SchedulerRecord:
        return self._get("scheduler", name)  # type: ignore[return-value]

    def storage_types(self) -> Mapping[str, StorageTypeRecord]:
        return self._records["storage_type"]  # type: ignore[return-value]

    def storage_type(self, name: str) -> StorageTypeRecord:
        return self._get("storage_type", name)  # type: ignore[return-value]

    def auth_methods(self) -> Mapping[str, AuthMethodRecord]:
        return self._records["auth_method"]  # type: ignore[return-value]

    def auth_method(self, name: str) -> AuthMethodRecord:
        return self._get("auth_method", name)  # type: ignore[return-value]

    def ai_providers(self) -> Mapping[str, AIProviderRecord]:
        return self._records["ai_provider"]  # type: ignore[return-value]

    def ai_provider(self, name: str) -> AIProviderRecord:
        return self._get("ai_provider", name)  # type: ignore[return-value]

    def session_types(self) -> Mapping[str, SessionTypeRecord]:
        return self._records["session_type"]  # type: ignore[return-value]

    def session_type(self, name: str) -> SessionTypeRecord:
        return self._get("session_type", name)  # type: ignore[return-value]

    def workflow_actions(self) -> Mapping[str, WorkflowActionRecord]:
        return self._records["workflow_action"]  # type: ignore[return-value]

    def workflow_action(self, name: str) -> WorkflowActionRecord:
        return self._get("workflow_action", name)  # type: ignore[return-value]

    def workflow_sources(self) -> Mapping[str, WorkflowSourceRecord]:
        return self._records["workflow_source"]  # type: ignore[return-value]

    def workflow_source(self, name: str) -> WorkflowSourceRecord:
        return self._get("workflow_source", name)  # type: ignore[return-value]

    def resource_kinds(self) -> Mapping[str, ResourceKindRecord]:
        return self._records["resource_kind"]  # type: ignore[return-value]

    def resource_kind(self, name: str) -> ResourceKindRecord:
        return self._get("resource_kind", name)  # type: ignore[return-value]

    # --- lifecycle and events -------------------------------------------------------------------

    def _impls(self, hook_name: str) -> Iterable[tuple[str, Callable[..., Any]]]:
        # get_hookimpls() is in registration order, which is load order.
        for impl in getattr(self._pm.hook, hook_name).get_hookimpls():
            yield impl.plugin_name, impl.function

    def implements(self, hook_name: str) -> bool:
        """Whether any loaded plugin implements ``hook_name``."""
        return any(True for _ in self._impls(hook_name))

    def configure(self, config: PluginConfig) -> None:
        """Hand every plugin its settings; a plugin that refuses them stops startup."""
        self._call_fatal("corral_configure", config=config)

    def startup(self, process: str) -> None:
        self._call_fatal("corral_startup", process=process)

    def _call_fatal(self, hook_name: str, **kwargs: Any) -> None:
        for plugin_name, function in self._impls(hook_name):
            try:
                function(**kwargs)
            except Exception as exc:
                raise PluginError(
                    f"plugin {plugin_name} failed in {hook_name}: {_describe(exc)}",
                    reason="plugin-startup-failed",
                ) from exc

    def shutdown(self, process: str) -> None:
        for plugin_name, function in reversed(list(self._impls("corral_shutdown"))):
            try:
                function(process=process)
            except Exception:
                log.exception("plugin %s failed in corral_shutdown", plugin_name)

    def on_event(self, event: Event) -> None:
        """Deliver one event to every plugin; a failing plugin is logged and skipped."""
        for plugin_name, function in self._impls("corral_on_event"):
            try:
                function(event=event)
            except Exception:
                log.exception("plugin %s failed handling event %s", plugin_name, event.id)

    def api_routes(self) -> list[tuple[str, list[Any]]]:
        """``(plugin name, route handlers)`` for each plugin adding routes."""
        routes = []
        for plugin_name, function in self._impls("corral_api_routes"):
            try:
                handlers = list(function() or [])
            except Exception as exc:
                raise PluginError(
                    f"plugin {plugin_name} failed in corral_api_routes: {_describe(exc)}"
                ) from exc
            if handlers:
                routes.append((plugin_name, handlers))
        return routes


def _unknown_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    callers = pm.get_hookcallers(plugin) or []
    return sorted(caller.name for caller in callers if caller.spec is None)


def load_kernel(
    *,
    strict: bool = False,
    deny: Iterable[str] = (),
    sources: Sequence[PluginSource] | None = None,
) -> Kernel:
    """Discover, import and register plugins, then build the registry.

    ``sources`` defaults to the built-ins followed by the installed entry points. Raises
    :class:`PluginError` for duplicate registrations, and in strict mode for any failed plugin.
    """
    from packaging.specifiers import SpecifierSet

    if sources is None:
        sources = [*builtin_sources(), *entry_point_sources()]
    denied = set(deny)
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    loaded: list[_Loaded] = []
    seen: dict[str, _Loaded] = {}
    for source in sources:
        entry = _Loaded(source)
        loaded.append(entry)
        if source.name in denied or source.distribution in denied:
            entry.status, entry.reason = "denied", "listed in deny_plugins"
            log.info("plugin %s (%s) denied by settings", source.name, source.distribution)
            continue
        if source.name in seen:
            entry.status = "failed"
            entry.reason = (
                f"the plugin name {source.name!r} is already taken by "
                f"{seen[source.name].source.distribution}"
            )
            log.error("plugin %s (%s) skipped: %s", source.name, source.distribution, entry.reason)
            continue
        seen[source.name] = entry
        if source.requires_sdk and not SpecifierSet(source.requires_sdk).contains(
            corral_sdk.__version__, prereleases=True
        ):
            entry.status = "failed"
            entry.reason = (
                f"requires corral-sdk{source.requires_sdk}, "
                f"but corral-sdk {corral_sdk.__version__} is installed"
            )
            log.error("plugin %s (%s) skipped: %s", source.name, source.distribution, entry.reason)
            continue
        try:
            plugin = source.load()
            pm.register(plugin, name=source.name)
        except Exception as exc:
            entry.status, entry.reason = "failed", _describe(exc)
            log.error(
                "plugin %s (%s %s) failed to load: %s",
                source.name,
                source.distribution,
                source.version,
                entry.reason,
            )
            continue
        unknown = _unknown_hooks(pm, plugin)
        if unknown:
            pm.unregister(plugin)
            entry.status = "failed"
            entry.reason = f"implements unknown hooks: {', '.join(unknown)}"
            log.error("plugin %s (%s) failed: %s", source.name, source.distribution, entry.reason)
    kernel = Kernel(pm, loaded)
    kernel._build_registry()
    if strict and (failed := kernel.failed()):
        names = "; ".join(f"{p.distribution} (plugin {p.name}): {p.reason}" for p in failed)
        raise PluginError(f"strict_plugins is set and plugins failed to load: {names}")
    return kernel
