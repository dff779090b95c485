"""The ``jupyter`` session type against a real JupyterLab (from this environment) in a real
shell: the SDK's conformance suite, a kernel that runs ``1+1`` over the server's WebSocket with
the token the endpoint carries, the page JupyterLab serves, requests as the proxy sends them
(the platform's public host and origin, the browser's cookies), a stop that leaves nothing
running (nor the kernel); a missing ``jupyter`` or interface and bad options refused by name."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import websockets
from corral_jupyter import plugin
from corral_jupyter.jupyter import Jupyter
from corral_jupyter.options import JupyterOptions
from websockets.typing import Subprotocol

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

BASE = "/sessions/alice/nb/"
PUBLIC = "corral.example.org"
"""The platform's host name: the proxy passes the browser's ``Host`` and ``Origin`` on."""
AS_PROXIED = {
    "Host": PUBLIC,
    "Origin": f"https://{PUBLIC}",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": PUBLIC,
    "X-Forwarded-Prefix": BASE.rstrip("/"),
    "Cookie": "_xsrf=2|not|the|servers",
}
KERNEL_PROTOCOL = "v1.kernel.websocket.jupyter.org"
"""The WebSocket subprotocol JupyterLab asks for; the proxy passes it on."""


def spec(session_id: str, **options: str) -> SessionSpec:
    return SessionSpec(
        name="nb",
        session_id=session_id,
        user="alice",
        target=SessionTarget(kind=TargetKind.WORKSPACE),
        options=JupyterOptions(**options),  # type: ignore[arg-type]
        base_path=BASE,
    )


def kill_leftovers(home: Path) -> None:
    """Kill the servers a failed test left running (a passing one stops its own)."""
    for pid in (home / ".corral" / "sessions").glob("*/pid"):
        with contextlib.suppress(OSError, ValueError):
            os.killpg(int(pid.read_text()), signal.SIGKILL)


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[ShellRunner]:
    runner = shell_runner("/bin/sh", tmp_path, {})
    yield runner
    kill_leftovers(runner.home)


class TestJupyterConformance(SessionTypeConformance):
    @pytest.fixture
    def record(self) -> SessionTypeRecord:
        return plugin.RECORD

    @pytest.fixture
    def plugin(self) -> ModuleType:
        return plugin

    @pytest.fixture
    def provider(self, record: SessionTypeRecord) -> Jupyter:
        provider = record.create()
        assert isinstance(provider, Jupyter)
        return provider

    @pytest.fixture
    def session_spec(self) -> SessionSpec:
        return spec(f"c{uuid.uuid4().hex[:8]}")

    @pytest.fixture
    def runner(self, tmp_path: Path) -> Iterator[ShellRunner]:
        runner = shell_runner("/bin/sh", tmp_path, {})
        yield runner
        kill_leftovers(runner.home)


async def until_running(
    jupyter: Jupyter, session: SessionSpec, runner: ShellRunner
) -> SessionStatus:
    deadline = time.monotonic() + 60
    status = await jupyter.start(session, runner=runner, log=RecordingLog())
    while status.state is not SessionState.RUNNING:
        assert status.state is SessionState.STARTING, status
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.5)
        status = await jupyter.status(session, status.data, runner=runner)
    return status


def command_line(pid: str) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


async def new_kernel(port: int, headers: dict[str, str], host: str = "127.0.0.1") -> str:
    async with httpx.AsyncClient(headers=headers, trust_env=False) as client:
        kernel = await client.post(
            f"http://{host}:{port}{BASE}api/kernels", json={"name": "python3"}
        )
        assert kernel.status_code == 201, kernel.text
        return str(kernel.json()["id"])


async def execute(
    port: int, headers: dict[str, str], kernel_id: str, code: str, host: str = "127.0.0.1"
) -> str:
    """Run ``code`` in the kernel over its channels WebSocket (messages as JSON, protocol v5),
    as the proxy connects: the browser's ``Origin``, the endpoint's headers; its result."""
    url = f"ws://{host}:{port}{BASE}api/kernels/{kernel_id}/channels"
    extra = {**headers, "Origin": AS_PROXIED["Origin"]}
    async with websockets.connect(url, additional_headers=extra, proxy=None) as ws:
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "msg_type": "execute_request", "username": "alice",
                  "session": uuid.uuid4().hex, "version": "5.3", "date": ""}  # fmt: skip
        content = {"code": code, "silent": False, "store_history": False,
                   "user_expressions": {}, "allow_stdin": False}  # fmt: skip
        message = {"header": header, "parent_header": {}, "metadata": {}, "channel": "shell",
                   "buffers": [], "content": content}  # fmt: skip
        await ws.send(json.dumps(message))
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "execute_result":
                return str(message["content"]["data"]["text/plain"])
            assert message["msg_type"] != "error", message["content"]


@pytest.mark.anyio
async def test_a_real_jupyterlab_runs_a_kernel_and_stops_leaving_nothing(
    runner: ShellRunner,
) -> None:
    jupyter, session = Jupyter(), spec(f"s{uuid.uuid4().hex[:8]}")
    running = await until_running(jupyter, session, runner)
    endpoint = running.endpoint
    assert endpoint is not None and endpoint.path == BASE and running.open_path == "lab"
    assert endpoint.host == "127.0.0.1" and endpoint.websocket and endpoint.scheme == "http"
    assert set(running.data) == {"port", "pid"} and running.data["port"] == str(endpoint.port)
    port, headers = endpoint.port, endpoint.headers
    token = headers["Authorization"].removeprefix("token ")
    assert len(token) == 64 and token not in json.dumps(running.data)  # only in the headers
    directory = runner.home / ".corral" / "sessions" / session.session_id
    assert directory.stat().st_mode & 0o777 == 0o700
    assert (directory / "token").stat().st_mode & 0o777 == 0o600
    assert (directory / "token").read_text() == token
    assert int((directory / "pid").read_text()) == int(running.data["pid"])
    # other users of the host can read a command line: the token is not on it
    assert token.encode() not in command_line(running.data["pid"])
    async with httpx.AsyncClient(trust_env=False) as client:
        refused = await client.get(f"http://127.0.0.1:{port}{BASE}api/kernels")
        assert refused.status_code == 403  # nobody without the token
        page = await client.get(f"http://127.0.0.1:{port}{BASE}lab", headers=headers)
        assert page.status_code == 200 and "JupyterLab" in page.text
        # JupyterLab puts its token in the page's config (for the browser to send, which the
        # proxy replaces): whoever may open the session can read it (see the README)
        # as the proxy sends the browser's requests: its public host, origin and cookies
        proxied = {**AS_PROXIED, **headers}
        page = await client.get(f"http://127.0.0.1:{port}{BASE}lab", headers=proxied)
        assert page.status_code == 200 and "JupyterLab" in page.text, page.text[:300]
        made = await client.post(
            f"http://127.0.0.1:{port}{BASE}api/contents", headers=proxied, json={"type": "file"}
        )
        assert made.status_code == 201, made.text  # no XSRF check when token-authenticated
    kernel_id = await new_kernel(port, headers)
    assert await execute(port, headers, kernel_id, "1+1") == "2"
    kernel_pid = int(await execute(port, headers, kernel_id, "__import__('os').getpid()"))
    url = f"ws://127.0.0.1:{port}{BASE}api/kernels/{kernel_id}/channels"
    async with websockets.connect(
        url,
        additional_headers=headers,
        subprotocols=[Subprotocol(KERNEL_PROTOCOL)],
        proxy=None,
    ) as ws:
        assert ws.subprotocol == KERNEL_PROTOCOL  # what JupyterLab asks for is accepted
    again = await jupyter.start(session, runner=runner, log=RecordingLog())
    assert again.state is SessionState.RUNNING and again.data == running.data  # idempotent

    pid = int(running.data["pid"])
    await jupyter.stop(session, running.data, runner=runner)
    assert not directory.exists()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(trust_env=False) as client:
            await client.get(f"http://127.0.0.1:{port}{BASE}api/status")
    for gone_pid in (pid, kernel_pid):  # the server and its kernel
        with pytest.raises(ProcessLookupError):
            os.kill(gone_pid, 0)
    gone = await jupyter.status(session, running.data, runner=runner)
    assert gone.state is SessionState.STOPPED
    await jupyter.stop(session, running.data, runner=runner)  # idempotent


@pytest.mark.anyio
async def test_a_missing_jupyter_is_named(runner: ShellRunner) -> None:
    with pytest.raises(ProviderError) as missing:
        await Jupyter().start(
            spec("s1", command="no-such-jupyter"), runner=runner, log=RecordingLog()
        )
    assert "no-such-jupyter" in missing.value.message and "install" in missing.value.message


@pytest.mark.anyio
async def test_a_jupyter_without_the_interface_is_named(tmp_path: Path) -> None:
    """A jupyter without ``notebook`` installed (as this environment's), asked for the classic
    interface: it exits at once, and start says what to install."""
    runner = shell_runner(
        "/bin/sh",
        tmp_path,
        {"jupyter": 'echo "Jupyter command \\`jupyter-$1\\` not found." >&2; exit 1\n'},
    )
    session = spec("s2", interface="notebook")
    with pytest.raises(ProviderError) as missing:
        await Jupyter().start(session, runner=runner, log=RecordingLog())
    assert "jupyter-notebook" in missing.value.message and "notebook" in missing.value.message
    failed = await Jupyter().status(session, {}, runner=runner)
    assert failed.state is SessionState.FAILED and "jupyter-notebook" in failed.message
    await Jupyter().stop(session, {}, runner=runner)
    assert not (runner.home / ".corral" / "sessions" / "s2").exists()


def test_bad_options_name_their_field() -> None:
    for field, value in (("command", ""), ("directory", "a\nb")):
        with pytest.raises(Invalid) as bad:
            JupyterOptions(**{field: value})  # type: ignore[arg-type]
        assert bad.value.field == field
