"""Corral's built-in plugin: what ships with the kernel, registered through the public hooks.

The kernel dogfoods its own plugin API: the built-in password sign-in, the built-in workflow
actions, the tunnel, service-json and link session types and the ``github`` and ``marketplace``
workflow sources are registered here exactly as a third party's would be. It is listed by
``corral plugins ls`` like any other plugin.
"""

from __future__ import annotations

from corral_sdk.features import AuthFeature, SessionFeature, WorkflowActionFeature
from corral_sdk.plugin import hookimpl
from corral_sdk.records import (
    AuthMethodRecord,
    ResourceKindRecord,
    SessionTypeRecord,
    WorkflowActionRecord,
    WorkflowSourceRecord,
)

__all__ = [
    "corral_register_auth_methods",
    "corral_register_resource_kinds",
    "corral_register_session_types",
    "corral_register_workflow_actions",
    "corral_register_workflow_sources",
]


@hookimpl
def corral_register_auth_methods() -> list[AuthMethodRecord]:
    from corral_core.identity.authn import LocalAccount

    return [
        AuthMethodRecord(
            name="password",
            factory="corral_core.identity.password_method:PasswordMethod",
            config=LocalAccount,
            features=frozenset({AuthFeature.PASSWORD}),
            docs="Local accounts with passwords of at least 15 characters, hashed with argon2id.",
        )
    ]


@hookimpl
def corral_register_workflow_actions() -> list[WorkflowActionRecord]:
    from corral_core.workflows.actions import (
        CancelJobsInputs,
        CheckoutInputs,
        UpdateSessionInputs,
    )
    from corral_core.workflows.agent import SchedulerAgentInputs, WaitForAgentInputs

    return [
        WorkflowActionRecord(
            name="checkout",
            factory="corral_core.workflows.actions:Checkout",
            config=CheckoutInputs,
            features=frozenset({WorkflowActionFeature.NEEDS_TARGET}),
            docs="Check out a branch, tag or commit of a git repository where the step runs "
            "(optionally only some paths), into the run's directory or `path`.",
        ),
        WorkflowActionRecord(
            name="cancel-jobs",
            factory="corral_core.workflows.actions:CancelJobs",
            config=CancelJobsInputs,
            docs="Cancel jobs of the run the step runs in (a sub-workflow's run inside one), "
            "or of another run by slug or workflow and run number.",
        ),
        WorkflowActionRecord(
            name="update-session",
            factory="corral_core.workflows.actions:UpdateSession",
            config=UpdateSessionInputs,
            docs="Fill in one of the run's sessions: the app's host and port on a cluster or in "
            "the workspace (a tunnel), or its URL (a link).",
        ),
        WorkflowActionRecord(
            name="scheduler-agent",
            factory="corral_core.workflows.agent:SchedulerAgent",
            config=SchedulerAgentInputs,
            features=frozenset(
                {WorkflowActionFeature.NEEDS_TARGET, WorkflowActionFeature.PRODUCES_OUTPUTS}
            ),
            docs="Get a compute node through the cluster's scheduler and start an SSH server "
            "there for the run's later steps (`jumpNodeHost`); outputs agentId, "
            "schedulerJobId, remoteHost, sshPort. The job is cancelled when the run ends.",
        ),
        WorkflowActionRecord(
            name="wait-for-agent",
            factory="corral_core.workflows.agent:WaitForAgent",
            config=WaitForAgentInputs,
            features=frozenset(
                {WorkflowActionFeature.NEEDS_TARGET, WorkflowActionFeature.PRODUCES_OUTPUTS}
            ),
            docs="Wait for an agent started by scheduler-agent with `wait: false`; outputs "
            "remoteHost and sshPort, or fails as soon as the agent's job ends.",
        ),
    ]


