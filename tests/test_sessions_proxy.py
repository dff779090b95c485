"""Sessions through the platform's reverse proxy, against a real ``corral up``: a tunnel session
to an app in the owner's workspace, opened over HTTP and WebSocket; another user gets 404 until
the session is shared with their group; the app never sees the platform's cookie or
``Authorization`` header (a backend that records what it receives says so)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets

from corral_core.testing import api_key, free_port
from tests.test_cli_identity import Cli, Server, admin, cli, server  # noqa: F401 (fixtures)

PASSWORD = "Session-Passw0rd!"


class Recorder:
    """An app that records every request's headers: HTTP answers with them as JSON, and
    WebSocket echoes what it is sent."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.seen.append({"path": scope["path"], **headers})
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept", "subprotocol": "echo"})
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                await send(
                    {"type": "websocket.send", "text": "echo " + (message.get("text") or "")}
                )
        extra: list[tuple[bytes, bytes]] = []
        status = 200
        if scope["path"] == "/redirect":
            status, extra = 302, [(b"location", b"/landing")]
        if scope["path"] == "/cookie":
            extra = [
                (b"set-cookie", b"app=1; Path=/"),
                (b"set-cookie", b"corral_session=stolen; Path=/"),
            ]
        body = json.dumps({"path": scope["path"], "headers": headers}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), *extra],
            }
        )
        await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def recorder() -> Iterator[tuple[Recorder, int]]:
    app, port = Recorder(), free_port()
    backend = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    thread = threading.Thread(target=backend.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not backend.started:
        assert time.monotonic() < deadline, "the recorder did not start"
        time.sleep(0.05)
    yield app, port
    backend.should_exit = True
    thread.join(timeout=10)


def key(server: Server, username: str) -> dict[str, str]:  # noqa: F811
    with httpx.Client(base_url=server.url) as client:
        signed_in = client.post(
            "/api/auth/login", json={"username": username, "password": PASSWORD}
        )
        assert signed_in.status_code == 200, signed_in.text
        made = client.post("/api/auth/apikeys", json={"name": "proxy"})
        assert made.status_code == 201, made.text
        return {"Authorization": f"Bearer {made.json()['secret']}"}


def wait_running(client: httpx.Client, headers: dict[str, str], name: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        seen = client.get(f"/api/resources/alice/{name}", headers=headers).json()
        if seen["observed_state"] in ("running", "failed"):
            return dict(seen)
        assert time.monotonic() < deadline, seen
        time.sleep(0.2)


def test_a_tunnel_session_is_served_behind_the_platforms_sign_in(
    admin: Cli,  # noqa: F811
    server: Server,  # noqa: F811
    recorder: tuple[Recorder, int],
) -> None:
    app, port = recorder
    admin.ok("groups", "create", "team")
    for user in ("alice", "bob"):
        admin.ok("users", "create", user, "--password-stdin", input=PASSWORD + "\n")
    admin.ok("groups", "add-member", "team", "bob")
    alice, bob = key(server, "alice"), key(server, "bob")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        made = client.post(
            "/api/resources",
            json={
                "kind": "session",
                "name": "app1",
                "spec": {"type": "tunnel", "target": "user-workspace", "remote_port": port},
                "desired_state": "running",
            },
            headers=alice,
        )
        assert made.status_code == 201, made.text
        seen = wait_running(client, alice, "app1")
        assert seen["observed_state"] == "running", seen

        # through the proxy, as alice, with the platform's cookie and a cookie of the app's
        opened = client.get(
            "/sessions/alice/app1/hello?x=1",
            headers={**alice, "Cookie": "corral_session=secret-cookie; app=kept"},
        )
        assert opened.status_code == 200, opened.text
        got = opened.json()
        assert got["path"] == "/hello"
        assert "authorization" not in got["headers"]
        assert got["headers"].get("cookie") == "app=kept"
        assert got["headers"]["x-forwarded-prefix"] == "/sessions/alice/app1"
        assert all("secret-cookie" not in v and "Bearer" not in v for v in app.seen[-1].values())

        # a redirect and cookies of an app served at its root stay under the session's path
        moved = client.get("/sessions/alice/app1/redirect", headers=alice)
        assert (
            moved.status_code == 302 and moved.headers["location"] == "/sessions/alice/app1/landing"
        )
        cookies = client.get("/sessions/alice/app1/cookie", headers=alice)
        set_cookies = cookies.headers.get_list("set-cookie")
        assert set_cookies == ["app=1; Path=/sessions/alice/app1/"], set_cookies

        # no credential: 401 (a browser is sent to sign in); bob: 404, until shared with team
        assert client.get("/sessions/alice/app1/").status_code == 401
        browser = client.get("/sessions/alice/app1/", headers={"Accept": "text/html"})
        assert browser.status_code == 302 and browser.headers["location"].startswith("/login")
        assert client.get("/sessions/alice/app1/", headers=bob).status_code == 404
        shared = client.put(
            "/api/resources/alice/app1/grants/team", json={"level": "open"}, headers=alice
        )
        assert shared.status_code == 200, shared.text
        assert client.get("/sessions/alice/app1/", headers=bob).status_code == 200

        # the proxy keeps an allowed caller for a moment (ACCESS_SECONDS): no longer shared,
        # bob is refused again soon after
        unshared = client.delete("/api/resources/alice/app1/grants/team", headers=alice)
        assert unshared.status_code == 204, unshared.text
        deadline = time.monotonic() + 15
        while (again := client.get("/sessions/alice/app1/", headers=bob)).status_code != 404:
            assert again.status_code == 200 and time.monotonic() < deadline, again.text
            time.sleep(0.2)

    async def talk() -> str:
        async with websockets.connect(
            f"ws{server.url[4:]}/sessions/alice/app1/ws",
            additional_headers=alice,
            subprotocols=["echo"],  # type: ignore[list-item]
        ) as socket:
            assert socket.subprotocol == "echo"
            await socket.send("hello")
            return str(await socket.recv())

    assert asyncio.run(talk()) == "echo hello"
    ws_seen = app.seen[-1]
    assert ws_seen["path"] == "/ws" and "authorization" not in ws_seen


def test_sessions_from_the_cli(admin: Cli, recorder: tuple[Recorder, int]) -> None:  # noqa: F811
    _, port = recorder
    made = admin.json(
        "sessions", "create", "--type", "tunnel", "--name", "cli1", "--remote-port", str(port),
        "--slug", "hello", "--wait",
    )  # fmt: skip
    assert made["status"] == "running", made
    assert made["open_url"].endswith("/sessions/admin/cli1/hello"), made

    def mine() -> list[str]:
        items = admin.json("sessions", "ls")["items"]
        return [s["name"] for s in items if s["owner"] == "admin"]

    assert mine() == ["cli1"]
    assert admin.ok("sessions", "open", "cli1", "--print").strip() == made["open_url"]
    refused = admin("sessions", "create", "--type", "tunnel", "--name", "cli2")
    assert refused.returncode == 2 and "remote_port" in refused.stderr, refused.stderr
    admin.ok("sessions", "stop", "cli1")
    assert mine() == []


LEGACY = r"""jobs:
  main:
    steps:
      - name: Interactive service
        run: |
          write() {
            printf '{"URL": "/me", "PORT": "%s", "SLUG": "\\\\", "JOB_STATUS": " %s ",' \
              ${{ inputs.port }} "$1" > service.json.tmp
            echo ' "ERROR_MESSAGE": ""}' >> service.json.tmp && mv service.json.tmp service.json
          }
          write PENDING
          mkdir -p site && echo "legacy app" > site/index.html
          sleep 4
          cd site && python3 -m http.server ${{ inputs.port }} --bind 127.0.0.1 &
          sleep 1
          write R
          wait
        cleanup: echo "the cancel script ran"
'on':
  execute:
    inputs:
      port:
        type: number
"""


def test_a_legacy_service_json_session_of_a_run(admin: Cli, tmp_path: Path) -> None:  # noqa: F811
    """§10: the run's service.json: PENDING shows a loading page with PENDING, R proxies to
    PORT; cancelling the run runs its cancel script (a cleanup step)."""
    flow = tmp_path / "legacy.yaml"
    flow.write_text(LEGACY)
    admin.ok("workflows", "create", "legacy", "--yaml", str(flow))
    run = admin.json("workflows", "run", "legacy", "-i", f"port={free_port()}")
    headers = {"Authorization": f"Bearer {api_key(admin.server.url)}"}
    with httpx.Client(base_url=admin.server.url, headers=headers, timeout=30) as client:
        deadline = time.monotonic() + 30
        while (found := client.get(f"/api/runs/{run['id']}/session")).status_code == 404:
            assert time.monotonic() < deadline, found.text
            time.sleep(0.3)
        session = found.json()
        assert session["type"] == "service-json", session
        path = f"/sessions/admin/{session['name']}/"
        while "PENDING" not in (loading := client.get(path, headers={"Accept": "text/html"})).text:
            assert time.monotonic() < deadline, loading.text
            time.sleep(0.2)
        assert loading.status_code == 503 and "refresh" in loading.text
        while (page := client.get(path)).status_code != 200:
            assert time.monotonic() < deadline + 30, page.text
            time.sleep(0.5)
        assert page.text.strip() == "legacy app"
    admin.ok("workflows", "runs", "cancel", str(run["id"]))
    logs = admin("workflows", "runs", "logs", "-f", str(run["id"]))
    assert "the cancel script ran" in logs.stdout, logs.stdout
