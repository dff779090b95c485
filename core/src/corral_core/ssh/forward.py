"""Local port forwards over the pool's connections (``ssh -L``): how the sessions' proxy reaches
an app on a cluster.

A forward listens on a loopback port of this host; each connection accepted there is relayed over
a ``direct-tcpip`` channel opened for it on the pool's *current* connection to the endpoint. So a
forward outlives a connection: when the pooled one drops (sshd restarted, network cut, closed as
idle) the next connection to the forward opens a new one, where asyncssh's own listener
(``forward_local_port``) closes with the connection that made it, leaving the session's tunnel
dead. A connection carrying forwarded traffic is not closed as idle.

Data is relayed as it arrives, an SSH packet at a time (OpenSSH sends at most 32 KiB in one):
joining the packets one read of the connection brings, to write them at once, was measured
slower (bench/bench_session_proxy.py: the proxy starts relaying later). Each side keeps the
other's pace: one that cannot keep up pauses the other's reading (the channel's by not opening
its window further).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import cast

import asyncssh

from corral_core.ssh.pool import PooledConnection, SSHEndpoint, SSHIdentity, SSHPool
from corral_sdk.errors import CorralError, TransportError

__all__ = ["SSHForward"]

log = logging.getLogger("corral.ssh")

# Failures that mean a pooled connection died before the channel opened: reopen it, once.
_CONNECTION_GONE = (asyncssh.ConnectionLost, asyncssh.DisconnectError, BrokenPipeError)


class SSHForward:
    """An open local port forward to ``remote_host:remote_port`` as seen from ``endpoint``;
    closing it stops listening and ends the connections it carries. Lives on the pool's loop:
    make it with :meth:`open` through :meth:`SSHPool.call`."""

    def __init__(
        self,
        pool: SSHPool,
        identity: SSHIdentity,
        endpoint: SSHEndpoint,
        remote_host: str,
        remote_port: int,
    ) -> None:
        self.pool, self.identity, self.endpoint = pool, identity, endpoint
        self.remote_host, self.remote_port = remote_host, remote_port
        self._server: asyncio.Server | None = None
        self._port = 0
        self._relays: set[_LocalEnd] = set()

    async def open(self, local_port: int = 0) -> SSHForward:
        """Sign in now (so a cluster that cannot be reached says why here, not as connections
        closed later), then listen on ``127.0.0.1:local_port`` (0: any free port)."""
        await self.pool.connection(self.identity, self.endpoint)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _LocalEnd(self), "127.0.0.1", local_port)
        self._port = int(self._server.sockets[0].getsockname()[1])
        return self

    @property
    def local_port(self) -> int:
        return self._port

    async def close(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for relay in list(self._relays):
                relay.close()

        await self.pool.call(close())

    async def channel(self, local: _LocalEnd) -> tuple[asyncssh.SSHTCPChannel[bytes], _RemoteEnd]:
        """A channel to the far side for ``local``, on the pool's live connection (reopened once
        when the pooled one turns out to be dead)."""
        target = f"{self.remote_host}:{self.remote_port}"
        for attempt in (1, 2):
            pooled = await self.pool.connection(self.identity, self.endpoint, fresh=attempt == 2)
            try:
                async with asyncio.timeout(self.pool.settings.connect_timeout):
                    channel, remote = await pooled.conn.create_connection(
                        functools.partial(_RemoteEnd, local, pooled),
                        self.remote_host,
                        self.remote_port,
                    )
            except asyncssh.ChannelOpenError as exc:
                raise TransportError(
                    f"{self.endpoint} cannot open a connection to {target}: {exc.reason}",
                    reason="forward-refused",
                ) from None
            except TimeoutError:
                raise TransportError(
                    f"{self.endpoint} did not open a connection to {target} in time",
                    reason="forward-timeout",
                    retryable=True,
                ) from None
            except _CONNECTION_GONE:
                self.pool.discard(self.identity, self.endpoint, pooled)
                if attempt == 2:
                    raise TransportError(
                        f"{self.endpoint} closed the connection before forwarding to {target}",
                        reason="connection-lost",
                        retryable=True,
                    ) from None
                continue
            self.pool.stats.channels_opened += 1
            return channel, cast(_RemoteEnd, remote)
        raise AssertionError("unreachable")


class _LocalEnd(asyncio.Protocol):
    """A connection accepted by a forward, relayed over a channel of its own."""

    def __init__(self, forward: SSHForward) -> None:
        self.forward = forward
        self.transport: asyncio.Transport | None = None
        self.channel: asyncssh.SSHTCPChannel[bytes] | None = None
        self.eof = False
        """This side sent its end of file."""
        self.remote_eof = False
        """The far side sent its end of file."""
        self._opening: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.pause_reading()  # until the channel is open
        self.forward._relays.add(self)
        self._opening = asyncio.get_running_loop().create_task(self._open())

    async def _open(self) -> None:
        try:
            channel, _ = await self.forward.channel(self)
        except CorralError as exc:
            log.info("forward to %s: %s", self.forward.endpoint, exc.log_message)
            self.close()
            return
        except Exception:  # never leave the connection waiting for a channel
            log.exception("forward to %s failed", self.forward.endpoint)
            self.close()
            return
        if self.transport is None or self.transport.is_closing():
            channel.close()
            return
        self.channel = channel
        self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        assert self.channel is not None  # reading starts once the channel is open
        self.channel.write(data)

    def eof_received(self) -> bool:
        self.eof = True
        if self.channel is not None:
            self.channel.write_eof()
        return not self.remote_eof  # half-open while the answer may still come

    def connection_lost(self, exc: Exception | None) -> None:
        self.forward._relays.discard(self)
        self.transport = None
        if self.channel is not None:
            self.channel.close()  # (a channel still opening is closed once open)

    def pause_writing(self) -> None:
        if self.channel is not None:
            self.channel.pause_reading()

    def resume_writing(self) -> None:
        if self.channel is not None:
            self.channel.resume_reading()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _RemoteEnd(asyncssh.SSHTCPSession[bytes]):
    """The far side of a forwarded connection: its data written to the local connection."""

    def __init__(self, local: _LocalEnd, pooled: PooledConnection) -> None:
        self.local = local
        self.pooled = pooled
        pooled.forwarded += 1
        pooled.last_used = time.monotonic()

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self.local.write(data)

    def eof_received(self) -> bool:
        self.local.remote_eof = True
        transport = self.local.transport
        if transport is not None and not transport.is_closing():
            transport.write_eof()
        return not self.local.eof  # half-open until the local side is done too

    def connection_lost(self, exc: Exception | None) -> None:
        self.pooled.forwarded -= 1
        self.pooled.last_used = time.monotonic()
        self.local.close()  # after what is buffered is written

    def pause_writing(self) -> None:
        if self.local.transport is not None:
            self.local.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.local.transport is not None:
            self.local.transport.resume_reading()