@hookimpl
def corral_register_workflow_sources() -> list[WorkflowSourceRecord]:
    return [
        WorkflowSourceRecord(
            name="github",
            # Corral hands it the `[workflows] github_url` setting (WorkflowSources)
            factory="corral_core.workflows.github:GitHubWorkflows",
            docs="`uses: github/<owner>/<repo>[/<path>]@<ref>`: the workflow file of a git "
            "repository on GitHub (or the GitHub Enterprise server of `[workflows] github_url`) "
            "at a branch, tag or full commit SHA, fetched when the step starts.",
        ),
        WorkflowSourceRecord(
            name="marketplace",
            # the runtime builds it on its marketplace (WorkflowSources(built=...))
            factory="corral_core.marketplace.source:MarketplaceWorkflows",
            docs="`uses: marketplace/<slug>[/<version>]`: a workflow item of the marketplace "
            "the run's user can see, at its newest version or the version named.",
        ),
    ]


@hookimpl
def corral_register_session_types() -> list[SessionTypeRecord]:
    web = frozenset(
        {
            SessionFeature.HTTP,
            SessionFeature.WEBSOCKET,
            SessionFeature.HTTPS_BACKEND,
            SessionFeature.WORKSPACE,
        }
    )
    return [
        SessionTypeRecord(
            name="tunnel",
            factory="corral_core.sessions.types:Tunnel",
            features=web,
            docs="An app already listening on a port of a cluster or of your workspace, served "
            "through the platform at the session's URL (HTTP and WebSocket).",
        ),
        SessionTypeRecord(
            name="service-json",
            factory="corral_core.sessions.types:ServiceJson",
            features=web,
            docs="A workflow run's legacy interactive session: the service its steps describe "
            "in service.json in the run's directory (JOB_STATUS, PORT, URL, SLUG, "
            "ERROR_MESSAGE).",
        ),
        SessionTypeRecord(
            name="link",
            factory="corral_core.sessions.types:Link",
            docs="A URL to an app hosted outside the platform.",
        ),
    ]


