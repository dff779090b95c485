"""The ``jupyter`` session type against a real JupyterLab (from this environment) in a real
shell: the SDK's conformance suite, a kernel that runs ``1+1`` over the server's WebSocket with
the token the endpoint carries, the page JupyterLab serves, a stop that leaves nothing running;
a missing ``jupyter`` and bad options refused by name."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import websockets
from corral_jupyter import plugin
from corral_jupyter.jupyter import Jupyter
from corral_jupyter.options import JupyterOptions

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


def spec(session_id: str, **options: str) -> SessionSpec:
    return SessionSpec(
        name="nb",
        session_id=session_id,
        user="alice",
        target=SessionTarget(kind=TargetKind.WORKSPACE),
        options=JupyterOptions(**options),  # type: ignore[arg-type]
        base_path=BASE,
    )


@pytest.fixture
def runner(tmp_path: Path) -> ShellRunner:
    return shell_runner("/bin/sh", tmp_path, {})


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
    def runner(self, tmp_path: Path) -> ShellRunner:
        return shell_runner("/bin/sh", tmp_path, {})


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


async def one_plus_one(port: int, headers: dict[str, str]) -> str:
    base = f"http://127.0.0.1:{port}{BASE}"
    async with httpx.AsyncClient(headers=headers, trust_env=False) as client:
        kernel = await client.post(base + "api/kernels", json={"name": "python3"})
        assert kernel.status_code == 201, kernel.text
        kernel_id = kernel.json()["id"]
    url = f"ws://127.0.0.1:{port}{BASE}api/kernels/{kernel_id}/channels"
    async with websockets.connect(url, additional_headers=headers, proxy=None) as ws:
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "msg_type": "execute_request", "username": "alice",
                  "session": uuid.uuid4().hex, "version": "5.3", "date": ""}  # fmt: skip
        content = {"code": "1+1", "silent": False, "store_history": False,
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
    assert "token" not in json.dumps(running.data)  # the token only travels in headers
    port, headers = endpoint.port, endpoint.headers
    async with httpx.AsyncClient(trust_env=False) as client:
        refused = await client.get(f"http://127.0.0.1:{port}{BASE}api/kernels")
        assert refused.status_code == 403  # nobody without the token
        page = await client.get(f"http://127.0.0.1:{port}{BASE}lab", headers=headers)
        assert page.status_code == 200 and "JupyterLab" in page.text
    assert await one_plus_one(port, headers) == "2"
    again = await jupyter.start(session, runner=runner, log=RecordingLog())
    assert again.state is SessionState.RUNNING and again.data == running.data  # idempotent

    pid = int((runner.home / ".corral" / "sessions" / session.session_id / "pid").read_text())
    await jupyter.stop(session, running.data, runner=runner)
    assert not (runner.home / ".corral" / "sessions" / session.session_id).exists()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(trust_env=False) as client:
            await client.get(f"http://127.0.0.1:{port}{BASE}api/status")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
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


def test_bad_options_name_their_field() -> None:
    for field, value in (("command", ""), ("directory", "a\nb")):
        with pytest.raises(Invalid) as bad:
            JupyterOptions(**{field: value})  # type: ignore[arg-type]
        assert bad.value.field == field
