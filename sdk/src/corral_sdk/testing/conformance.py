"""Conformance suites: one pytest test class per provider kind, for plugin authors to subclass.

Subclass the suite of your kind in a test module (the class name must start with ``Test``) and
supply the fixtures it asks for; every check then runs against your provider::

    from corral_sdk.testing.conformance import SchedulerConformance

    class TestMySlurm(SchedulerConformance):
        @pytest.fixture
        def record(self):
            return SchedulerRecord(name="myslurm", factory=MySlurm, docs="...")

        @pytest.fixture
        def runner(self):
            return TranscriptRunner.from_file(Path(__file__).parent / "slurm.transcript")

        @pytest.fixture
        def provider(self, runner):
            return MySlurm(runner)

Every suite checks that the record is valid and its factory loads, that the provider has every
method of its protocol (``async def`` where the protocol awaits, an async generator where it
iterates) with compatible parameters, that the required methods are implemented, and that every
declared feature's methods are implemented rather than left as the "unsupported" defaults of the
``*Base`` mixins (:mod:`corral_sdk.providers`). Behavioural checks follow per kind; checks that
need something only the plugin author can give (valid credentials, a live backend) are skipped,
saying so, until the fixture provides it. Override fixtures in the subclass itself: fixtures of
the suite take precedence over ones in ``conftest.py``.

Every async check is marked ``anyio`` and runs on asyncio (override ``anyio_backend`` to change).
"""

from __future__ import annotations

import inspect
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

import msgspec
import pytest

from corral_sdk.errors import Invalid, NotAuthenticated, NotFound
from corral_sdk.features import (
    AIFeature,
    AuthFeature,
    CloudFeature,
    SchedulerFeature,
    SessionFeature,
    StorageFeature,
    WorkflowActionFeature,
)
from corral_sdk.providers._common import (
    MethodKind,
    is_unsupported_default,
    protocol_methods,
    required_methods,
)
from corral_sdk.providers.action import (
    ACTION_FEATURE_METHODS,
    ActionResult,
    ReleasingAction,
    WorkflowAction,
)
from corral_sdk.providers.ai import (
    AI_FEATURE_METHODS,
    AIProvider,
    ChatChunk,
    ChatCompletion,
    ChatMessage,
    ChatRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelInfo,
)
from corral_sdk.providers.auth import (
    AUTH_FEATURE_METHODS,
    AuthMethod,
    Identity,
    LoginCallback,
    LoginRedirect,
)
from corral_sdk.providers.cloud import (
    CLOUD_FEATURE_METHODS,
    CloudAccount,
    CloudProvider,
    CredentialCheck,
    Image,
    ImageState,
    Instance,
    InstanceRequest,
    InstanceState,
    InstanceType,
    NetworkInfo,
    NetworkRegionSpec,
    NetworkSpec,
    Region,
)
from corral_sdk.providers.scheduler import (
    SCHEDULER_FEATURE_METHODS,
    AccountingRecord,
    ConfigFile,
    ElasticClusterSpec,
    ElasticPartition,
    JobSpec,
    JobState,
    JobStatus,
    Node,
    NodeState,
    Partition,
    Scheduler,
    SubmittedJob,
)
from corral_sdk.providers.session import (
    SESSION_FEATURE_METHODS,
    SessionSpec,
    SessionState,
    SessionStatus,
    SessionType,
)
from corral_sdk.providers.storage import (
    STORAGE_FEATURE_METHODS,
    MountInstructions,
    MountRequest,
    StorageInfo,
    StorageObject,
    StorageSpec,
    StorageState,
    StorageType,
    TemporaryCredentials,
)
from corral_sdk.records import (
    AIProviderRecord,
    AuthMethodRecord,
    CloudRecord,
    Registration,
    SchedulerRecord,
    SessionTypeRecord,
    StorageTypeRecord,
    WorkflowActionRecord,
)
from corral_sdk.testing.recording import RecordingActionContext, RecordingLog
from corral_sdk.testing.transcript import TranscriptRunner

__all__ = [
    "AIProviderConformance",
    "AuthMethodConformance",
    "CloudConformance",
    "ProviderConformance",
    "SchedulerConformance",
    "SessionTypeConformance",
    "StorageTypeConformance",
    "WorkflowActionConformance",
    "feature_problems",
    "protocol_problems",
]

T = TypeVar("T")

_EMPTY = inspect.Parameter.empty
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


# --- reusable checks ----------------------------------------------------------------------------


