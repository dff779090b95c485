"""Corral's built-in plugin: what ships with the kernel, registered through the public hooks.

The kernel dogfoods its own plugin API: the built-in password sign-in is registered here exactly
as a third-party auth method would be. The tunnel and link session types and the workspace
executor join it in the issues that build them. It is listed by ``corral plugins ls`` like any
other plugin.
"""

from __future__ import annotations

from corral_sdk.features import AuthFeature
from corral_sdk.plugin import hookimpl
from corral_sdk.records import AuthMethodRecord, ResourceKindRecord

__all__ = ["corral_register_auth_methods", "corral_register_resource_kinds"]


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
def corral_register_resource_kinds() -> list[ResourceKindRecord]:
    from corral_core.clusters.spec import (
        CLUSTER_KIND,
        CLUSTER_SHARE_LEVELS,
        CLUSTER_STATES,
        ClusterSpec,
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
