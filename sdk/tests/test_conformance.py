"""Each conformance suite passes a small fake provider of its kind and fails broken ones.

The fakes live in the generated test modules: each run writes a module holding a fake, its
record and suite subclasses (one correct, some deliberately broken), runs pytest on it in
process, and checks which checks passed, failed and were skipped, and why.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import pytest

INI = """
[pytest]
addopts = --strict-markers -p no:cacheprovider
filterwarnings = error
xfail_strict = true
"""

HEADER = """
from __future__ import annotations

import secrets
import shlex
import sys
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode

import msgspec
import pytest

from corral_sdk.errors import Invalid, NotAuthenticated, NotFound
from corral_sdk.features import *
from corral_sdk.plugin import hookimpl
from corral_sdk.providers import StepState
from corral_sdk.providers.action import *
from corral_sdk.providers.ai import *
from corral_sdk.providers.auth import *
from corral_sdk.providers.cloud import *
from corral_sdk.providers.scheduler import *
from corral_sdk.providers.session import *
from corral_sdk.providers.storage import *
from corral_sdk.records import *
from corral_sdk.testing.conformance import *
"""


@dataclass
class Outcomes:
    passed: set[str]
    skipped: dict[str, str]
    failed: dict[str, str]

    def of(self, cls: str) -> tuple[set[str], set[str], set[str]]:
        """Names of the passed, skipped and failed checks of one test class."""

        def pick(names: set[str] | dict[str, str]) -> set[str]:
            return {n.split("::")[1] for n in names if n.split("::")[0] == cls}

        return pick(self.passed), pick(self.skipped), pick(self.failed)


def run_suite(pytester: pytest.Pytester, source: str) -> Outcomes:
    pytester.makeini(INI)
    pytester.makepyfile(test_suite=HEADER + textwrap.dedent(source))
    recorder = pytester.inline_run()
    passed, skipped, failed = recorder.listoutcomes()

    def name(report: pytest.TestReport | pytest.CollectReport) -> str:
        return report.nodeid.split("::", 1)[1]

    assert not [r for r in failed if r.when != "call"], "only checks fail, not their setup"
    return Outcomes(
        passed={name(r) for r in passed},
        skipped={name(r): str(r.longrepr) for r in skipped},
        failed={name(r): str(r.longrepr) for r in failed},
    )


COMMON = {
    "test_factory_accepts_the_kernels_arguments",
    "test_record_is_valid",
    "test_factory_loads",
    "test_provider_comes_from_factory",
    "test_provider_satisfies_protocol",
    "test_declared_features_are_implemented",
}


# --- clouds -------------------------------------------------------------------------------------

CLOUD = """
class MemCredentials(msgspec.Struct, frozen=True, kw_only=True):
    key_id: str
    secret: str


REGIONS = {"mem-east": ("mem-east-a", "mem-east-b"), "mem-west": ("mem-west-a",)}
INSTANCES: dict[str, Instance] = {}  # stands in for the cloud's API
NETWORKS: dict[str, NetworkInfo] = {}


