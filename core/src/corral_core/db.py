"""The database: SQLite (WAL, embedded mode) or PostgreSQL, through async SQLAlchemy sessions.

Async engines are bound to the event loop that created them, and Corral runs more than one loop
in a process (the API server's and the background workers'), so :class:`Database` keeps one
engine per loop. Migrations run through a synchronous engine (see :mod:`corral_core.migrations`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine, Row, create_engine
from sqlalchemy.engine.url import URL, make_url
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql.base import Executable
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from corral_sdk.errors import Invalid, SettingsError, Unavailable

T = TypeVar("T")

__all__ = ["Database", "utcnow"]

SQLITE_BUSY_TIMEOUT_MS = 30_000


def utcnow() -> datetime:
    """Now, in UTC (the database stores timezone-aware UTC datetimes)."""
    return datetime.now(UTC)


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except Exception:
        raise SettingsError(
            f"database.url {url!r} is not a database URL", field="database.url"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in {"sqlite", "postgresql"}:
        raise SettingsError(
            f"database.url: {backend!r} is not supported; use sqlite:/// or postgresql://",
            field="database.url",
        )
    return parsed


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Database:
    """Hands out sessions on the current event loop's engine."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 5) -> None:
        self.url = _parse(url)
        self.echo = echo
        self.pool_size = pool_size
        self._engines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncEngine] = (
            weakref.WeakKeyDictionary()
        )
        self._reader: Engine | None = None
        self._reader_lock = threading.Lock()
        # SQLite serialises reads on one file anyway; one thread keeps the GIL contention with
        # the event loop to two threads however many requests are waiting.
        self._read_thread = concurrent.futures.ThreadPoolExecutor(1, "corral-db-read")

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    def _ensure_sqlite_dir(self) -> None:
        if self.is_sqlite and self.url.database and self.url.database != ":memory:":
            Path(self.url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)

    def sync_url(self) -> URL:
        if self.is_sqlite:
            return self.url.set(drivername="sqlite")
        return self.url.set(drivername="postgresql+psycopg")

    def async_url(self) -> URL:
        if self.is_sqlite:
            return self.url.set(drivername="sqlite+aiosqlite")
        return self.url.set(drivername="postgresql+psycopg")

    def sync_engine(self) -> Engine:
        self._ensure_sqlite_dir()
        engine = create_engine(self.sync_url(), echo=self.echo)
        if self.is_sqlite:
            event.listen(engine, "connect", _sqlite_pragmas)
        return engine

    def engine(self) -> AsyncEngine:
        loop = asyncio.get_running_loop()
        engine = self._engines.get(loop)
        if engine is None:
            self._ensure_sqlite_dir()
            kwargs: dict[str, Any] = {"echo": self.echo}
            if not self.is_sqlite:
                kwargs.update(pool_size=self.pool_size, pool_pre_ping=True)
            engine = create_async_engine(self.async_url(), **kwargs)
            if self.is_sqlite:
                event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
            self._engines[loop] = engine
        return engine

    async def read(self, statement: Executable) -> list[Row[Any]]:
        """Run one read-only Core statement and return its rows: for the hot read paths.

        On SQLite it runs on a synchronous connection in a worker thread: one thread hop instead
        of aiosqlite's several makes a page of rows about four times cheaper. On PostgreSQL the
        async driver is already direct. Everything else uses :meth:`session`.
        """
        if not self.is_sqlite:
            with self._translate_errors():
                async with self.engine().connect() as connection:
                    return list(await connection.execute(statement))
        with self._reader_lock:
            if self._reader is None:
                self._reader = self.sync_engine()
            engine = self._reader

        def run() -> list[Row[Any]]:
            with engine.connect() as connection:
                return list(connection.execute(statement))

        with self._translate_errors():
            return await asyncio.get_running_loop().run_in_executor(self._read_thread, run)

    async def transaction(self, work: Callable[[Session], T]) -> T:
        """Run ``work(session)`` in one transaction, committed when it returns: for hot paths.

        On SQLite it runs on the same single thread as :meth:`read`, with a synchronous session:
        one thread hop for the whole transaction, and writers queue on that thread instead of
        sleeping in SQLite's busy handler. On PostgreSQL it runs through the async session.
        ``work`` must not block on anything but the database.
        """
        if not self.is_sqlite:
            async with self.session() as session:
                result = await session.run_sync(work)  # type: ignore[arg-type]
                await session.commit()
                return result
        with self._reader_lock:
            if self._reader is None:
                self._reader = self.sync_engine()
            engine = self._reader

        def run() -> T:
            with Session(engine, expire_on_commit=False) as session:
                result = work(session)
                session.commit()
                return result

        with self._translate_errors():
            return await asyncio.get_running_loop().run_in_executor(self._read_thread, run)

    @contextlib.contextmanager
    def _translate_errors(self) -> Iterator[None]:
        try:
            yield
        except OperationalError as exc:
            raise Unavailable(
                "the database is not reachable", log_message=f"database error: {exc}"
            ) from exc
        except DataError as exc:
            # A value the database cannot store (a NUL character in text, a number out of range)
            # is the caller's mistake, whichever field it came in.
            raise Invalid(
                "a value is out of range or contains characters that cannot be stored "
                "(such as NUL)",
                log_message=f"database refused a value: {exc}",
                reason="unstorable-value",
            ) from exc

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session on this loop's engine; commit explicitly, rolled back on error."""
        with self._translate_errors():
            async with AsyncSession(self.engine(), expire_on_commit=False) as session:
                yield session

    async def dispose(self, *, reader: bool = True) -> None:
        """Close the current loop's engine (call before the loop ends) and, unless told not
        to, the reader's (shared by every loop)."""
        if reader:
            with self._reader_lock:
                shared, self._reader = self._reader, None
            if shared is not None:
                shared.dispose()
        with contextlib.suppress(RuntimeError):
            loop = asyncio.get_running_loop()
            engine = self._engines.pop(loop, None)
            if engine is not None:
                await engine.dispose()
