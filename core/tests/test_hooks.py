"""Every hookspec is documented and called through a registered plugin by a test here.

The meta-test at the bottom fails when a hook is added to ``corral_sdk.hookspecs`` without a
docstring or without a test in this module that calls it through a plugin.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
import pytest

from corral_core.migrations import upgrade
from corral_core.plugins import PluginSource, load_kernel
from corral_core.plugins.manager import REGISTRATION_HOOKS
from corral_core.runtime import Runtime
from corral_core.testing import TestDeployment
from corral_sdk import hookspecs
from corral_sdk.config import PluginConfig
from corral_sdk.errors import PluginError, SettingsError
from corral_sdk.events import Event
from corral_sdk.features import StorageCategory
from corral_sdk.plugin import hookimpl
from corral_sdk.records import Registration, ResourceKindRecord, StorageTypeRecord

F = TypeVar("F", bound=Callable[..., Any])
EXERCISED: set[str] = set(REGISTRATION_HOOKS)  # test_registration_hook covers these


def exercises(hook: str) -> Callable[[F], F]:
    def mark(test: F) -> F:
        EXERCISED.add(hook)
        return test

    return mark


def hookspec_names() -> list[str]:
    return sorted(
        name
        for name, value in vars(hookspecs).items()
        if callable(value) and hasattr(value, f"{hookspecs.PROJECT_NAME}_spec")
    )


def plugin_source(name: str, plugin: object) -> PluginSource:
    return PluginSource(name=name, distribution=f"corral-{name}", version="1", load=lambda: plugin)


def record_for(hook: str) -> Registration:
    _, record_type = REGISTRATION_HOOKS[hook]
    if record_type is ResourceKindRecord:
        return ResourceKindRecord(
            name="widget", factory=dict, states=("absent", "present"), initial_state="absent"
        )
    if record_type is StorageTypeRecord:
        return StorageTypeRecord(
            name="widget", factory="collections:OrderedDict", category=StorageCategory.BUCKET
        )
    return record_type(name="widget", factory="collections:OrderedDict")


@pytest.mark.parametrize("hook", sorted(REGISTRATION_HOOKS))
def test_registration_hook(hook: str) -> None:
    record = record_for(hook)
    plugin = type("Plugin", (), {hook: hookimpl(lambda self: [record])})()
    kernel = load_kernel(sources=[plugin_source("widgets", plugin)])
    kind, _ = REGISTRATION_HOOKS[hook]
    facade: Callable[[str], Registration] = getattr(kernel, kind)
    assert facade("widget") is record
    assert kernel.plugins()[0].registers[0].kind == kind


class Settings(msgspec.Struct, forbid_unknown_fields=True):
    greeting: str = "hello"


@exercises("corral_configure")
def test_configure_hands_plugins_their_own_table() -> None:
    seen: list[Settings] = []

    class Plugin:
        @hookimpl
        def corral_configure(self, config: PluginConfig) -> None:
            seen.append(config.for_plugin("greeter", Settings))

    kernel = load_kernel(sources=[plugin_source("greeter", Plugin())])
    config = PluginConfig(
        data_dir="/tmp", public_url="http://x", plugins={"greeter": {"greeting": "hi"}}
    )
    kernel.configure(config)
    assert seen == [Settings(greeting="hi")]
    bad = PluginConfig(
        data_dir="/tmp", public_url="http://x", plugins={"greeter": {"greting": "hi"}}
    )
    with pytest.raises(PluginError, match=r"unknown key plugins\.greeter\.greting") as error:
        kernel.configure(bad)
    assert isinstance(error.value.__cause__, SettingsError)


@exercises("corral_startup")
@exercises("corral_shutdown")
def test_lifecycle_hooks_in_load_order() -> None:
    calls: list[str] = []

    def plugin(name: str) -> object:
        class Plugin:
            @hookimpl
            def corral_startup(self, process: str) -> None:
                calls.append(f"{name} start {process}")

            @hookimpl
            def corral_shutdown(self, process: str) -> None:
                calls.append(f"{name} stop {process}")
                raise RuntimeError("shutdown errors are logged, not raised")

        return Plugin()

    kernel = load_kernel(sources=[plugin_source("a", plugin("a")), plugin_source("b", plugin("b"))])
    kernel.startup("worker")
    kernel.shutdown("worker")
    assert calls == ["a start worker", "b start worker", "b stop worker", "a stop worker"]


@exercises("corral_api_routes")
def test_api_routes_are_collected_per_plugin() -> None:
    handler = object()

    class Plugin:
        @hookimpl
        def corral_api_routes(self) -> list[object]:
            return [handler]

    kernel = load_kernel(sources=[plugin_source("extra", Plugin())])
    assert kernel.api_routes() == [("extra", [handler])]


@exercises("corral_on_event")
@pytest.mark.anyio
async def test_on_event_delivers_stored_events_in_order(deployment: TestDeployment) -> None:
    received: list[Event] = []

    class Plugin:
        @hookimpl
        def corral_on_event(self, event: Event) -> None:
            received.append(event)
            if event.type == "b":
                raise RuntimeError("a failing consumer does not stop delivery")

    settings = deployment.settings()
    runtime = Runtime(settings, load_kernel(sources=[plugin_source("listener", Plugin())]), "all")
    upgrade(runtime.db)
    try:
        for type_ in ("a", "b", "c"):
            await runtime.events.emit(type_, subject="test")
        await runtime._deliver_events()
        assert [e.type for e in received] == ["a", "b", "c"]
        await runtime._deliver_events()  # the cursor is durable: nothing twice
        assert len(received) == 3
    finally:
        await runtime.close()


def test_every_hookspec_is_documented_and_exercised() -> None:
    names = hookspec_names()
    assert set(names) == {n for n in names if n.startswith("corral_")}
    undocumented = [n for n in names if len(inspect.getdoc(getattr(hookspecs, n)) or "") < 40]
    assert undocumented == []
    registration = {n for n in names if n.startswith("corral_register_")}
    assert registration == set(REGISTRATION_HOOKS), "the kernel must know every registration hook"
    assert set(names) - EXERCISED == set(), "hooks without a test calling them through a plugin"
    assert EXERCISED - set(names) == set(), "tests for hooks that no longer exist"