class MemCloud(CloudProviderBase):
    async def validate_credentials(self, account):
        if account.credentials.secret != "right":
            raise NotAuthenticated("the cloud refused the credentials")
        return CredentialCheck(principal=account.credentials.key_id)

    async def list_regions(self, account):
        return [Region(name=name, zones=zones) for name, zones in REGIONS.items()]

    async def list_instance_types(self, account, region):
        if region not in REGIONS:
            raise NotFound(f"there is no region {region}")
        return [
            InstanceType(name="small", vcpus=2, memory_gib=4, price_per_hour=Decimal("0.05")),
            InstanceType(name="large", vcpus=16, memory_gib=64, price_per_hour=Decimal("0.8")),
        ]

    async def list_images(self, account, region):
        return [Image(id="img-1", name="corral-base", latest=True)]

    async def create_instances(self, account, request, *, log):
        key = request.idempotency_key
        done = [i for i in INSTANCES.values() if i.details.get("key") == key]
        if done:
            return done
        zone = request.zones[0] if request.zones else REGIONS[request.region][0]
        made = []
        for name in request.names:
            instance = Instance(
                id=f"i-{uuid.uuid4().hex[:8]}", name=name, state=InstanceState.PENDING,
                region=request.region, zone=zone, instance_type=request.instance_type,
                tags=dict(request.tags), details={"key": key},
            )
            INSTANCES[instance.id] = instance
            made.append(instance)
        await log.log(f"created {len(made)} instances in {zone}")
        return made

    async def describe_instances(self, account, region, *, instance_ids=None, tags=None):
        found = [i for i in INSTANCES.values() if i.region == region]
        if instance_ids is not None:
            found = [i for i in found if i.id in instance_ids]
        if tags:
            found = [i for i in found if all(i.tags.get(k) == v for k, v in tags.items())]
        return found

    async def _set_state(self, ids, state):
        for instance_id in ids:
            if instance_id not in INSTANCES:
                raise NotFound(f"no instance {instance_id}")
            INSTANCES[instance_id] = msgspec.structs.replace(INSTANCES[instance_id], state=state)

    async def start_instances(self, account, region, instance_ids):
        await self._set_state(instance_ids, InstanceState.RUNNING)

    async def stop_instances(self, account, region, instance_ids):
        await self._set_state(instance_ids, InstanceState.STOPPED)

    async def delete_instances(self, account, region, instance_ids):
        for instance_id in instance_ids:
            INSTANCES.pop(instance_id, None)

    async def check_network(self, account, spec):
        if spec.mode not in ("", "flat"):
            raise Invalid(f"no mode {spec.mode!r}", field="mode")

    async def create_network(self, account, spec, *, log):
        for network in NETWORKS.values():
            if network.name == spec.name:
                return network
        network = NetworkInfo(
            id=f"net-{uuid.uuid4().hex[:8]}", name=spec.name,
            regions=tuple(
                NetworkRegionInfo(region=r.region, cidr=r.cidr, network_id=f"vpc-{r.region}")
                for r in spec.regions
            ),
        )
        for region in spec.regions:
            await log.step(f"VPC {region.region}", StepState.COMPLETED)
        NETWORKS[network.id] = network
        return network

    async def update_network(self, account, network, spec, *, log):
        NETWORKS.pop(network.id, None)
        return await self.create_network(account, spec, log=log)

    async def delete_network(self, account, network, *, log):
        NETWORKS.pop(network.id, None)


FEATURES = frozenset({CloudFeature.NETWORKS, CloudFeature.INSTANCE_PRICES})
RECORD = CloudRecord(name="memcloud", factory=MemCloud, credentials=MemCredentials,
                     features=FEATURES, docs="A cloud held in memory, for tests.")


@hookimpl
def corral_register_clouds():
    return [RECORD]


class TestMemCloud(CloudConformance):
    @pytest.fixture
    def record(self):
        return RECORD

    @pytest.fixture
    def provider(self, record):
        return record.create()

    @pytest.fixture
    def account(self):
        return CloudAccount(name="mem1", credentials=MemCredentials(key_id="AK1", secret="right"))

    @pytest.fixture
    def live(self):
        return True

    @pytest.fixture
    def plugin(self):
        return sys.modules[__name__]


class TestOfflineMemCloud(TestMemCloud):
    @pytest.fixture
    def live(self):
        return False


class BrokenCloudSuite(TestMemCloud):
    @pytest.fixture
    def plugin(self):
        return None


class HalfCloud(MemCloud):
    # declares NETWORKS but keeps the "unsupported" defaults for two of its methods
    update_network = CloudProviderBase.update_network
    delete_network = CloudProviderBase.delete_network


class TestHalfCloud(BrokenCloudSuite):
    @pytest.fixture
    def record(self):
        return CloudRecord(name="half", factory=HalfCloud, credentials=MemCredentials,
                           features=FEATURES, docs="Broken on purpose.")


class SyncCloud(MemCloud):
    def list_regions(self, account):  # not async
        return [Region(name="mem-east")]

    start_instances = None


class TestSyncCloud(BrokenCloudSuite):
    @pytest.fixture
    def record(self):
        return CloudRecord(name="sync", factory=SyncCloud, credentials=MemCredentials,
                           docs="Broken on purpose.")


class GreedyCloud(MemCloud):
    async def create_instances(self, account, request, *, log):
        fresh = msgspec.structs.replace(request, idempotency_key=uuid.uuid4().hex)
        return await super().create_instances(account, fresh, log=log)

    async def list_instance_types(self, account, region):
        types = await super().list_instance_types(account, region)
        return [*types, InstanceType(name="gift", vcpus=1, memory_gib=1,
                                     price_per_hour=Decimal("-1"))]


class TestGreedyCloud(BrokenCloudSuite):
    @pytest.fixture
    def record(self):
        return CloudRecord(name="greedy", factory=GreedyCloud, credentials=MemCredentials,
                           features=FEATURES, docs="Broken on purpose.")


class FussyCloud(MemCloud):
    async def check_cluster_network(self, account, network, mode, controller_zone,
                                    partition_zones):
        raise Invalid("no cluster may use this network", field="cloud.controller.zone")


