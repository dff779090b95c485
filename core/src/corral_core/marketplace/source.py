"""The ``marketplace`` workflow source: ``uses: marketplace/<slug>`` runs the item's newest
version, ``uses: marketplace/<slug>/<version>`` that version, as a sub-run of the calling
run, for the calling run's user (who must see the item)."""

from __future__ import annotations

from corral_core.marketplace.copies import MarketplaceCopies
from corral_sdk.providers.workflow_source import ResolvedWorkflow

__all__ = ["MarketplaceWorkflows"]


class MarketplaceWorkflows:
    """Built by the runtime on its marketplace (the kernel's database), registered like any
    plugin's source through ``corral_register_workflow_sources``."""

    def __init__(self, copies: MarketplaceCopies) -> None:
        self.copies = copies

    async def resolve(self, uses: str, *, username: str, org: str) -> ResolvedWorkflow:
        return await self.copies.resolve(uses, username=username)
