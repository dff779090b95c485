"""The proxy's HTTP/1.1 relay (``corral_api.http1``) against a scripted service: answers framed
by length, by chunks and by the connection's close arrive byte for byte (over TLS too), also
when they are larger than the relay's buffer and read slowly (reading the service pauses and
resumes); kept-alive connections are reused, and broken or oversized answers are
``UpstreamError``. On both event loops the server may run on (asyncio's and uvloop's)."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from corral_api.http1 import MAX_HEAD, READ_SIZE, ConnectionPool, UpstreamError, _Connection

pytestmark = pytest.mark.anyio


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> object:
    return request.param


def pattern(size: int) -> bytes:
    """Bytes that differ from one position to the next (a reordered or lost piece shows)."""
    block = bytes(range(251))  # a prime length: no alignment with the buffer
    return (block * (size // len(block) + 1))[:size]


@dataclass
class Request:
    head: list[str]
    body: bytes


Reply = Callable[[Request, asyncio.StreamWriter], Awaitable[bool]]
"""Writes the answer; ``False`` closes the connection."""


@dataclass
class Service:
    port: int
    requests: list[Request] = field(default_factory=list)
    connections: int = 0


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    head: list[str] = []
    while (line := await reader.readline()) not in (b"\r\n", b""):
        head.append(line.decode("latin-1").rstrip("\r\n"))
    if not head:
        return None
    headers = dict(h.lower().split(": ", 1) for h in head[1:])
    body = b""
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while size := int((await reader.readline()).strip(), 16):
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        await reader.readexactly(2)
    return Request(head, body)


def _tls_context(directory: Path) -> ssl.SSLContext:
    """A server context with a self-signed certificate (the relay does not check it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "app")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    return context


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Service]]]:
    servers: list[asyncio.Server] = []

    async def start(reply: Reply, *, tls: bool = False) -> Service:
        service = Service(0)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            service.connections += 1
            try:
                while (request := await _read_request(reader)) is not None:
                    service.requests.append(request)
                    if not await reply(request, writer):
                        break
                    await writer.drain()
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        context = _tls_context(tmp_path) if tls else None
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
        servers.append(server)
        service.port = server.sockets[0].getsockname()[1]
        return service

    yield start
    for server in servers:
        server.close()


async def _get(
    pool: ConnectionPool,
    service: Service,
    *,
    pause_every: int = 0,
    target: str = "/",
    scheme: str = "http",
) -> tuple[int, bytes]:
    """The answer's status and body; with ``pause_every``, a pause after every so many of its
    pieces (the service's bytes pile up meanwhile: the relay's buffer fills)."""
    answer = await pool.request(
        scheme, "127.0.0.1", service.port, "GET", target, [("host", "app")], None, None
    )
    pieces = []
    async for piece in answer.body():
        pieces.append(piece)
        if pause_every and len(pieces) % pause_every == 0:
            await asyncio.sleep(0.005)
    return answer.status, b"".join(pieces)


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_length_framed_answer_larger_than_the_buffer_read_slowly_on_a_kept_connection(
    serve: Callable[..., Awaitable[Service]], scheme: str
) -> None:
    sent = pattern(3 * READ_SIZE + 12345)

    async def reply(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(sent) + sent)
        return True

    service = await serve(reply, tls=scheme == "https")
    pool = ConnectionPool()
    try:
        assert await _get(pool, service, pause_every=1, scheme=scheme) == (200, sent)
        assert await _get(pool, service, scheme=scheme) == (200, sent)
    finally:
        await pool.close()
    assert service.connections == 1  # the second request reused the first's connection