class TestFussyCloud(BrokenCloudSuite):
    @pytest.fixture
    def record(self):
        return CloudRecord(name="fussy", factory=FussyCloud, credentials=MemCredentials,
                           features=FEATURES, docs="Broken on purpose.")
"""

CLOUD_CHECKS = COMMON | {
    "test_plugin_registers_record",
    "test_account_matches_record",
    "test_validate_credentials",
    "test_list_regions",
    "test_list_instance_types",
    "test_unknown_region_is_not_found",
    "test_list_images",
    "test_describe_unknown_instance_is_left_out",
    "test_instance_lifecycle",
    "test_network_lifecycle",
}


def test_cloud_suite(pytester: pytest.Pytester) -> None:
    outcomes = run_suite(pytester, CLOUD)
    assert outcomes.of("TestMemCloud") == (CLOUD_CHECKS, set(), set())

    _, skipped, failed = outcomes.of("TestOfflineMemCloud")
    assert skipped == {"test_instance_lifecycle", "test_network_lifecycle"}
    assert (
        "the backend is not live"
        in outcomes.skipped["TestOfflineMemCloud::test_instance_lifecycle"]
    )
    assert not failed

    _, _, failed = outcomes.of("TestHalfCloud")
    assert failed == {"test_declared_features_are_implemented", "test_network_lifecycle"}
    message = outcomes.failed["TestHalfCloud::test_declared_features_are_implemented"]
    assert (
        "declares CloudFeature.NETWORKS but delete_network() is still the 'unsupported'" in message
    )
    assert "update_network()" in message
    assert (
        "does not support delete network"
        in outcomes.failed["TestHalfCloud::test_network_lifecycle"]
    )

    _, _, failed = outcomes.of("TestSyncCloud")
    assert {"test_provider_satisfies_protocol", "test_list_regions"} <= failed
    message = outcomes.failed["TestSyncCloud::test_provider_satisfies_protocol"]
    assert "SyncCloud.list_regions() must be a coroutine function (async def)" in message
    assert "SyncCloud has no method start_instances()" in message

    _, _, failed = outcomes.of("TestGreedyCloud")
    assert failed == {"test_instance_lifecycle", "test_list_instance_types"}
    assert "not idempotent" in outcomes.failed["TestGreedyCloud::test_instance_lifecycle"]
    assert (
        "gift: price must be a Decimal >= 0"
        in outcomes.failed["TestGreedyCloud::test_list_instance_types"]
    )

    # a network that serves no cluster, not even one wholly in one of its zones
    assert outcomes.of("TestFussyCloud")[2] == {"test_network_lifecycle"}
    assert "no cluster may use" in outcomes.failed["TestFussyCloud::test_network_lifecycle"]


# --- schedulers ---------------------------------------------------------------------------------

SCHEDULER = """
STATES = {
    "PENDING": JobState.PENDING, "CONFIGURING": JobState.PENDING, "RUNNING": JobState.RUNNING,
    "COMPLETED": JobState.COMPLETED, "CANCELLED": JobState.CANCELLED, "TIMEOUT": JobState.TIMEOUT,
}
SQUEUE = "squeue --noheader --format='%i %T'"


class MiniSlurm(SchedulerBase):
    def __init__(self, runner, config=None):
        self.runner = runner

    def _state(self, native):
        return STATES.get(native, JobState.UNKNOWN)

    async def submit(self, job):
        if job.array is not None:
            raise Invalid("this scheduler has no job arrays", field="array")
        flags = ["--parsable"] + ([f"--job-name={job.name}"] if job.name else [])
        result = await self.runner.run("sbatch " + " ".join(flags), input=job.script, check=True)
        return SubmittedJob(job_id=result.stdout.strip().split(";")[0])

    async def status(self, job_ids):
        if not job_ids:
            return {}
        out = await self.runner.run(f"{SQUEUE} --jobs={','.join(job_ids)}", check=True)
        seen = dict(line.split() for line in out.stdout.splitlines() if line.strip())
        return {
            job_id: JobStatus(job_id=job_id, state=self._state(seen.get(job_id, "")),
                              native_state=seen.get(job_id, ""))
            for job_id in job_ids
        }

    async def cancel(self, job_ids):
        if job_ids:
            await self.runner.run("scancel " + " ".join(job_ids), check=True)

    async def queue(self, *, user=None, partition=None):
        out = await self.runner.run(SQUEUE, check=True)
        rows = [line.split() for line in out.stdout.splitlines() if line.strip()]
        return [JobStatus(job_id=i, state=self._state(s), native_state=s) for i, s in rows]

    async def hold(self, job_ids):
        await self.runner.run("scontrol hold " + ",".join(job_ids), check=True)

    async def release(self, job_ids):
        await self.runner.run("scontrol release " + ",".join(job_ids), check=True)

    async def partitions(self):
        out = await self.runner.run("sinfo --noheader --format='%P %a'", check=True)
        rows = [line.split() for line in out.stdout.splitlines() if line.strip()]
        return [Partition(name=name.rstrip("*"), default=name.endswith("*"), available=a == "up")
                for name, a in rows]


