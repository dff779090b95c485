"""``corral forward -L [bind:]port:host:hostport [-L ...] CLUSTER``: local ports that reach
``host:hostport`` as seen from the cluster, through the platform (``GET /api/ssh/connect`` in
``tcp`` mode: Corral opens the stream from the cluster's login host, as you).

Each local connection gets its own stream, so when the cluster's sshd restarts (or Corral's
connection to it drops) only the connections open at that moment break: the local ports stay
open, and the next connection goes through as soon as the cluster answers again (Corral
reconnects). Runs until Ctrl+C (exit 0)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import re
import sys
from dataclasses import dataclass
from typing import Any

from corral_sdk.cli.client import resolve
from corral_sdk.cli.commands.ssh import connect_url
from corral_sdk.errors import Invalid

__all__ = ["Listener", "forward", "parse_spec", "run_listeners", "serve_listeners"]

log = logging.getLogger("corral")

_SPEC = re.compile(
    r"(?:(?P<bind>\[[^\]]+\]|[^:]+):)?(?P<port>\d+):(?P<host>\[[^\]]+\]|[^:]+):(?P<hostport>\d+)"
)


@dataclass(frozen=True)
class Spec:
    bind: str
    port: int
    host: str
    host_port: int


def parse_spec(text: str) -> Spec:
    """``[bind_address:]port:host:hostport``, as ``ssh -L`` takes it."""
    found = _SPEC.fullmatch(text.strip())
    if not found:
        raise Invalid(f"-L {text!r}: expected [bind_address:]port:host:hostport", field="local")
    port, host_port = int(found["port"]), int(found["hostport"])
    if not (0 <= port < 65536 and 0 < host_port < 65536):
        raise Invalid(f"-L {text!r}: a port is out of range", field="local")
    return Spec(
        bind=(found["bind"] or "127.0.0.1").strip("[]"),
        port=port,
        host=found["host"].strip("[]"),
        host_port=host_port,
    )


async def _relay(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    url: str,
    headers: dict[str, str],
    keepalive: int,
    subprotocols: list[str] | None = None,
) -> None:
    import websockets

    try:
        ws = await websockets.connect(
            url,
            additional_headers=headers,
            subprotocols=subprotocols,  # type: ignore[arg-type]
            max_size=None,
            compression=None,
            open_timeout=30,
            ping_interval=keepalive or None,
        )
    except Exception as exc:
        log.warning("could not reach the cluster through Corral: %s", exc)
        writer.close()
        return

    async def upstream() -> None:
        while data := await reader.read(65536):
            await ws.send(data)

    async def downstream() -> None:
        async for message in ws:
            if isinstance(message, bytes):
                writer.write(message)
                await writer.drain()
            else:
                with contextlib.suppress(ValueError):
                    error = json.loads(message)
                    if error.get("type") == "error":
                        log.warning("%s", error.get("message", "the stream failed"))
                        return

    tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await ws.close()
        writer.close()


@dataclass(frozen=True)
class Listener:
    """A local port whose every connection becomes a WebSocket stream to ``url``."""

    bind: str
    port: int
    url: str
    label: str
    """What it reaches, for the line printed when it listens."""
    subprotocols: tuple[str, ...] = ()


async def serve_listeners(
    listeners: list[Listener], headers: dict[str, str], keepalive: int
) -> None:
    """Listen on every port until cancelled; print ``forwarding <addr> -> <label>`` for each."""
    servers = []
    for listener in listeners:

        def handle(
            reader: asyncio.StreamReader,
            writer: asyncio.StreamWriter,
            listener: Listener = listener,
        ) -> Any:
            return _relay(
                reader,
                writer,
                listener.url,
                headers,
                keepalive,
                list(listener.subprotocols) or None,
            )

        server = await asyncio.start_server(handle, listener.bind, listener.port)
        bound = server.sockets[0].getsockname()
        sys.stdout.write(f"forwarding {bound[0]}:{bound[1]} -> {listener.label}\n")
        sys.stdout.flush()
        servers.append(server)
    await asyncio.gather(*(s.serve_forever() for s in servers))


def run_listeners(listeners: list[Listener], headers: dict[str, str], keepalive: int) -> int:
    """:func:`serve_listeners` until Ctrl+C (0), or 1 when a port cannot be listened on."""
    try:
        asyncio.run(serve_listeners(listeners, headers, keepalive))
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        sys.stderr.write(f"[ERROR] cannot listen: {exc}\n")
        return 1
    return 0


def forward(args: argparse.Namespace) -> int:
    specs = [parse_spec(text) for text in args.local]
    target = resolve(args.platform_host, args.context)
    headers = {"Authorization": f"Bearer {target.credential}"} if target.credential else {}
    listeners = [
        Listener(
            bind=spec.bind,
            port=spec.port,
            url=connect_url(
                target.server,
                {"target": args.target, "mode": "tcp", "host": spec.host, "port": spec.host_port},
            ),
            label=f"{spec.host}:{spec.host_port} on {args.target}",
        )
        for spec in specs
    ]
    return run_listeners(listeners, headers, args.keepalive)
