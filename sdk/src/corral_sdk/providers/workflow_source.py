"""Workflow sources: where the workflow of a ``uses: <source>/<reference>`` step comes from.

A step ``uses: github/acme/flows@v2`` runs another workflow as a sub-run of its own. The part
before the first ``/`` names a source; a plugin registers one with a
:class:`~corral_sdk.records.WorkflowSourceRecord` whose factory is called with no arguments
(read your own settings in ``corral_configure``; Corral's own ``github`` source gets
``[workflows] github_url``). Corral ships ``github`` and ``marketplace``; ``workflow/<name>``
(the user's own workflows) is built into the kernel, and ``corral/`` and ``parallelworks/``
name actions, not workflows. A ``uses:`` whose source nobody registered fails naming it.

The kernel asks the source for the workflow's YAML before the calling run starts (to refuse
recursion and chains deeper than 5 before anything runs, following every source) and again when
the step starts. The :attr:`ResolvedWorkflow.identity` is what recursion checks compare: two
references to the same workflow must give the same identity (``github/acme/flows@<commit>``
for a branch and a tag pointing at one commit), and a reference to a workflow must never give
the identity of another.

Errors: a malformed reference raises :class:`~corral_sdk.errors.Invalid` with
``field="uses"``; an unknown repository, version or file raises
:class:`~corral_sdk.errors.NotFound` or ``Invalid``; a source that cannot be reached raises
:class:`~corral_sdk.errors.ProviderError` (with a bound on the time it waits). Corral puts the
reference in front of the message (``uses: github/acme/flows@v9: ...``), so say only what is
wrong; never put credentials in a message. Any other exception fails the step as the source's
bug.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import msgspec

__all__ = ["ResolvedWorkflow", "WorkflowSource"]


class ResolvedWorkflow(msgspec.Struct, frozen=True, kw_only=True):
    """The workflow a reference names, as it is now."""

    yaml: str
    """The workflow's YAML, checked by the kernel like any saved workflow."""
    identity: str
    """What recursion checks compare (``github/acme/flows/workflow.yaml@<commit>``): the same
    for every reference to this workflow at this version."""
    version: str = ""
    """The exact version the YAML was read at (a commit, a published version), written in the
    run's log; empty when the source has no such notion."""


@runtime_checkable
class WorkflowSource(Protocol):
    """What a workflow source plugin implements. See the module docstring."""

    async def resolve(self, uses: str, *, username: str, org: str) -> ResolvedWorkflow:
        """The workflow that ``uses`` (the whole reference, ``github/acme/flows@v2``) names,
        for a run of ``username`` in organization ``org``. Called in a Corral worker; may do
        I/O, bounded in time."""
        ...
