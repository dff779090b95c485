"""Where workflow steps run, and the clusters and buckets a run's inputs name.

A step without ``ssh`` runs in its user's workspace on the Corral host. A step with ``ssh`` runs
on a cluster the user can log in to through Corral: ``remoteHost`` (``host`` or ``host:port``)
must be the login host of an existing cluster, or the controller of an active cloud cluster,
that the user holds ``login`` on; Corral signs in with the user's platform key over its pooled
SSH connections (the cluster's own jump host included). ``remoteUser`` is the user's own
account there (the spec fills it in automatically). Hosts that are not clusters of the user are
refused with the reason, so a workflow cannot reach machines its user could not.

With ``jumpNodeHost``, that host must be such a cluster, and ``remoteHost`` (``host`` or
``host:port``) is a machine reached through it: a compute node, or the sshd an agent started on
one. Corral signs in there through the cluster, as the same account; its host key is pinned
under ``host via jump:port`` (trusted on first use, or set by the action that started the
server: ``scheduler-agent``), so a node name means one machine per cluster.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from corral_core.clusters.service import ClusterService
from corral_core.clusters.spec import CLUSTER_KIND, CloudClusterSpec
from corral_core.identity.authn import Authenticator
from corral_core.identity.models import User
from corral_core.identity.names import ResourceRef
from corral_core.identity.roles import Principal
from corral_core.resources.access import ResourceAccess
from corral_core.resources.models import Resource
from corral_core.ssh.pool import SSHEndpoint
from corral_core.ssh.runner import SSHRunner
from corral_core.storage.service import StorageService
from corral_core.workflows.executors import RunnerExecutor, StepExecutor, WorkspaceExecutor
from corral_core.workflows.inputs import InputWithEnv, Resolver
from corral_core.workflows.models import WorkflowRun
from corral_sdk.errors import Invalid, NotFound, PermissionDenied
from corral_sdk.transport import CommandRunner

__all__ = ["StepTargets"]

WORKSPACE = "user-workspace"


class StepTargets:
    def __init__(
        self,
        workspaces: Path,
        clusters: ClusterService,
        access: ResourceAccess,
        authn: Authenticator,
        platform_url: str = "",
        storage: StorageService | None = None,
    ) -> None:
        self.workspaces = workspaces
        self.storage = storage
        """Resolves ``bucket`` inputs (a runtime without storage refuses them)."""
        self.platform_url = platform_url
        """The URL workspaces and clusters reach Corral at (cloud clusters: their callback)."""
        self.clusters = clusters
        self.access = access
        self.authn = authn
        self._workspace: dict[str, WorkspaceExecutor] = {}
        self._remote: dict[str, RunnerExecutor] = {}

    def workspace(self, username: str) -> Path:
        """A user's workspace on the Corral host: their ``~`` for workflow steps."""
        return self.workspaces / username

    async def principal(self, username: str) -> Principal:
        async with self.clusters.db.session() as session:
            user = (await session.exec(select(User).where(col(User.username) == username))).first()
        if user is None:
            raise NotFound(f"user {username!r} no longer exists")
        return await self.authn.principal(user)

    @staticmethod
    def address(resource: Resource, spec: Any) -> tuple[str, int]:
        if isinstance(spec, CloudClusterSpec):
            # a stopped or failed cluster keeps its last address, which a new cluster may own now
            if resource.observed_state != "active":
                return "", 22
            return str(resource.status.get("controller_address") or ""), 22
        return spec.login_host, spec.port

    async def _cluster_at(self, principal: Principal, host: str) -> Resource:
        name, _, port_text = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
        wanted_port = int(port_text) if port_text.isdigit() else None
        rows, _ = await self.access.list_visible(principal, kind=CLUSTER_KIND, limit=10_000)
        for resource in rows:
            address, port = self.address(resource, self.clusters.spec_of(resource))
            if address == name and (wanted_port is None or wanted_port == port):
                return await self.access.require_level(principal, resource, "login")
        raise PermissionDenied(
            f"ssh: {host} is not a cluster {principal.username} can log in to through Corral",
            reason="host-not-a-cluster",
        )

    async def executor_for(self, run: WorkflowRun, target: dict[str, Any] | None) -> StepExecutor:
        if target is None or target.get("remoteHost") in (None, "", WORKSPACE):
            if run.username not in self._workspace:
                self._workspace[run.username] = WorkspaceExecutor(
                    self.workspace(run.username), platform_url=self.platform_url
                )
            return self._workspace[run.username]
        key = json.dumps([run.username, target], sort_keys=True)
        if key not in self._remote:
            principal = await self.principal(run.username)
            jump = str(target.get("jumpNodeHost") or "")
            resource = await self._cluster_at(principal, jump or str(target["remoteHost"]))
            runner = await self.clusters.runner(resource, run.username)
            scheduler = self.clusters.scheduler(resource, runner)
            if jump:
                runner = SSHRunner(runner.pool, runner.identity, _behind(runner.endpoint, target))
            cloud = isinstance(self.clusters.spec_of(resource), CloudClusterSpec)
            url = self.clusters.cloud.callback_url if cloud else self.platform_url
            self._remote[key] = RunnerExecutor(
                runner, scheduler=scheduler, platform_url=url or self.platform_url
            )
        return self._remote[key]

    async def runner_for(self, username: str, target: str) -> CommandRunner:
        """A runner as ``username`` on ``target``: their workspace (``user-workspace``), or a
        cluster they hold ``login`` on (``pw://owner/name`` or a name), at its login host."""
        if target in ("", WORKSPACE, "workspace"):
            if username not in self._workspace:
                self._workspace[username] = WorkspaceExecutor(
                    self.workspace(username), platform_url=self.platform_url
                )
            return self._workspace[username].runner
        principal = await self.principal(username)
        try:
            resource = await self.clusters.get(principal, ResourceRef.parse(target, username))
            await self.access.require_level(principal, resource, "login")
        except (NotFound, PermissionDenied):
            raise NotFound(
                f"no cluster {target!r} that {username} can log in to", reason="no-such-target"
            ) from None
        return await self.clusters.runner(resource, username)

    def resolver(self, principal: Principal) -> Resolver:
        """Resolves resource-picker inputs against ``principal``'s real resources."""

        async def resolve(kind: str, item: Any, value: Any) -> Any:
            if kind == "bucket":
                if self.storage is None:
                    raise Invalid("buckets cannot be used here")
                bucket, env = await self.storage.bucket_input(
                    principal,
                    value,
                    csp=item.get("csp"),
                    credentials=bool(item.get("generateCredentials")),
                )
                return InputWithEnv(value=bucket, env=env) if env else bucket
            if kind != "compute-clusters":
                return value
            if value == WORKSPACE and item.get("include-workspace"):
                return {"id": WORKSPACE, "ip": WORKSPACE, "name": WORKSPACE}
            text = value.get("id") if isinstance(value, dict) else value
            if not isinstance(text, str) or not text:
                raise Invalid("expected a cluster (pw://owner/name or name)", field="inputs")
            try:
                resource = await self.clusters.get(
                    principal, ResourceRef.parse(text, principal.username)
                )
                await self.access.require_level(principal, resource, "login")
            except (NotFound, PermissionDenied):
                raise Invalid(f"no cluster {text!r} you can log in to", field="inputs") from None
            spec = self.clusters.spec_of(resource)
            address, port = self.address(resource, spec)
            uri = ResourceRef(resource.owner, resource.name).uri
            return {
                "id": uri,
                "uri": uri,
                "name": resource.name,
                "owner": resource.owner,
                "ip": address if port == 22 else f"{address}:{port}",
                "host": address,
                "port": port,
                "scheduler": spec.scheduler,
                "status": resource.observed_state,
            }

        return resolve


def _behind(jump: SSHEndpoint, target: dict[str, Any]) -> SSHEndpoint:
    """The node ``remoteHost`` (``host`` or ``host:port``) reached through the cluster login
    ``jump``, as the same account (``remoteUser`` and ``jumpNodeUser`` are filled in)."""
    text = str(target.get("remoteHost") or "").strip()
    host, _, port_text = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    if not host or not re.fullmatch(r"[A-Za-z0-9._-]+", host) or host.startswith("-"):
        raise Invalid(
            f"ssh.remoteHost: {text!r} is not a host (name or address, with :port if not 22)",
            field="ssh.remoteHost",
        )
    if port_text and not (port_text.isdigit() and 0 < int(port_text) < 65536):
        raise Invalid(f"ssh.remoteHost: {port_text!r} is not a port", field="ssh.remoteHost")
    return SSHEndpoint(host=host, username=jump.username, port=int(port_text or 22), jump=jump)
