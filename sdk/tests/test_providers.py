"""The provider protocols, their wire types and how "unsupported" is expressed."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from corral_sdk import features
from corral_sdk.errors import Invalid, ProviderError
from corral_sdk.providers import (
    ACTION_FEATURE_METHODS,
    AI_FEATURE_METHODS,
    AUTH_FEATURE_METHODS,
    CLOUD_FEATURE_METHODS,
    SCHEDULER_FEATURE_METHODS,
    SESSION_FEATURE_METHODS,
    STORAGE_FEATURE_METHODS,
    UNSUPPORTED,
    AIProvider,
    AIProviderBase,
    AuthMethod,
    AuthMethodBase,
    CloudProvider,
    CloudProviderBase,
    MethodKind,
    Scheduler,
    SchedulerBase,
    SessionType,
    StorageBase,
    StorageType,
    WorkflowAction,
    action,
    ai,
    auth,
    cloud,
    is_unsupported,
    is_unsupported_default,
    protocol_methods,
    required_methods,
    scheduler,
    session,
    storage,
    unsupported,
)
from corral_sdk.providers.cloud import (
    CloudAccount,
    InstanceRequest,
    InstanceState,
    InstanceType,
    NetworkRegionSpec,
    NetworkSpec,
)
from corral_sdk.providers.scheduler import JobSpec, JobState
from corral_sdk.providers.session import SessionEndpoint
from corral_sdk.providers.storage import MountRequest, TemporaryCredentials

KINDS: list[tuple[type, dict[Any, tuple[str, ...]], type[Any] | None, type]] = [
    (CloudProvider, dict(CLOUD_FEATURE_METHODS), CloudProviderBase, features.CloudFeature),
    (Scheduler, dict(SCHEDULER_FEATURE_METHODS), SchedulerBase, features.SchedulerFeature),
    (StorageType, dict(STORAGE_FEATURE_METHODS), StorageBase, features.StorageFeature),
    (AuthMethod, dict(AUTH_FEATURE_METHODS), AuthMethodBase, features.AuthFeature),
    (AIProvider, dict(AI_FEATURE_METHODS), AIProviderBase, features.AIFeature),
    (SessionType, dict(SESSION_FEATURE_METHODS), None, features.SessionFeature),
    (WorkflowAction, dict(ACTION_FEATURE_METHODS), None, features.WorkflowActionFeature),
]
IDS = [kind[0].__name__ for kind in KINDS]
NO_RULES_DEFAULTS = {CloudProviderBase: {"check_cluster_network"}}
"""Base methods that only check and whose default accepts everything (returns ``None``)."""
MODULES = [action, ai, auth, cloud, scheduler, session, storage]


@pytest.mark.parametrize(("protocol", "table", "base", "feature_enum"), KINDS, ids=IDS)
def test_every_feature_maps_to_methods_of_the_protocol(
    protocol: type, table: dict[Any, tuple[str, ...]], base: type | None, feature_enum: type
) -> None:
    assert set(table) == set(feature_enum), "every feature has an entry, and nothing else does"
    methods = protocol_methods(protocol)
    for feature, names in table.items():
        for name in names:
            assert name in methods, f"{feature} names {name}, which {protocol.__name__} lacks"


@pytest.mark.parametrize(("protocol", "table", "base", "feature_enum"), KINDS, ids=IDS)
def test_every_protocol_method_is_documented_async(
    protocol: type, table: dict[Any, tuple[str, ...]], base: type | None, feature_enum: type
) -> None:
    methods = protocol_methods(protocol)
    assert methods
    for name, kind in methods.items():
        func = getattr(protocol, name)
        assert inspect.getdoc(func), f"{protocol.__name__}.{name} has no docstring"
        if kind is MethodKind.STREAM:
            assert "AsyncIterator" in str(inspect.signature(func).return_annotation), name


@pytest.mark.parametrize(("protocol", "table", "base", "feature_enum"), KINDS, ids=IDS)
def test_base_mixin_defaults_every_optional_method_and_nothing_else(
    protocol: type, table: dict[Any, tuple[str, ...]], base: type | None, feature_enum: type
) -> None:
    optional = {name for names in table.values() for name in names}
    if base is None:
        assert not optional, f"{protocol.__name__} has optional methods but no base mixin"
        return
    defined = {name for name in vars(base) if not name.startswith("_")}
    assert defined == optional
    accepting = NO_RULES_DEFAULTS.get(base, set())
    assert accepting <= optional
    for name in optional:
        assert is_unsupported_default(base, name) is (name not in accepting), name
        assert inspect.signature(getattr(base, name)) == inspect.signature(
            getattr(protocol, name)
        ), f"{base.__name__}.{name} differs from the protocol"
    for name in required_methods(protocol, table):
        assert not hasattr(base, name), f"{base.__name__} must not default required {name}"


def _dummy_arguments(func: Any) -> tuple[list[Any], dict[str, Any]]:
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for param in list(inspect.signature(func).parameters.values())[1:]:
        if param.default is not inspect.Parameter.empty:
            continue
        if param.kind is inspect.Parameter.KEYWORD_ONLY:
            kwargs[param.name] = None
        else:
            args.append(None)
    return args, kwargs


async def _call_default(provider: object, name: str, kind: MethodKind) -> None:
    args, kwargs = _dummy_arguments(getattr(type(provider), name))
    result = getattr(provider, name)(*args, **kwargs)
    if kind is MethodKind.STREAM:
        await result.__anext__()
    else:
        await result


@pytest.mark.anyio
@pytest.mark.parametrize(("protocol", "table", "base", "feature_enum"), KINDS[:5], ids=IDS[:5])
async def test_base_mixin_defaults_raise_unsupported(
    protocol: type, table: dict[Any, tuple[str, ...]], base: type, feature_enum: type
) -> None:
    provider = type(f"Only{base.__name__}", (base,), {})()
    for name, kind in protocol_methods(protocol).items():
        if not hasattr(base, name):
            continue
        if name in NO_RULES_DEFAULTS.get(base, set()):
            args, kwargs = _dummy_arguments(getattr(base, name))
            assert await getattr(provider, name)(*args, **kwargs) is None
            continue
        with pytest.raises(ProviderError) as info:
            await _call_default(provider, name, kind)
        assert info.value.reason == UNSUPPORTED
        assert is_unsupported(info.value)
        assert name.replace("_", " ") in info.value.message


def test_overriding_a_default_clears_the_mark() -> None:
    class Mine(SchedulerBase):
        async def hold(self, job_ids: Any) -> None:
            return None

    assert not is_unsupported_default(Mine(), "hold")
    assert is_unsupported_default(Mine(), "release")
    assert not is_unsupported_default(Mine(), "submit")  # absent is not a default


def test_unsupported_error_names_provider_and_operation() -> None:
    error = unsupported("slurm", "hold")
    assert isinstance(error, ProviderError)
    assert error.message == "slurm does not support hold"
    assert not is_unsupported(ProviderError("boom"))


def test_stream_methods_are_recognised() -> None:
    assert protocol_methods(CloudProvider)["import_costs"] is MethodKind.STREAM
    assert protocol_methods(AIProvider)["stream_chat"] is MethodKind.STREAM
    assert protocol_methods(StorageType)["list_objects"] is MethodKind.STREAM
    assert protocol_methods(CloudProvider)["create_instances"] is MethodKind.COROUTINE


def _structs() -> list[type[msgspec.Struct]]:
    found = []
    for module in MODULES:
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type) and issubclass(obj, msgspec.Struct):
                found.append(obj)
    return found


@pytest.mark.parametrize("struct", _structs(), ids=lambda s: s.__name__)
def test_wire_types_are_frozen_and_keyword_only(struct: type[msgspec.Struct]) -> None:
    assert struct.__struct_config__.frozen, f"{struct.__name__} is not frozen"
    kinds = {p.kind for p in inspect.signature(struct).parameters.values()}
    assert kinds <= {inspect.Parameter.KEYWORD_ONLY}, f"{struct.__name__} is not kw_only"


def test_every_public_module_declares_all() -> None:
    for module in MODULES:
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.__all__ names missing {name}"


def test_chat_shapes_decode_openai_json() -> None:
    raw = b"""{"model": "gpt-4o", "stream": true, "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}}]}],
        "reasoning_effort": "high", "tools": [{"type": "function",
        "function": {"name": "ls", "parameters": {"type": "object"}}}]}"""
    request = msgspec.json.decode(raw, type=ai.ChatRequest)
    parts = request.messages[1].content
    assert isinstance(parts, tuple)
    assert isinstance(parts[0], ai.TextPart)
    assert isinstance(parts[1], ai.ImagePart)
    assert parts[1].image_url.url.startswith("data:")
    assert request.reasoning_effort == "high"
    assert request.tools is not None
    assert request.tools[0].function.name == "ls"

    chunk = ai.ChatChunk(
        id="c1", model="m", choices=(ai.ChunkChoice(delta=ai.Delta(content="hi")),)
    )
    encoded = msgspec.json.decode(msgspec.json.encode(chunk))
    assert encoded["object"] == "chat.completion.chunk"
    assert encoded["choices"][0]["delta"]["content"] == "hi"


def test_prices_round_trip_as_decimals() -> None:
    it = InstanceType(name="m1.large", vcpus=4, memory_gib=8, price_per_hour=Decimal("0.50"))
    again = msgspec.json.decode(msgspec.json.encode(it), type=InstanceType)
    assert again.price_per_hour == Decimal("0.50")


@pytest.mark.parametrize(
    ("regions", "field"),
    [
        ((("us-east-1", "10.0.0.0/16"), ("us-west-2", "10.0.128.0/17")), "regions.1.cidr"),
        ((("us-east-1", "10.0.0.0/16"), ("us-east-1", "10.1.0.0/16")), "regions.1.region"),
        ((("us-east-1", "10.0.0.0/33"),), "regions.0.cidr"),
        ((("us-east-1", "10.0.0.1/16"),), "regions.0.cidr"),
    ],
)
def test_network_spec_rejects_bad_cidrs(regions: tuple[tuple[str, str], ...], field: str) -> None:
    with pytest.raises(Invalid) as info:
        NetworkSpec(
            name="net1",
            regions=tuple(NetworkRegionSpec(region=r, cidr=c) for r, c in regions),
        )
    assert info.value.field == field


def test_network_spec_accepts_disjoint_cidrs() -> None:
    spec = NetworkSpec(
        name="net1",
        regions=(
            NetworkRegionSpec(region="us-east-1", cidr="10.0.0.0/16"),
            NetworkRegionSpec(region="us-west-2", cidr="10.1.0.0/16"),
        ),
    )
    assert len(spec.regions) == 2


def test_instance_request_rules() -> None:
    base = {"region": "r", "instance_type": "t", "image": "i", "idempotency_key": "k"}
    with pytest.raises(Invalid, match="unique"):
        InstanceRequest(names=("a", "a"), **base)
    with pytest.raises(Invalid, match="single"):
        InstanceRequest(names=("a", "b"), static_ip="ip-1", **base)
    assert InstanceRequest(names=("a",), static_ip="ip-1", **base).static_ip == "ip-1"


def test_other_input_rules() -> None:
    with pytest.raises(Invalid) as job:
        JobSpec(script="#!/bin/bash\n", nodes=0)
    assert job.value.field == "nodes"
    with pytest.raises(Invalid):
        JobSpec(script="  \n")
    with pytest.raises(Invalid) as mount:
        MountRequest(mount_point="data")
    assert mount.value.field == "mount_point"
    with pytest.raises(Invalid):
        SessionEndpoint(host="localhost", port=0)


def test_secrets_stay_out_of_reprs() -> None:
    account = CloudAccount(name="awsprod1", credentials={"secret_access_key": "s3cr3t"})
    assert "s3cr3t" not in repr(account)
    assert "awsprod1" in repr(account)
    creds = TemporaryCredentials(
        env={"AWS_SECRET_ACCESS_KEY": "s3cr3t"}, expires_at=datetime.now(UTC)
    )
    assert "s3cr3t" not in repr(creds)
    endpoint = SessionEndpoint(host="n1", port=8888, headers={"Authorization": "token s3cr3t"})
    assert "s3cr3t" not in repr(endpoint)


def test_states() -> None:
    assert JobState.TIMEOUT.terminal
    assert not JobState.HELD.terminal
    assert InstanceState.TERMINATING.gone
    assert not InstanceState.STOPPED.gone
