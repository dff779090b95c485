"""A small HTTP/1.1 client for the sessions' proxy: requests relayed to a service and its answer
relayed back as raw bytes, over kept-alive connections (a pool per host and port).

Why not a general client: the proxy neither decodes nor buffers bodies, so the bytes go from one
socket to the other in large reads (the proxy's throughput is the point; see
``bench/bench_session_proxy.py``). Bodies are framed as the service frames them:
``Content-Length``, chunked, or until the connection closes.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import cast

__all__ = ["Answer", "ConnectionPool", "UpstreamError"]

READ_SIZE = 256 * 1024
"""The receive buffer of a connection to a service: the most one read hands on at once."""
MAX_HEAD = 64 * 1024
CONNECT_SECONDS = 10.0
IDLE_PER_HOST = 32


class UpstreamError(Exception):
    """The service could not be reached, or answered something that is not HTTP/1.x."""


class _Connection(asyncio.BufferedProtocol):
    """A connection to a service: the socket reads straight into one buffer (no copy in a
    stream reader's buffer), from which each read takes what has arrived as one ``bytes`` (the
    only copy in the proxy). Reading pauses while the buffer is full: a service is never read
    faster than its answer is relayed."""

    def __init__(self) -> None:
        self._buffer = bytearray(READ_SIZE)
        self._view = memoryview(self._buffer)
        self._start = 0  # what is not yet taken: _buffer[_start:_end]
        self._end = 0
        self._transport: asyncio.Transport | None = None
        self._eof = False
        self._lost: Exception | None = None
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self.reused = False

    # --- asyncio's side -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._start == self._end:
            self._start = self._end = 0
        elif self._end == READ_SIZE:  # room only at the front: move what is left there
            left = self._end - self._start
            self._buffer[:left] = self._buffer[self._start : self._end]
            self._start, self._end = 0, left
        return self._view[self._end :]

    def buffer_updated(self, nbytes: int) -> None:
        self._end += nbytes
        if self._end == READ_SIZE and self._transport is not None:
            self._transport.pause_reading()
            self._paused = True
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._lost = exc or ConnectionResetError("the connection closed")
        self._wake()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        self._waiter = None

    # --- the proxy's side -----------------------------------------------------------------------

    def usable(self) -> bool:
        """Open, and nothing unasked-for waiting in it (a kept-alive connection)."""
        return (
            self._transport is not None
            and not self._transport.is_closing()
            and not self._eof
            and self._start == self._end
        )

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def write(self, data: bytes) -> None:
        if self._lost is not None or self._transport is None:
            raise UpstreamError("the service closed the connection")
        self._transport.write(data)
        if self._writable is not None:
            await self._writable
            if self._lost is not None:
                raise UpstreamError("the service closed the connection")

    async def _more(self) -> bool:
        """Wait for more bytes; ``False`` at the end of the stream."""
        if self._eof:
            return False
        if self._paused and self._transport is not None:  # there is room: let it in
            self._paused = False
            self._transport.resume_reading()
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter
        return True

    async def read(self, most: int) -> bytes:
        """What has arrived (at most ``most`` bytes), waiting for something; ``b""`` at the end."""
        while self._start == self._end:
            if not await self._more():
                return b""
        taken = min(most, self._end - self._start)
        data = bytes(self._view[self._start : self._start + taken])
        self._start += taken
        if self._paused and self._start == self._end and self._transport is not None:
            self._paused = False  # all taken: read on (a kept connection then sees its close)
            self._transport.resume_reading()
        return data

    async def readline(self) -> bytes:
        """Up to and with the next ``\\n`` (a line of a head); ``b""`` at the end."""
        while (found := self._buffer.find(b"\n", self._start, self._end)) < 0:
            if self._end - self._start > MAX_HEAD:
                raise UpstreamError("a line of the answer's head is too long")
            if not await self._more():
                return b""
        return await self.read(found + 1 - self._start)

    async def readexactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            more = await self.read(size - len(data))
            if not more:
                raise UpstreamError("the service closed the connection mid-answer")
            data += more
        return data


@dataclass
class Answer:
    """A response head, and its body to relay with :meth:`body`."""

    status: int
    headers: list[tuple[str, str]]
    _connection: _Connection
    _pool: ConnectionPool
    _key: tuple[str, str, int]
    _length: int | None
    _chunked: bool
    _keep_alive: bool
    _done: bool = field(default=False)

    async def body(self) -> AsyncIterator[bytes]:
        connection = self._connection
        try:
            if self._chunked:
                async for chunk in _chunks(connection):
                    yield chunk
            elif self._length is not None:
                left = self._length
                while left > 0:  # what has arrived, at once: a slow answer is not held back
                    data = await connection.read(left)
                    if not data:
                        raise UpstreamError("the service closed the connection mid-body")
                    left -= len(data)
                    yield data
            else:
                self._keep_alive = False
                while data := await connection.read(READ_SIZE):
                    yield data
            self._done = True
        finally:
            self.release()

    def release(self) -> None:
        """Give the connection back (kept when the answer was read to its end)."""
        if self._done and self._keep_alive:
            self._pool.put(self._key, self._connection)
        else:
            self._connection.close()


async def _chunks(connection: _Connection) -> AsyncIterator[bytes]:
    while True:
        line = await connection.readline()
        if not line:
            raise UpstreamError("the service closed the connection mid-chunk")
        try:
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        except ValueError:
            raise UpstreamError(f"not a chunk's size: {line[:40]!r}") from None
        if size == 0:
            while (trailer := await connection.readline()) not in (b"\r\n", b"\n", b""):
                del trailer
            return
        left = size
        while left > 0:
            data = await connection.read(left)
            if not data:
                raise UpstreamError("the service closed the connection mid-chunk")
            left -= len(data)
            yield data
        await connection.readexactly(2)


class ConnectionPool:
    """Kept-alive connections to services, by scheme, host and port."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._tls = ssl.create_default_context()
        # a session's own certificate, reached through its tunnel: not checked
        self._tls.check_hostname = False
        self._tls.verify_mode = ssl.CERT_NONE

    def put(self, key: tuple[str, str, int], connection: _Connection) -> None:
        idle = self._idle.setdefault(key, [])
        if connection.usable() and len(idle) < IDLE_PER_HOST:
            connection.reused = True
            idle.append(connection)
        else:
            connection.close()

    async def _connect(self, key: tuple[str, str, int], *, fresh: bool) -> _Connection:
        idle = self._idle.get(key, [])
        while idle and not fresh:
            connection = idle.pop()
            if connection.usable():
                return connection
            connection.close()
        scheme, host, port = key
        try:
            _, connection = await asyncio.wait_for(
                asyncio.get_running_loop().create_connection(
                    _Connection, host, port, ssl=self._tls if scheme == "https" else None
                ),
                CONNECT_SECONDS,
            )
        except (OSError, TimeoutError) as exc:
            raise UpstreamError(f"cannot connect to {host}:{port}: {exc}") from None
        return connection

    def drop(self, host: str, port: int) -> None:
        """Close the idle connections to ``host:port`` (its tunnel is going)."""
        for key in [k for k in self._idle if k[1:] == (host, port)]:
            for connection in self._idle.pop(key):
                connection.close()

    async def close(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    async def request(
        self,
        scheme: str,
        host: str,
        port: int,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: AsyncIterator[bytes] | None,
        length: int | None,
    ) -> Answer:
        """Send the request (a body of ``length`` bytes, or chunked when ``None``) and read the
        answer's head. A kept-alive connection that turns out closed is replaced once, for a
        request without a body."""
        key = (scheme, host, port)
        for attempt in (1, 2):
            connection = await self._connect(key, fresh=attempt == 2)
            try:
                return await self._exchange(key, connection, method, target, headers, body, length)
            except (OSError, UpstreamError) as exc:
                connection.close()
                if attempt == 2 or not connection.reused or body is not None:
                    raise UpstreamError(f"the service at {host}:{port} failed: {exc}") from None
        raise AssertionError("unreachable")

    async def _exchange(
        self,
        key: tuple[str, str, int],
        connection: _Connection,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: AsyncIterator[bytes] | None,
        length: int | None,
    ) -> Answer:
        lines = [f"{method} {target} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in headers]
        if body is not None:
            lines.append(
                f"content-length: {length}" if length is not None else "transfer-encoding: chunked"
            )
        await connection.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if body is not None:
            async for chunk in body:
                if not chunk:
                    continue
                if length is None:
                    await connection.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                else:
                    await connection.write(chunk)
            if length is None:
                await connection.write(b"0\r\n\r\n")
        while True:
            status_line = await connection.readline()
            if not status_line:
                raise UpstreamError("the connection closed before an answer")
            parts = status_line.decode("latin-1").split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
                raise UpstreamError(f"not an HTTP answer: {status_line[:80]!r}")
            status = int(parts[1])
            answer_headers: list[tuple[str, str]] = []
            size = len(status_line)
            while (line := await connection.readline()) not in (b"\r\n", b"\n"):
                if not line:
                    raise UpstreamError("the connection closed in the answer's head")
                size += len(line)
                if size > MAX_HEAD:
                    raise UpstreamError("the answer's head is too large")
                name, _, value = line.decode("latin-1").partition(":")
                answer_headers.append((name.strip().lower(), value.strip()))
            if 100 <= status < 200 and status != 101:
                continue  # 100 Continue and other interim answers
            break
        found = dict(answer_headers)
        chunked = "chunked" in found.get("transfer-encoding", "").lower()
        length_text = found.get("content-length", "")
        no_body = method == "HEAD" or status in (204, 304)
        keep_alive = found.get("connection", "").lower() != "close" and parts[0] != "HTTP/1.0"
        return Answer(
            status=status,
            headers=answer_headers,
            _connection=connection,
            _pool=self,
            _key=key,
            _length=0 if no_body else (int(length_text) if length_text.isdigit() else None),
            _chunked=chunked and not no_body,
            _keep_alive=keep_alive,
        )