TRANSCRIPT = '''
$ sbatch --parsable --job-name=corral-conformance
< echo corral-conformance
> 4242
times *
$ squeue --noheader --format='%i %T' --jobs=4242
> 4242 CONFIGURING
times *
$ squeue --noheader --format='%i %T'
> 4242 CONFIGURING
> 4243 RUNNING
times *
$~ scancel 4242
times *
$~ scontrol (hold|release) 4242
times *
$ sinfo --noheader --format='%P %a'
> compute* up
> gpu up
times *
'''
FEATURES = frozenset({SchedulerFeature.HOLD_RELEASE, SchedulerFeature.PARTITIONS})


class TestMiniSlurm(SchedulerConformance):
    @pytest.fixture
    def record(self):
        return SchedulerRecord(name="minislurm", factory=MiniSlurm, features=FEATURES,
                               docs="A scheduler speaking a little Slurm.")

    @pytest.fixture
    def runner(self, transcript_runner):
        return transcript_runner(text=TRANSCRIPT, target="login1")

    @pytest.fixture
    def provider(self, record, runner):
        return record.create(runner)


class RawStateSlurm(MiniSlurm):
    def _state(self, native):
        return native  # forgets to map onto JobState


class TestRawStateSlurm(TestMiniSlurm):
    @pytest.fixture
    def record(self):
        return SchedulerRecord(name="raw", factory=RawStateSlurm, features=FEATURES, docs="x")


class ChattySlurm(MiniSlurm):
    async def status(self, job_ids):
        if not job_ids:
            await self.runner.run(f"{SQUEUE} --jobs=", check=True)  # runs even for no job
            return {}
        return await super().status(job_ids)


class TestChattySlurm(TestMiniSlurm):
    @pytest.fixture
    def record(self):
        return SchedulerRecord(name="chatty", factory=ChattySlurm, features=FEATURES, docs="x")


class NoHoldSlurm(MiniSlurm):
    hold = SchedulerBase.hold
    release = SchedulerBase.release


class NeedyScheduler(MiniSlurm):
    def __init__(self, runner, config, cluster):  # the kernel passes no cluster
        super().__init__(runner, config)


class TestNeedyScheduler(TestMiniSlurm):
    @pytest.fixture
    def record(self):
        return SchedulerRecord(name="needy", factory=NeedyScheduler, features=FEATURES, docs="x")

    @pytest.fixture
    def provider(self, runner):
        return NeedyScheduler(runner, None, "c1")


class TestNoHoldSlurm(TestMiniSlurm):
    @pytest.fixture
    def record(self):
        return SchedulerRecord(name="nohold", factory=NoHoldSlurm, features=FEATURES, docs="x")
"""

SCHEDULER_CHECKS = COMMON | {
    "test_submit_returns_job_id",
    "test_status_of_submitted_job",
    "test_status_of_no_jobs_runs_nothing",
    "test_cancel_submitted_job",
    "test_queue",
    "test_array_job",
    "test_hold_and_release",
    "test_partitions",
}


def test_scheduler_suite(pytester: pytest.Pytester) -> None:
    outcomes = run_suite(pytester, SCHEDULER)
    passed, skipped, failed = outcomes.of("TestMiniSlurm")
    assert passed == SCHEDULER_CHECKS
    assert skipped == {
        "test_plugin_registers_record",
        "test_nodes",
        "test_accounting",
        "test_elastic_config",
        "test_submit_many_returns_one_result_per_job",
    }
    assert not failed

    _, _, failed = outcomes.of("TestRawStateSlurm")
    assert failed == {"test_status_of_submitted_job", "test_queue"}
    message = outcomes.failed["TestRawStateSlurm::test_status_of_submitted_job"]
    assert "the state of 4242 is 'CONFIGURING', not a JobState" in message

    _, _, failed = outcomes.of("TestChattySlurm")
    assert failed == {"test_status_of_no_jobs_runs_nothing"}
    message = outcomes.failed["TestChattySlurm::test_status_of_no_jobs_runs_nothing"]
    assert "unexpected command on login1: \"squeue --noheader --format='%i %T' --jobs=\"" in message

    assert outcomes.of("TestNeedyScheduler")[2] == {"test_factory_accepts_the_kernels_arguments"}
    message = outcomes.failed["TestNeedyScheduler::test_factory_accepts_the_kernels_arguments"]
    assert "the kernel builds a Scheduler as factory(runner, config)" in message
    assert "missing a required argument: 'cluster'" in message

    _, _, failed = outcomes.of("TestNoHoldSlurm")
    assert failed == {"test_declared_features_are_implemented", "test_hold_and_release"}
    message = outcomes.failed["TestNoHoldSlurm::test_declared_features_are_implemented"]
    assert "declares SchedulerFeature.HOLD_RELEASE but hold() is still the 'unsupported'" in message


# --- storage ------------------------------------------------------------------------------------

STORAGE = """
class BucketOptions(msgspec.Struct, frozen=True, kw_only=True):
    region: str


