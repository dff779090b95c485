"""The vscode type for real, in a local shell whose HOME is the test's:

- a real code-server (4.100.3 from npm, installed by contrib/lab/vscode.sh): its page, a
  static file and its WebSocket, sent as Corral's proxy sends them (the public ``Host``,
  ``Origin`` and ``X-Forwarded-*``, plus the endpoint's headers), and refused without the
  endpoint's cookie;
- openvscode-server's part is played by VS Code's own server as code-server ships it
  (``lib/vscode/out/server-main.js``, which is what openvscode-server runs too, with
  code-server's patches): openvscode-server itself only ships as a GitHub release, which this
  machine cannot download. It checks the connection token: the page with the ``vscode-tkn``
  cookie, the redirect that sets that cookie, and the token the web client must present in its
  WebSocket protocol;
- a target with neither server, told what to install at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import struct
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from corral_vscode.vscode import VSCode
from vscode_testkit import BASE, exec_script, new_spec, runner_with
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from corral_sdk.errors import ProviderError
from corral_sdk.providers.session import (
    SessionEndpoint,
    SessionSpec,
    SessionState,
    SessionStatus,
)
from corral_sdk.testing import RecordingLog
from corral_sdk.testing.shell import ShellRunner

PUBLIC = "corral.example.org"
"""The platform's public host, as the browser and so the proxy's requests name it."""
RUNNING_WITHIN = 30.0


def session_dir(runner: ShellRunner, session: SessionSpec) -> Path:
    return runner.home / ".corral" / "sessions" / session.session_id


def group(pgid: int) -> list[int]:
    """The live (not zombie) processes of a process group."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry.name))
    return found


def command_lines(pgid: int) -> str:
    """The command lines of a process group's processes, as anyone on the host can read them."""
    return "\n".join(Path(f"/proc/{pid}/cmdline").read_text() for pid in group(pgid))


async def until_running(vscode: VSCode, session: SessionSpec, runner: ShellRunner) -> SessionStatus:
    deadline = time.monotonic() + RUNNING_WITHIN
    status = await vscode.start(session, runner=runner, log=RecordingLog())
    while status.state is not SessionState.RUNNING:
        assert status.state is SessionState.STARTING, status
        assert time.monotonic() < deadline, f"not running within {RUNNING_WITHIN} s: {status}"
        await asyncio.sleep(0.3)
        status = await vscode.status(session, status.data, runner=runner)
    return status


def proxied(
    endpoint: SessionEndpoint, rest: str, *, cookie: bool = True
) -> tuple[str, dict[str, str]]:
    """The request Corral's proxy makes for ``<base path><rest>``: to ``<endpoint path><rest>``
    with the browser's public host and origin, ``X-Forwarded-*``, and the endpoint's headers
    (the service's credentials) unless ``cookie`` is false."""
    headers = {
        "Host": PUBLIC,
        "Origin": f"https://{PUBLIC}",
        "X-Forwarded-For": "192.0.2.7",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": PUBLIC,
        "X-Forwarded-Prefix": BASE.rstrip("/"),
    }
    if cookie:
        headers.update(endpoint.headers)
    return f"http://127.0.0.1:{endpoint.port}{endpoint.path}{rest}", headers


def backend_rest(public_url: str) -> str:
    """What follows the base path in a public URL (what the proxy forwards)."""
    path = public_url.removeprefix(f"https://{PUBLIC}")
    assert path.startswith(BASE), public_url
    return path[len(BASE) :]


def frame(kind: int, data: bytes) -> bytes:
    """A message of VS Code's remote protocol: type, id, ack, length, data."""
    return struct.pack(">BIII", kind, 0, 0, len(data)) + data


async def remote_handshake(
    endpoint: SessionEndpoint, token: str, *, cookie: bool = True, origin: str = ""
) -> dict[str, Any]:
    """Open VS Code's remote connection as the web client does, through the proxy, and send
    its first control message (``auth`` with ``token``, which the web client reads from its
    ``vscode-tkn`` cookie); return the server's control answer (``sign``, or ``error``)."""
    url, headers = proxied(
        endpoint,
        f"?reconnectionToken={uuid.uuid4()}&reconnection=false&skipWebSocketFrames=false",
        cookie=cookie,
    )
    origin = origin or headers.pop("Origin")
    headers.pop("Origin", None)
    async with connect(
        url.replace("http://", "ws://"),
        additional_headers=list(headers.items()),
        origin=origin,  # type: ignore[arg-type]
        proxy=None,
        open_timeout=10,
        close_timeout=1,  # VS Code's server does not answer a closing handshake
    ) as ws:
        await ws.send(frame(2, json.dumps({"type": "auth", "auth": token, "data": "x"}).encode()))
        buffer = b""
        while True:
            message = await asyncio.wait_for(ws.recv(), 10)
            buffer += message if isinstance(message, bytes) else message.encode()
            while len(buffer) >= 13:
                kind, _, _, length = struct.unpack(">BIII", buffer[:13])
                if len(buffer) < 13 + length:
                    break
                data, buffer = buffer[13 : 13 + length], buffer[13 + length :]
                if kind == 2:
                    answer: dict[str, Any] = json.loads(data)
                    return answer


