"""The lifecycle every cloud cluster shares, whatever its cloud: sessions, the controller and its
bootstrap, elastic nodes asked for by the scheduler, stop, destroy, and the provisioning log.

A start opens a *session* (its number names the hosts: ``<user>-<cluster>-<NNNNN>-mgmt`` and
``<user>-<cluster>-<NNNNN>-<p>-<NNNN>``) with its own secrets: the key the scheduler's hosts share
(munge's), Corral's root SSH key, the controller's SSH host key (pinned, so no host key is
trusted on first use) and the bearer token the hosts call back with. The reconciler then, one
short pass at a time so that a killed process resumes where it was:

1. collects the cluster's variables (account, instance types, the scheduler's elastic setup);
2. creates the controller with user data that configures SSH and the scheduler, runs the user's
   bootstrap, and reports its exit status and output to Corral;
3. waits for that report, runs the health check over SSH as root and asks the scheduler;
4. keeps the cluster active: health checks, job polls, and the nodes the scheduler asks for.

The scheduler's resume and suspend programs post node names to Corral; the node rows they create
are worked by :meth:`CloudClusters.work_nodes` (claimed with a lease per row, created in one
provider call per partition, idempotent on the batch key stored in the rows).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import secrets
import shlex
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import and_, case, func, or_, update
from sqlmodel import col, select

from corral_core.cloud_resources.attach import snapshot_images, static_ip_id
from corral_core.clusters.accounts import CloudAccounts
from corral_core.clusters.models import ClusterJob, ClusterNode, ClusterSession, ProvisionStep
from corral_core.clusters.spec import CloudClusterSpec
from corral_core.db import Database, utcnow
from corral_core.identity.names import ResourceRef
from corral_core.networks.placement import NetworkAttachment, cluster_network
from corral_core.plugins import Kernel
from corral_core.resources.models import Resource
from corral_core.secrets import SecretBox
from corral_core.ssh import HostKeyStore
from corral_core.ssh.pool import SSHEndpoint, SSHIdentity, SSHPool
from corral_core.ssh.runner import SSHRunner
from corral_sdk.errors import (
    Conflict,
    CorralError,
    Invalid,
    NotAuthenticated,
    NotFound,
    ProviderError,
    Timeout,
    TransportError,
)
from corral_sdk.features import CloudFeature, SchedulerFeature
from corral_sdk.providers._common import StepState
from corral_sdk.providers.cloud import CloudAccount, CloudProvider, Instance, InstanceRequest
from corral_sdk.providers.scheduler import ElasticClusterSpec, ElasticPartition, Scheduler
from corral_sdk.reconcile import ReconcileContext, ReconcileResult, ResourceSnapshot
from corral_sdk.wire import ClusterEstimate, ClusterLogs, HourlyCost, ProvisionStepInfo

__all__ = ["CloudClusters", "SessionSecrets"]

log = logging.getLogger("corral.clusters")

NODE_COMMAND = "/etc/corral/bin/corral-nodes"
RESUME_PROGRAM = "/etc/corral/bin/resume"
SUSPEND_PROGRAM = "/etc/corral/bin/suspend"
REPORT_COMMAND = "/etc/corral/bin/corral-report"
BOOTSTRAP_LOG = "/var/log/corral/bootstrap.log"
OUTPUT_MAX = 64 * 1024
HEALTH_GRACE = 120.0
"""Seconds a booted controller may take before it answers SSH."""
NODE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
TAG_CLUSTER, TAG_SESSION, TAG_ROLE = "corral-cluster", "corral-session", "corral-role"

Enqueue = Callable[[int], Awaitable[None]]


class SessionSecrets(msgspec.Struct, frozen=True, kw_only=True):
    auth_key: str
    """Base64, shared by the scheduler's hosts (munge)."""
    root_key: str
    """Corral's OpenSSH private key for root on the cluster's hosts."""
    host_key: str
    """The controller's OpenSSH host private key."""
    token: str
    """What the hosts call back with (its SHA-256 is stored apart to find the session)."""


