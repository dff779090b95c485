"""Discovery, registration and the facade, with plugins built in memory."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from corral_core.plugins import PluginSource, load_kernel
from corral_sdk.errors import NotFound, PluginError
from corral_sdk.plugin import (
    CloudFeature,
    CloudRecord,
    SchedulerRecord,
    hookimpl,
)


class Slurmish:
    @hookimpl
    def corral_register_schedulers(self) -> list[SchedulerRecord]:
        return [SchedulerRecord(name="slurm", factory="json:JSONDecoder")]


class Cloudish:
    @hookimpl
    def corral_register_clouds(self) -> list[CloudRecord]:
        return [
            CloudRecord(
                name="mycloud",
                factory=dict,
                features=frozenset({CloudFeature.SPOT}),
            )
        ]


def make(
    name: str,
    plugin: object,
    *,
    distribution: str | None = None,
    load: Callable[[], object] | None = None,
    requires_sdk: str | None = None,
) -> PluginSource:
    return PluginSource(
        name=name,
        distribution=distribution or f"corral-{name}",
        version="1.0",
        load=load or (lambda: plugin),
        requires_sdk=requires_sdk,
    )


def boom() -> object:
    raise ImportError("no module named vendor_sdk")


def test_facade_returns_typed_records_and_lazy_factories() -> None:
    kernel = load_kernel(sources=[make("slurmish", Slurmish()), make("cloudish", Cloudish())])
    record = kernel.scheduler("slurm")
    assert isinstance(record, SchedulerRecord)
    import json

    assert record.load() is json.JSONDecoder
    assert kernel.cloud("mycloud").features == frozenset({CloudFeature.SPOT})
    assert list(kernel.schedulers()) == ["slurm"]
    assert kernel.distribution_of("scheduler", "slurm") == "corral-slurmish"
    with pytest.raises(
        NotFound, match=r"no scheduler named 'pbs' is installed \(installed: slurm\)"
    ):
        kernel.scheduler("pbs")


def test_failed_import_is_skipped_with_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="corral.plugins")
    kernel = load_kernel(sources=[make("broken", None, load=boom), make("slurmish", Slurmish())])
    broken, good = kernel.plugins()
    assert (broken.status, broken.reason) == ("failed", "ImportError: no module named vendor_sdk")
    assert good.status == "loaded"
    assert [r.message for r in caplog.records] == [
        "plugin broken (corral-broken 1.0) failed to load: ImportError: no module named vendor_sdk"
    ]


def test_strict_mode_makes_a_failed_plugin_fatal() -> None:
    with pytest.raises(PluginError, match="corral-broken \\(plugin broken\\): ImportError"):
        load_kernel(strict=True, sources=[make("broken", None, load=boom)])


def test_denied_plugin_is_not_imported() -> None:
    imported = []

    def load() -> object:
        imported.append(True)
        return Slurmish()

    kernel = load_kernel(
        deny=["corral-slurmish"], strict=True, sources=[make("slurmish", None, load=load)]
    )
    assert imported == []
    assert kernel.plugins()[0].status == "denied"
    assert dict(kernel.schedulers()) == {}


def test_incompatible_sdk_range_is_skipped_before_import() -> None:
    kernel = load_kernel(sources=[make("future", None, load=boom, requires_sdk=">=99")])
    info = kernel.plugins()[0]
    assert info.status == "failed"
    assert info.reason.startswith("requires corral-sdk>=99, but corral-sdk ")


def test_duplicate_names_name_both_distributions() -> None:
    with pytest.raises(PluginError) as error:
        load_kernel(sources=[make("one", Slurmish()), make("two", Slurmish())])
    assert str(error.value) == (
        "scheduler 'slurm' is registered twice: by corral-one (plugin one) "
        "and by corral-two (plugin two)"
    )


def test_same_plugin_name_from_two_distributions() -> None:
    kernel = load_kernel(
        sources=[
            make("dup", Slurmish(), distribution="corral-a"),
            make("dup", Cloudish(), distribution="corral-b"),
        ]
    )
    first, second = kernel.plugins()
    assert first.status == "loaded"
    assert second.status == "failed"
    assert second.reason == "the plugin name 'dup' is already taken by corral-a"


def test_registration_that_raises_or_returns_the_wrong_type_fails_the_plugin() -> None:
    class Raises:
        @hookimpl
        def corral_register_clouds(self) -> list[CloudRecord]:
            raise ValueError("bad config")

    class WrongType:
        @hookimpl
        def corral_register_clouds(self) -> list[object]:
            return [SchedulerRecord(name="slurm", factory=dict)]

    kernel = load_kernel(sources=[make("raises", Raises()), make("wrong", WrongType())])
    raises, wrong = kernel.plugins()
    assert raises.reason == "corral_register_clouds failed: ValueError: bad config"
    assert wrong.reason == (
        "corral_register_clouds failed: PluginError: corral_register_clouds returned "
        "SchedulerRecord, expected CloudRecord"
    )
    assert dict(kernel.clouds()) == {}


def test_unknown_hook_fails_the_plugin() -> None:
    class Typo:
        @hookimpl
        def corral_register_cloud(self) -> list[CloudRecord]:
            return []

    kernel = load_kernel(sources=[make("typo", Typo())])
    assert kernel.plugins()[0].reason == "implements unknown hooks: corral_register_cloud"


def test_bad_record_names_are_refused() -> None:
    with pytest.raises(PluginError, match="must be lowercase letters"):
        SchedulerRecord(name="Slurm!", factory=dict)
    with pytest.raises(PluginError, match="must be 'module:attribute'"):
        SchedulerRecord(name="slurm", factory="not_a_reference")


def test_builtins_load_first_from_the_real_discovery() -> None:
    kernel = load_kernel()
    first = kernel.plugins()[0]
    assert (first.name, first.distribution, first.builtin, first.status) == (
        "builtin",
        "corral-core",
        True,
        "loaded",
    )