BUCKETS: dict[str, dict[str, bytes]] = {}


class MemBucket(StorageBase):
    async def validate(self, spec):
        if spec.options.region not in ("mem-east", "mem-west"):
            raise Invalid(f"there is no region {spec.options.region}", field="region")
        if spec.ephemeral:
            raise Invalid("buckets cannot be ephemeral", field="ephemeral")

    async def estimate_cost(self, spec):
        return Decimal("0")

    async def provision(self, spec, *, log):
        BUCKETS.setdefault(spec.resource_id, {"hello.txt": b"hi"})
        await log.step("bucket", StepState.COMPLETED, spec.resource_id)
        return StorageInfo(id=spec.resource_id, state=StorageState.AVAILABLE,
                           uri=f"mem://{spec.resource_id}", region=spec.options.region)

    async def describe(self, spec, info):
        state = StorageState.AVAILABLE if info.id in BUCKETS else StorageState.DELETED
        return msgspec.structs.replace(info, state=state)

    async def deprovision(self, spec, info, *, log):
        BUCKETS.pop(info.id, None)

    async def mount_instructions(self, spec, info, request):
        return MountInstructions(
            filesystem="fuse", mount_point=request.mount_point, packages=("memfs",),
            commands=(f"mkdir -p {request.mount_point}",
                      f"memfs {info.uri} {request.mount_point}"),
        )

    async def temporary_credentials(self, spec, info, *, read_only=False, ttl_seconds=None):
        ttl = timedelta(seconds=ttl_seconds or 12 * 3600)
        return TemporaryCredentials(env={"MEM_TOKEN": secrets.token_hex(8)}, uri=info.uri,
                                    expires_at=datetime.now(UTC) + ttl)

    async def list_objects(self, spec, info, *, prefix="", recursive=False):
        for key, data in sorted(BUCKETS.get(info.id, {}).items()):
            if key.startswith(prefix):
                yield StorageObject(key=key, size=len(data))

    async def delete_object(self, spec, info, key):
        BUCKETS.get(info.id, {}).pop(key, None)


FEATURES = frozenset({StorageFeature.MOUNT, StorageFeature.TEMPORARY_CREDENTIALS,
                      StorageFeature.OBJECT_LISTING})


class TestMemBucket(StorageTypeConformance):
    @pytest.fixture
    def record(self):
        return StorageTypeRecord(name="membucket", factory=MemBucket, config=BucketOptions,
                                 category=StorageCategory.BUCKET,
                                 features=FEATURES, docs="A bucket held in memory.")

    @pytest.fixture
    def provider(self, record):
        return record.create()

    @pytest.fixture
    def storage_spec(self):
        return StorageSpec(name="data", resource_id="st-1",
                           options=BucketOptions(region="mem-east"))

    @pytest.fixture
    def invalid_storage_spec(self):
        return StorageSpec(name="data", resource_id="st-2",
                           options=BucketOptions(region="mars-north"))

    @pytest.fixture
    def live(self):
        return True


class LaxBucket(MemBucket):
    async def validate(self, spec):
        return None


class TestLaxBucket(TestMemBucket):
    @pytest.fixture
    def record(self):
        return StorageTypeRecord(name="lax", factory=LaxBucket, config=BucketOptions,
                                 category=StorageCategory.BUCKET,
                                 features=FEATURES, docs="Broken on purpose.")


class GhostBucket(MemBucket):
    async def deprovision(self, spec, info, *, log):
        return None  # forgets to delete