async def stop_leaving_nothing(
    vscode: VSCode, session: SessionSpec, runner: ShellRunner, status: SessionStatus
) -> None:
    pid = int(status.data["pid"])
    assert group(pid), "the server's process group is not running"
    await vscode.stop(session, status.data, runner=runner)
    assert not session_dir(runner, session).exists()
    for _ in range(20):
        if not group(pid):
            break
        await asyncio.sleep(0.1)
    assert not group(pid), f"left running: {group(pid)}"
    await vscode.stop(session, status.data, runner=runner)  # idempotent
    gone = await vscode.status(session, status.data, runner=runner)
    assert gone.state is SessionState.STOPPED


@pytest.mark.anyio
async def test_a_real_code_server_through_the_proxy_and_stopped_leaving_nothing(
    tmp_path: Path, code_server: Path
) -> None:
    runner = runner_with(tmp_path, {"code-server": exec_script(code_server)})
    vscode, session = VSCode(), new_spec(directory="~/project")
    status = await until_running(vscode, session, runner)

    # the contract: the server's root under the base path, a cookie only the proxy sends
    endpoint = status.endpoint
    assert endpoint is not None and endpoint.host == "127.0.0.1" and endpoint.path == "/"
    assert endpoint.websocket and set(endpoint.headers) == {"Cookie"}
    token = endpoint.headers["Cookie"].removeprefix("code-server-session=")
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    assert status.data["pid"].isdigit()
    assert status.data == {
        "pid": status.data["pid"],
        "port": str(endpoint.port),
        "server": "code-server",
    }
    assert status.open_path == f"?folder={runner.home / 'project'}"
    assert (runner.home / "project").is_dir()

    # the token is on the target only in 0600 files of a 0700 directory, not on a command line
    directory = session_dir(runner, session)
    assert directory.stat().st_mode & 0o777 == 0o700
    for name in ("token", "config.yaml"):
        assert (directory / name).stat().st_mode & 0o777 == 0o600
    assert token not in command_lines(int(status.data["pid"]))

    # starting it again finds it running
    again = await vscode.start(session, runner=runner, log=RecordingLog())
    assert again.state is SessionState.RUNNING and again.data == status.data

    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
        # the page the browser opens, and a file it links to, as the proxy asks for them
        url, headers = proxied(endpoint, status.open_path)
        page = await client.get(url, headers=headers)
        assert page.status_code == 200, page.text[:300]
        assert 'id="vscode-workbench-web-configuration"' in page.text
        assert "workbench.js" in page.text and token not in page.text
        public = f"https://{PUBLIC}{BASE}{status.open_path}"
        script = next(
            urljoin(public, link)
            for link in re.findall(r'src="([^"]+)"', page.text)
            if link.endswith("workbench.js")
        )
        url, headers = proxied(endpoint, backend_rest(script))
        asset = await client.get(url, headers=headers)
        assert asset.status_code == 200 and len(asset.content) > 100_000

        # the browser's own cookies (less the platform's) come in a Cookie line of their own
        # before the endpoint's, as the proxy sends them: code-server reads both
        url, headers = proxied(endpoint, status.open_path, cookie=False)
        lines = [*headers.items(), ("cookie", "theme=dark; other=1"), *endpoint.headers.items()]
        assert (await client.get(url, headers=lines)).status_code == 200
        # the base path alone: code-server sends the browser on to the folder
        url, headers = proxied(endpoint, "")
        root = await client.get(url, headers=headers)
        assert root.status_code == 302 and root.headers["location"] == f"./{status.open_path}"

        # without the proxy's cookie: code-server's login page, not the editor
        url, headers = proxied(endpoint, status.open_path, cookie=False)
        refused = await client.get(url, headers=headers)
        assert refused.status_code == 302 and refused.headers["location"].startswith("./login")

    # VS Code's remote connection over WebSocket: with the cookie (and the public Origin, which
    # code-server checks against X-Forwarded-Host) the browser needs no token of its own
    assert (await remote_handshake(endpoint, ""))["type"] == "sign"
    with pytest.raises(InvalidStatus) as unauthorised:
        await remote_handshake(endpoint, "", cookie=False)
    assert unauthorised.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as elsewhere:  # a page of another site
        await remote_handshake(endpoint, "", origin="https://elsewhere.example.net")
    assert elsewhere.value.response.status_code == 403

    await stop_leaving_nothing(vscode, session, runner, status)


