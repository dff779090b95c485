"""One process's kernel: settings, plugins, database, broker, events and the services on them.

``corral up`` builds one runtime for the API and the workers; ``corral serve`` and
``corral worker`` each build their own against the same database and broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import uuid
from typing import Any
from urllib.parse import urlsplit

from corral_core.audit.service import AuditLog
from corral_core.cloud_resources.common import Owners
from corral_core.cloud_resources.snapshots import OsSnapshotReconciler, OsSnapshotService
from corral_core.cloud_resources.spec import OS_SNAPSHOT_KIND, STATIC_IP_KIND
from corral_core.cloud_resources.static_ips import StaticIpReconciler, StaticIpService
from corral_core.clusters.accounts import CloudAccounts
from corral_core.clusters.cloud import CloudClusters
from corral_core.clusters.cloud_settings import CloudSettings
from corral_core.clusters.jobs import JobService
from corral_core.clusters.reconciler import ClusterReconciler
from corral_core.clusters.service import ClusterService
from corral_core.clusters.spec import CLUSTER_KIND
from corral_core.db import Database
from corral_core.events.bus import EventLog, InProcessPubSub, PubSub, RedisPubSub
from corral_core.events.dispatch import deliver_events_to_plugins
from corral_core.identity.authn import Authenticator
from corral_core.identity.service import IdentityService
from corral_core.leases import try_acquire_lease
from corral_core.marketplace.copies import MarketplaceCopies
from corral_core.marketplace.kinds import item_kinds
from corral_core.marketplace.service import MarketplaceService
from corral_core.marketplace.source import MarketplaceWorkflows
from corral_core.migrations import current_revision, head_revision
from corral_core.networks.reconciler import NetworkReconciler
from corral_core.networks.service import NetworkService
from corral_core.networks.spec import NETWORK_KIND
from corral_core.plugins import Kernel, load_kernel
from corral_core.resources.access import ResourceAccess
from corral_core.resources.models import Resource
from corral_core.resources.reconciler import ResourceReconciler
from corral_core.resources.service import ResourceService
from corral_core.secrets import SecretBox
from corral_core.sessions.live import SessionConnector, SessionReconciler
from corral_core.sessions.service import RunSessions
from corral_core.sessions.spec import SESSION_KIND
from corral_core.settings import Settings
from corral_core.ssh import HostKeyStore, SSHPool
from corral_core.storage.reconciler import StorageReconciler
from corral_core.storage.service import StorageService
from corral_core.storage.spec import STORAGE_KIND
from corral_core.storage.types import StorageTypes
from corral_core.tasks import TaskQueue
from corral_core.workflows.engine import RunEngine
from corral_core.workflows.models import RunStep, WorkflowRun
from corral_core.workflows.runs import Parent, RunService
from corral_core.workflows.service import WorkflowService
from corral_core.workflows.sources import WorkflowSources
from corral_core.workflows.spec import WORKFLOW_KIND, WorkflowReconciler
from corral_core.workflows.targets import StepTargets
from corral_core.workflows.variables import OrgVariableService
from corral_sdk.errors import CorralError

__all__ = ["PROCESSES", "Runtime"]

log = logging.getLogger("corral")

PROCESSES = ("all", "api", "worker")
RECONCILE_ACTOR = "corral.reconcile_resource"
DELIVER_EVENTS_ACTOR = "corral.deliver_events"
CLUSTER_NODES_ACTOR = "corral.cluster_nodes"
CLOUD_ACCOUNT_CHECK_ACTOR = "corral.validate_cloud_account"
WORKFLOW_RUNS_ACTOR = "corral.workflow_runs"
SWEEP_LEASE = "sweep"


class Runtime:
    """Everything a Corral process runs on, wired once."""

    def __init__(self, settings: Settings, kernel: Kernel, process: str) -> None:
        if process not in PROCESSES:
            raise ValueError(f"process must be one of {PROCESSES}")
        self.settings = settings
        self.kernel = kernel
        self.process = process
        self.process_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.db = Database(
            settings.database_url,
            echo=settings.database.echo,
            pool_size=settings.database.pool_size,
        )
        self.secrets = SecretBox.from_settings(settings)
        self.pubsub: PubSub = (
            InProcessPubSub()
            if settings.embedded_broker
            else RedisPubSub(settings.broker.url, settings.broker.namespace)
        )
        self.tasks = TaskQueue(settings)
        self.events = EventLog(self.db, self.pubsub, on_appended=self._events_appended)
        self.audit = AuditLog(self.db)
        self.reconciler = ResourceReconciler(
            self.db, kernel, self.events, settings.reconcile, enqueue_after=self._enqueue_after
        )
        self.resources = ResourceService(self.db, kernel, self.events, enqueue=self._enqueue)
        self.access = ResourceAccess(self.db, kernel)
        self.authn = Authenticator(self.db, kernel, self.secrets, settings.auth, self.pubsub)
        self.identity = IdentityService(self.db, on_change=self.authn.identity_changed)
        self.host_keys = HostKeyStore(self.db)
        self.ssh = SSHPool(settings.ssh, self.host_keys)
        self.cloud_settings = CloudSettings(self.db, kernel, self.identity)
        self.cloud_accounts = CloudAccounts(
            self.db,
            kernel,
            self.secrets,
            self.cloud_settings,
            enqueue_validation=self._enqueue_account_check,
        )
        self.cloud_clusters = CloudClusters(
            self.db,
            kernel,
            self.secrets,
            self.cloud_accounts,
            self.ssh,
            self.host_keys,
            callback_url=settings.clusters.callback_url or settings.public_url,
            enqueue_nodes=self._enqueue_nodes,
        )
        self.clusters = ClusterService(
            self.db,
            kernel,
            self.resources,
            self.access,
            self.authn,
            self.events,
            self.ssh,
            settings.clusters,
            enqueue=self._enqueue,
            cloud=self.cloud_clusters,
        )
        self.networks = NetworkService(self.db, kernel, self.resources, self.cloud_accounts)
        self.cloud_accounts.retire_network = self.networks.retire
        self.reconciler.bind(
            NETWORK_KIND, NetworkReconciler(self.db, kernel, self.resources, self.cloud_accounts)
        )
        self.os_snapshots = OsSnapshotService(
            self.db,
            kernel,
            self.resources,
            self.access,
            self.cloud_accounts,
            self.cloud_clusters,
            Owners(self.db, self.authn),
        )
        self.reconciler.bind(OS_SNAPSHOT_KIND, OsSnapshotReconciler(self.os_snapshots))
        self.static_ips = StaticIpService(
            self.db, kernel, self.resources, self.access, self.cloud_accounts
        )
        self.reconciler.bind(STATIC_IP_KIND, StaticIpReconciler(self.static_ips))
        self.storage = StorageService(
            self.db,
            kernel,
            self.resources,
            self.access,
            StorageTypes(kernel, self.cloud_accounts),
            self.identity,
        )
        self.reconciler.bind(STORAGE_KIND, StorageReconciler(self.storage))
        self.jobs = JobService(self.clusters)
        self.reconciler.bind(CLUSTER_KIND, ClusterReconciler(self.clusters, self.jobs))
        self.workflows = WorkflowService(self.db, self.resources, self.access)
        self.reconciler.bind(WORKFLOW_KIND, WorkflowReconciler())
        self.targets = StepTargets(
            settings.data_path / "workspaces",
            self.clusters,
            self.access,
            self.authn,
            platform_url=settings.public_url,
            storage=self.storage,
        )
        self.org_variables = OrgVariableService(self.db, self.identity)
        self.run_sessions = RunSessions(self.db, self.resources)
        self.sessions = SessionConnector(
            self.db, kernel, self.targets, self.resources, protected_ports=_own_ports(settings)
        )
        self.reconciler.bind(SESSION_KIND, SessionReconciler(self.sessions))
        self.marketplace = MarketplaceService(
            self.db,
            self.access,
            item_kinds(self.workflows, self.clusters, self.cloud_accounts, self.storage),
        )
        self.marketplace_copies = MarketplaceCopies(
            self.db, self.marketplace, self.resources, Owners(self.db, self.authn).principal
        )
        self.workflows.marketplace_yaml = self.marketplace_copies.subscribed_yaml
        self.runs = RunService(
            self.db,
            self.workflows,
            self.secrets,
            self._enqueue_run,
            sources=WorkflowSources(
                kernel.workflow_sources(),
                settings.workflows,
                built={"marketplace": MarketplaceWorkflows(self.marketplace_copies)},
            ),
        )
        self.engine = RunEngine(
            self.db,
            self.targets.executor_for,
            self._enqueue_run,
            self.secrets,
            actions=kernel.workflow_actions().get,
            start_subrun=self._start_subrun,
            sessions=self.run_sessions,
            tokens=self.authn,
        )
        self.tasks.actor(RECONCILE_ACTOR, self.reconciler.reconcile)
        self.tasks.actor(DELIVER_EVENTS_ACTOR, self._deliver_events)
        self.tasks.actor(CLUSTER_NODES_ACTOR, self._work_nodes)
        self.tasks.actor(CLOUD_ACCOUNT_CHECK_ACTOR, self.cloud_accounts.validate)
        self.tasks.actor(WORKFLOW_RUNS_ACTOR, self._tick_run)
        self._delivers_events = kernel.implements("corral_on_event")
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    @classmethod
    def build(cls, settings: Settings, process: str) -> Runtime:
        """Load plugins (strictly when the settings say so), configure them, wire the services."""
        kernel = load_kernel(strict=settings.strict_plugins, deny=settings.deny_plugins)
        kernel.configure(settings.plugin_config())
        return cls(settings, kernel, process)

    def check_schema(self) -> None:
        """Refuse to run against a database that ``corral migrate`` has not brought up to date."""
        current, head = current_revision(self.db), head_revision()
        if current != head:
            raise CorralError(
                f"the database is at migration {current or 'none'} but this Corral needs {head}: "
                "run `corral migrate`",
                reason="database-not-migrated",
            )

    # --- background work ------------------------------------------------------------------------

    async def _enqueue(self, resource_id: int) -> None:
        await self.tasks.send(RECONCILE_ACTOR, resource_id)

    async def _enqueue_after(self, resource_id: int, delay: float) -> None:
        await self.tasks.send(RECONCILE_ACTOR, resource_id, delay=delay)

    async def _enqueue_run(self, run_id: int) -> None:
        await self.tasks.send(WORKFLOW_RUNS_ACTOR, run_id)

    async def _start_subrun(
        self, parent: WorkflowRun, step: RunStep, uses: str, inputs: dict[str, Any]
    ) -> int:
        """The run of a step's ``uses:`` (``workflow/<name>``, ``github/...``), as its user."""
        principal = await self.targets.principal(parent.username)
        run = await self.runs.start_uses(
            principal,
            uses,
            inputs,
            resolve=self.targets.resolver(principal),
            parent=Parent(parent, step),
        )
        assert run.id is not None
        return run.id

    async def _tick_run(self, run_id: int) -> None:
        """Advance a workflow run (it enqueues itself again until it is finished)."""
        try:
            await self.engine.tick(run_id)
        except CorralError as exc:
            log.warning("run %s: %s", run_id, exc.log_message)

    async def _enqueue_nodes(self, resource_id: int) -> None:
        await self.tasks.send(CLUSTER_NODES_ACTOR, resource_id)

    async def _enqueue_account_check(self, account_id: int) -> None:
        await self.tasks.send(CLOUD_ACCOUNT_CHECK_ACTOR, account_id)

    async def _work_nodes(self, resource_id: int) -> None:
        """Create and delete the elastic nodes a cloud cluster's scheduler asked for."""
        async with self.db.session() as session:
            resource = await session.get(Resource, resource_id)
        if resource is None or resource.observed_state not in ("active", "failed"):
            return
        try:
            await self.cloud_clusters.work_nodes(resource)
        except CorralError as exc:
            log.warning("nodes of cluster %s: %s", resource_id, exc.log_message)

    async def _events_appended(self) -> None:
        if self._delivers_events:
            await self.tasks.send(DELIVER_EVENTS_ACTOR)

    async def _deliver_events(self) -> None:
        await deliver_events_to_plugins(
            self.db,
            self.events,
            self.kernel,
            self.process_id,
            self.settings.reconcile.lease_seconds,
        )

    async def sweep(self) -> int:
        """Enqueue every resource that is due; one process sweeps at a time. Returns how many."""
        interval = self.settings.reconcile.sweep_interval
        if not await try_acquire_lease(self.db, SWEEP_LEASE, self.process_id, interval * 2):
            return 0
        due = await self.reconciler.due()
        for resource_id in due:
            await self._enqueue(resource_id)
        await self.run_sessions.remove_ended()
        await self.sessions.cull_idle(self.settings.sessions.idle_minutes * 60)
        for account_id in await self.cloud_accounts.due_validations():
            await self._enqueue_account_check(account_id)
        runs = await self.engine.due()
        for run_id in runs:
            await self._enqueue_run(run_id)
        await self._events_appended()
        return len(due)

    async def _sweep_forever(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    count = await self.sweep()
                    if count:
                        log.debug("sweep enqueued %d resources", count)
                except CorralError as exc:
                    log.warning("sweep failed: %s", exc.log_message)
                except Exception:
                    log.exception("sweep crashed")
                await asyncio.to_thread(self._stop.wait, self.settings.reconcile.sweep_interval)
        finally:
            await self.db.dispose()
            await self.pubsub.close()

    def start_background(self) -> None:
        """Start the dramatiq workers and the sweeper (which sweeps at once, then periodically)."""
        self._stop.clear()
        self.tasks.start_worker()
        self._sweeper = threading.Thread(
            target=asyncio.run, args=(self._sweep_forever(),), name="corral-sweeper", daemon=True
        )
        self._sweeper.start()

    async def close(self) -> None:
        """Close this loop's connections and the broker (background work must be stopped)."""
        await self.sessions.close_all()
        self.ssh.close()
        await self.db.dispose()
        await self.pubsub.close()
        self.tasks.stop()

    def stop_background(self) -> None:
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=10)
            self._sweeper = None
        # SSH calls in flight are cancelled, so workers blocked on a cluster stop promptly.
        self.ssh.close()
        self.tasks.stop()


def _own_ports(settings: Settings) -> frozenset[int]:
    """The ports of Corral's own services on this host (its API, database and broker)."""
    ports = {settings.server.port}
    for url in (settings.database.url, settings.broker.url):
        with contextlib.suppress(ValueError):
            parsed = urlsplit(url)
            if parsed.port and parsed.hostname in ("localhost", "127.0.0.1", "::1"):
                ports.add(parsed.port)
    return frozenset(ports)