class TestGhostBucket(TestMemBucket):
    @pytest.fixture
    def record(self):
        return StorageTypeRecord(name="ghost", factory=GhostBucket, config=BucketOptions,
                                 category=StorageCategory.BUCKET,
                                 features=FEATURES, docs="Broken on purpose.")

    @pytest.fixture
    def poll_timeout(self):
        return 0.0
"""


def test_storage_suite(pytester: pytest.Pytester) -> None:
    outcomes = run_suite(pytester, STORAGE)
    passed, skipped, failed = outcomes.of("TestMemBucket")
    assert passed == COMMON | {
        "test_spec_options_match_record",
        "test_validate_accepts_spec",
        "test_validate_rejects_invalid_spec",
        "test_estimate_cost",
        "test_lifecycle",
    }
    assert skipped == {"test_plugin_registers_record"}
    assert not failed

    assert outcomes.of("TestLaxBucket")[2] == {"test_validate_rejects_invalid_spec"}
    assert "DID NOT RAISE" in outcomes.failed["TestLaxBucket::test_validate_rejects_invalid_spec"]
    assert outcomes.of("TestGhostBucket")[2] == {"test_lifecycle"}
    assert (
        "deprovision() did not delete the storage"
        in outcomes.failed["TestGhostBucket::test_lifecycle"]
    )


# --- auth ---------------------------------------------------------------------------------------

AUTH = """
class MemSettings(msgspec.Struct, frozen=True, kw_only=True):
    issuer: str
    client_id: str
    users: dict[str, str] = {}


class MemAuth(AuthMethodBase):
    def __init__(self, config):
        self.config = config

    async def validate_config(self):
        if not self.config.issuer.startswith("https://"):
            raise Invalid("the issuer must be an https URL", field="issuer")

    async def authenticate_password(self, username, password):
        if self.config.users.get(username) != password:
            raise NotAuthenticated("invalid username or password")
        return Identity(subject=f"mem|{username}", username=username, groups=("hpc",),
                        posix=PosixAttributes(uid=1000, gid=1000, username=username))

    async def begin_login(self, redirect_uri):
        state = secrets.token_urlsafe(16)
        query = urlencode({"client_id": self.config.client_id, "redirect_uri": redirect_uri,
                           "response_type": "code", "state": state})
        return LoginRedirect(url=f"{self.config.issuer}/authorize?{query}", state=state,
                             session_data={"verifier": secrets.token_urlsafe(32)})

    async def complete_login(self, callback):
        if "error" in callback.params:
            raise NotAuthenticated("the identity provider refused the sign-in")
        if callback.params.get("state") != callback.state:
            raise NotAuthenticated("the sign-in response does not match its request")
        code = callback.params.get("code", "")
        if not code.startswith("good-"):
            raise NotAuthenticated("the identity provider refused the code")
        user = code.removeprefix("good-")
        return Identity(subject=f"mem|{user}", username=user)


FEATURES = frozenset({AuthFeature.PASSWORD, AuthFeature.REDIRECT, AuthFeature.GROUP_SYNC})
SETTINGS = MemSettings(issuer="https://idp.example", client_id="corral",
                       users={"alice": "wonderland"})


class TestMemAuth(AuthMethodConformance):
    @pytest.fixture
    def record(self):
        return AuthMethodRecord(name="memauth", factory=MemAuth, config=MemSettings,
                                features=FEATURES, docs="Users held in memory.")

    @pytest.fixture
    def provider(self, record):
        return record.create(SETTINGS)

    @pytest.fixture
    def valid_credentials(self):
        return ("alice", "wonderland")


class TrustingAuth(MemAuth):
    async def complete_login(self, callback):
        if "error" in callback.params:
            raise NotAuthenticated("refused")
        return Identity(subject="anyone", username="anyone")  # never checks the state


class LeakyAuth(MemAuth):
    async def authenticate_password(self, username, password):
        if self.config.users.get(username) != password:
            raise NotAuthenticated(f"wrong password {password!r} for {username}")
        return await super().authenticate_password(username, password)


class TestTrustingAuth(TestMemAuth):
    @pytest.fixture
    def record(self):
        return AuthMethodRecord(name="trusting", factory=TrustingAuth, config=MemSettings,
                                features=FEATURES, docs="Broken on purpose.")


class TestLeakyAuth(TestMemAuth):
    @pytest.fixture
    def record(self):
        return AuthMethodRecord(name="leaky", factory=LeakyAuth, config=MemSettings,
                                features=FEATURES, docs="Broken on purpose.")