@pytest.mark.anyio
async def test_openvscode_server_gets_a_token_the_browser_is_given(
    tmp_path: Path, code_server: Path
) -> None:
    server_main = (
        code_server.parent.parent / "node_modules/code-server/lib/vscode/out/server-main.js"
    )
    assert server_main.is_file(), f"VS Code's server is not at {server_main}"
    runner = runner_with(tmp_path, {"openvscode-server": exec_script("node", str(server_main))})
    vscode, session = VSCode(), new_spec()
    status = await until_running(vscode, session, runner)

    endpoint = status.endpoint
    assert endpoint is not None and endpoint.path == BASE and endpoint.headers == {}
    assert status.data["server"] == "openvscode-server"
    found = re.fullmatch(r"\?tkn=([0-9a-f]{64})&folder=(.+)", status.open_path)
    assert found and found[2] == str(runner.home), status.open_path
    token = found[1]
    assert token not in str(status.data)
    assert token not in command_lines(int(status.data["pid"]))

    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
        # opening the session: the server sets its cookie (for the session's path, which the
        # browser sends back on every request under it) and redirects to the folder
        url, headers = proxied(endpoint, status.open_path, cookie=False)
        opened = await client.get(url, headers=headers)
        assert opened.status_code == 302
        assert opened.headers["set-cookie"].startswith(f"vscode-tkn={token};")
        public = f"https://{PUBLIC}{BASE}{status.open_path}"
        landing = urljoin(public, opened.headers["location"])
        assert landing.startswith(f"https://{PUBLIC}{BASE.rstrip('/')}")
        assert parse_qs(urlsplit(landing).query) == {"folder": [found[2]]}
        client.cookies.clear()  # the tests send the cookie themselves, or none

        # the page with the cookie, and without it refused
        url, headers = proxied(endpoint, "")
        headers["Cookie"] = f"vscode-tkn={token}"
        page = await client.get(url, headers=headers)
        assert page.status_code == 200 and "vscode-workbench-web-configuration" in page.text
        assert page.headers["set-cookie"].startswith(f"vscode-tkn={token};")  # renewed
        client.cookies.clear()
        url, headers = proxied(endpoint, "")
        assert (await client.get(url, headers=headers)).status_code == 403

    # the web client sends the token inside VS Code's protocol: what it reads from its cookie
    assert (await remote_handshake(endpoint, token))["type"] == "sign"
    refused = await remote_handshake(endpoint, "")
    assert refused["type"] == "error" and "auth mismatch" in refused["reason"]

    # a server that died: failed, with its log's end, the token masked
    os.kill(int(status.data["pid"]), signal.SIGKILL)
    await asyncio.sleep(0.3)
    failed = await vscode.status(session, status.data, runner=runner)
    assert failed.state is SessionState.FAILED and failed.endpoint is None
    assert "openvscode-server" in failed.message and token not in failed.message
    assert "?tkn=<token>" in failed.message  # the server logs its URL with the token
    await vscode.stop(session, status.data, runner=runner)
    assert not session_dir(runner, session).exists()


@pytest.mark.anyio
async def test_a_target_without_a_server_is_told_what_to_install(tmp_path: Path) -> None:
    runner = runner_with(tmp_path, {})
    if any((Path(p) / "code-server").exists() for p in ("/usr/local/bin", "/usr/bin", "/bin")):
        pytest.skip("this machine has a code-server on the system PATH")
    began = time.monotonic()
    with pytest.raises(ProviderError) as missing:
        await VSCode().start(new_spec(), runner=runner, log=RecordingLog())
    assert time.monotonic() - began < 10
    assert missing.value.message.startswith(
        f"neither code-server nor openvscode-server is installed on {runner.target}: install"
    )
    assert "npm install -g code-server" in missing.value.message
    assert "`command`" in missing.value.message
    with pytest.raises(ProviderError, match="there is no 'my-vscode' on"):
        await VSCode().start(new_spec(command="my-vscode"), runner=runner, log=RecordingLog())
    with pytest.raises(ProviderError, match="there is no '~/bin/code-server' on"):
        await VSCode().start(
            new_spec(command="~/bin/code-server"), runner=runner, log=RecordingLog()
        )


@pytest.mark.anyio
async def test_a_server_that_cannot_start_fails_with_its_log(tmp_path: Path) -> None:
    broken = "#!/bin/sh\necho 'code-server: cannot listen (stand-in that fails)' >&2\nexit 3\n"
    runner = runner_with(tmp_path, {"code-server": broken})
    session = new_spec()
    status = await VSCode().start(session, runner=runner, log=RecordingLog())
    assert status.state is SessionState.FAILED
    assert "cannot listen" in status.message and status.data["server"] == "code-server"
    await VSCode().stop(session, status.data, runner=runner)
