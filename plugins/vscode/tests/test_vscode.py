"""The ``vscode`` session type in a real shell: a target without code-server or
openvscode-server fails at once saying what to install; the launch, status and stop of a
server, and the token an openvscode-server gets, against stand-in programs.

Why stand-ins: neither server can be installed on these machines (code-server's npm package
needs Node 24 and builds native modules, openvscode-server ships only as a GitHub release), so
two small Python HTTP servers named ``code-server`` and ``openvscode-server`` take their place
and record the arguments they were started with."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from corral_vscode import plugin
from corral_vscode.options import VSCodeOptions
from corral_vscode.vscode import VSCode

from corral_sdk.errors import Invalid, ProviderError
from corral_sdk.providers.session import (
    SessionSpec,
    SessionState,
    SessionStatus,
    SessionTarget,
    TargetKind,
)
from corral_sdk.records import SessionTypeRecord
from corral_sdk.testing import RecordingLog
from corral_sdk.testing.conformance import SessionTypeConformance
from corral_sdk.testing.shell import ShellRunner, shell_runner

STAND_IN = f"""#!{sys.executable}
# A stand-in for a VS Code server (see the test module): records its arguments, serves HTTP.
import http.server, json, os, sys
args = sys.argv[1:]
if "--port" in args:
    port = int(args[args.index("--port") + 1])
else:
    port = int(args[args.index("--bind-addr") + 1].split(":")[1])
open(os.path.expanduser("~/server-args.json"), "w").write(json.dumps(args))
class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("<title>Visual Studio Code</title>" + self.headers.get("Cookie", "")).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", port), Page).serve_forever()
"""


def spec(**options: str) -> SessionSpec:
    return SessionSpec(
        name="code",
        session_id=f"v{uuid.uuid4().hex[:8]}",
        user="alice",
        target=SessionTarget(kind=TargetKind.WORKSPACE),
        options=VSCodeOptions(**options),  # type: ignore[arg-type]
        base_path="/sessions/alice/code/",
    )


def runner_with(tmp_path: Path, *names: str) -> ShellRunner:
    return shell_runner("/bin/sh", tmp_path, {name: STAND_IN for name in names})


class TestVSCodeConformance(SessionTypeConformance):
    @pytest.fixture
    def record(self) -> SessionTypeRecord:
        return plugin.RECORD

    @pytest.fixture
    def plugin(self) -> ModuleType:
        return plugin

    @pytest.fixture
    def provider(self, record: SessionTypeRecord) -> VSCode:
        provider = record.create()
        assert isinstance(provider, VSCode)
        return provider

    @pytest.fixture
    def session_spec(self) -> SessionSpec:
        return spec()

    @pytest.fixture
    def runner(self, tmp_path: Path) -> ShellRunner:
        return runner_with(tmp_path, "openvscode-server")


async def running(vscode: VSCode, session: SessionSpec, runner: ShellRunner) -> SessionStatus:
    deadline = time.monotonic() + 30
    status = await vscode.start(session, runner=runner, log=RecordingLog())
    while status.state is not SessionState.RUNNING:
        assert status.state is SessionState.STARTING and time.monotonic() < deadline, status
        await asyncio.sleep(0.3)
        status = await vscode.status(session, status.data, runner=runner)
    return status


@pytest.mark.anyio
async def test_openvscode_server_gets_a_token_the_proxy_sends_and_stops_leaving_nothing(
    tmp_path: Path,
) -> None:
    runner, vscode, session = runner_with(tmp_path, "openvscode-server"), VSCode(), spec()
    status = await running(vscode, session, runner)
    endpoint = status.endpoint
    assert endpoint is not None and endpoint.path == "/" and endpoint.websocket
    token = endpoint.headers["Cookie"].removeprefix("vscode-tkn=")
    assert len(token) == 64 and token not in str(status.data)
    args = (runner.home / "server-args.json").read_text()
    assert "--connection-token-file" in args and "127.0.0.1" in args and token not in args
    assert status.open_path == f"?folder={runner.home}"
    async with httpx.AsyncClient(trust_env=False) as client:
        page = await client.get(f"http://127.0.0.1:{endpoint.port}/", headers=endpoint.headers)
    assert "Visual Studio Code" in page.text and token in page.text
    directory = runner.home / ".corral" / "sessions" / session.session_id
    pid = int((directory / "pid").read_text())
    await vscode.stop(session, status.data, runner=runner)
    assert not directory.exists()
    await asyncio.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    await vscode.stop(session, status.data, runner=runner)  # idempotent


@pytest.mark.anyio
async def test_code_server_runs_on_loopback_in_the_directory(tmp_path: Path) -> None:
    runner, vscode = runner_with(tmp_path, "code-server"), VSCode()
    session = spec(directory="~/project")
    status = await running(vscode, session, runner)
    args = (runner.home / "server-args.json").read_text()
    assert "127.0.0.1:" in args and str(runner.home / "project") in args
    assert status.endpoint is not None and status.endpoint.headers == {}
    await vscode.stop(session, status.data, runner=runner)


@pytest.mark.anyio
async def test_a_target_without_a_server_is_told_what_to_install(tmp_path: Path) -> None:
    runner = shell_runner("/bin/sh", tmp_path, {})
    began = time.monotonic()
    with pytest.raises(ProviderError) as missing:
        await VSCode().start(spec(), runner=runner, log=RecordingLog())
    assert time.monotonic() - began < 10
    message = missing.value.message
    assert "neither code-server nor openvscode-server" in message and "install" in message
    with pytest.raises(ProviderError, match="'my-vscode' is not installed"):
        await VSCode().start(spec(command="my-vscode"), runner=runner, log=RecordingLog())


def test_bad_options_name_their_field() -> None:
    for field, value in (("command", "code-server; rm -rf ~"), ("directory", "")):
        with pytest.raises(Invalid) as bad:
            VSCodeOptions(**{field: value})  # type: ignore[arg-type]
        assert bad.value.field == field
