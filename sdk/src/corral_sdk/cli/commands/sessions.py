"""``corral sessions``: interactive sessions (tunnels, Jupyter, desktops...) served through the
platform: create, list, open in a browser, stop."""

from __future__ import annotations

import argparse
import logging
import sys
import time
import webbrowser
from urllib.parse import urlsplit

import msgspec

from corral_sdk.cli.client import ApiClient, client_for
from corral_sdk.cli.commands.cluster import resource_path
from corral_sdk.cli.output import print_json, print_table
from corral_sdk.errors import Invalid, ProviderError
from corral_sdk.wire import SessionCreate, SessionInfo, SessionList

__all__ = ["connect", "create", "ls", "open_session", "stop"]

log = logging.getLogger("corral")

WAIT_SECONDS = 600.0
SETTLED = frozenset({"running", "failed", "stopped"})


def _print(sessions: list[SessionInfo]) -> None:
    print_table(
        ["URI", "TYPE", "STATUS", "TARGET", "REMOTE HOST", "REMOTE PORT", "RUN", "URL"],
        [
            [
                s.uri,
                s.type,
                s.status + (f" ({s.reason})" if s.reason and s.status != "running" else ""),
                s.target,
                s.remote_host if s.type != "link" else "-",
                s.remote_port or "-",
                s.run_id or "-",
                s.open_url or "-",
            ]
            for s in sessions
        ],
    )


def ls(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        query = {"type": args.type} if args.type else {}
        raw = client.get("/api/sessions", msgspec.Raw, **query)
    if args.output == "json":
        print_json(raw)
        return 0
    _print(msgspec.json.decode(raw, type=SessionList).items)
    return 0


def _wait(client: ApiClient, path: str) -> SessionInfo:
    deadline = time.monotonic() + WAIT_SECONDS
    shown = ""
    while True:
        session = client.get(path, SessionInfo)
        if session.status in SETTLED:
            return session
        if session.status != shown:
            shown = session.status
            log.info(
                "%s is %s%s", session.name, shown, f": {session.reason}" if session.reason else ""
            )
        if time.monotonic() > deadline:
            raise ProviderError(
                f"{session.name} is still {session.status} after {WAIT_SECONDS:g} s"
            )
        time.sleep(1.0)


def create(args: argparse.Namespace) -> int:
    options: dict[str, object] = {}
    if args.directory:
        options["directory"] = args.directory
    for item in args.option or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise Invalid(f"--option {item!r}: expected key=value", field="option")
        options[key] = value
    body = SessionCreate(
        name=args.name or "",
        type=args.type,
        target=args.target,
        remote_host=args.remote_host,
        remote_port=args.remote_port,
        slug=args.slug or "",
        options=options,
    )
    with client_for(args) as client:
        made = client.post("/api/sessions", SessionInfo, body)
        path = resource_path(client, "sessions", made.uri)
        if args.wait or args.open:
            made = _wait(client, path)
    if args.output == "json":
        print_json(made)
    else:
        _print([made])
    if made.status == "failed":
        log.error("%s failed: %s", made.name, made.reason)
        return 1
    if args.open and made.open_url:
        _open(made.open_url)
    return 0


def _open(url: str) -> None:
    try:
        opened = webbrowser.open(url)
    except webbrowser.Error:
        opened = False
    if not opened:
        sys.stdout.write(url + "\n")


def open_session(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        session = client.get(resource_path(client, "sessions", args.name), SessionInfo)
    if session.status != "running" or not session.open_url:
        log.error(
            "%s is %s%s",
            session.name,
            session.status,
            f": {session.reason}" if session.reason else "",
        )
        return 1
    if args.print:
        sys.stdout.write(session.open_url + "\n")
    else:
        _open(session.open_url)
    return 0


def stop(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        client.delete(resource_path(client, "sessions", args.name))
    log.info("stopped and deleted %s", args.name)
    return 0


def connect(args: argparse.Namespace) -> int:
    """A local port onto a running session: a desktop's VNC (a VNC client attaches to it), or a
    tunnel's port on its cluster. Ctrl+C disconnects; the session goes on."""
    from corral_sdk.cli.client import resolve
    from corral_sdk.cli.commands.forward import Listener, run_listeners
    from corral_sdk.cli.commands.ssh import connect_url

    with client_for(args) as client:
        session = client.get(resource_path(client, "sessions", args.name), SessionInfo)
    if session.status != "running":
        log.error("%s is %s: it must be running", session.name, session.status)
        return 1
    target = resolve(args.platform_host, args.context)
    headers = {"Authorization": f"Bearer {target.credential}"} if target.credential else {}
    if session.type == "desktop":
        parts = urlsplit(target.server)
        scheme = "wss" if parts.scheme == "https" else "ws"
        path = f"{parts.path.rstrip('/')}/sessions/{session.owner}/{session.name}/websockify"
        listener = Listener(
            bind="127.0.0.1", port=args.port, url=f"{scheme}://{parts.netloc}{path}",
            label=f"the VNC server of {session.uri}", subprotocols=("binary",),
        )  # fmt: skip
    elif session.type == "tunnel" and session.target not in ("user-workspace", "workspace"):
        listener = Listener(
            bind="127.0.0.1",
            port=args.port,
            url=connect_url(
                target.server,
                {
                    "target": session.target,
                    "mode": "tcp",
                    "host": session.remote_host,
                    "port": session.remote_port,
                },
            ),
            label=f"{session.remote_host}:{session.remote_port} on {session.target}",
        )
    else:
        log.error(
            "%s is a %s session%s: open it in a browser (corral sessions open %s)",
            session.name, session.type,
            " in the workspace" if session.type == "tunnel" else "", session.name,
        )  # fmt: skip
        return 2
    return run_listeners([listener], headers, args.keepalive)