async def test_a_chunked_answer_with_extensions_and_trailers_then_the_next_answer(
    serve: Callable[..., Awaitable[Service]],
) -> None:
    # large chunks across the buffer's end; then many small ones behind long lines (extensions),
    # read while the buffer is full: a line cut by the buffer's end is moved to its front
    sizes = [1, READ_SIZE - 3, READ_SIZE + 7, 5000, 2 * READ_SIZE] + [10] * 800
    parts = [pattern(size) for size in sizes]

    async def reply(request: Request, writer: asyncio.StreamWriter) -> bool:
        if request.head[0].startswith("GET /small"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            return True
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in parts:
            extension = b";pad=" + b"p" * 2000 if len(part) == 10 else b";name=value"
            writer.write(b"%x%s\r\n" % (len(part), extension) + part + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\nX-Trailer: yes\r\n\r\n")
        return True

    service = await serve(reply)
    pool = ConnectionPool()
    try:
        assert await _get(pool, service, pause_every=40) == (200, b"".join(parts))
        assert await _get(pool, service, target="/small") == (200, b"ok")
    finally:
        await pool.close()
    assert service.connections == 1


async def test_an_answer_until_the_connection_closes_is_not_kept(
    serve: Callable[..., Awaitable[Service]],
) -> None:
    sent = pattern(READ_SIZE + 99)

    async def reply(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\n\r\n" + sent)
        return False

    service = await serve(reply)
    pool = ConnectionPool()
    try:
        assert await _get(pool, service) == (200, sent)
        assert await _get(pool, service) == (200, sent)
    finally:
        await pool.close()
    assert service.connections == 2


async def test_request_bodies_by_length_and_by_chunks_and_an_interim_answer(
    serve: Callable[..., Awaitable[Service]],
) -> None:
    async def reply(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        return True

    async def body(data: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(data), 70000):
            yield data[start : start + 70000]

    sent = pattern(READ_SIZE * 2 + 1)
    service = await serve(reply)
    pool = ConnectionPool()
    try:
        for length in (len(sent), None):
            answer = await pool.request(
                "http", "127.0.0.1", service.port, "POST", "/", [], body(sent), length
            )
            assert answer.status == 201
            assert [chunk async for chunk in answer.body()] == []
    finally:
        await pool.close()
    assert [r.body == sent for r in service.requests] == [True, True]
    assert "transfer-encoding: chunked" in service.requests[1].head


async def test_a_kept_connection_the_service_closed_is_replaced(
    serve: Callable[..., Awaitable[Service]],
) -> None:
    async def reply(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        return False  # closes, although the answer said nothing of it

    service = await serve(reply)
    pool = ConnectionPool()
    try:
        assert await _get(pool, service) == (200, b"ok")
        await asyncio.sleep(0.05)
        assert await _get(pool, service) == (200, b"ok")
    finally:
        await pool.close()
    assert service.connections == 2


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * (MAX_HEAD + 10), id="long-line"),
        pytest.param(b"HTTP/1.1 200 OK\r\n" + b"X-Many: value\r\n" * 6000 + b"\r\n", id="big-head"),
        pytest.param(b"SSH-2.0-OpenSSH_9.6\r\n", id="not-http"),
        pytest.param(b"", id="closed"),
    ],
)
async def test_what_is_not_an_answer_is_an_upstream_error(
    serve: Callable[..., Awaitable[Service]], answer: bytes
) -> None:
    async def reply(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer)
        return False

    service = await serve(reply)
    pool = ConnectionPool()
    try:
        with pytest.raises(UpstreamError):
            await _get(pool, service)
    finally:
        await pool.close()


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"Content-Length: 100000\r\n\r\n" + pattern(5000), id="length"),
        pytest.param(b"Transfer-Encoding: chunked\r\n\r\n10\r\nshort", id="chunk"),
        pytest.param(b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", id="chunk-size"),
    ],
)
async def test_an_answer_cut_short_is_an_upstream_error(
    serve: Callable[..., Awaitable[Service]], answer: bytes
) -> None:
    async def reply(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\n" + answer)
        return False

    service = await serve(reply)
    pool = ConnectionPool()
    try:
        with pytest.raises(UpstreamError):
            await _get(pool, service)
    finally:
        await pool.close()


class _Transport:
    """What the relay's protocol asks of a transport, noted."""

    def __init__(self) -> None:
        self.reading = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return False


async def test_a_full_buffer_pauses_reading_until_it_is_emptied() -> None:
    """Reading resumes once everything is taken, not only when more is awaited: a kept
    connection whose last answer filled the buffer still notices the service closing it."""
    connection = _Connection()
    transport = _Transport()
    connection.connection_made(transport)  # type: ignore[arg-type]
    sent = pattern(READ_SIZE)
    room = connection.get_buffer(-1)
    room[: len(sent)] = sent
    connection.buffer_updated(len(sent))
    assert not transport.reading
    assert await connection.read(1000) == sent[:1000]
    assert not transport.reading and not connection.usable()
    assert await connection.read(READ_SIZE) == sent[1000:]
    assert transport.reading and connection.usable()