@hookimpl
def corral_register_resource_kinds() -> list[ResourceKindRecord]:
    from corral_core.cloud_resources.spec import (
        OS_SNAPSHOT_KIND,
        OS_SNAPSHOT_NAME_PATTERN,
        OS_SNAPSHOT_NAME_RULE,
        OS_SNAPSHOT_STATES,
        STATIC_IP_KIND,
        STATIC_IP_STATES,
        USE,
        OsSnapshotDefinition,
        StaticIpDefinition,
    )
    from corral_core.clusters.spec import (
        CLUSTER_KIND,
        CLUSTER_SHARE_LEVELS,
        CLUSTER_STATES,
        ClusterSpec,
    )
    from corral_core.networks.spec import (
        NETWORK_KIND,
        NETWORK_NAME_PATTERN,
        NETWORK_NAME_RULE,
        NETWORK_STATES,
        NetworkDefinition,
    )
    from corral_core.sessions.spec import (
        SESSION_KIND,
        SESSION_NAME_PATTERN,
        SESSION_NAME_RULE,
        SESSION_STATES,
        SessionSpec,
    )
    from corral_core.storage.spec import (
        STORAGE_KIND,
        STORAGE_NAME_MAX,
        STORAGE_NAME_PATTERN,
        STORAGE_NAME_RULE,
        STORAGE_SHARE_LEVELS,
        STORAGE_STATES,
        StorageDefinition,
    )
    from corral_core.workflows.spec import (
        WORKFLOW_KIND,
        WORKFLOW_NAME_PATTERN,
        WORKFLOW_NAME_RULE,
        WorkflowSpec,
    )

    return [
        ResourceKindRecord(
            name=CLUSTER_KIND,
            # The runtime binds the reconciler to its services (ResourceReconciler.bind).
            factory="corral_core.clusters.reconciler:ClusterReconciler",
            config=ClusterSpec,
            states=CLUSTER_STATES,
            initial_state="off",
            terminal_states=frozenset({"off"}),
            share_levels=CLUSTER_SHARE_LEVELS,
            docs="A cluster users reach over SSH at its login node, with a Slurm or PBS "
            "scheduler: one they already run (existing), or, with a cloud plugin, one Corral "
            "provisions.",
        ),
        ResourceKindRecord(
            name=NETWORK_KIND,
            # The runtime binds the reconciler to its services (ResourceReconciler.bind).
            factory="corral_core.networks.reconciler:NetworkReconciler",
            config=NetworkDefinition,
            states=NETWORK_STATES,
            initial_state="pending",
            # deleting is not settled: the reconciler removes the network once it is gone
            terminal_states=frozenset({"provisioned", "failed"}),
            share_levels=("view",),
            name_pattern=NETWORK_NAME_PATTERN,
            name_max_length=63,
            name_rule=NETWORK_NAME_RULE,
            docs="A cloud account's networking stack (VPCs, subnets, gateways, firewall rules, "
            "DNS) in one or more regions, each with its own CIDR block, provisioned by the "
            "account's cloud plugin; its organization's cloud clusters run on it.",
        ),
        ResourceKindRecord(
            name=OS_SNAPSHOT_KIND,
            # The runtime binds the reconciler to its services (ResourceReconciler.bind).
            factory="corral_core.cloud_resources.snapshots:OsSnapshotReconciler",
            config=OsSnapshotDefinition,
            states=OS_SNAPSHOT_STATES,
            initial_state="provisioning",
            # deleted is not settled: the reconciler removes the snapshot an hour later
            terminal_states=frozenset({"provisioned", "failed"}),
            share_levels=(USE,),
            name_pattern=OS_SNAPSHOT_NAME_PATTERN,
            name_max_length=36,
            name_rule=OS_SNAPSHOT_NAME_RULE,
            docs="An image of a running cloud cluster's controller root disk (OS, data, "
            "installed software), made by its cloud plugin; new clusters boot from it by name.",
        ),
        ResourceKindRecord(
            name=STATIC_IP_KIND,
            # The runtime binds the reconciler to its services (ResourceReconciler.bind).
            factory="corral_core.cloud_resources.static_ips:StaticIpReconciler",
            config=StaticIpDefinition,
            states=STATIC_IP_STATES,
            initial_state="provisioning",
            terminal_states=frozenset({"provisioned", "failed"}),
            share_levels=(USE,),
            docs="A static public IP address in a region of a cloud account, attached to a "
            "cloud cluster's controller and kept across its starts.",
        ),
        ResourceKindRecord(
            name=SESSION_KIND,
            # The runtime binds the reconciler to its services (ResourceReconciler.bind).
            factory="corral_core.sessions.live:SessionReconciler",
            config=SessionSpec,
            states=SESSION_STATES,
            initial_state="creating",
            # running sessions are looked at again (requeue_after): a dead service turns failed
            terminal_states=frozenset({"failed", "stopped"}),
            share_levels=("open",),
            name_pattern=SESSION_NAME_PATTERN,
            name_max_length=255,
            name_rule=SESSION_NAME_RULE,
            docs="An app on a cluster or in the workspace reached through the platform (a "
            "tunnel), or a link to one elsewhere; a workflow run makes the sessions it declares.",
        ),
        ResourceKindRecord(
            name=STORAGE_KIND,
            # The runtime binds the reconciler to its services (ResourceReconciler.bind).
            factory="corral_core.storage.reconciler:StorageReconciler",
            config=StorageDefinition,
            states=STORAGE_STATES,
            initial_state="stopped",
            terminal_states=frozenset({"stopped", "active", "failed"}),
            share_levels=STORAGE_SHARE_LEVELS,
            name_pattern=STORAGE_NAME_PATTERN,
            name_max_length=STORAGE_NAME_MAX,
            name_rule=STORAGE_NAME_RULE,
            docs="A bucket, disk, NFS or Lustre file system of a storage type plugin, in one of "
            "the organization's cloud accounts; persistent storage is started (provisioned) and "
            "stopped (deleted, data included) by its users, each start a numbered session with "
            "its provision and deletion logs.",
        ),
        ResourceKindRecord(
            name=WORKFLOW_KIND,
            factory="corral_core.workflows.spec:WorkflowReconciler",
            config=WorkflowSpec,
            states=("active",),
            initial_state="active",
            terminal_states=frozenset({"active"}),
            share_levels=("view", "run", "edit"),
            name_pattern=WORKFLOW_NAME_PATTERN,
            name_max_length=255,
            name_rule=WORKFLOW_NAME_RULE,
            docs="A YAML workflow (jobs of steps run in the user's workspace or on clusters "
            "over SSH), stored in Corral with its versions or fetched from a git repository "
            "at every run.",
        ),
    ]