def _signature_problems(
    name: str, declared: Callable[..., Any], impl: Callable[..., Any]
) -> list[str]:
    """Whether ``impl`` (bound) accepts every call the protocol's ``declared`` allows."""
    try:
        actual = inspect.signature(impl)
    except (TypeError, ValueError):
        return []  # a builtin or C callable: nothing to compare
    wanted = list(inspect.signature(declared).parameters.values())[1:]  # without self
    params = actual.parameters
    var_pos = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params.values())
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    impl_positional = [p for p in params.values() if p.kind in _POSITIONAL]
    problems = []
    for index, param in enumerate(p for p in wanted if p.kind in _POSITIONAL):
        if index >= len(impl_positional):
            if not var_pos:
                problems.append(f"{name}() does not accept the parameter {param.name!r}")
            continue
        mine = impl_positional[index]
        if mine.name != param.name and param.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD:
            problems.append(
                f"{name}() names its parameter {index + 1} {mine.name!r}; the protocol calls "
                f"it {param.name!r}"
            )
        if param.default is not _EMPTY and mine.default is _EMPTY:
            problems.append(f"{name}() must give {mine.name!r} a default, as the protocol does")
    for param in (p for p in wanted if p.kind is inspect.Parameter.KEYWORD_ONLY):
        mine_kw = params.get(param.name)
        if mine_kw is None:
            if not var_kw:
                problems.append(f"{name}() does not accept the keyword {param.name!r}")
        elif mine_kw.kind not in (
            inspect.Parameter.KEYWORD_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            problems.append(f"{name}() must accept {param.name!r} as a keyword")
        elif param.default is not _EMPTY and mine_kw.default is _EMPTY:
            problems.append(f"{name}() must give {param.name!r} a default, as the protocol does")
    known = {p.name for p in wanted}
    for param in params.values():
        if (
            param.default is _EMPTY
            and param.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
            and param.name not in known
        ):
            problems.append(f"{name}() requires {param.name!r}, which the protocol never passes")
    return problems


def protocol_problems(provider: object, protocol: type) -> list[str]:
    """Why ``provider`` does not satisfy ``protocol`` (empty when it does): missing methods,
    a coroutine function where the protocol iterates or the reverse, incompatible parameters."""
    problems = []
    cls = type(provider).__name__
    for name, kind in protocol_methods(protocol).items():
        impl = getattr(provider, name, None)
        if impl is None:
            problems.append(f"{cls} has no method {name}()")
            continue
        if not callable(impl):
            problems.append(f"{cls}.{name} is not a method")
            continue
        if kind is MethodKind.COROUTINE and not inspect.iscoroutinefunction(impl):
            problems.append(f"{cls}.{name}() must be a coroutine function (async def)")
        elif kind is MethodKind.STREAM and inspect.iscoroutinefunction(impl):
            problems.append(
                f"{cls}.{name}() is a coroutine function but must return an async iterator: "
                "write it as an async generator (async def ... yield)"
            )
        declared = getattr(protocol, name)
        problems.extend(f"{cls}.{p}" for p in _signature_problems(name, declared, impl))
    return problems


def feature_problems(
    provider: object,
    features: frozenset[Any],
    feature_methods: Mapping[Any, tuple[str, ...]],
    protocol: type,
) -> list[str]:
    """Why ``provider`` does not implement what it declares (empty when it does).

    A method is missing when the provider lacks it or still has the "unsupported" default of a
    ``*Base`` mixin; the required methods (those no feature needs) must always be implemented.
    """
    cls = type(provider).__name__
    problems = []
    for name in required_methods(protocol, feature_methods):
        if is_unsupported_default(provider, name):
            problems.append(f"{cls}.{name}() is required of every provider but is unsupported")
    for feature in sorted(features, key=lambda f: str(f.value)):
        label = f"{type(feature).__name__}.{feature.name}"
        for name in feature_methods.get(feature, ()):
            if not callable(getattr(provider, name, None)):
                problems.append(f"{cls} declares {label} but has no {name}()")
            elif is_unsupported_default(provider, name):
                problems.append(
                    f"{cls} declares {label} but {name}() is still the 'unsupported' default; "
                    "override it, or do not declare the feature"
                )
    return problems


def _wrong_type(value: object, expected: type) -> bool:
    """Whether a provider handed back something of the wrong type (annotations are not
    enforced at run time, and msgspec structs do not check field types on construction)."""
    return not isinstance(value, expected)


def _report(problems: Sequence[str], header: str) -> None:
    if problems:
        pytest.fail(header + ":\n" + "\n".join(f"  - {p}" for p in problems), pytrace=False)


async def _eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    *,
    what: str,
    within: float,
    interval: float,
) -> T:
    """Call ``probe`` until ``accept`` likes its result (real clouds are eventually consistent)."""
    import anyio

    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if accept(value):
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"{what} within {within:g} s; last saw {value!r}", pytrace=False)
        await anyio.sleep(interval)


async def _collect(iterator: Any, call: str) -> list[Any]:
    """Iterate what a stream method returned, failing clearly when it is not an iterator."""
    if inspect.iscoroutine(iterator):
        iterator.close()  # never awaited: close it so no warning follows the failure
        pytest.fail(
            f"{call} returned a coroutine, not an async iterator: write it as an async "
            "generator (async def ... yield)",
            pytrace=False,
        )
    if not hasattr(iterator, "__anext__"):
        pytest.fail(f"{call} returned {iterator!r}, not an async iterator", pytrace=False)
    return [item async for item in iterator]


def _token() -> str:
    return uuid.uuid4().hex[:10]


# --- the base suite -----------------------------------------------------------------------------


class ProviderConformance:
    """Checks every provider kind shares. Fixtures to supply: ``record`` (the registration
    record) and ``provider`` (an instance); optionally ``plugin`` (the module or object holding
    the hook implementations) to check that it registers ``record``."""

    record_type: ClassVar[type[Registration]] = Registration
    protocol: ClassVar[type]
    feature_methods: ClassVar[Mapping[Any, tuple[str, ...]]]
    register_hook: ClassVar[str]
    factory_args: ClassVar[tuple[str, ...]] = ()
    """What the kernel passes the factory, positionally (see :mod:`corral_sdk.providers`)."""

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    def plugin(self) -> object | None:
        return None

    def test_record_is_valid(self, record: Registration) -> None:
        problems = []
        if not isinstance(record, self.record_type):
            problems.append(
                f"record is a {type(record).__name__}, not a {self.record_type.__name__}"
            )
        feature_type = type(next(iter(self.feature_methods)))
        for feature in getattr(record, "features", ()):
            if not isinstance(feature, feature_type):
                problems.append(f"feature {feature!r} is not a {feature_type.__name__}")
        if record.config is not None and not (
            not _wrong_type(record.config, type) and issubclass(record.config, msgspec.Struct)
        ):
            problems.append(f"config {record.config!r} is not a msgspec.Struct subclass")
        if not record.docs.strip():
            problems.append("docs is empty: give users one paragraph on what it is and needs")
        _report(problems, f"record {record.name!r} is not valid")

    def test_factory_loads(self, record: Registration) -> None:
        try:
            factory = record.load()
        except Exception as exc:
            pytest.fail(f"factory {record.factory!r} does not load: {exc!r}", pytrace=False)
        assert callable(factory), f"factory {record.factory!r} is not callable"

    def test_factory_accepts_the_kernels_arguments(self, record: Registration) -> None:
        factory = record.load()
        try:
            signature = inspect.signature(factory)
        except (TypeError, ValueError):
            return  # a builtin: nothing to check
        try:
            signature.bind(*(None for _ in self.factory_args))
        except TypeError as exc:
            call = f"factory({', '.join(self.factory_args)})"
            pytest.fail(
                f"the kernel builds a {self.protocol.__name__} as {call}, and "
                f"{getattr(factory, '__name__', factory)!r} cannot be called so: {exc}",
                pytrace=False,
            )

    def test_provider_comes_from_factory(self, record: Registration, provider: object) -> None:
        factory = record.load()
        if isinstance(factory, type):
            assert isinstance(provider, factory), (
                f"the provider fixture is a {type(provider).__name__}, but the record's factory "
                f"builds {factory.__name__}"
            )

    def test_provider_satisfies_protocol(self, provider: object) -> None:
        _report(
            protocol_problems(provider, self.protocol),
            f"{type(provider).__name__} does not satisfy {self.protocol.__name__}",
        )
        assert isinstance(provider, self.protocol)

    def test_declared_features_are_implemented(
        self, record: Registration, provider: object
    ) -> None:
        features = frozenset(getattr(record, "features", frozenset()))
        _report(
            feature_problems(provider, features, self.feature_methods, self.protocol),
            f"{type(provider).__name__} does not implement what {record.name!r} declares",
        )

    def test_plugin_registers_record(
        self, record: Registration, plugin: object | None, corral_plugin_manager: Any
    ) -> None:
        if plugin is None:
            pytest.skip("no `plugin` fixture: registration through the hook is not checked")
        corral_plugin_manager.register(plugin)
        results = getattr(corral_plugin_manager.hook, self.register_hook)()
        registered = [item for result in results for item in result]
        same_name = [item for item in registered if item.name == record.name]
        assert same_name, (
            f"{self.register_hook} returned {[item.name for item in registered]}, "
            f"not {record.name!r}"
        )
        assert same_name[0] == record, f"the plugin registers {same_name[0]!r}, not {record!r}"