"""


def test_auth_suite(pytester: pytest.Pytester) -> None:
    outcomes = run_suite(pytester, AUTH)
    passed, skipped, failed = outcomes.of("TestMemAuth")
    assert passed == COMMON | {
        "test_validate_config",
        "test_wrong_password_is_refused",
        "test_password_sign_in",
        "test_begin_login",
        "test_callback_with_error_is_refused",
        "test_callback_with_forged_state_is_refused",
    }
    assert skipped == {"test_plugin_registers_record", "test_wrong_mfa_code_is_refused"}
    assert not failed
    assert outcomes.of("TestTrustingAuth")[2] == {"test_callback_with_forged_state_is_refused"}
    assert outcomes.of("TestLeakyAuth")[2] == {"test_wrong_password_is_refused"}
    assert (
        "the error repeats the password"
        in outcomes.failed["TestLeakyAuth::test_wrong_password_is_refused"]
    )


# --- AI -----------------------------------------------------------------------------------------

AI = """
class EchoSettings(msgspec.Struct, frozen=True, kw_only=True):
    models: tuple[str, ...] = ("echo-1",)


class EchoAI(AIProviderBase):
    def __init__(self, config):
        self.config = config

    def _check(self, request):
        if request.model not in self.config.models:
            raise NotFound(f"no model {request.model}")

    async def list_models(self):
        return [ModelInfo(id=model, owned_by="corral") for model in self.config.models]

    async def chat(self, request):
        self._check(request)
        message = ChatMessage(role="assistant", content="hello")
        return ChatCompletion(id="c-1", model=request.model,
                              choices=(Choice(message=message, finish_reason="stop"),))

    async def stream_chat(self, request):
        self._check(request)
        for piece in ("hel", "lo"):
            yield ChatChunk(id="c-1", model=request.model,
                            choices=(ChunkChoice(delta=Delta(content=piece)),))
        yield ChatChunk(id="c-1", model=request.model,
                        choices=(ChunkChoice(delta=Delta(), finish_reason="stop"),))


RECORD = AIProviderRecord(name="echo", factory=EchoAI, config=EchoSettings,
                          features=frozenset({AIFeature.STREAMING}), docs="Echoes.")


class TestEchoAI(AIProviderConformance):
    @pytest.fixture
    def record(self):
        return RECORD

    @pytest.fixture
    def provider(self, record):
        return record.create(EchoSettings())


class ListStreamAI(EchoAI):
    async def stream_chat(self, request):  # a coroutine, not an async generator
        return [ChatChunk(id="c-1", model=request.model, choices=())]


class LenientAI(EchoAI):
    def _check(self, request):
        return None


class TestListStreamAI(TestEchoAI):
    @pytest.fixture
    def provider(self):
        return ListStreamAI(EchoSettings())


class TestLenientAI(TestEchoAI):
    @pytest.fixture
    def provider(self):
        return LenientAI(EchoSettings())
"""


def test_ai_suite(pytester: pytest.Pytester) -> None:
    outcomes = run_suite(pytester, AI)
    passed, skipped, failed = outcomes.of("TestEchoAI")
    assert passed == COMMON | {
        "test_list_models",
        "test_chat",
        "test_unknown_model_is_not_found",
        "test_stream_chat",
    }
    assert skipped == {"test_plugin_registers_record", "test_embed"}
    assert not failed

    _, _, failed = outcomes.of("TestListStreamAI")
    assert {"test_provider_satisfies_protocol", "test_stream_chat"} <= failed
    assert (
        "write it as an async generator"
        in outcomes.failed["TestListStreamAI::test_provider_satisfies_protocol"]
    )
    assert outcomes.of("TestLenientAI")[2] == {"test_unknown_model_is_not_found"}


# --- sessions -----------------------------------------------------------------------------------

SESSION = """
class Notebook:
    async def start(self, spec, *, runner, log):
        out = await runner.run(
            f"corral-notebook start --port 8888 --base-url {shlex.quote(spec.base_path)}",
            check=True,
        )
        await log.log("notebook starting")
        return SessionStatus(state=SessionState.STARTING, data={"pid": out.stdout.strip()})

    async def status(self, spec, data, *, runner):
        alive = await runner.run(f"kill -0 {data['pid']}")
        if not alive.ok:
            return SessionStatus(state=SessionState.STOPPED, data=dict(data))
        endpoint = SessionEndpoint(host="localhost", port=8888, path=spec.base_path)
        return SessionStatus(state=SessionState.RUNNING, endpoint=endpoint, data=dict(data))

    async def stop(self, spec, data, *, runner):
        await runner.run(f"kill {data['pid']} || true", check=True)


TRANSCRIPT = '''
$ corral-notebook start --port 8888 --base-url /sessions/alice/nb1/
> 31337
$ kill -0 31337
$ kill 31337 || true
'''


