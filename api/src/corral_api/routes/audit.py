"""Reading the audit log (org:admin)."""

from __future__ import annotations

from typing import Annotated

from litestar import get
from litestar.params import QueryParameter
from sqlalchemy import func
from sqlmodel import col, select

from corral_api.params import Offset
from corral_api.security import Caller, RuntimeDep
from corral_core.audit.models import AuditRecord
from corral_sdk.errors import PermissionDenied
from corral_sdk.wire import AuditEntry, AuditList

__all__ = ["list_audit"]


@get("/api/audit", tags=["audit"], summary="State-changing calls in your organization (org:admin)")
async def list_audit(
    principal: Caller,
    runtime: RuntimeDep,
    actor: Annotated[str | None, QueryParameter(name="actor")] = None,
    limit: Annotated[int, QueryParameter(name="limit", ge=1, le=500)] = 100,
    offset: Offset = 0,
) -> AuditList:
    if not principal.has():
        raise PermissionDenied(
            "reading the audit log needs the role org:admin", reason="role-required"
        )
    query = select(AuditRecord).where(col(AuditRecord.org) == principal.org)
    if actor:
        query = query.where(col(AuditRecord.actor) == actor)
    async with runtime.db.session() as session:
        total = (await session.exec(select(func.count()).select_from(query.subquery()))).one()
        rows = await session.exec(
            query.order_by(col(AuditRecord.id).desc()).limit(limit).offset(offset)
        )
        items = [
            AuditEntry(
                id=r.id or 0,
                at=r.at,
                actor=r.actor,
                action=r.action,
                target=r.target,
                source=r.source,
                outcome=r.outcome,
            )
            for r in rows
        ]
    return AuditList(items=items, total=total, limit=limit, offset=offset)