# --- clouds -------------------------------------------------------------------------------------


class CloudConformance(ProviderConformance):
    """Conformance of a :class:`~corral_sdk.providers.cloud.CloudProvider`.

    Fixtures to supply: ``record``, ``provider``, ``account`` (a
    :class:`~corral_sdk.providers.cloud.CloudAccount` with credentials that work against the
    backend under test: a real cloud, an emulator, or a fake at the HTTP boundary). Optional:
    ``live`` (``True`` when instances and networks may really be created and deleted: the
    create, describe and delete cycles run only then), ``region`` (default: the first listed),
    ``instance_request`` (default: the cheapest non-GPU type with the ``latest`` image),
    ``network_spec``, ``poll_timeout`` and ``poll_interval`` (seconds).

    The listing checks (credentials, regions, instance types, images) call the backend whatever
    ``live`` says; offline, point ``account`` at an emulator or a fake at the HTTP boundary.
    """

    record_type = CloudRecord
    protocol = CloudProvider
    feature_methods = CLOUD_FEATURE_METHODS
    register_hook = "corral_register_clouds"

    @pytest.fixture
    def live(self) -> bool:
        return False

    @pytest.fixture
    def region(self) -> str | None:
        return None

    @pytest.fixture
    def instance_request(self) -> InstanceRequest | None:
        return None

    @pytest.fixture
    def network_spec(self) -> NetworkSpec | None:
        return None

    @pytest.fixture
    def poll_timeout(self) -> float:
        return 600.0

    @pytest.fixture
    def poll_interval(self) -> float:
        return 5.0

    async def _region(
        self, provider: CloudProvider, account: CloudAccount, region: str | None
    ) -> str:
        if region is not None:
            return region
        regions = await provider.list_regions(account)
        assert regions, "list_regions() returned no region"
        return regions[0].name

    def test_account_matches_record(self, record: CloudRecord, account: CloudAccount) -> None:
        assert isinstance(account, CloudAccount), "the account fixture must be a CloudAccount"
        if record.credentials is not None:
            assert isinstance(account.credentials, record.credentials), (
                f"account.credentials is a {type(account.credentials).__name__}, not the "
                f"record's {record.credentials.__name__}"
            )

    @pytest.mark.anyio
    async def test_validate_credentials(
        self, provider: CloudProvider, account: CloudAccount
    ) -> None:
        check = await provider.validate_credentials(account)
        assert isinstance(check, CredentialCheck), f"returned {check!r}, not a CredentialCheck"
        assert check.principal.strip(), "the check names no principal"
        if not check.sufficient:
            assert check.missing_permissions or check.message, (
                "insufficient permissions must say which are missing or why"
            )

    @pytest.mark.anyio
    async def test_list_regions(self, provider: CloudProvider, account: CloudAccount) -> None:
        regions = await provider.list_regions(account)
        assert regions, "list_regions() returned no region"
        problems = [f"{r!r} is not a Region" for r in regions if not isinstance(r, Region)]
        names = [r.name for r in regions]
        if len(set(names)) != len(names) or not all(names):
            problems.append(f"region names must be unique and non-empty: {names}")
        _report(problems, "list_regions() is wrong")

    @pytest.mark.anyio
    async def test_list_instance_types(
        self,
        record: CloudRecord,
        provider: CloudProvider,
        account: CloudAccount,
        region: str | None,
    ) -> None:
        name = await self._region(provider, account, region)
        types = await provider.list_instance_types(account, name)
        assert types, f"list_instance_types() returned nothing for {name}"
        problems = []
        for it in types:
            if _wrong_type(it, InstanceType):
                problems.append(f"{it!r} is not an InstanceType")
                continue
            if not it.name:
                problems.append(f"{it!r} has no name")
            if not (isinstance(it.vcpus, int) and it.vcpus > 0):
                problems.append(f"{it.name}: vcpus must be a positive integer, not {it.vcpus!r}")
            if not it.memory_gib > 0:
                problems.append(f"{it.name}: memory must be positive, not {it.memory_gib!r}")
            if it.gpus < 0:
                problems.append(f"{it.name}: negative GPU count")
            for label, price in (
                ("price", it.price_per_hour),
                ("spot price", it.spot_price_per_hour),
            ):
                if price is not None and not (isinstance(price, Decimal) and price >= 0):
                    problems.append(f"{it.name}: {label} must be a Decimal >= 0, not {price!r}")
            if CloudFeature.INSTANCE_PRICES in record.features and it.price_per_hour is None:
                problems.append(f"{it.name}: INSTANCE_PRICES is declared but it has no price")
            if it.gpus > 0 and CloudFeature.GPUS not in record.features:
                problems.append(f"{it.name} has GPUs but the record does not declare GPUS")
        names = [it.name for it in types if isinstance(it, InstanceType)]
        if len(set(names)) != len(names):
            problems.append("instance type names are not unique")
        _report(problems, f"list_instance_types() for {name} is wrong")

    @pytest.mark.anyio
    async def test_unknown_region_is_not_found(
        self, provider: CloudProvider, account: CloudAccount
    ) -> None:
        with pytest.raises(NotFound):
            await provider.list_instance_types(account, "corral-conformance-no-such-region")

    @pytest.mark.anyio
    async def test_list_images(
        self, provider: CloudProvider, account: CloudAccount, region: str | None
    ) -> None:
        name = await self._region(provider, account, region)
        images = await provider.list_images(account, name)
        assert images, f"list_images() returned nothing to boot from in {name}"
        problems = [f"{i!r} is not an Image" for i in images if not isinstance(i, Image)]
        ids = [i.id for i in images if isinstance(i, Image)]
        if len(set(ids)) != len(ids) or not all(ids):
            problems.append(f"image ids must be unique and non-empty: {ids}")
        _report(problems, f"list_images() for {name} is wrong")

    @pytest.mark.anyio
    async def test_describe_unknown_instance_is_left_out(
        self, provider: CloudProvider, account: CloudAccount, region: str | None
    ) -> None:
        name = await self._region(provider, account, region)
        missing = "corral-conformance-missing"
        found = await provider.describe_instances(account, name, instance_ids=[missing])
        assert all(i.id != missing for i in found), "an unknown instance id was described"

    async def _default_request(
        self, provider: CloudProvider, account: CloudAccount, region: str
    ) -> InstanceRequest:
        types = [t for t in await provider.list_instance_types(account, region) if t.gpus == 0]
        assert types, f"no instance type without GPUs in {region}; give an instance_request"
        infinity = Decimal("Infinity")
        cheapest = min(
            types,
            key=lambda t: (
                t.price_per_hour if t.price_per_hour is not None else infinity,
                t.vcpus,
                t.memory_gib,
            ),
        )
        images = [
            i
            for i in await provider.list_images(account, region)
            if i.state is ImageState.AVAILABLE and i.architecture == cheapest.architecture
        ]
        assert images, f"no available {cheapest.architecture} image in {region}"
        image = next((i for i in images if i.latest), images[0])
        token = _token()
        name = f"corral-conformance-{token}"
        return InstanceRequest(
            region=region,
            instance_type=cheapest.name,
            image=image.id,
            names=(name,),
            idempotency_key=name,
            tags={"Name": name, "corral-conformance": token},
        )

    @pytest.mark.anyio
    async def test_instance_lifecycle(
        self,
        *,
        provider: CloudProvider,
        account: CloudAccount,
        region: str | None,
        instance_request: InstanceRequest | None,
        live: bool,
        poll_timeout: float,
        poll_interval: float,
    ) -> None:
        if not live:
            pytest.skip("the backend is not live: set the `live` fixture to run create/delete")
        request = instance_request or await self._default_request(
            provider, account, await self._region(provider, account, region)
        )
        where = request.region
        log = RecordingLog()
        created = await provider.create_instances(account, request, log=log)
        ids = [i.id for i in created if isinstance(i, Instance)]
        try:
            problems = [f"{i!r} is not an Instance" for i in created if not isinstance(i, Instance)]
            if sorted(i.name for i in created) != sorted(request.names):
                problems.append(f"asked for {list(request.names)}, got {[i.name for i in created]}")
            if len(set(ids)) != len(ids) or not all(ids):
                problems.append(f"instance ids must be unique and non-empty: {ids}")
            problems.extend(
                f"{i.id} is already {i.state!s} right after creation"
                for i in created
                if not isinstance(i.state, InstanceState) or i.state.gone
            )
            _report(problems, "create_instances() is wrong")

            again = await provider.create_instances(account, request, log=log)
            extra = [i.id for i in again if i.id not in ids]
            ids.extend(extra)
            assert not extra, (
                "create_instances() is not idempotent: a second call with the same "
                f"idempotency_key created {extra}"
            )

            seen = await _eventually(
                lambda: provider.describe_instances(account, where, instance_ids=ids),
                lambda found: {i.id for i in found} >= set(ids),
                what=f"describe_instances() did not show {ids}",
                within=poll_timeout,
                interval=poll_interval,
            )
            for instance in seen:
                assert not instance.state.gone, f"{instance.id} is {instance.state!s}"
            if request.tags:
                await _eventually(
                    lambda: provider.describe_instances(account, where, tags=request.tags),
                    lambda found: {i.id for i in found} >= set(ids),
                    what=f"describe_instances(tags={request.tags}) did not find {ids}",
                    within=poll_timeout,
                    interval=poll_interval,
                )
        finally:
            await provider.delete_instances(account, where, ids)
        await _eventually(
            lambda: provider.describe_instances(account, where, instance_ids=ids),
            lambda found: all(i.state.gone for i in found if i.id in ids),
            what=f"delete_instances() did not remove {ids}",
            within=poll_timeout,
            interval=poll_interval,
        )
        await provider.delete_instances(account, where, ids)  # idempotent: no error

    @pytest.mark.anyio
    async def test_network_lifecycle(
        self,
        *,
        record: CloudRecord,
        provider: CloudProvider,
        account: CloudAccount,
        region: str | None,
        network_spec: NetworkSpec | None,
        live: bool,
    ) -> None:
        if CloudFeature.NETWORKS not in record.features:
            pytest.skip("the record does not declare NETWORKS")
        if not live:
            pytest.skip("the backend is not live: set the `live` fixture to run create/delete")
        if network_spec is None:
            token = _token()
            network_spec = NetworkSpec(
                name=f"corralconformance{token}",
                regions=(
                    NetworkRegionSpec(
                        region=await self._region(provider, account, region), cidr="10.213.0.0/16"
                    ),
                ),
                tags={"corral-conformance": token},
            )
        log = RecordingLog()
        network = await provider.create_network(account, network_spec, log=log)
        try:
            assert isinstance(network, NetworkInfo), f"returned {network!r}, not a NetworkInfo"
            assert network.id, "the network has no id"
            assert {r.region for r in network.regions} == {
                r.region for r in network_spec.regions
            }, f"the network's regions {network.regions} are not those asked for"
            again = await provider.create_network(account, network_spec, log=log)
            assert again.id == network.id, "create_network() is not idempotent"
            # a cluster wholly in one zone of the network is one any network serves: no raise
            asked = network_spec.regions[0]
            placed = next(r for r in network.regions if r.region == asked.region)
            offered = {r.name: r.zones for r in await provider.list_regions(account)}
            zones = offered.get(asked.region, ())
            zone = asked.zone or (zones[0] if zones else "")
            await provider.check_cluster_network(
                account, placed, network_spec.mode, zone, {"conformance": [zone] if zone else []}
            )
        finally:
            await provider.delete_network(account, network, log=log)
        await provider.delete_network(account, network, log=log)  # idempotent: no error