class TestNotebook(SessionTypeConformance):
    @pytest.fixture
    def record(self):
        return SessionTypeRecord(
            name="notebook", factory=Notebook,
            features=frozenset({SessionFeature.HTTP, SessionFeature.WEBSOCKET}),
            docs="A notebook server.")

    @pytest.fixture
    def provider(self, record):
        return record.create()

    @pytest.fixture
    def runner(self, transcript_runner):
        return transcript_runner(text=TRANSCRIPT, target="c1", strict=True)

    @pytest.fixture
    def session_spec(self):
        return SessionSpec(name="nb1", session_id="s-1", user="alice",
                           target=SessionTarget(kind=TargetKind.CLUSTER, name="c1"),
                           base_path="/sessions/alice/nb1/")


class EndpointlessNotebook(Notebook):
    async def status(self, spec, data, *, runner):
        await runner.run(f"kill -0 {data['pid']}")
        return SessionStatus(state=SessionState.RUNNING, data=dict(data))


class TestEndpointlessNotebook(TestNotebook):
    @pytest.fixture
    def provider(self):
        return EndpointlessNotebook()

    @pytest.fixture
    def runner(self, transcript_runner):
        return transcript_runner(text=TRANSCRIPT, target="c1")

    @pytest.fixture
    def record(self):
        return SessionTypeRecord(name="endpointless", factory=EndpointlessNotebook,
                                 features=frozenset({SessionFeature.HTTP}), docs="Broken.")
"""


def test_session_suite(pytester: pytest.Pytester) -> None:
    outcomes = run_suite(pytester, SESSION)
    passed, skipped, failed = outcomes.of("TestNotebook")
    assert passed == COMMON | {"test_start_status_stop"}
    assert skipped == {"test_plugin_registers_record"}
    assert not failed
    assert outcomes.of("TestEndpointlessNotebook")[2] == {"test_start_status_stop"}
    message = outcomes.failed["TestEndpointlessNotebook::test_start_status_stop"]
    assert "a running HTTP session needs an endpoint to proxy" in message


# --- workflow actions ---------------------------------------------------------------------------

ACTION = """
class EchoInputs(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    message: str


class Echo:
    async def validate(self, inputs):
        if not inputs.message:
            raise Invalid("say something", field="with.message")

    async def run(self, inputs, ctx):
        out = await ctx.runner.run(f"echo {shlex.quote(inputs.message)}", check=True)
        await ctx.log(out.stdout.rstrip())
        await ctx.set_output("said", out.stdout.strip())
        return ActionResult(outputs={"length": str(len(out.stdout.strip()))})


FEATURES = frozenset({WorkflowActionFeature.NEEDS_TARGET,
                      WorkflowActionFeature.PRODUCES_OUTPUTS})


class TestEcho(WorkflowActionConformance):
    @pytest.fixture
    def record(self):
        return WorkflowActionRecord(name="echo", factory=Echo, config=EchoInputs,
                                    features=FEATURES, docs="Echoes its message.")

    @pytest.fixture
    def provider(self, record):
        return record.create()

    @pytest.fixture
    def inputs(self):
        return EchoInputs(message="hi")

    @pytest.fixture
    def invalid_inputs(self):
        return EchoInputs(message="")

    @pytest.fixture
    def runner(self, transcript_runner):
        return transcript_runner([{"command": "echo hi", "stdout": "hi\\n"}], strict=True)

    @pytest.fixture
    def expected_outputs(self):
        return {"said": "hi", "length": "2"}


class TestUndeclaredOutputs(TestEcho):
    @pytest.fixture
    def record(self):
        return WorkflowActionRecord(
            name="quiet", factory=Echo, config=EchoInputs, docs="Broken on purpose.",
            features=frozenset({WorkflowActionFeature.NEEDS_TARGET}))
"""


def test_action_suite(pytester: pytest.Pytester) -> None:
    outcomes = run_suite(pytester, ACTION)
    passed, skipped, failed = outcomes.of("TestEcho")
    assert passed == COMMON | {
        "test_inputs_match_record",
        "test_validate_accepts_inputs",
        "test_validate_rejects_invalid_inputs",
        "test_run",
    }
    assert skipped == {"test_plugin_registers_record"}
    assert not failed
    assert outcomes.of("TestUndeclaredOutputs")[2] == {"test_run"}
    message = outcomes.failed["TestUndeclaredOutputs::test_run"]
    assert "the action produced ['length', 'said']: declare PRODUCES_OUTPUTS" in message
