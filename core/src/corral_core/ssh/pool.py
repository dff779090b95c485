"""Pooled asyncssh connections: one per identity and endpoint, shared by every caller in a process.

asyncssh connections belong to the event loop that opened them, and a Corral process runs
several loops (the API's, dramatiq's, the sweeper's). The pool therefore runs every connection
on one loop of its own, in a daemon thread, and callers from any loop hand it coroutines; so 100
concurrent requests in any mix of loops share one connection, carried as channels (at most
``max_channels`` at a time, like sshd's ``MaxSessions``).

A dropped connection (sshd restarted, network cut, keepalives unanswered) is noticed and
reopened on next use. A command whose channel could not be opened on a dead connection is
retried once on a fresh one; a command that may have started is never run twice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncssh

from corral_core.settings import SSHSettings
from corral_core.ssh.hostkeys import HostKeyChanged, HostKeyStore
from corral_sdk.errors import Invalid, Timeout, TransportError

__all__ = ["PoolStats", "SSHEndpoint", "SSHIdentity", "SSHPool"]

log = logging.getLogger("corral.ssh")

T = TypeVar("T")


@dataclass(frozen=True)
class SSHEndpoint:
    """Where to sign in: ``username@host:port``, optionally through a jump host."""

    host: str
    username: str
    port: int = 22
    jump: SSHEndpoint | None = None

    def __str__(self) -> str:
        here = f"{self.username}@{self.host}" + ("" if self.port == 22 else f":{self.port}")
        return f"{here} (through {self.jump})" if self.jump else here

    @property
    def address(self) -> str:
        return f"{self.username}@{self.host}:{self.port}"

    @property
    def key_host(self) -> str:
        """The name its host key is pinned under: the host, or for a host reached through a
        jump host ``host via jump:port`` (a node's name or private address means another
        machine behind another cluster, and an agent's port another sshd at each start)."""
        if self.jump is None:
            return self.host
        return f"{self.host} via {self.jump.host}:{self.jump.port}"


@dataclass(frozen=True)
class SSHIdentity:
    """Whose key signs in: ``name`` keys the pool (``user:12``), ``label`` names them in
    messages; the key never leaves memory."""

    name: str
    label: str
    private_key: str = field(repr=False)

    @property
    def public_key(self) -> str:
        """The OpenSSH public key (one line) that servers must trust for this identity."""
        return _public_text(asyncssh.import_private_key(self.private_key))


@dataclass
class PoolStats:
    """Counters tests and benchmarks read (``GET /api/ssh/pool`` for admins)."""

    connections_opened: int = 0
    channels_opened: int = 0
    reconnects: int = 0
    open_connections: int = 0


_ENCRYPTION_ALGS = sorted(
    (alg.decode() for alg in asyncssh.encryption.get_default_encryption_algs()),
    key=lambda alg: not alg.endswith("-gcm@openssh.com"),
)
"""asyncssh's default ciphers with AES-GCM first: one call into OpenSSL per packet where
chacha20-poly1305 makes several, which shows on a connection carrying many small channels."""


class _Client(asyncssh.SSHClient):
    """Sees the host key the server offers, so a refused key can be reported and kept."""

    def __init__(self, accept_unknown: bool) -> None:
        self.accept_unknown = accept_unknown
        self.offered: asyncssh.SSHKey | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.offered = key
        return self.accept_unknown


class PooledConnection:
    """One live SSH connection and the channels it may carry at once."""

    def __init__(self, conn: asyncssh.SSHClientConnection, max_channels: int) -> None:
        self.conn = conn
        self.channels = asyncio.Semaphore(max_channels)
        self.forwarded = 0
        """Open channels of local port forwards (not counted in ``channels``: sshd's
        ``MaxSessions`` does not limit them)."""
        self.last_used = time.monotonic()
        self.home: str | None = None

    @property
    def alive(self) -> bool:
        return not self.conn.is_closed()


def _fingerprint(key: asyncssh.SSHKey) -> str:
    return str(key.get_fingerprint("sha256"))


def _public_text(key: asyncssh.SSHKey) -> str:
    return bytes(key.export_public_key("openssh")).decode().strip()


class SSHPool:
    """Opens, shares, reopens and closes SSH connections for one process."""

    def __init__(self, settings: SSHSettings, host_keys: HostKeyStore) -> None:
        self.settings = settings
        self.host_keys = host_keys
        self.stats = PoolStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._connections: dict[tuple[str, SSHEndpoint], PooledConnection] = {}
        self._connecting: dict[tuple[str, SSHEndpoint], asyncio.Future[PooledConnection]] = {}
        self._reaper: asyncio.Task[None] | None = None

    # --- the pool's own loop ----------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._start_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=serve, name="corral-ssh", daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
                asyncio.run_coroutine_threadsafe(self._start_reaper(), loop).result()
            return self._loop

    async def _start_reaper(self) -> None:
        self._reaper = asyncio.get_running_loop().create_task(self._reap_idle())

    def on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the pool's loop, from any loop; cancelling the caller cancels it."""
        if self.on_loop():
            return await coro
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return await asyncio.wrap_future(future)

    def call_soon(self, fn: Callable[[], Awaitable[Any]]) -> None:
        """Start ``fn()`` on the pool's loop without waiting for it."""
        asyncio.run_coroutine_threadsafe(_run(fn), self.loop)

    # --- connections --------------------------------------------------------------------------

    async def connection(
        self, identity: SSHIdentity, endpoint: SSHEndpoint, *, fresh: bool = False
    ) -> PooledConnection:
        """The live connection for ``identity`` at ``endpoint``, opened once however many ask.

        Must run on the pool's loop (use :meth:`call`). ``fresh`` drops the pooled one first.
        """
        key = (identity.name, endpoint)
        pooled = self._connections.get(key)
        if pooled is not None and (fresh or not pooled.alive):
            self._drop(key, pooled)
            self.stats.reconnects += 1
            pooled = None
        if pooled is not None:
            pooled.last_used = time.monotonic()
            return pooled
        pending = self._connecting.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[PooledConnection] = asyncio.get_running_loop().create_future()
        self._connecting[key] = future
        try:
            conn = await self._open(identity, endpoint)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here, so an unawaited future does not warn
            raise
        finally:
            self._connecting.pop(key, None)
        pooled = PooledConnection(conn, self.settings.max_channels)
        self._connections[key] = pooled
        self.stats.connections_opened += 1
        self.stats.open_connections = len(self._connections)
        future.set_result(pooled)
        return pooled

    def _drop(self, key: tuple[str, SSHEndpoint], pooled: PooledConnection) -> None:
        if self._connections.get(key) is pooled:
            del self._connections[key]
        self.stats.open_connections = len(self._connections)
        pooled.conn.close()

    async def trust(self, endpoint: SSHEndpoint, public_key: str) -> str:
        """Trust ``public_key`` (OpenSSH format), and only it, for ``endpoint`` (a server
        Corral or an action started and read the key of); close connections to it made under
        another key. Returns its fingerprint."""
        try:
            key = asyncssh.import_public_key(public_key.strip())
        except (asyncssh.KeyImportError, ValueError):
            raise Invalid("not an OpenSSH public key", field="public_key") from None
        fingerprint = _fingerprint(key)
        await self.host_keys.pin(endpoint.key_host, endpoint.port, _public_text(key), fingerprint)
        for (name, other), pooled in list(self._connections.items()):
            if (other.key_host, other.port) == (endpoint.key_host, endpoint.port):
                self._drop((name, other), pooled)
        return fingerprint

    async def drop_host(self, host: str, port: int) -> None:
        """Close every connection to ``host:port`` (a cluster was stopped)."""
        for key, pooled in list(self._connections.items()):
            if key[1].host == host and key[1].port == port:
                self._drop(key, pooled)

    def discard(
        self, identity: SSHIdentity, endpoint: SSHEndpoint, pooled: PooledConnection
    ) -> None:
        """Forget a connection that failed under a caller (the next call reopens it)."""
        self._drop((identity.name, endpoint), pooled)

    async def _open(
        self, identity: SSHIdentity, endpoint: SSHEndpoint
    ) -> asyncssh.SSHClientConnection:
        tunnel: asyncssh.SSHClientConnection | None = None
        if endpoint.jump is not None:
            try:
                tunnel = (await self.connection(identity, endpoint.jump)).conn
            except TransportError as exc:
                raise TransportError(
                    f"cannot reach {endpoint.host} through the jump host {endpoint.jump}: "
                    f"{exc.message}",
                    reason=f"jump-{exc.reason}",
                    retryable=exc.retryable,
                    details={**exc.details, "jump_host": endpoint.jump.host},
                ) from None
        pinned = await self.host_keys.trusted(endpoint.key_host, endpoint.port)
        pinned_keys = [asyncssh.import_public_key(row.public_key) for row in pinned]
        client = _Client(accept_unknown=not pinned)
        key = asyncssh.import_private_key(identity.private_key)
        timeout = self.settings.connect_timeout
        try:
            async with asyncio.timeout(timeout):
                conn = await asyncssh.connect(
                    endpoint.host,
                    endpoint.port,
                    tunnel=tunnel,
                    client_factory=lambda: client,
                    username=endpoint.username,
                    client_keys=[key],
                    known_hosts=(pinned_keys, [], []),
                    agent_path=None,
                    config=[],
                    preferred_auth="publickey",
                    encryption_algs=_ENCRYPTION_ALGS,
                    keepalive_interval=self.settings.keepalive_interval,
                    keepalive_count_max=self.settings.keepalive_count_max,
                    login_timeout=timeout,
                )
        except TimeoutError:
            raise Timeout(
                f"{endpoint.address} did not answer within {timeout:g} s: check the host and "
                "port, and that a firewall lets Corral reach it",
                reason="unreachable",
                retryable=True,
            ) from None
        except asyncssh.HostKeyNotVerifiable:
            if client.offered is None:
                raise TransportError(
                    f"{endpoint.address} offered no host key Corral can check",
                    reason="host-key-unverifiable",
                ) from None
            offered = _fingerprint(client.offered)
            await self.host_keys.record_offered(
                endpoint.key_host, endpoint.port, _public_text(client.offered), offered
            )
            raise HostKeyChanged(
                endpoint.key_host, endpoint.port, [row.fingerprint for row in pinned], offered
            ) from None
        except asyncssh.PermissionDenied:
            raise TransportError(
                f"{endpoint.address} refused to let {endpoint.username!r} sign in with "
                f"{identity.label}'s platform key: check the username, and that the host "
                "trusts the key (through `corral ssh-public-keys` as sshd's "
                "AuthorizedKeysCommand, or in ~/.ssh/authorized_keys)",
                reason="auth-failed",
            ) from None
        except (OSError, asyncssh.Error) as exc:
            raise TransportError(
                f"cannot reach {endpoint.address}: {_describe(exc)}",
                reason="unreachable",
                retryable=True,
                log_message=f"connect to {endpoint.address} failed: {exc!r}",
            ) from None
        if not pinned and client.offered is not None:
            offered = _fingerprint(client.offered)
            if not await self.host_keys.pin_first_use(
                endpoint.key_host, endpoint.port, _public_text(client.offered), offered
            ):
                conn.close()
                now = await self.host_keys.trusted(endpoint.key_host, endpoint.port)
                raise HostKeyChanged(
                    endpoint.key_host, endpoint.port, [row.fingerprint for row in now], offered
                )
            log.info("pinned the host key of %s:%s: %s", endpoint.key_host, endpoint.port, offered)
        return conn

    async def _reap_idle(self) -> None:
        while True:
            await asyncio.sleep(max(min(self.settings.idle_seconds / 4, 60.0), 0.5))
            cutoff = time.monotonic() - self.settings.idle_seconds
            for key, pooled in list(self._connections.items()):
                if not pooled.alive or (
                    pooled.last_used < cutoff and not _busy(pooled, self.settings.max_channels)
                ):
                    self._drop(key, pooled)

    async def _close_all(self) -> None:
        current = asyncio.current_task()
        for task in asyncio.all_tasks():
            if task is not current:
                task.cancel()  # callers on other loops see their call cancelled, not hang
        for key, pooled in list(self._connections.items()):
            self._drop(key, pooled)
            await pooled.conn.wait_closed()
        await self.host_keys.close()

    def close(self) -> None:
        """Close every connection and stop the pool's loop (it restarts on next use)."""
        with self._start_lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._close_all(), loop).result(timeout=10)
        except (concurrent.futures.TimeoutError, RuntimeError):
            log.warning("SSH connections did not close within 10 s")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        if not thread.is_alive():
            loop.close()


def _busy(pooled: PooledConnection, max_channels: int) -> bool:
    return pooled.forwarded > 0 or pooled.channels._value < max_channels


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is sshd running on that port?)"
    if isinstance(exc, asyncssh.Error):
        return exc.reason or type(exc).__name__
    if isinstance(exc, OSError) and exc.errno:
        text = os.strerror(exc.errno)
        return text[0].lower() + text[1:]
    return str(exc) or type(exc).__name__


async def _run(fn: Callable[[], Awaitable[Any]]) -> None:
    try:
        await fn()
    except Exception:
        log.exception("background SSH task failed")