# --- schedulers ---------------------------------------------------------------------------------


class SchedulerConformance(ProviderConformance):
    """Conformance of a :class:`~corral_sdk.providers.scheduler.Scheduler`.

    Fixtures to supply: ``record``, ``runner`` (a
    :class:`~corral_sdk.testing.TranscriptRunner` holding transcripts for every command the
    checks cause, or a runner to a real cluster) and ``provider`` (built on that runner).
    Optional: ``job_spec`` (the job the checks submit), ``elastic_cluster`` (for
    ``ELASTIC_NODES``).

    With an unordered transcript one entry per command shape (``times *``) serves every check:
    the checks submit ``job_spec``, ask its status, cancel it, hold and release it, list the
    queue and, per declared feature, partitions, nodes and accounting.
    """

    record_type = SchedulerRecord
    protocol = Scheduler
    factory_args = ("runner", "config")
    feature_methods = SCHEDULER_FEATURE_METHODS
    register_hook = "corral_register_schedulers"

    @pytest.fixture
    def job_spec(self) -> JobSpec:
        return JobSpec(script="#!/bin/bash\necho corral-conformance\n", name="corral-conformance")

    @pytest.fixture
    def elastic_cluster(self) -> ElasticClusterSpec:
        return ElasticClusterSpec(
            cluster_name="conformance",
            controller_host="conformance-mgmt",
            partitions=(
                ElasticPartition(
                    name="compute",
                    node_prefix="conformance-00001-1-",
                    max_nodes=4,
                    cpus=8,
                    memory_mb=30000,
                    default=True,
                ),
                ElasticPartition(
                    name="gpu",
                    node_prefix="conformance-00001-2-",
                    max_nodes=2,
                    cpus=16,
                    memory_mb=60000,
                    gpus=1,
                ),
            ),
            resume_program="/opt/corral/bin/resume",
            suspend_program="/opt/corral/bin/suspend",
        )

    async def _submit(self, provider: Scheduler, job_spec: JobSpec) -> str:
        submitted = await provider.submit(job_spec)
        assert isinstance(submitted, SubmittedJob), f"submit() returned {submitted!r}"
        job_id = submitted.job_id
        assert isinstance(job_id, str), f"submit() gave job id {job_id!r}, not a string"
        assert job_id.strip(), "submit() gave an empty job id"
        assert job_id == job_id.strip(), f"job id {job_id!r} has surrounding spaces"
        assert " " not in job_id, f"job id {job_id!r} has spaces"
        return job_id

    @pytest.mark.anyio
    async def test_submit_returns_job_id(self, provider: Scheduler, job_spec: JobSpec) -> None:
        await self._submit(provider, job_spec)

    @pytest.mark.anyio
    async def test_submit_many_returns_one_result_per_job(
        self, record: SchedulerRecord, provider: Scheduler, job_spec: JobSpec
    ) -> None:
        if SchedulerFeature.BATCH_SUBMIT not in record.features:
            pytest.skip("the record does not declare BATCH_SUBMIT")
        results = await provider.submit_many([job_spec, job_spec])
        assert len(results) == 2, f"submit_many() of two jobs gave {len(results)} results"
        for result in results:
            assert isinstance(result, SubmittedJob), (
                f"submit_many() gave {result!r} for a job submit() accepts"
            )
            assert result.job_id.strip() and " " not in result.job_id, result.job_id
        assert list(await provider.submit_many([])) == [], "submit_many([]) submits nothing"

    @pytest.mark.anyio
    async def test_status_of_submitted_job(self, provider: Scheduler, job_spec: JobSpec) -> None:
        job_id = await self._submit(provider, job_spec)
        statuses = await provider.status([job_id])
        assert set(statuses) == {job_id}, (
            f"status([{job_id!r}]) must have exactly that key, got {sorted(statuses)}"
        )
        status = statuses[job_id]
        assert isinstance(status, JobStatus), f"status() gave {status!r}, not a JobStatus"
        assert status.job_id == job_id, f"the status of {job_id} says job {status.job_id}"
        assert isinstance(status.state, JobState), (
            f"the state of {job_id} is {status.state!r}, not a JobState: map the scheduler's "
            f"state {status.native_state!r} onto JobState"
        )

    @pytest.mark.anyio
    async def test_status_of_no_jobs_runs_nothing(self, provider: Scheduler, runner: Any) -> None:
        before = len(runner.calls) if isinstance(runner, TranscriptRunner) else None
        assert dict(await provider.status([])) == {}
        await provider.cancel([])
        if before is not None and isinstance(runner, TranscriptRunner):
            assert runner.commands[before:] == [], "status([]) or cancel([]) ran a command"

    @pytest.mark.anyio
    async def test_cancel_submitted_job(self, provider: Scheduler, job_spec: JobSpec) -> None:
        job_id = await self._submit(provider, job_spec)
        await provider.cancel([job_id])

    @pytest.mark.anyio
    async def test_queue(self, provider: Scheduler) -> None:
        jobs = await provider.queue()
        problems = []
        for job in jobs:
            if _wrong_type(job, JobStatus):
                problems.append(f"{job!r} is not a JobStatus")
            elif _wrong_type(job.state, JobState):
                problems.append(f"job {job.job_id} has state {job.state!r}, not a JobState")
        _report(problems, "queue() is wrong")

    @pytest.mark.anyio
    async def test_array_job(
        self, record: SchedulerRecord, provider: Scheduler, job_spec: JobSpec
    ) -> None:
        array_spec = msgspec.structs.replace(job_spec, array="0-1")
        if SchedulerFeature.JOB_ARRAYS in record.features:
            await self._submit(provider, array_spec)
        else:
            with pytest.raises(Invalid):
                await provider.submit(array_spec)

    @pytest.mark.anyio
    async def test_hold_and_release(
        self, record: SchedulerRecord, provider: Scheduler, job_spec: JobSpec
    ) -> None:
        if SchedulerFeature.HOLD_RELEASE not in record.features:
            pytest.skip("the record does not declare HOLD_RELEASE")
        job_id = await self._submit(provider, job_spec)
        await provider.hold([job_id])
        await provider.release([job_id])

    @pytest.mark.anyio
    async def test_partitions(self, record: SchedulerRecord, provider: Scheduler) -> None:
        if SchedulerFeature.PARTITIONS not in record.features:
            pytest.skip("the record does not declare PARTITIONS")
        partitions = await provider.partitions()
        problems = [f"{p!r} is not a Partition" for p in partitions if not isinstance(p, Partition)]
        names = [p.name for p in partitions]
        if len(set(names)) != len(names) or not all(names):
            problems.append(f"partition names must be unique and non-empty: {names}")
        defaults = [p.name for p in partitions if p.default]
        if len(defaults) > 1:
            problems.append(f"more than one default partition: {defaults}")
        _report(problems, "partitions() is wrong")

    @pytest.mark.anyio
    async def test_nodes(self, record: SchedulerRecord, provider: Scheduler) -> None:
        if SchedulerFeature.NODES not in record.features:
            pytest.skip("the record does not declare NODES")
        nodes = await provider.nodes()
        problems = []
        for node in nodes:
            if _wrong_type(node, Node):
                problems.append(f"{node!r} is not a Node")
            elif _wrong_type(node.state, NodeState):
                problems.append(f"node {node.name} has state {node.state!r}, not a NodeState")
        _report(problems, "nodes() is wrong")

    @pytest.mark.anyio
    async def test_accounting(
        self, record: SchedulerRecord, provider: Scheduler, job_spec: JobSpec
    ) -> None:
        if SchedulerFeature.ACCOUNTING not in record.features:
            pytest.skip("the record does not declare ACCOUNTING")
        job_id = await self._submit(provider, job_spec)
        records = await provider.accounting(job_ids=[job_id])
        problems = []
        for item in records:
            if _wrong_type(item, AccountingRecord):
                problems.append(f"{item!r} is not an AccountingRecord")
            elif _wrong_type(item.state, JobState):
                problems.append(f"job {item.job_id} has state {item.state!r}, not a JobState")
            elif not item.job_id.startswith(job_id):
                problems.append(f"asked for job {job_id}, got job {item.job_id}")
        _report(problems, "accounting() is wrong")

    @pytest.mark.anyio
    async def test_elastic_config(
        self, record: SchedulerRecord, provider: Scheduler, elastic_cluster: ElasticClusterSpec
    ) -> None:
        if SchedulerFeature.ELASTIC_NODES not in record.features:
            pytest.skip("the record does not declare ELASTIC_NODES")
        files = await provider.elastic_config(elastic_cluster)
        assert files, "elastic_config() returned no file"
        problems = []
        for file in files:
            if _wrong_type(file, ConfigFile):
                problems.append(f"{file!r} is not a ConfigFile")
            elif not file.path.startswith("/"):
                problems.append(f"{file.path!r} is not an absolute path")
        text = "\n".join(f.content for f in files if isinstance(f, ConfigFile))
        for partition in elastic_cluster.partitions:
            if partition.name not in text or partition.node_prefix not in text:
                problems.append(f"partition {partition.name!r} and its nodes are not configured")
        _report(problems, "elastic_config() is wrong")


