"""Query and path parameters shared by the routes, bounded so no value can overflow the database."""

from __future__ import annotations

from typing import Annotated, TypeAlias

from litestar.params import PathParameter, QueryParameter

__all__ = ["MAX_ID", "Limit", "Offset", "RowId"]

MAX_ID = 2**31 - 1  # ids are INTEGER columns: 32 bits on PostgreSQL
MAX_OFFSET = 2**31 - 1

Offset: TypeAlias = Annotated[
    int, QueryParameter(name="offset", ge=0, le=MAX_OFFSET, description="rows to skip")
]
Limit: TypeAlias = Annotated[
    int, QueryParameter(name="limit", ge=1, le=200, description="rows to return, at most 200")
]
RowId: TypeAlias = Annotated[int, PathParameter(ge=1, le=MAX_ID)]
