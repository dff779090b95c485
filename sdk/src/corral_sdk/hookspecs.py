"""The hook specifications: the reference documentation of Corral's plugin API.

A plugin is a module (or object) with functions named after these hooks and marked with
:data:`corral_sdk.plugin.hookimpl`. Corral finds plugins through the entry-point group
``corral.plugins``::

    [project.entry-points."corral.plugins"]
    myplugin = "corral_myplugin.plugin"

Hooks are synchronous and cheap: they register things and decide, they never do I/O. The work is
done by the providers they register, which are async and stateless.

Registration hooks return a list of frozen records (:mod:`corral_sdk.records`). A name may be
registered once per kind: two plugins registering the same scheduler name are refused, naming
both distributions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from corral_sdk.config import PluginConfig
    from corral_sdk.events import Event
    from corral_sdk.records import (
        AIProviderRecord,
        AuthMethodRecord,
        CloudRecord,
        ResourceKindRecord,
        SchedulerRecord,
        SessionTypeRecord,
        StorageTypeRecord,
        WorkflowActionRecord,
        WorkflowSourceRecord,
    )

__all__ = ["PROJECT_NAME", "hookspec"]

PROJECT_NAME = "corral"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)


# --- registration -------------------------------------------------------------------------------


@hookspec
def corral_register_clouds() -> Sequence[CloudRecord]:
    """Register cloud providers.

    Called once per process when the kernel builds its registry, after all plugins are loaded.
    Every plugin's results are collected (not ``firstresult``).

    :return: a list of :class:`~corral_sdk.records.CloudRecord`, one per provider. Each names a
        factory building a :class:`~corral_sdk.providers.cloud.CloudProvider`, the struct of
        its account credentials, and the :class:`~corral_sdk.features.CloudFeature` set it supports.

    Example::

        @hookimpl
        def corral_register_clouds():
            return [CloudRecord(name="mycloud", factory="corral_mycloud.provider:MyCloud",
                                credentials=MyCloudCredentials,
                                features=frozenset({CloudFeature.SPOT}))]
    """


@hookspec
def corral_register_schedulers() -> Sequence[SchedulerRecord]:
    """Register batch schedulers.

    Called once per process when the kernel builds its registry. All results are collected.

    :return: a list of :class:`~corral_sdk.records.SchedulerRecord`; each factory builds a
        :class:`~corral_sdk.providers.scheduler.Scheduler` from a
        :class:`~corral_sdk.transport.CommandRunner` connected to the cluster's login node.

    Example::

        @hookimpl
        def corral_register_schedulers():
            return [SchedulerRecord(name="slurm", factory="corral_slurm.scheduler:Slurm",
                                    features=frozenset({SchedulerFeature.JOB_ARRAYS}))]
    """


@hookspec
def corral_register_storage_types() -> Sequence[StorageTypeRecord]:
    """Register storage types (buckets, disks, NFS, Lustre...).

    Called once per process when the kernel builds its registry. All results are collected.

    :return: a list of :class:`~corral_sdk.records.StorageTypeRecord`; each factory builds a
        :class:`~corral_sdk.providers.storage.StorageType`, and ``config`` decodes the storage
        resource's settings (size, tier, region...).

    Example::

        @hookimpl
        def corral_register_storage_types():
            return [StorageTypeRecord(name="nfs", factory="corral_nfs.storage:Nfs",
                                      category=StorageCategory.NFS, config=NfsSettings,
                                      features=frozenset({StorageFeature.MOUNT}))]
    """


@hookspec
def corral_register_auth_methods() -> Sequence[AuthMethodRecord]:
    """Register ways for users to sign in (password, LDAP, OIDC...).

    Called once per process when the kernel builds its registry. All results are collected.
    The built-in password sign-in is registered through this very hook.

    :return: a list of :class:`~corral_sdk.records.AuthMethodRecord`; each factory builds an
        :class:`~corral_sdk.providers.auth.AuthMethod`; ``config`` decodes the method's settings
        as an org admin enters them (LDAP server URL, OIDC issuer...).

    Example::

        @hookimpl
        def corral_register_auth_methods():
            return [AuthMethodRecord(name="ldap", factory="corral_ldap.auth:Ldap",
                                     config=LdapSettings,
                                     features=frozenset({AuthFeature.PASSWORD}))]
    """


@hookspec
def corral_register_ai_providers() -> Sequence[AIProviderRecord]:
    """Register AI model providers for the chat and the OpenAI-compatible API.

    Called once per process when the kernel builds its registry. All results are collected.

    :return: a list of :class:`~corral_sdk.records.AIProviderRecord`; each factory builds an
        :class:`~corral_sdk.providers.ai.AIProvider` from its decoded ``config`` (endpoint, key).

    Example::

        @hookimpl
        def corral_register_ai_providers():
            return [AIProviderRecord(name="openai", factory="corral_openai.provider:OpenAI",
                                     config=OpenAISettings,
                                     features=frozenset({AIFeature.STREAMING}))]
    """


@hookspec
def corral_register_session_types() -> Sequence[SessionTypeRecord]:
    """Register interactive session types (Jupyter, desktop, VS Code, tunnel, link...).

    Called once per process when the kernel builds its registry. All results are collected.

    :return: a list of :class:`~corral_sdk.records.SessionTypeRecord`; each factory builds a
        :class:`~corral_sdk.providers.session.SessionType` that knows how to start the service
        and which host and port the platform should tunnel and proxy.

    Example::

        @hookimpl
        def corral_register_session_types():
            return [SessionTypeRecord(name="jupyter", factory="corral_jupyter.session:Jupyter",
                                      features=frozenset({SessionFeature.WEBSOCKET}))]
    """


@hookspec
def corral_register_workflow_actions() -> Sequence[WorkflowActionRecord]:
    """Register workflow actions, used in workflow YAML as ``uses: corral/<name>``.

    Called once per process when the kernel builds its registry. All results are collected.

    :return: a list of :class:`~corral_sdk.records.WorkflowActionRecord`; each factory builds a
        :class:`~corral_sdk.providers.action.WorkflowAction`; ``config`` decodes the step's
        ``with:`` mapping, so a bad key is reported with its line in the YAML.

    Example::

        @hookimpl
        def corral_register_workflow_actions():
            return [WorkflowActionRecord(name="checkout", factory="corral_git.actions:Checkout",
                                         config=CheckoutInputs)]
    """


@hookspec
def corral_register_workflow_sources() -> Sequence[WorkflowSourceRecord]:
    """Register workflow sources, used in workflow YAML as ``uses: <name>/<reference>``.

    Called once per process when the kernel builds its registry. All results are collected.
    Corral's own ``github`` (``uses: github/<owner>/<repo>@<ref>``) and ``marketplace``
    (``uses: marketplace/<slug>[/<version>]``) sources are registered through this very hook;
    ``workflow``, ``corral`` and ``parallelworks`` are taken. A step naming a source nobody
    registered fails with the source's name.

    :return: a list of :class:`~corral_sdk.records.WorkflowSourceRecord`; each factory builds a
        :class:`~corral_sdk.providers.workflow_source.WorkflowSource`, which turns a reference
        into the YAML of the workflow to run as a sub-run and an identity for the recursion
        check (the kernel refuses recursion and chains deeper than 5 across every source).

    Example::

        @hookimpl
        def corral_register_workflow_sources():
            return [WorkflowSourceRecord(name="catalog",
                                         factory="corral_catalog.source:Catalog",
                                         docs="Workflows of the site's catalogue.")]
    """


@hookspec
def corral_register_resource_kinds() -> Sequence[ResourceKindRecord]:
    """Register kinds of long-lived resources whose state the kernel reconciles.

    Called once per process when the kernel builds its registry. All results are collected.
    The kernel stores every resource of every kind in one table (owner, name, desired and
    observed state, generation); the kind brings the struct decoding its ``spec`` and the
    :class:`~corral_sdk.reconcile.Reconciler` that drives it. Names are unique per owner across
    all kinds.

    :return: a list of :class:`~corral_sdk.records.ResourceKindRecord`.

    Example::

        @hookimpl
        def corral_register_resource_kinds():
            return [ResourceKindRecord(name="dns-record", factory="corral_dns.kind:Reconciler",
                                       config=DnsRecordSpec, states=("absent", "present"),
                                       initial_state="absent",
                                       terminal_states=frozenset({"absent", "present"}))]
    """


# --- lifecycle ----------------------------------------------------------------------------------


@hookspec
def corral_configure(config: PluginConfig) -> None:
    """Receive the settings, once per process, before any other lifecycle hook.

    :param config: the parts of the settings plugins may read: the data directory, the public
        URL, and every ``[plugins.<name>]`` table. Decode your own table with
        ``config.for_plugin("<name>", MySettings)``, which reports a bad key as
        ``plugins.<name>.<key>``; raise from here to refuse to start with bad settings.

    Example::

        @hookimpl
        def corral_configure(config):
            global SETTINGS
            SETTINGS = config.for_plugin("mycloud", MyCloudSettings)
    """


@hookspec
def corral_startup(process: str) -> None:
    """The kernel is ready in this process: settings read, database migrated, registry built.

    :param process: which process is starting: ``"all"`` (``corral up``: API and workers in one),
        ``"api"`` (``corral serve``) or ``"worker"`` (``corral worker``).

    Keep it cheap; an exception here stops the process with the plugin's name in the message.
    """


@hookspec
def corral_shutdown(process: str) -> None:
    """The process is stopping cleanly (not called when it is killed).

    :param process: as for :func:`corral_startup`.

    Release what :func:`corral_startup` acquired. Plugins are called in the reverse of their load
    order. Exceptions are logged and ignored, so that every plugin gets its call.
    """


# --- events and API -----------------------------------------------------------------------------


@hookspec
def corral_on_event(event: Event) -> None:
    """An event was stored in the durable event log.

    Called in a background worker for every stored event, in the order of ``event.id``, from a
    durable cursor: each event is delivered once, or at most twice when a worker is killed
    between delivering it and recording that it did. A slow or failing plugin never holds up the
    call that caused the event; exceptions are logged and the event is not retried. Webhooks,
    cost tracking and notifications consume events here; enqueue anything slow rather than doing
    it inline.

    :param event: the :class:`~corral_sdk.events.Event`.
    """


@hookspec
def corral_api_routes() -> Sequence[Any]:
    """Add HTTP routes to the API, mounted under ``/api/plugins/<plugin name>/``.

    Called once when the API application is built.

    :return: a list of Litestar route handlers or controllers (the plugin depends on
        ``litestar`` itself). They appear in the OpenAPI document and behind the same
        authentication as every other route.

    Example::

        @hookimpl
        def corral_api_routes():
            from litestar import get

            @get("/status")
            async def status() -> dict[str, str]:
                return {"ok": "yes"}

            return [status]
    """