# --- storage ------------------------------------------------------------------------------------


class StorageTypeConformance(ProviderConformance):
    """Conformance of a :class:`~corral_sdk.providers.storage.StorageType`.

    Fixtures to supply: ``record``, ``provider``, ``storage_spec`` (a valid
    :class:`~corral_sdk.providers.storage.StorageSpec`). Optional: ``invalid_storage_spec``
    (options that break one of the type's rules), ``live`` (``True`` when storage may really be
    provisioned and deleted), ``mount_request``, ``poll_timeout``, ``poll_interval``.
    """

    record_type = StorageTypeRecord
    protocol = StorageType
    feature_methods = STORAGE_FEATURE_METHODS
    register_hook = "corral_register_storage_types"

    @pytest.fixture
    def invalid_storage_spec(self) -> StorageSpec | None:
        return None

    @pytest.fixture
    def live(self) -> bool:
        return False

    @pytest.fixture
    def mount_request(self) -> MountRequest:
        return MountRequest(mount_point="/mnt/corral-conformance")

    @pytest.fixture
    def poll_timeout(self) -> float:
        return 900.0

    @pytest.fixture
    def poll_interval(self) -> float:
        return 5.0

    def test_spec_options_match_record(
        self, record: StorageTypeRecord, storage_spec: StorageSpec
    ) -> None:
        if record.config is not None:
            assert isinstance(storage_spec.options, record.config), (
                f"storage_spec.options is a {type(storage_spec.options).__name__}, not the "
                f"record's {record.config.__name__}"
            )

    @pytest.mark.anyio
    async def test_validate_accepts_spec(
        self, provider: StorageType, storage_spec: StorageSpec
    ) -> None:
        await provider.validate(storage_spec)

    @pytest.mark.anyio
    async def test_validate_rejects_invalid_spec(
        self, provider: StorageType, invalid_storage_spec: StorageSpec | None
    ) -> None:
        if invalid_storage_spec is None:
            pytest.skip("no `invalid_storage_spec` fixture")
        with pytest.raises(Invalid) as info:
            await provider.validate(invalid_storage_spec)
        assert info.value.field, "Invalid must name the field that is wrong"

    @pytest.mark.anyio
    async def test_estimate_cost(self, provider: StorageType, storage_spec: StorageSpec) -> None:
        cost = await provider.estimate_cost(storage_spec)
        assert cost is None or (isinstance(cost, Decimal) and cost >= 0), (
            f"estimate_cost() must give None or a Decimal >= 0, not {cost!r}"
        )

    @pytest.mark.anyio
    async def test_lifecycle(
        self,
        *,
        record: StorageTypeRecord,
        provider: StorageType,
        storage_spec: StorageSpec,
        mount_request: MountRequest,
        live: bool,
        poll_timeout: float,
        poll_interval: float,
    ) -> None:
        if not live:
            pytest.skip("the backend is not live: set the `live` fixture to provision")
        log = RecordingLog()
        info = await provider.provision(storage_spec, log=log)
        try:
            assert isinstance(info, StorageInfo), f"provision() returned {info!r}"
            assert info.id, "the provisioned storage has no id"
            assert info.state in (StorageState.PROVISIONING, StorageState.AVAILABLE), (
                f"a new storage is {info.state!r}"
            )
            again = await provider.provision(storage_spec, log=log)
            assert again.id == info.id, "provision() is not idempotent for one resource_id"
            info = await _eventually(
                lambda: provider.describe(storage_spec, info),
                lambda seen: seen.state is StorageState.AVAILABLE,
                what="the storage did not become available",
                within=poll_timeout,
                interval=poll_interval,
            )
            await self._check_features(record, provider, storage_spec, info, mount_request)
        finally:
            await provider.deprovision(storage_spec, info, log=log)
        await _eventually(
            lambda: provider.describe(storage_spec, info),
            lambda seen: seen.state is StorageState.DELETED,
            what="deprovision() did not delete the storage",
            within=poll_timeout,
            interval=poll_interval,
        )
        await provider.deprovision(storage_spec, info, log=log)  # idempotent: no error

    async def _check_features(
        self,
        record: StorageTypeRecord,
        provider: StorageType,
        spec: StorageSpec,
        info: StorageInfo,
        mount_request: MountRequest,
    ) -> None:
        if StorageFeature.MOUNT in record.features:
            mount = await provider.mount_instructions(spec, info, mount_request)
            assert isinstance(mount, MountInstructions), f"mount_instructions() gave {mount!r}"
            assert mount.commands, "mount_instructions() gave no command"
            assert mount.mount_point == mount_request.mount_point, "the mount point changed"
        if StorageFeature.TEMPORARY_CREDENTIALS in record.features:
            creds = await provider.temporary_credentials(spec, info)
            assert isinstance(creds, TemporaryCredentials), "temporary_credentials() is wrong"
            assert creds.env, "the temporary credentials carry no variables"
            assert creds.expires_at.tzinfo is not None, "expires_at must be timezone-aware"
            assert creds.expires_at > datetime.now(UTC), "the credentials expired already"
        if StorageFeature.OBJECT_LISTING in record.features:
            objects = await _collect(provider.list_objects(spec, info), "list_objects()")
            assert all(isinstance(o, StorageObject) for o in objects), "list_objects() is wrong"


