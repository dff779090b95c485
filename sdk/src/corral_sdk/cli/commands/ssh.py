"""``corral ssh``: a shell or a command on a cluster, or a ProxyCommand, through the platform.

The CLI only ever talks HTTPS/WSS to Corral (``GET /api/ssh/connect``, see the API docs):

- ``corral ssh CLUSTER [COMMAND...]``: Corral signs in to the cluster with your platform key
  (which never leaves Corral) and relays the session; the remote exit status is ours.
- ``corral ssh --proxy-command %h``: a raw byte relay to the cluster's sshd on stdin/stdout, for
  ``ssh -o ProxyCommand='corral ssh --proxy-command %h' user@cluster`` and ``scp -O``; OpenSSH
  then signs in with your own key (registered with ``corral ssh-keys``, which clusters learn
  through ``corral ssh-public-keys``).

Exit status: the remote command's, or 255 when the connection could not be made (like OpenSSH).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from corral_sdk.cli.client import resolve

__all__ = ["ssh"]

CONNECTION_FAILED = 255
STDOUT, STDERR = 1, 2


def connect_url(server: str, query: dict[str, Any]) -> str:
    """The WebSocket URL of `GET /api/ssh/connect` on `server` with `query`."""
    parts = urlsplit(server)
    scheme = "wss" if parts.scheme == "https" else "ws"
    path = parts.path.rstrip("/") + "/api/ssh/connect"
    clean = {k: v for k, v in query.items() if v is not None}
    return urlunsplit((scheme, parts.netloc, path, urlencode(clean), ""))


def _fail(message: str) -> int:
    sys.stderr.write(f"[ERROR] {message}\n")
    return CONNECTION_FAILED


def _connect(args: argparse.Namespace, query: dict[str, Any]) -> Any:
    from websockets.exceptions import InvalidStatus, WebSocketException
    from websockets.sync.client import connect

    target = resolve(args.platform_host, args.context)
    headers = {"Authorization": f"Bearer {target.credential}"} if target.credential else {}
    try:
        return connect(
            connect_url(target.server, query),
            additional_headers=headers,
            max_size=None,
            open_timeout=30,
            ping_interval=args.keepalive or None,
            compression=None,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        hint = " (run `corral auth login`, or set PW_API_KEY)" if status in (401, 403) else ""
        raise _Failed(f"Corral refused the connection: HTTP {status}{hint}") from None
    except (OSError, WebSocketException, TimeoutError) as exc:
        raise _Failed(f"cannot reach Corral at {target.server}: {exc}") from None


class _Failed(Exception):
    pass


def _error_of(text: str) -> str | None:
    try:
        message = json.loads(text)
    except ValueError:
        return None
    if message.get("type") == "error":
        return str(message.get("message", "the relay failed"))
    return None


def _pump_stdin(ws: Any, *, eof_message: str | None) -> None:
    """Send standard input as binary frames until it ends."""
    fd = sys.stdin.fileno()
    try:
        while data := os.read(fd, 65536):
            ws.send(data)
        if eof_message is not None:
            ws.send(eof_message)
    except Exception:  # noqa: S110 - the connection closed under us; the main loop reports it
        pass


@contextlib.contextmanager
def _raw_terminal() -> Iterator[None]:
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _proxy(args: argparse.Namespace) -> int:
    query = {"target": args.target, "mode": "tcp"}
    try:
        ws = _connect(args, query)
    except _Failed as exc:
        return _fail(str(exc))
    with ws:
        threading.Thread(
            target=_pump_stdin, args=(ws,), kwargs={"eof_message": None}, daemon=True
        ).start()
        out = sys.stdout.buffer
        try:
            for message in ws:
                if isinstance(message, bytes):
                    out.write(message)
                    out.flush()
                elif (error := _error_of(message)) is not None:
                    return _fail(error)
        except Exception as exc:  # the relay dropped: OpenSSH reports the broken connection
            return _fail(f"the connection through Corral dropped: {exc}")
    return 0


def _session(args: argparse.Namespace) -> int:
    command = " ".join(args.command) if args.command else None  # as OpenSSH joins them
    interactive = command is None and sys.stdin.isatty() and sys.stdout.isatty()
    size = os.get_terminal_size() if interactive else None
    query: dict[str, Any] = {"target": args.target, "mode": "exec", "command": command}
    if interactive and size is not None:
        query.update(
            term=os.environ.get("TERM", "xterm-256color"), cols=size.columns, rows=size.lines
        )
    try:
        ws = _connect(args, query)
    except _Failed as exc:
        return _fail(str(exc))
    status = CONNECTION_FAILED
    with ws, _raw_terminal() if interactive else contextlib.nullcontext():
        if interactive:

            def resize(*_: Any) -> None:
                size = os.get_terminal_size()
                with contextlib.suppress(Exception):
                    ws.send(
                        json.dumps({"type": "resize", "cols": size.columns, "rows": size.lines})
                    )

            signal.signal(signal.SIGWINCH, resize)
        threading.Thread(
            target=_pump_stdin,
            args=(ws,),
            kwargs={"eof_message": json.dumps({"type": "eof"})},
            daemon=True,
        ).start()
        streams = {STDOUT: sys.stdout.buffer, STDERR: sys.stderr.buffer}
        try:
            for message in ws:
                if isinstance(message, bytes):
                    stream = streams.get(message[0], sys.stdout.buffer)
                    stream.write(message[1:])
                    stream.flush()
                    continue
                control = json.loads(message)
                if control.get("type") == "exit":
                    status = int(control.get("status", 0))
                elif control.get("type") == "error":
                    return _fail(str(control.get("message")))
        except Exception as exc:
            return _fail(f"the connection through Corral dropped: {exc}")
    return status


def ssh(args: argparse.Namespace) -> int:
    if args.proxy_command:
        if args.command:
            return _fail("--proxy-command takes only the host (%h), no command")
        return _proxy(args)
    return _session(args)