def _hostname_part(value: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-") or "x"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _public_key(private: str) -> str:
    import asyncssh

    key = asyncssh.import_private_key(private)
    return key.export_public_key("openssh").decode().strip()


def _fingerprint(public: str) -> str:
    import asyncssh

    return str(asyncssh.import_public_key(public).get_fingerprint("sha256"))


def new_secrets() -> SessionSecrets:
    import asyncssh

    def key() -> str:
        return asyncssh.generate_private_key("ssh-ed25519").export_private_key("openssh").decode()

    return SessionSecrets(
        auth_key=base64.b64encode(secrets.token_bytes(128)).decode(),
        root_key=key(),
        host_key=key(),
        token=secrets.token_urlsafe(32),
    )


class StepLog:
    """A session's provisioning log (the Provision, Deletion and Scheduler tabs) in the
    database; implements the SDK's ``ProgressLog`` for providers."""

    def __init__(self, db: Database, resource_id: int, session: int, tab: str) -> None:
        self.db, self.resource_id, self.session, self.tab = db, resource_id, session, tab

    async def log(self, message: str) -> None:
        await self.step(message[:255], StepState.COMPLETED)

    async def step(self, name: str, state: StepState, detail: str = "") -> None:
        async with self.db.session() as session:
            row = (
                await session.exec(
                    select(ProvisionStep)
                    .where(col(ProvisionStep.resource_id) == self.resource_id)
                    .where(col(ProvisionStep.session) == self.session)
                    .where(col(ProvisionStep.log) == self.tab)
                    .where(col(ProvisionStep.name) == name[:255])
                )
            ).first()
            if row is None:
                count = (
                    await session.exec(
                        select(func.count())
                        .select_from(ProvisionStep)
                        .where(col(ProvisionStep.resource_id) == self.resource_id)
                        .where(col(ProvisionStep.session) == self.session)
                    )
                ).one()
                row = ProvisionStep(
                    resource_id=self.resource_id,
                    session=self.session,
                    log=self.tab,
                    name=name[:255],
                    state=str(state),
                    detail=detail,
                    position=count,
                )
            elif row.state == str(state) and row.detail == detail:
                return
            else:
                row.state, row.detail, row.updated_at = str(state), detail, utcnow()
            session.add(row)
            await session.commit()


class CloudClusters:
    """Cloud clusters' sessions, hosts and callbacks (used by the cluster service, the
    reconciler and the API)."""

    def __init__(
        self,
        db: Database,
        kernel: Kernel,
        box: SecretBox,
        accounts: CloudAccounts,
        pool: SSHPool,
        host_keys: HostKeyStore,
        callback_url: str,
        enqueue_nodes: Enqueue,
    ) -> None:
        self.db = db
        self.kernel = kernel
        self.box = box
        self.accounts = accounts
        self.pool = pool
        self.host_keys = host_keys
        self.callback_url = callback_url.rstrip("/")
        self.enqueue_nodes = enqueue_nodes
        self._accounts_made: set[tuple[int, int, str]] = set()

    # --- names, sessions and secrets ------------------------------------------------------------

    @staticmethod
    def host_base(resource: ResourceSnapshot | Any, number: int) -> str:
        owner, name = _hostname_part(resource.owner), _hostname_part(resource.name)
        return f"{owner}-{name}-{number:05d}"

    def controller_name(self, resource: Any, number: int) -> str:
        return f"{self.host_base(resource, number)}-mgmt"

    def node_prefix(self, resource: Any, number: int, index: int) -> str:
        return f"{self.host_base(resource, number)}-{index}-"

    async def open_session(self, resource_id: int) -> ClusterSession:
        """The session a start works on: the open one, or a new one numbered after the last."""
        current = await self.current_session(resource_id)
        if current is not None:
            return current
        async with self.db.session() as session:
            numbers = list(
                await session.exec(
                    select(ClusterSession.number).where(
                        col(ClusterSession.resource_id) == resource_id
                    )
                )
            )
            made = new_secrets()
            row = ClusterSession(
                resource_id=resource_id,
                number=max(numbers, default=0) + 1,
                secrets=self.box.encrypt(msgspec.json.encode(made).decode()),
                token_hash=token_hash(made.token),
            )
            session.add(row)
            await session.commit()
            await session.refresh(row)
            return row

    async def current_session(self, resource_id: int) -> ClusterSession | None:
        async with self.db.session() as session:
            return (
                await session.exec(
                    select(ClusterSession)
                    .where(col(ClusterSession.resource_id) == resource_id)
                    .where(col(ClusterSession.ended_at).is_(None))
                    .order_by(col(ClusterSession.number).desc())
                )
            ).first()

    async def session_row(self, resource_id: int, number: int) -> ClusterSession | None:
        async with self.db.session() as session:
            return (
                await session.exec(
                    select(ClusterSession)
                    .where(col(ClusterSession.resource_id) == resource_id)
                    .where(col(ClusterSession.number) == number)
                )
            ).first()

    async def last_session(self, resource_id: int) -> ClusterSession | None:
        async with self.db.session() as session:
            return (
                await session.exec(
                    select(ClusterSession)
                    .where(col(ClusterSession.resource_id) == resource_id)
                    .order_by(col(ClusterSession.number).desc())
                )
            ).first()

    async def end_session(self, row: ClusterSession) -> None:
        await self._save(row, ended_at=utcnow())

    def secrets_of(self, row: ClusterSession) -> SessionSecrets:
        return msgspec.json.decode(self.box.decrypt(row.secrets), type=SessionSecrets)

    async def _save(self, row: ClusterSession, **values: Any) -> None:
        async with self.db.session() as session:
            await session.exec(
                update(ClusterSession).where(col(ClusterSession.id) == row.id).values(**values)
            )
            await session.commit()
        for key, value in values.items():
            setattr(row, key, value)

    async def session_by_token(self, token: str) -> ClusterSession:
        async with self.db.session() as session:
            row = (
                await session.exec(
                    select(ClusterSession)
                    .where(col(ClusterSession.token_hash) == token_hash(token))
                    .where(col(ClusterSession.ended_at).is_(None))
                )
            ).first()
        if row is None:
            raise NotAuthenticated(
                "no running cluster session has this token", reason="cluster-token-invalid"
            )
        return row

    # --- what the cloud and the scheduler see ---------------------------------------------------

    async def account_of(
        self, org: str, spec: CloudClusterSpec
    ) -> tuple[CloudProvider, CloudAccount, str]:
        row = await self.accounts.get(org, spec.cloud.cloud_account)
        return self.accounts.provider(row.provider), self.accounts.account(row), row.provider

    async def network_of(
        self, org: str, spec: CloudClusterSpec, region: str
    ) -> NetworkAttachment | None:
        """The cluster's network in ``region`` (``None`` on a cloud without networks); see
        :mod:`corral_core.networks.placement` for what instance requests carry."""
        row = await self.accounts.get(org, spec.cloud.cloud_account)
        return await cluster_network(self.db, self.kernel, org, spec.cloud, row.provider, region)

    async def placement(
        self,
        provider: CloudProvider,
        account: CloudAccount,
        spec: CloudClusterSpec,
        owner: str = "",
    ) -> dict[str, Any]:
        """Region, zone, image and instance types (with their sizes) of the controller and each
        partition, resolved against the provider's catalogue; an image may be an OS snapshot
        ``owner`` may use (:mod:`corral_core.cloud_resources.attach`)."""
        regions = list(await provider.list_regions(account))
        if not regions:
            raise ProviderError(f"cloud account {account.name!r} offers no region")
        controller = spec.cloud.controller
        region = next((r for r in regions if r.name == controller.region), None)
        if region is None:
            if controller.region:
                raise Invalid(
                    f"region {controller.region!r} is not offered (offered: "
                    f"{', '.join(r.name for r in regions)})",
                    field="cloud.controller.region",
                )
            region = regions[0]
        zone = controller.zone or (region.zones[0] if region.zones else "")
        if controller.zone and region.zones and controller.zone not in region.zones:
            raise Invalid(
                f"zone {controller.zone!r} is not in {region.name} ({', '.join(region.zones)})",
                field="cloud.controller.zone",
            )
        types = {t.name: t for t in await provider.list_instance_types(account, region.name)}
        if not types:
            raise ProviderError(f"region {region.name} offers no instance type")
        smallest = min(types.values(), key=lambda t: (t.vcpus, t.memory_gib)).name

        def kind(name: str, field: str) -> Any:
            chosen = name or smallest
            if chosen not in types:
                raise Invalid(
                    f"instance type {chosen!r} is not offered in {region.name}", field=field
                )
            return types[chosen]

        images = list(await provider.list_images(account, region.name))
        snapshots = await snapshot_images(
            self.db,
            owner,
            spec.cloud.cloud_account,
            region.name,
            [(controller.image, "cloud.controller.image")]
            + [
                (p.elastic_image, f"cloud.partitions.{i}.elastic_image")
                for i, p in enumerate(spec.partitions())
            ],
        )

        def image(name: str, field: str, kind: Any) -> str:
            if name in snapshots:
                return snapshots[name]
            if name in ("", "latest"):
                # the recommended image of the instance type's architecture (Graviton: arm64)
                fits = [i for i in images if i.architecture == kind.architecture] or images
                latest = next((i for i in fits if i.latest), fits[0] if fits else None)
                if latest is None:
                    raise ProviderError(f"region {region.name} offers no image")
                return latest.id
            if not any(name in (i.id, i.name) for i in images):
                raise Invalid(f"image {name!r} is not offered in {region.name}", field=field)
            return next(i.id for i in images if name in (i.id, i.name))

        controller_type = kind(controller.instance_type, "cloud.controller.instance_type")
        partitions = []
        for i, p in enumerate(spec.partitions()):
            partition_type = kind(p.instance_type, f"cloud.partitions.{i}.instance_type")
            partitions.append(
                {
                    "type": partition_type,
                    "image": image(
                        p.elastic_image, f"cloud.partitions.{i}.elastic_image", partition_type
                    ),
                    "zones": list(p.zones) or ([zone] if zone else []),
                }
            )
        return {
            "region": region.name,
            "zone": zone,
            "controller_type": controller_type,
            "controller_image": image(controller.image, "cloud.controller.image", controller_type),
            "partitions": partitions,
        }

    def elastic(
        self,
        resource: Any,
        spec: CloudClusterSpec,
        number: int,
        placement: dict[str, Any],
        controller_address: str = "",
    ) -> ElasticClusterSpec:
        advanced = spec.cloud.advanced
        partitions = []
        for index, (partition, placed) in enumerate(
            zip(spec.partitions(), placement["partitions"], strict=True), start=1
        ):
            kind = placed["type"]
            partitions.append(
                ElasticPartition(
                    name=partition.name,
                    node_prefix=self.node_prefix(resource, number, index),
                    max_nodes=partition.max_nodes,
                    cpus=kind.vcpus,
                    memory_mb=max(int(kind.memory_gib * 1024 * 0.9), 256),
                    gpus=kind.gpus,
                    default=partition.default,
                )
            )
        return ElasticClusterSpec(
            cluster_name=_hostname_part(resource.name)[:40],
            controller_host=self.controller_name(resource, number),
            controller_address=controller_address,
            partitions=tuple(partitions),
            resume_program=RESUME_PROGRAM,
            suspend_program=SUSPEND_PROGRAM,
            suspend_time_seconds=advanced.suspend_time,
            resume_timeout_seconds=advanced.resume_timeout,
            suspend_timeout_seconds=advanced.suspend_timeout,
            return_to_service=2 if advanced.return_to_service == "any-reason" else 1,
        )

    def scheduler_for(self, spec: CloudClusterSpec, runner: Any) -> Scheduler:
        record = self.kernel.scheduler(spec.scheduler)
        if SchedulerFeature.ELASTIC_NODES not in record.features:
            raise Invalid(
                f"scheduler {spec.scheduler!r} cannot run elastic cloud nodes", field="scheduler"
            )
        config = (
            msgspec.convert(spec.scheduler_config, record.config)
            if record.config is not None
            else None
        )
        scheduler: Scheduler = record.create(runner, config)
        return scheduler

    async def user_data(
        self,
        resource: Any,
        spec: CloudClusterSpec,
        row: ClusterSession,
        elastic: ElasticClusterSpec,
        *,
        host: str,
        role: str,
    ) -> str:
        made = self.secrets_of(row)
        scheduler = self.scheduler_for(spec, None)
        scheduler_part = await scheduler.elastic_bootstrap(
            elastic, role=role, auth_key=made.auth_key, node_command=NODE_COMMAND
        )
        advanced = spec.cloud.advanced
        owner = resource.owner
        user_part = ""
        runs_user = advanced.user_bootstrap.strip() and (
            advanced.bootstrap_controller if role == "controller" else advanced.bootstrap_compute
        )
        if runs_user:
            user_part = (
                _file("/etc/corral/user-bootstrap", advanced.user_bootstrap, "0755")
                + f"echo '--- user bootstrap (as {owner})'\n"
                + f"runuser -u {shlex.quote(owner)} -- /bin/bash -l /etc/corral/user-bootstrap\n"
            )
        host_part = ""
        if role == "controller":
            host_part = _file("/etc/ssh/ssh_host_ed25519_key", made.host_key, "0600") + (
                "ssh-keygen -y -f /etc/ssh/ssh_host_ed25519_key > "
                "/etc/ssh/ssh_host_ed25519_key.pub\n"
            )
        return _USER_DATA.format(
            host=host,
            role=role,
            cluster=f"{resource.owner}/{resource.name}",
            number=row.number,
            url=shlex.quote(self.callback_url),
            token=shlex.quote(made.token),
            report=_file(REPORT_COMMAND, _REPORT, "0755"),
            nodes=_file(NODE_COMMAND, _NODES, "0755"),
            keys=_file("/etc/corral/bin/authorized-keys", _KEYS, "0755"),
            root_keys=_file(
                "/etc/corral/authorized_keys/root", _public_key(made.root_key) + "\n", "0644"
            ),
            debug="1" if advanced.debug_mode else "",
            owner=shlex.quote(owner),
            sshd=_file("/etc/corral/sshd_config", _SSHD_CONFIG, "0644"),
            boot_sshd=_file("/etc/corral/boot.d/40-sshd", _BOOT_SSHD, "0755"),
            host_key=host_part,
            scheduler=scheduler_part,
            user=user_part,
            log=BOOTSTRAP_LOG,
        )

    # --- SSH as root, and users' accounts -------------------------------------------------------

    def root_runner(self, row: ClusterSession) -> SSHRunner:
        made = self.secrets_of(row)
        identity = SSHIdentity(
            name=f"cluster-root:{row.resource_id}:{row.number}",
            label="root",
            private_key=made.root_key,
        )
        return SSHRunner(
            self.pool, identity, SSHEndpoint(host=row.controller_address, username="root")
        )

    async def pin_controller(self, row: ClusterSession) -> None:
        public = _public_key(self.secrets_of(row).host_key)
        await self.host_keys.pin(row.controller_address, 22, public, _fingerprint(public))

    async def ensure_account(self, row: ClusterSession, username: str) -> None:
        """Give ``username`` an account on the cluster on their first sign-in (as root)."""
        key = (row.resource_id, row.number, username)
        if key in self._accounts_made:
            return
        user = shlex.quote(username)
        await self.root_runner(row).run(
            f"id -u {user} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "
            f"--user-group {user}; "
            f"if [ \"$(getent shadow {user} | cut -d: -f2)\" != '*' ]; then "
            f"usermod -p '*' {user}; fi",
            check=True,
        )
        self._accounts_made.add(key)

    # --- callbacks from the cluster --------------------------------------------------------------

    async def report_bootstrap(
        self, token: str, host: str, exit_status: int, output: str
    ) -> ClusterSession:
        row = await self.session_by_token(token)
        output = output[-OUTPUT_MAX:]
        if host == row.controller_name or (not row.controller_name and host.endswith("-mgmt")):
            await self._save(row, bootstrap_status=exit_status, bootstrap_output=output)
        else:
            async with self.db.session() as session:
                await session.exec(
                    update(ClusterNode)
                    .where(col(ClusterNode.resource_id) == row.resource_id)
                    .where(col(ClusterNode.session) == row.number)
                    .where(col(ClusterNode.name) == host)
                    .values(
                        reason=""
                        if exit_status == 0
                        else f"bootstrap exited {exit_status}: " + output[-2000:],
                        updated_at=utcnow(),
                    )
                )
                await session.commit()
        return row

    async def request_nodes(self, token: str, action: str, names: Sequence[str]) -> ClusterSession:
        """The scheduler asks for nodes to be powered up (``resume``) or down (``suspend``)."""
        row = await self.session_by_token(token)
        bad = [n for n in names if not NODE_NAME.match(n)]
        if bad:
            raise Invalid(f"{bad[0]!r} is not a node name", field="nodes")
        async with self.db.session() as session:
            resource = await session.get(Resource, row.resource_id)
            if resource is None:
                raise NotFound("the cluster is gone")
            spec = msgspec.convert(resource.spec, CloudClusterSpec)
            prefixes = {
                self.node_prefix(resource, row.number, i): p.name
                for i, p in enumerate(spec.partitions(), start=1)
            }
            existing = {
                n.name: n
                for n in await session.exec(
                    select(ClusterNode)
                    .where(col(ClusterNode.resource_id) == row.resource_id)
                    .where(col(ClusterNode.session) == row.number)
                    .where(col(ClusterNode.name).in_(list(names)))
                )
            }
            now = utcnow()
            for name in names:
                partition = next((p for pre, p in prefixes.items() if name.startswith(pre)), None)
                if partition is None:
                    raise Invalid(f"{name!r} is not a node of this cluster", field="nodes")
                node = existing.get(name)
                if node is None:
                    if action == "suspend":
                        continue
                    node = ClusterNode(
                        resource_id=row.resource_id,
                        session=row.number,
                        name=name,
                        partition=partition,
                    )
                node.wanted = "up" if action == "resume" else "down"
                if action == "resume" and node.state in ("gone", "failed"):
                    node.state, node.batch, node.instance_id, node.address = "requested", "", "", ""
                node.updated_at = now
                node.requested_at = now
                session.add(node)
            await session.commit()
        await self.enqueue_nodes(row.resource_id)
        return row

    # --- elastic nodes ---------------------------------------------------------------------------

    async def live_nodes(self, resource_id: int) -> list[ClusterNode]:
        async with self.db.session() as session:
            return list(
                await session.exec(
                    select(ClusterNode)
                    .where(col(ClusterNode.resource_id) == resource_id)
                    .where(col(ClusterNode.state) != "gone")
                )
            )

    async def _claim(self, resource_id: int, number: int, wanted: str) -> list[ClusterNode]:
        """Take the rows that need work (``up``: to create; ``down``: to delete), with a lease
        so that a killed worker's rows are taken again once it expires."""
        now = utcnow()
        until = now + timedelta(seconds=300)
        token = uuid.uuid4().hex[:12]
        expired = or_(col(ClusterNode.lease_until).is_(None), col(ClusterNode.lease_until) < now)
        if wanted == "up":
            ready = or_(
                col(ClusterNode.state) == "requested",
                and_(col(ClusterNode.state) == "creating", expired),
            )
            values: dict[str, Any] = {
                "state": "creating",
                "batch": case((col(ClusterNode.batch) == "", token), else_=col(ClusterNode.batch)),
            }
        else:
            ready = or_(
                col(ClusterNode.state).in_(("requested", "running", "failed")),
                and_(col(ClusterNode.state).in_(("creating", "deleting")), expired),
            )
            values = {"state": "deleting"}
        async with self.db.session() as session:
            claimed = await session.exec(
                update(ClusterNode)
                .where(col(ClusterNode.resource_id) == resource_id)
                .where(col(ClusterNode.session) == number)
                .where(col(ClusterNode.wanted) == wanted)
                .where(ready)
                .values(lease_until=until, updated_at=now, **values)
                .returning(col(ClusterNode.id))
            )
            ids = [row[0] for row in claimed]
            await session.commit()
            if not ids:
                return []
            return list(await session.exec(select(ClusterNode).where(col(ClusterNode.id).in_(ids))))

    async def _set_node(self, node_id: int | None, **values: Any) -> None:
        async with self.db.session() as session:
            await session.exec(
                update(ClusterNode)
                .where(col(ClusterNode.id) == node_id)
                .values(updated_at=utcnow(), lease_until=None, **values)
            )
            await session.commit()

    async def work_nodes(self, resource: Any) -> None:
        """Create the nodes asked for and delete the ones let go; safe to run concurrently and
        again after a crash."""
        row = await self.current_session(resource.id)
        if row is None or not row.controller_address:
            return
        spec = msgspec.convert(resource.spec, CloudClusterSpec)
        provider, account, _ = await self.account_of(resource.org, spec)
        removing = await self._claim(resource.id, row.number, "down")
        if removing:
            await self._delete_nodes(resource, spec, row, provider, account, removing)
        creating = await self._claim(resource.id, row.number, "up")
        if creating:
            await self._create_nodes(resource, spec, row, provider, account, creating)

    async def _create_nodes(
        self,
        resource: Any,
        spec: CloudClusterSpec,
        row: ClusterSession,
        provider: CloudProvider,
        account: CloudAccount,
        nodes: list[ClusterNode],
    ) -> None:
        placement = await self.placement(provider, account, spec, resource.owner)
        elastic = self.elastic(resource, spec, row.number, placement, row.controller_address)
        network = await self.network_of(resource.org, spec, placement["region"])
        partitions = spec.partitions()
        # a capacity reservation's nodes are its group's costs; one unmapped since the start
        # (or whose group the owner left) launches nothing
        reserved_for: dict[str, str] = {}
        refused: dict[str, str] = {}
        for reserved in (p for p in partitions if p.capacity_reservation):
            try:
                reserved_for |= await self.accounts.settings.reservation_groups(
                    resource.org, resource.owner, [reserved]
                )
            except Invalid as exc:
                refused[reserved.name] = exc.message
        steps = StepLog(self.db, resource.id, row.number, "scheduler")
        batches: dict[tuple[str, str], list[ClusterNode]] = {}
        for node in nodes:
            batches.setdefault((node.partition, node.batch), []).append(node)
        for (partition_name, batch), members in batches.items():
            index = next(i for i, p in enumerate(partitions) if p.name == partition_name)
            partition, placed = partitions[index], placement["partitions"][index]
            names = tuple(sorted(n.name for n in members))
            step = f"Compute nodes {', '.join(names)}"
            if partition_name in refused:
                await steps.step(step, StepState.FAILED, refused[partition_name])
                for node in members:
                    await self._set_node(node.id, state="failed", reason=refused[partition_name])
                continue
            try:
                group = await self._placement_group(
                    resource, spec, provider, account, placement["region"], index, row.number
                )
                user_data = await self.user_data(
                    resource, spec, row, elastic, host=f"a node of {partition_name}",
                    role="compute",
                )  # fmt: skip
                instances = await provider.create_instances(
                    account,
                    InstanceRequest(
                        region=placement["region"],
                        instance_type=placed["type"].name,
                        image=placed["image"],
                        names=names,
                        idempotency_key=f"corral-{resource.id}-{row.number}-{batch}",
                        zones=await self._zone_order(
                            resource, provider, account, placement, placed["zones"]
                        ),
                        spot=partition.preemptible,
                        placement_group=group,
                        capacity_reservation_id=partition.capacity_reservation_id or None,
                        network=None if network is None else network.placement(placed["zones"]),
                        options={}
                        if network is None
                        else {"network": network.options, "role": "compute"},
                        user_data=user_data,
                        tags=self.tags(resource, row.number, "compute", partition_name, spec.group)
                        | (
                            {"GroupID": reserved_for[partition_name]}
                            if partition_name in reserved_for
                            else {}
                        ),
                    ),
                    log=steps,
                )
            except CorralError as exc:
                await steps.step(step, StepState.FAILED, exc.message)
                for node in members:
                    await self._set_node(node.id, state="failed", reason=exc.message)
                log.warning(
                    "nodes %s of cluster %s failed: %s", names, resource.id, exc.log_message
                )
                continue
            by_name = {i.name: i for i in instances}
            for node in members:
                found = by_name.get(node.name)
                if found is None:
                    await self._set_node(node.id, state="failed", reason="the cloud made no host")
                    continue
                await self._set_node(
                    node.id,
                    state="running",
                    instance_id=found.id,
                    address=found.private_ip or found.public_ip or "",
                    reason="",
                )
            await steps.step(step, StepState.COMPLETED, f"{len(instances)} hosts")

    async def _zone_order(
        self,
        resource: Any,
        provider: CloudProvider,
        account: CloudAccount,
        placement: dict[str, Any],
        zones: list[str],
    ) -> tuple[str, ...]:
        """The order a MultiZone batch tries its zones in (spec): the zone holding most of the
        cluster's nodes first; with none yet, the controller's zone when it is one of them;
        then the partition's own order."""
        if len(zones) < 2:
            return tuple(zones)
        held: dict[str, int] = {}
        for instance in await provider.describe_instances(
            account, placement["region"], tags={TAG_CLUSTER: str(resource.id)}
        ):
            if not instance.state.gone and instance.tags.get(TAG_ROLE) != "controller":
                held[instance.zone] = held.get(instance.zone, 0) + 1
        return zone_order(zones, held, placement["zone"])

    @staticmethod
    def placement_group_name(resource: Any, partition: str) -> str:
        """The placement group Corral makes for a partition with ``use_placement_group``: one
        per cluster and partition, kept across sessions, deleted with the cluster."""
        return f"corral-{resource.id}-{partition}"

    async def _placement_group(
        self,
        resource: Any,
        spec: CloudClusterSpec,
        provider: CloudProvider,
        account: CloudAccount,
        region: str,
        index: int,
        number: int,
    ) -> str | None:
        """The placement group a partition's nodes go in: the one it names (a capacity
        reservation's), or Corral's own, made here if missing (idempotent), or none."""
        partition = spec.partitions()[index]
        if partition.placement_group:
            return partition.placement_group
        if not partition.use_placement_group:
            return None
        record = self.kernel.cloud(await self._provider_name(resource.org, spec))
        if CloudFeature.PLACEMENT_GROUPS not in record.features:
            raise Invalid(
                f"cloud provider {record.name!r} has no placement groups",
                field=f"cloud.partitions.{index}.use_placement_group",
            )
        name = self.placement_group_name(resource, partition.name)
        await provider.create_placement_group(
            account,
            region,
            name,
            tags=self.tags(resource, number, "compute", partition.name, spec.group),
        )
        return name

    async def _provider_name(self, org: str, spec: CloudClusterSpec) -> str:
        return (await self.accounts.get(org, spec.cloud.cloud_account)).provider

    async def _delete_placement_groups(
        self,
        resource: Any,
        spec: CloudClusterSpec,
        provider: CloudProvider,
        account: CloudAccount,
        region: str,
        steps: StepLog,
    ) -> None:
        """Corral's placement groups of the cluster, once their instances are gone (AWS refuses
        before: the reconcile tries again)."""
        record = self.kernel.cloud(await self._provider_name(resource.org, spec))
        if CloudFeature.PLACEMENT_GROUPS not in record.features:
            return
        for partition in spec.partitions():
            if partition.placement_group or not partition.use_placement_group:
                continue
            name = self.placement_group_name(resource, partition.name)
            step = f"Placement group {name}"
            try:
                await provider.delete_placement_group(account, region, name)
            except Conflict as exc:
                await steps.step(step, StepState.RUNNING, "waiting for its instances to end")
                raise ProviderError(
                    f"placement group {name} still has instances: {exc.message}",
                    reason="placement-group-in-use",
                    retryable=True,
                ) from None
            await steps.step(step, StepState.COMPLETED)

    async def _delete_nodes(
        self,
        resource: Any,
        spec: CloudClusterSpec,
        row: ClusterSession,
        provider: CloudProvider,
        account: CloudAccount,
        nodes: list[ClusterNode],
    ) -> None:
        placement_region = await self._region(provider, account, spec)
        found = await provider.describe_instances(
            account,
            placement_region,
            tags={TAG_CLUSTER: str(resource.id), TAG_SESSION: str(row.number)},
        )
        names = {n.name for n in nodes}
        ids = [i.id for i in found if i.name in names and not i.state.gone]
        steps = StepLog(self.db, resource.id, row.number, "scheduler")
        step = f"Powering down {', '.join(sorted(names))}"
        try:
            if ids:
                await provider.delete_instances(account, placement_region, ids)
        except CorralError as exc:
            await steps.step(step, StepState.FAILED, exc.message)
            for node in nodes:
                await self._set_node(node.id, state="failed", reason=exc.message)
            return
        async with self.db.session() as session:
            await session.exec(
                update(ClusterNode)
                .where(col(ClusterNode.id).in_([n.id for n in nodes]))
                .values(
                    state=case((col(ClusterNode.wanted) == "up", "requested"), else_="gone"),
                    batch="",
                    instance_id="",
                    address="",
                    reason="",
                    lease_until=None,
                    updated_at=utcnow(),
                )
            )
            await session.commit()
        await steps.step(step, StepState.COMPLETED, f"{len(ids)} hosts deleted")
        if any(n.wanted == "up" for n in nodes):
            await self.enqueue_nodes(resource.id)

    async def _region(
        self, provider: CloudProvider, account: CloudAccount, spec: CloudClusterSpec
    ) -> str:
        if spec.cloud.controller.region:
            return spec.cloud.controller.region
        regions = list(await provider.list_regions(account))
        if not regions:
            raise ProviderError(f"cloud account {account.name!r} offers no region")
        return regions[0].name

    @staticmethod
    def tags(
        resource: Any, number: int, role: str, partition: str = "", group: str = ""
    ) -> dict[str, str]:
        """Every cost-allocation tag (spec: all nine on everything a session creates, with
        OrganizationID, GroupID, User and SessionID never empty), and Corral's own."""
        tags = {
            TAG_CLUSTER: str(resource.id),
            TAG_SESSION: str(number),
            TAG_ROLE: role,
            "Name": f"{resource.owner}/{resource.name}",
            "User": resource.owner,
            "OrganizationID": resource.org,
            "Session": str(number),
            "SessionID": f"{resource.id}-{number}",
            "Date": utcnow().date().isoformat(),
            "GroupID": group or "none",
            "Project": "",
            "Pool": partition,
        }
        return tags

    # --- the reconcile --------------------------------------------------------------------------

    async def reconcile(self, resource: ResourceSnapshot, ctx: ReconcileContext) -> ReconcileResult:
        spec = msgspec.convert(resource.spec, CloudClusterSpec)
        if resource.desired_state == "off":
            return await self._destroy(resource, spec, ctx)
        row = await self.open_session(resource.id)
        status: dict[str, Any] = {**resource.status, "session": row.number}
        if resource.desired_state == "stopped":
            return await self._stop(resource, spec, row, status, ctx)
        restarted = resource.observed_generation != resource.generation
        if status.get("failed_session") == row.number and restarted:
            # started again after a failure: a new session, with new hosts
            await self.end_session(row)
            row = await self.open_session(resource.id)
            status = {**status, "session": row.number, "failed_session": None}
        if resource.observed_state == "failed" and status.get("failed_session") == row.number:
            # no automatic retry of a failed start: start again or destroy
            return ReconcileResult(
                observed_state="failed", reason=str(status.get("failed_reason", "")),
                status=status,
                requeue_after=3600,
            )  # fmt: skip
        if resource.observed_state == "active" and status.get("active_session") == row.number:
            if status.get("config_generation") != resource.generation:
                status = await self._reconfigure(resource, spec, row, status, ctx)
            return ReconcileResult(observed_state="active", status=status)
        try:
            return await self._provision(resource, spec, row, status, ctx)
        except CorralError as exc:
            return await self._failed(resource, spec, row, status, exc.message, ctx)

    async def _provision(
        self,
        resource: ResourceSnapshot,
        spec: CloudClusterSpec,
        row: ClusterSession,
        status: dict[str, Any],
        ctx: ReconcileContext,
    ) -> ReconcileResult:
        steps = StepLog(self.db, resource.id, row.number, "provision")
        collecting = "Collecting cluster variables"
        await steps.step(collecting, StepState.RUNNING)
        provider, account, _ = await self.account_of(resource.org, spec)
        placement = await self.placement(provider, account, spec, resource.owner)
        self.scheduler_for(spec, None)
        network = await self.network_of(resource.org, spec, placement["region"])
        await steps.step(collecting, StepState.COMPLETED)
        name = self.controller_name(resource, row.number)
        controller_step = f"Controller node {name}"
        if not row.controller_id:
            await steps.step(controller_step, StepState.RUNNING)
            await self._remove_other_sessions(resource, row, provider, account, placement["region"])
            elastic = self.elastic(resource, spec, row.number, placement)
            user_data = await self.user_data(
                resource, spec, row, elastic, host=name, role="controller"
            )
            controller = spec.cloud.controller
            # idempotent on the key: after a crash, the controller the first call made
            made = await provider.create_instances(
                account,
                InstanceRequest(
                    region=placement["region"],
                    instance_type=placement["controller_type"].name,
                    image=placement["controller_image"],
                    names=(name,),
                    idempotency_key=f"corral-{resource.id}-{row.number}-controller",
                    zones=(placement["zone"],) if placement["zone"] else (),
                    root_disk_gib=controller.root_size_gib,
                    static_ip=await static_ip_id(
                        self.db,
                        org=resource.org,
                        owner=resource.owner,
                        cluster=ResourceRef(resource.owner, resource.name).uri,
                        cloud=spec.cloud,
                        region=placement["region"],
                    ),
                    network=None
                    if network is None
                    else network.placement((placement["zone"],) if placement["zone"] else ()),
                    options={}
                    if network is None
                    else {"network": network.options, "role": "controller"},
                    user_data=user_data,
                    tags=self.tags(resource, row.number, "controller", group=spec.group),
                ),
                log=steps,
            )
            instance = made[0]
            await self._controller_found(row, instance)
            await steps.step(controller_step, StepState.COMPLETED, row.controller_address)
            status["config_hash"] = await self._config_hash(spec, elastic)
            return self._provisioning(status, row, 0.2)

        configuration = "Controller node configuration"
        if row.bootstrap_status is None:
            await steps.step(configuration, StepState.RUNNING)
            waited = (utcnow() - row.created_at).total_seconds()
            limit = spec.cloud.advanced.resume_timeout
            if waited > limit:
                raise ProviderError(
                    f"the controller did not report its bootstrap within {limit} s",
                    reason="bootstrap-timeout",
                )
            return self._provisioning(status, row, 0.5)
        if row.bootstrap_status != 0:
            await steps.step(configuration, StepState.FAILED, f"exit {row.bootstrap_status}")
            raise ProviderError(
                f"the controller's bootstrap exited {row.bootstrap_status}: "
                f"{_tail(row.bootstrap_output)}",
                reason="bootstrap-failed",
            )
        await steps.step(configuration, StepState.COMPLETED, "exit 0")

        health = "Controller node health check"
        await steps.step(health, StepState.RUNNING)
        try:
            found = await self._health(resource, spec, row)
        except (TransportError, Timeout):
            # a controller that just booted (or resumed) may not answer SSH yet
            since = status.get("health_since") or utcnow().isoformat()
            if (utcnow() - datetime.fromisoformat(since)).total_seconds() < HEALTH_GRACE:
                return self._provisioning({**status, "health_since": since}, row, 1.0)
            raise
        await steps.step(health, StepState.COMPLETED, "exit 0")
        status.pop("health_since", None)
        await ctx.emit("cluster.active", {"name": resource.name, "session": row.number})
        return ReconcileResult(
            observed_state="active",
            status={
                **status,
                **found,
                "active_session": row.number,
                "controller_address": row.controller_address,
                "failed_session": None,
            },
        )

    async def _config_hash(self, spec: CloudClusterSpec, elastic: ElasticClusterSpec) -> str:
        files = await self.scheduler_for(spec, None).elastic_config(elastic)
        digest = hashlib.sha256()
        for file in sorted(files, key=lambda f: f.path):
            digest.update(f"{file.path}\0{file.mode}\0{file.content}\0".encode())
        return digest.hexdigest()

    async def _reconfigure(
        self,
        resource: ResourceSnapshot,
        spec: CloudClusterSpec,
        row: ClusterSession,
        status: dict[str, Any],
        ctx: ReconcileContext,
    ) -> dict[str, Any]:
        """Apply an edit (or a start after one) to the running cluster: the scheduler's
        configuration rewritten on the controller, nodes no partition has any more let go.
        A failure leaves the cluster active on its old configuration and is tried again."""
        provider, account, _ = await self.account_of(resource.org, spec)
        placement = await self.placement(provider, account, spec, resource.owner)
        elastic = self.elastic(resource, spec, row.number, placement)
        wanted = await self._config_hash(spec, elastic)
        done = {**status, "config_generation": resource.generation, "config_hash": wanted}
        if status.get("config_hash") == wanted:
            return done
        steps = StepLog(self.db, resource.id, row.number, "provision")
        step = f"Configuration update (generation {resource.generation})"
        await steps.step(step, StepState.RUNNING)
        try:
            scheduler = self.scheduler_for(spec, self.root_runner(row))
            outcome = await scheduler.elastic_reconfigure(elastic)
        except CorralError as exc:
            await steps.step(step, StepState.FAILED, exc.message)
            log.warning("cluster %s: reconfiguration failed: %s", resource.id, exc.log_message)
            return {**status, "config_error": exc.message}
        names = {
            f"{p.node_prefix}{i:04d}" for p in elastic.partitions for i in range(1, p.max_nodes + 1)
        }
        dropped = [
            n.id
            for n in await self.live_nodes(resource.id)
            if n.session == row.number and n.name not in names
        ]
        if dropped:
            now = utcnow()
            async with self.db.session() as session:
                await session.exec(
                    update(ClusterNode)
                    .where(col(ClusterNode.id).in_(dropped))
                    .values(wanted="down", requested_at=now, updated_at=now)
                )
                await session.commit()
            await self.enqueue_nodes(resource.id)
        await steps.step(step, StepState.COMPLETED, outcome)
        message = f"Cluster {resource.name} configuration updated successfully"
        await ctx.emit(
            "cluster.updated",
            {"name": resource.name, "generation": resource.generation, "message": message},
        )
        done.pop("config_error", None)
        return done

    async def _controller_found(self, row: ClusterSession, instance: Instance) -> None:
        address = instance.private_ip or instance.public_ip or ""
        await self._save(
            row,
            controller_id=instance.id,
            controller_name=instance.name,
            controller_address=address,
        )
        if address:
            await self.pin_controller(row)

    @staticmethod
    def _provisioning(status: dict[str, Any], row: ClusterSession, after: float) -> ReconcileResult:
        return ReconcileResult(
            observed_state="provisioning",
            status={**status, "controller_address": row.controller_address},
            requeue_after=after,
        )

    async def _health(
        self, resource: ResourceSnapshot, spec: CloudClusterSpec, row: ClusterSession
    ) -> dict[str, Any]:
        """The user's health check, then the scheduler's answer, over SSH as root."""
        runner = self.root_runner(row)
        check = spec.cloud.advanced.health_check.strip()
        if check:
            result = await runner.run("/bin/bash -s", input=check + "\n", timeout=300)
            if not result.ok:
                raise ProviderError(
                    f"the health check exited {result.exit_status}: "
                    f"{_tail(result.stderr or result.stdout)}",
                    reason="health-check-failed",
                )
        scheduler = self.scheduler_for(spec, runner)
        found: dict[str, Any] = {"checked_at": utcnow().isoformat()}
        found["partitions"] = msgspec.to_builtins(list(await scheduler.partitions()))
        found["nodes"] = msgspec.to_builtins(list(await scheduler.nodes()))
        return found

    async def check(self, resource: Any) -> dict[str, Any]:
        """An active cluster's periodic check (and a chance to finish node work left over)."""
        spec = msgspec.convert(resource.spec, CloudClusterSpec)
        row = await self.current_session(resource.id)
        if row is None or not row.controller_address:
            raise ProviderError("the cluster has no controller", reason="controller-missing")
        await self.work_nodes(resource)
        return await self._health(resource, spec, row)

    async def _failed(
        self,
        resource: ResourceSnapshot,
        spec: CloudClusterSpec,
        row: ClusterSession,
        status: dict[str, Any],
        reason: str,
        ctx: ReconcileContext,
    ) -> ReconcileResult:
        steps = StepLog(self.db, resource.id, row.number, "provision")
        if not spec.cloud.advanced.debug_mode:
            await steps.step("Cleaning up after the failure", StepState.RUNNING)
            try:
                await self._delete_all(resource, spec, steps, keep_session=True)
                await steps.step("Cleaning up after the failure", StepState.COMPLETED)
            except CorralError as exc:
                await steps.step("Cleaning up after the failure", StepState.FAILED, exc.message)
        else:
            await steps.step(
                "Debug mode: hosts kept for inspection", StepState.SKIPPED, row.controller_address
            )
        await ctx.emit("cluster.failed", {"name": resource.name, "reason": reason})
        return ReconcileResult(
            observed_state="failed",
            reason=reason,
            status={
                **status,
                "failed_session": row.number,
                "failed_reason": reason,
                "active_session": None,
            },
            requeue_after=3600,
        )

    async def _remove_other_sessions(
        self,
        resource: Any,
        row: ClusterSession,
        provider: CloudProvider,
        account: CloudAccount,
        region: str,
    ) -> None:
        found = await provider.describe_instances(
            account, region, tags={TAG_CLUSTER: str(resource.id)}
        )
        stale = [
            i.id for i in found if i.tags.get(TAG_SESSION) != str(row.number) and not i.state.gone
        ]
        if stale:
            await provider.delete_instances(account, region, stale)

    async def _delete_all(
        self, resource: Any, spec: CloudClusterSpec, steps: StepLog, *, keep_session: bool
    ) -> None:
        provider, account, _ = await self.account_of(resource.org, spec)
        region = await self._region(provider, account, spec)
        found = [
            i
            for i in await provider.describe_instances(
                account, region, tags={TAG_CLUSTER: str(resource.id)}
            )
            if not i.state.gone
        ]
        nodes = [i for i in found if i.tags.get(TAG_ROLE) != "controller"]
        controllers = [i for i in found if i.tags.get(TAG_ROLE) == "controller"]
        if nodes:
            step = f"Compute nodes ({len(nodes)})"
            await steps.step(step, StepState.RUNNING)
            await provider.delete_instances(account, region, [i.id for i in nodes])
            await steps.step(step, StepState.COMPLETED)
        for controller in controllers:
            step = f"Controller node {controller.name}"
            await steps.step(step, StepState.RUNNING)
            await provider.delete_instances(account, region, [controller.id])
            await steps.step(step, StepState.COMPLETED)
            if controller.private_ip:
                await self.pool.call(self.pool.drop_host(controller.private_ip, 22))
        await self._delete_placement_groups(resource, spec, provider, account, region, steps)
        now = utcnow()
        async with self.db.session() as session:
            await session.exec(
                update(ClusterNode)
                .where(col(ClusterNode.resource_id) == resource.id)
                .values(state="gone", wanted="down", lease_until=None, updated_at=now)
            )
            # the spec: running and pending jobs are lost with the cluster's hosts
            await session.exec(
                update(ClusterJob)
                .where(col(ClusterJob.resource_id) == resource.id)
                .where(col(ClusterJob.finished).is_(False))
                .values(
                    finished=True,
                    state="node_fail",
                    reason="the cluster's hosts were deleted",
                    ended_at=now,
                    updated_at=now,
                )
            )
            await session.commit()

    async def _destroy(
        self, resource: ResourceSnapshot, spec: CloudClusterSpec, ctx: ReconcileContext
    ) -> ReconcileResult:
        row = await self.current_session(resource.id) or await self.last_session(resource.id)
        number = row.number if row is not None else 0
        steps = StepLog(self.db, resource.id, number, "deletion")
        await self._delete_all(resource, spec, steps, keep_session=False)
        if row is not None and row.ended_at is None:
            await self.end_session(row)
        await steps.step("Cluster destroyed", StepState.COMPLETED)
        if resource.observed_state != "off":
            await ctx.emit("cluster.stopped", {"name": resource.name})
        return ReconcileResult(observed_state="off", status={"session": number})

    async def _stop(
        self,
        resource: ResourceSnapshot,
        spec: CloudClusterSpec,
        row: ClusterSession,
        status: dict[str, Any],
        ctx: ReconcileContext,
    ) -> ReconcileResult:
        if resource.observed_state == "stopped":
            return ReconcileResult(observed_state="stopped", status=status)
        steps = StepLog(self.db, resource.id, row.number, "deletion")
        if row.controller_id:
            provider, account, _ = await self.account_of(resource.org, spec)
            region = await self._region(provider, account, spec)
            step = f"Stopping controller node {row.controller_name}"
            await steps.step(step, StepState.RUNNING)
            await provider.stop_instances(account, region, [row.controller_id])
            await steps.step(step, StepState.COMPLETED)
            await self.pool.call(self.pool.drop_host(row.controller_address, 22))
        await ctx.emit("cluster.stopped", {"name": resource.name})
        return ReconcileResult(observed_state="stopped", status={**status, "active_session": None})

    async def resume_controller(self, resource: Any) -> None:
        """Start a stopped controller again (the start of a stopped cluster)."""
        row = await self.current_session(resource.id)
        if row is None or not row.controller_id:
            return
        spec = msgspec.convert(resource.spec, CloudClusterSpec)
        provider, account, _ = await self.account_of(resource.org, spec)
        region = await self._region(provider, account, spec)
        await provider.start_instances(account, region, [row.controller_id])

    # --- what users read ------------------------------------------------------------------------

    async def logs(self, resource: Any, number: int | None = None) -> ClusterLogs:
        """A session's provisioning log (the current or last one unless ``number``): its steps
        and the controller's bootstrap output."""
        number = number or int(resource.status.get("session") or 0)
        if not number:
            last = await self.last_session(resource.id)
            number = last.number if last is not None else 0
        async with self.db.session() as session:
            steps = list(
                await session.exec(
                    select(ProvisionStep)
                    .where(col(ProvisionStep.resource_id) == resource.id)
                    .where(col(ProvisionStep.session) == number)
                    .order_by(col(ProvisionStep.position), col(ProvisionStep.id))
                )
            )
        row = await self.session_row(resource.id, number)
        return ClusterLogs(
            session=number,
            steps=msgspec.convert(
                [
                    {
                        "log": s.log,
                        "name": s.name,
                        "state": s.state,
                        "detail": s.detail,
                        "updated_at": s.updated_at,
                    }
                    for s in steps
                ],
                list[ProvisionStepInfo],
            ),
            lines=row.bootstrap_output.splitlines() if row is not None else [],
        )

    async def estimate(self, org: str, spec: CloudClusterSpec, owner: str = "") -> ClusterEstimate:
        provider, account, _ = await self.account_of(org, spec)
        placement = await self.placement(provider, account, spec, owner)
        items: list[HourlyCost] = []
        total = Decimal(0)
        currency = "USD"

        def money(value: Decimal | None) -> str:
            return "" if value is None else f"{value:.4f}"

        kind = placement["controller_type"]
        currency = kind.currency
        items.append(
            HourlyCost(
                item="Controller",
                instance_type=kind.name,
                unit_cost=money(kind.price_per_hour),
                max_cost=money(kind.price_per_hour),
                currency=kind.currency,
            )
        )
        total += kind.price_per_hour or 0
        for partition, placed in zip(spec.partitions(), placement["partitions"], strict=True):
            kind = placed["type"]
            unit = kind.spot_price_per_hour if partition.preemptible else kind.price_per_hour
            unit = unit if unit is not None else kind.price_per_hour
            most = None if unit is None else unit * partition.max_nodes
            items.append(
                HourlyCost(
                    item=f"Partition {partition.name}",
                    instance_type=kind.name,
                    unit_cost=money(unit),
                    max_cost=money(most),
                    currency=kind.currency,
                )
            )
            total += most or 0
        return ClusterEstimate(items=items, max_total=money(total), currency=currency)


def zone_order(zones: list[str], held: dict[str, int], controller_zone: str) -> tuple[str, ...]:
    """The order a MultiZone batch tries ``zones`` in (spec, AWS): the zone holding most of
    the cluster's nodes first (``held``: nodes per zone); with none yet, the controller's zone
    when it is one of them; then the partition's own order."""
    return tuple(
        sorted(zones, key=lambda z: (-held.get(z, 0), z != controller_zone, zones.index(z)))
    )


def _tail(text: str, limit: int = 2000) -> str:
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def _file(path: str, content: str, mode: str) -> str:
    marker = "CORRAL_FILE_EOF_" + hashlib.sha256(content.encode()).hexdigest()[:16]
    if not content.endswith("\n"):
        content += "\n"
    return (
        f"cat > {shlex.quote(path)} <<'{marker}'\n{content}{marker}\n"
        f"chmod {mode} {shlex.quote(path)}\n"
    )


_USER_DATA = """#!/bin/sh
# Corral: bootstrap of {host}, the {role} of cluster {cluster} (session {number}).
umask 022
mkdir -p /etc/corral/bin /etc/corral/authorized_keys /etc/corral/boot.d /var/log/corral
chmod 0755 /etc/corral /etc/corral/bin /etc/corral/authorized_keys
printf '%s\\n' {url} > /etc/corral/callback-url
printf '%s' {token} > /etc/corral/token
chmod 0600 /etc/corral/token
{report}{nodes}
(
set -eu
echo "--- SSH"
{keys}{root_keys}{sshd}{boot_sshd}{host_key}
if [ -n "{debug}" ]; then echo {owner} > /etc/corral/debug-owner; fi
/etc/corral/boot.d/40-sshd
echo "--- the owner's account"
id -u {owner} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash --user-group {owner}
echo "--- scheduler"
{scheduler}
{user}) > {log} 2>&1 < /dev/null
status=$?
{report_command} "$(hostname)" "$status" {log}
exit $status
""".replace("{report_command}", REPORT_COMMAND)

_REPORT = """#!/bin/sh
# Written by Corral: tells Corral how this host's bootstrap ended (retrying until it hears).
host=$1; status=$2; log=$3
url=$(cat /etc/corral/callback-url); token=$(cat /etc/corral/token)
tail -c 65536 "$log" > /tmp/corral-report.$$ 2>/dev/null || : > /tmp/corral-report.$$
i=0
while [ $i -lt 600 ]; do
  if curl -fsS --noproxy '*' --max-time 20 -X POST -H "Authorization: Bearer $token" \\
      -H 'Content-Type: text/plain' --data-binary @/tmp/corral-report.$$ \\
      "$url/api/clusters/callbacks/bootstrap?host=$host&exit_status=$status" >/dev/null; then
    rm -f /tmp/corral-report.$$; exit 0
  fi
  i=$((i + 1)); sleep 2
done
exit 1
"""

_NODES = """#!/bin/sh
# Written by Corral: asks Corral to power nodes up (resume) or down (suspend).
action=$1; shift
url=$(cat /etc/corral/callback-url); token=$(cat /etc/corral/token)
nodes=""
for node in "$@"; do nodes="$nodes${nodes:+,}\\"$node\\""; done
i=0
while [ $i -lt 60 ]; do
  if curl -fsS --noproxy '*' --max-time 20 -X POST -H "Authorization: Bearer $token" \\
      -H 'Content-Type: application/json' \\
      --data "{\\"action\\":\\"$action\\",\\"nodes\\":[$nodes]}" \\
      "$url/api/clusters/callbacks/nodes" >/dev/null; then
    exit 0
  fi
  i=$((i + 1)); sleep 2
done
exit 1
"""

_KEYS = """#!/bin/sh
# Written by Corral: sshd's AuthorizedKeysCommand, the keys Corral lists for a user; in debug
# mode the cluster owner's keys open root too.
user=$1
case "$user" in *[!a-zA-Z0-9._-]*|"") exit 1 ;; esac
url=$(cat /etc/corral/callback-url)
if [ "$user" = root ]; then
  [ -s /etc/corral/debug-owner ] || exit 0
  user=$(cat /etc/corral/debug-owner)
fi
exec curl -fsS --noproxy '*' --max-time 5 "$url/api/users/$user/ssh-public-keys"
"""

_SSHD_CONFIG = """# Written by Corral.
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
AuthorizedKeysFile /etc/corral/authorized_keys/%u .ssh/authorized_keys
AuthorizedKeysCommand /etc/corral/bin/authorized-keys %u
AuthorizedKeysCommandUser nobody
MaxSessions 64
MaxStartups 100:30:200
AllowTcpForwarding yes
PrintMotd no
Subsystem sftp internal-sftp
"""

_BOOT_SSHD = """#!/bin/sh
# Written by Corral: start sshd unless it runs (at bootstrap and each boot).
[ -f /run/sshd.pid ] && kill -0 "$(cat /run/sshd.pid)" 2>/dev/null && exit 0
key=/etc/ssh/ssh_host_ed25519_key
[ -s $key ] || ssh-keygen -q -t ed25519 -N '' -f $key
install -d -m 0755 /run/sshd
exec /usr/sbin/sshd -f /etc/corral/sshd_config
"""