# --- auth ---------------------------------------------------------------------------------------


class AuthMethodConformance(ProviderConformance):
    """Conformance of an :class:`~corral_sdk.providers.auth.AuthMethod`.

    Fixtures to supply: ``record``, ``provider``. Optional: ``valid_credentials`` (a
    ``(username, password)`` pair the backend accepts, to check a password sign-in),
    ``invalid_credentials``, ``redirect_uri``, ``mfa_identity``.
    """

    record_type = AuthMethodRecord
    protocol = AuthMethod
    factory_args = ("config",)
    feature_methods = AUTH_FEATURE_METHODS
    register_hook = "corral_register_auth_methods"

    @pytest.fixture
    def valid_credentials(self) -> tuple[str, str] | None:
        return None

    @pytest.fixture
    def invalid_credentials(self) -> tuple[str, str]:
        return ("corral-conformance-nobody", "corral-conformance-wrong-password")

    @pytest.fixture
    def redirect_uri(self) -> str:
        return "https://corral.example/api/auth/callback"

    @pytest.fixture
    def mfa_identity(self) -> Identity:
        return Identity(subject="corral-conformance", username="corral-conformance")

    @pytest.mark.anyio
    async def test_validate_config(self, provider: AuthMethod) -> None:
        await provider.validate_config()

    @pytest.mark.anyio
    async def test_wrong_password_is_refused(
        self, record: AuthMethodRecord, provider: AuthMethod, invalid_credentials: tuple[str, str]
    ) -> None:
        if AuthFeature.PASSWORD not in record.features:
            pytest.skip("the record does not declare PASSWORD")
        username, password = invalid_credentials
        with pytest.raises(NotAuthenticated) as info:
            await provider.authenticate_password(username, password)
        error = info.value
        assert password not in f"{error.message} {error.log_message} {error.details}", (
            "the error repeats the password"
        )

    @pytest.mark.anyio
    async def test_password_sign_in(
        self,
        record: AuthMethodRecord,
        provider: AuthMethod,
        valid_credentials: tuple[str, str] | None,
    ) -> None:
        if AuthFeature.PASSWORD not in record.features:
            pytest.skip("the record does not declare PASSWORD")
        if valid_credentials is None:
            pytest.skip("no `valid_credentials` fixture")
        identity = await provider.authenticate_password(*valid_credentials)
        self._check_identity(record, identity)

    def _check_identity(self, record: AuthMethodRecord, identity: Identity) -> None:
        assert isinstance(identity, Identity), f"returned {identity!r}, not an Identity"
        problems = []
        if not identity.subject.strip():
            problems.append("the identity has no subject")
        if not identity.username.strip():
            problems.append("the identity has no username")
        if not all(isinstance(g, str) and g for g in identity.groups):
            problems.append(f"groups must be non-empty strings: {identity.groups!r}")
        posix = identity.posix
        if posix is not None:
            for label, value in (("uid", posix.uid), ("gid", posix.gid)):
                if value is not None and not (isinstance(value, int) and value >= 0):
                    problems.append(f"POSIX {label} must be an integer >= 0, not {value!r}")
        if identity.groups and AuthFeature.GROUP_SYNC not in record.features:
            problems.append("the identity has groups but the record does not declare GROUP_SYNC")
        _report(problems, "the identity is wrong")

    @pytest.mark.anyio
    async def test_begin_login(
        self, record: AuthMethodRecord, provider: AuthMethod, redirect_uri: str
    ) -> None:
        if AuthFeature.REDIRECT not in record.features:
            pytest.skip("the record does not declare REDIRECT")
        first = await provider.begin_login(redirect_uri)
        second = await provider.begin_login(redirect_uri)
        assert isinstance(first, LoginRedirect), f"begin_login() returned {first!r}"
        assert first.url.startswith(("https://", "http://")), f"{first.url!r} is not a URL"
        assert first.state, "begin_login() gave no state"
        assert first.state != second.state, "two sign-ins got the same state"

    @pytest.mark.anyio
    async def test_callback_with_error_is_refused(
        self, record: AuthMethodRecord, provider: AuthMethod, redirect_uri: str
    ) -> None:
        if AuthFeature.REDIRECT not in record.features:
            pytest.skip("the record does not declare REDIRECT")
        redirect = await provider.begin_login(redirect_uri)
        callback = LoginCallback(
            params={"error": "access_denied", "state": redirect.state},
            redirect_uri=redirect_uri,
            state=redirect.state,
            session_data=redirect.session_data,
        )
        with pytest.raises(NotAuthenticated):
            await provider.complete_login(callback)

    @pytest.mark.anyio
    async def test_callback_with_forged_state_is_refused(
        self, record: AuthMethodRecord, provider: AuthMethod, redirect_uri: str
    ) -> None:
        if AuthFeature.REDIRECT not in record.features:
            pytest.skip("the record does not declare REDIRECT")
        redirect = await provider.begin_login(redirect_uri)
        callback = LoginCallback(
            params={"code": "corral-conformance-code", "state": f"forged-{redirect.state}"},
            redirect_uri=redirect_uri,
            state=redirect.state,
            session_data=redirect.session_data,
        )
        with pytest.raises(NotAuthenticated):
            await provider.complete_login(callback)

    @pytest.mark.anyio
    async def test_wrong_mfa_code_is_refused(
        self, record: AuthMethodRecord, provider: AuthMethod, mfa_identity: Identity
    ) -> None:
        if AuthFeature.MFA not in record.features:
            pytest.skip("the record does not declare MFA")
        with pytest.raises(NotAuthenticated):
            await provider.verify_mfa(mfa_identity, "not-a-code")


