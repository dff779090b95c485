"""Keeps a cluster's state honest: connects on start, checks it answers, polls its jobs.

An existing cluster has nothing to provision: ``active`` means Corral reached its login node
as the owner and its scheduler answered (partitions and nodes are read then). Active and failed
clusters are checked again every ``health_interval`` (every ``job_poll_interval`` while they
have unfinished jobs), so an unreachable cluster turns failed with the reason and recovers on
its own when it answers again.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import msgspec

from corral_core.clusters.jobs import JobService
from corral_core.clusters.service import ClusterService, now_iso, parse_time
from corral_core.clusters.spec import CloudClusterSpec
from corral_core.db import utcnow
from corral_sdk.errors import CorralError, ProviderError, Timeout, TransportError
from corral_sdk.features import SchedulerFeature
from corral_sdk.reconcile import ReconcileContext, ReconcileResult, ResourceSnapshot

__all__ = ["ClusterReconciler"]

log = logging.getLogger("corral.clusters")


class ClusterReconciler:
    def __init__(self, clusters: ClusterService, jobs: JobService) -> None:
        self.clusters = clusters
        self.jobs = jobs

    async def reconcile(self, resource: ResourceSnapshot, ctx: ReconcileContext) -> ReconcileResult:
        spec = self.clusters.spec_of(resource)
        if isinstance(spec, CloudClusterSpec):
            return await self._cloud(resource, ctx)
        settings = self.clusters.settings
        if resource.desired_state == "off":
            await self.clusters.pool.call(self.clusters.pool.drop_host(spec.login_host, spec.port))
            if resource.observed_state != "off":
                await ctx.emit("cluster.stopped", {"name": resource.name})
            return ReconcileResult(observed_state="off", status={})

        status: dict[str, Any] = dict(resource.status)
        try:
            checked = parse_time(status.get("checked_at"))
            due = (
                resource.observed_state != "active"
                or resource.observed_generation != resource.generation
                or checked is None
                or utcnow() - checked >= timedelta(seconds=settings.health_interval)
            )
            if due:
                status = {**status, **await self._check(resource)}
            remaining = await self.jobs.poll(resource)
        except CorralError as exc:
            if resource.observed_state != "failed":
                await ctx.emit("cluster.failed", {"name": resource.name, "reason": exc.message})
            log.info("cluster %s/%s failed: %s", resource.owner, resource.name, exc.log_message)
            return ReconcileResult(
                observed_state="failed",
                reason=exc.message,
                status={**status, "failed_at": now_iso()},
                requeue_after=settings.health_interval,
            )
        if resource.observed_state != "active":
            await ctx.emit("cluster.active", {"name": resource.name})
        return ReconcileResult(
            observed_state="active",
            status=status,
            requeue_after=settings.job_poll_interval if remaining else settings.health_interval,
        )

    async def _cloud(self, resource: ResourceSnapshot, ctx: ReconcileContext) -> ReconcileResult:
        """Provisioning, stop and destroy are the cloud lifecycle's; an active cloud cluster is
        then checked and polled like any other, and its node requests worked."""
        cloud = self.clusters.cloud
        settings = self.clusters.settings
        result = await cloud.reconcile(resource, ctx)
        if result.observed_state != "active":
            return result
        status: dict[str, Any] = dict(result.status or {})
        try:
            checked = parse_time(status.get("checked_at"))
            if checked is None or utcnow() - checked >= timedelta(seconds=settings.health_interval):
                status.update(await cloud.check(resource))
            else:
                await cloud.work_nodes(resource)
            remaining = await self.jobs.poll(resource)
        except CorralError as exc:
            await ctx.emit("cluster.failed", {"name": resource.name, "reason": exc.message})
            log.info("cluster %s/%s failed: %s", resource.owner, resource.name, exc.log_message)
            return ReconcileResult(
                observed_state="failed",
                reason=exc.message,
                status={**status, "active_session": None, "failed_at": now_iso()},
                requeue_after=settings.health_interval,
            )
        return ReconcileResult(
            observed_state="active",
            status=status,
            requeue_after=settings.job_poll_interval if remaining else settings.health_interval,
        )

    async def _check(self, resource: ResourceSnapshot) -> dict[str, Any]:
        """Reach the login node as the owner and ask the scheduler what it has."""
        runner = await self.clusters.runner(resource, resource.owner)
        await runner.connect()
        scheduler = self.clusters.scheduler(resource, runner)
        found: dict[str, Any] = {"checked_at": now_iso()}
        try:
            if self.clusters.supports(resource, SchedulerFeature.PARTITIONS):
                found["partitions"] = msgspec.to_builtins(list(await scheduler.partitions()))
            if self.clusters.supports(resource, SchedulerFeature.NODES):
                found["nodes"] = msgspec.to_builtins(list(await scheduler.nodes()))
            else:
                await scheduler.queue()  # the least a scheduler answers: is it there at all?
        except (TransportError, Timeout):
            raise
        except ProviderError as exc:
            raise ProviderError(
                f"reached {runner.target} but its scheduler did not answer: {exc.message}",
                reason="scheduler-unavailable",
            ) from None
        return found