# --- AI -----------------------------------------------------------------------------------------


class AIProviderConformance(ProviderConformance):
    """Conformance of an :class:`~corral_sdk.providers.ai.AIProvider`.

    Fixtures to supply: ``record``, ``provider`` (talking to a stub or real endpoint).
    Optional: ``model`` (default: the first listed).
    """

    record_type = AIProviderRecord
    protocol = AIProvider
    factory_args = ("config",)
    feature_methods = AI_FEATURE_METHODS
    register_hook = "corral_register_ai_providers"

    @pytest.fixture
    def model(self) -> str | None:
        return None

    async def _model(self, provider: AIProvider, model: str | None) -> str:
        if model is not None:
            return model
        models = await provider.list_models()
        assert models, "list_models() returned no model"
        return models[0].id

    def _request(self, model: str) -> ChatRequest:
        return ChatRequest(
            model=model,
            messages=(ChatMessage(role="user", content="Reply with the word: hello"),),
            max_tokens=16,
        )

    @pytest.mark.anyio
    async def test_list_models(self, provider: AIProvider) -> None:
        models = await provider.list_models()
        assert models, "list_models() returned no model"
        problems = [f"{m!r} is not a ModelInfo" for m in models if not isinstance(m, ModelInfo)]
        ids = [m.id for m in models]
        if len(set(ids)) != len(ids) or not all(ids):
            problems.append(f"model ids must be unique and non-empty: {ids}")
        _report(problems, "list_models() is wrong")

    @pytest.mark.anyio
    async def test_chat(self, provider: AIProvider, model: str | None) -> None:
        answer = await provider.chat(self._request(await self._model(provider, model)))
        assert isinstance(answer, ChatCompletion), f"chat() returned {answer!r}"
        assert answer.choices, "the completion has no choice"
        message = answer.choices[0].message
        assert isinstance(message, ChatMessage), f"the first choice is {message!r}"
        assert message.role == "assistant", f"the first choice is a {message.role} message"
        assert message.content or message.tool_calls, "the assistant message is empty"

    @pytest.mark.anyio
    async def test_unknown_model_is_not_found(self, provider: AIProvider) -> None:
        with pytest.raises(NotFound):
            await provider.chat(self._request("corral-conformance-no-such-model"))

    @pytest.mark.anyio
    async def test_stream_chat(
        self, record: AIProviderRecord, provider: AIProvider, model: str | None
    ) -> None:
        if AIFeature.STREAMING not in record.features:
            pytest.skip("the record does not declare STREAMING")
        request = msgspec.structs.replace(
            self._request(await self._model(provider, model)), stream=True
        )
        chunks = await _collect(provider.stream_chat(request), "stream_chat()")
        assert chunks, "stream_chat() yielded nothing"
        assert all(isinstance(c, ChatChunk) for c in chunks), "stream_chat() yielded non-chunks"
        text = "".join(ch.delta.content or "" for c in chunks for ch in c.choices)
        assert text, "the streamed answer has no content"
        assert any(ch.finish_reason for c in chunks for ch in c.choices), (
            "no chunk carries a finish_reason"
        )

    @pytest.mark.anyio
    async def test_embed(
        self, record: AIProviderRecord, provider: AIProvider, model: str | None
    ) -> None:
        if AIFeature.EMBEDDINGS not in record.features:
            pytest.skip("the record does not declare EMBEDDINGS")
        result = await provider.embed(
            EmbeddingRequest(model=await self._model(provider, model), input=("one", "two"))
        )
        assert isinstance(result, EmbeddingResponse), f"embed() returned {result!r}"
        assert [e.index for e in result.data] == [0, 1], "one embedding per input, in order"
        sizes = {len(e.embedding) for e in result.data}
        assert len(sizes) == 1, f"embeddings differ in length: {sizes}"
        assert sizes.pop() > 0, "the embeddings are empty"


# --- sessions -----------------------------------------------------------------------------------


class SessionTypeConformance(ProviderConformance):
    """Conformance of a :class:`~corral_sdk.providers.session.SessionType`.

    Fixtures to supply: ``record``, ``provider``, ``session_spec``, and ``runner`` (a
    :class:`~corral_sdk.testing.TranscriptRunner` answering the commands the session runs;
    ``None``, the default, for external links).
    """

    record_type = SessionTypeRecord
    protocol = SessionType
    feature_methods = SESSION_FEATURE_METHODS
    register_hook = "corral_register_session_types"

    @pytest.fixture
    def runner(self) -> Any:
        return None

    def _check_status(self, record: SessionTypeRecord, status: SessionStatus, call: str) -> None:
        assert isinstance(status, SessionStatus), f"{call} returned {status!r}"
        assert isinstance(status.state, SessionState), (
            f"{call} gave state {status.state!r}, not a SessionState"
        )
        problems = []
        endpoint = status.endpoint
        if status.state is SessionState.RUNNING:
            if SessionFeature.HTTP in record.features and endpoint is None:
                problems.append("a running HTTP session needs an endpoint to proxy")
            if endpoint is None and not status.url:
                problems.append("a running session needs an endpoint or a url")
        if endpoint is not None:
            if endpoint.scheme == "https" and SessionFeature.HTTPS_BACKEND not in record.features:
                problems.append(
                    "the endpoint is https but the record does not declare HTTPS_BACKEND"
                )
            if not endpoint.host:
                problems.append("the endpoint has no host")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in status.data.items()):
            problems.append("data must map strings to strings")
        _report(problems, f"{call} is wrong")

    @pytest.mark.anyio
    async def test_start_status_stop(
        self,
        record: SessionTypeRecord,
        provider: SessionType,
        session_spec: SessionSpec,
        runner: Any,
    ) -> None:
        log = RecordingLog()
        started = await provider.start(session_spec, runner=runner, log=log)
        self._check_status(record, started, "start()")
        observed = await provider.status(session_spec, started.data, runner=runner)
        self._check_status(record, observed, "status()")
        await provider.stop(session_spec, observed.data or started.data, runner=runner)


# --- workflow actions ---------------------------------------------------------------------------


class WorkflowActionConformance(ProviderConformance):
    """Conformance of a :class:`~corral_sdk.providers.action.WorkflowAction`.

    Fixtures to supply: ``record``, ``provider``, ``inputs`` (the decoded ``with:``, an instance
    of the record's ``config``). Optional: ``runner`` (the step's target, needed with
    ``NEEDS_TARGET``), ``scheduler`` (the target cluster's), ``expected_outputs``,
    ``invalid_inputs``. A :class:`~corral_sdk.providers.action.ReleasingAction` is released
    after its run, twice (release is idempotent).
    """

    record_type = WorkflowActionRecord
    protocol = WorkflowAction
    feature_methods = ACTION_FEATURE_METHODS
    register_hook = "corral_register_workflow_actions"

    @pytest.fixture
    def runner(self) -> Any:
        return None

    @pytest.fixture
    def scheduler(self) -> Any:
        return None

    @pytest.fixture
    def expected_outputs(self) -> dict[str, str] | None:
        return None

    @pytest.fixture
    def invalid_inputs(self) -> Any:
        return None

    def test_inputs_match_record(self, record: WorkflowActionRecord, inputs: Any) -> None:
        if record.config is not None:
            assert isinstance(inputs, record.config), (
                f"inputs is a {type(inputs).__name__}, not the record's {record.config.__name__}"
            )

    @pytest.mark.anyio
    async def test_validate_accepts_inputs(self, provider: WorkflowAction, inputs: Any) -> None:
        await provider.validate(inputs)

    @pytest.mark.anyio
    async def test_validate_rejects_invalid_inputs(
        self, provider: WorkflowAction, invalid_inputs: Any
    ) -> None:
        if invalid_inputs is None:
            pytest.skip("no `invalid_inputs` fixture")
        with pytest.raises(Invalid):
            await provider.validate(invalid_inputs)

    @pytest.mark.anyio
    async def test_run(
        self,
        record: WorkflowActionRecord,
        provider: WorkflowAction,
        inputs: Any,
        runner: Any,
        scheduler: Any,
        expected_outputs: dict[str, str] | None,
    ) -> None:
        if WorkflowActionFeature.NEEDS_TARGET in record.features:
            assert runner is not None, "NEEDS_TARGET is declared: give a `runner` fixture"
        ctx = RecordingActionContext(runner=runner, scheduler=scheduler)
        result = await provider.run(inputs, ctx)
        assert isinstance(result, ActionResult), f"run() returned {result!r}"
        outputs = {**ctx.outputs, **result.outputs}
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in outputs.items()), (
            f"outputs must map strings to strings: {outputs!r}"
        )
        produces = WorkflowActionFeature.PRODUCES_OUTPUTS in record.features
        if produces:
            assert outputs, "PRODUCES_OUTPUTS is declared but the action produced none"
        else:
            assert not outputs, f"the action produced {sorted(outputs)}: declare PRODUCES_OUTPUTS"
        if expected_outputs is not None:
            assert outputs == expected_outputs
        if isinstance(provider, ReleasingAction):
            await provider.release(outputs, ctx)
            await provider.release(outputs, ctx)
