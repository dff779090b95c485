"""The desktop for real: Debian's Xvnc, websockify and noVNC (installed by
contrib/lab/desktop.sh), started through the plugin in a local shell whose HOME is the test's.

The browser's side is played by httpx (noVNC's page) and websockets (the RFB protocol over
websockify's WebSocket, up to a framebuffer update)."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from corral_desktop.desktop import TOKEN_HEADER, Desktop
from corral_desktop.options import DesktopOptions
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from corral_sdk.errors import ProviderError
from corral_sdk.providers.session import (
    SessionSpec,
    SessionState,
    SessionStatus,
    SessionTarget,
    TargetKind,
)
from corral_sdk.testing import RecordingLog
from corral_sdk.testing.shell import ShellRunner, shell_runner

INSTALL = Path(__file__).resolve().parents[3] / "contrib" / "lab" / "desktop.sh"
RUNNING_WITHIN = 30.0
PIDS = ("xvnc_pid", "websockify_pid", "program_pid")


@pytest.fixture(scope="session")
def desktop_installed() -> None:
    """Xvnc, websockify, noVNC and xterm from Debian (the script installs what is missing)."""
    done = subprocess.run(
        ["bash", str(INSTALL)], capture_output=True, text=True, timeout=900, check=False
    )
    if done.returncode != 0:
        raise AssertionError(
            f"contrib/lab/desktop.sh failed (it needs root or sudo to install):\n"
            f"{done.stderr[-4000:]}"
        )


def new_spec(options: DesktopOptions) -> SessionSpec:
    return SessionSpec(
        name="desk",
        session_id=f"s-test-{uuid.uuid4().hex[:8]}",
        user="alice",
        target=SessionTarget(kind=TargetKind.WORKSPACE),
        options=options,
        base_path="/sessions/alice/desk/",
    )


def running(pid: str) -> bool:
    """Whether the process runs (a zombie, dead but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def private_dir(path: Path) -> bool:
    return path.is_dir() and path.stat().st_mode & 0o777 == 0o700


def private_socket(path: Path) -> bool:
    return path.is_socket() and path.stat().st_mode & 0o077 == 0


def leftovers(data: dict[str, str]) -> list[str]:
    """What a stopped desktop left: processes, files, X locks."""
    left = [f"{key} {data[key]}" for key in PIDS if running(data[key])]
    display = data["display"]
    paths = [data["directory"], data["socket"], f"/tmp/.X{display}-lock"]
    paths.append(f"/tmp/.X11-unix/X{display}")
    return left + [path for path in paths if Path(path).exists()]


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def until_running(
    desktop: Desktop, spec: SessionSpec, runner: ShellRunner, started: SessionStatus
) -> SessionStatus:
    status = started
    deadline = time.monotonic() + RUNNING_WITHIN
    while status.state is not SessionState.RUNNING:
        assert status.state is SessionState.STARTING, f"{status.state}: {status.message}"
        assert time.monotonic() < deadline, f"not running after {RUNNING_WITHIN} s"
        await asyncio.sleep(0.2)
        status = await desktop.status(spec, started.data, runner=runner)
    return status


class RFB:
    """The client side of the RFB protocol (RFC 6143) over a WebSocket's binary messages,
    which split the byte stream anywhere."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.buffer = bytearray()

    async def read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            message = await asyncio.wait_for(self.ws.recv(), 10)
            assert isinstance(message, bytes), f"a text message: {message!r}"
            self.buffer += message
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out

    async def u8(self) -> int:
        return (await self.read(1))[0]

    async def u16(self) -> int:
        return int(struct.unpack(">H", await self.read(2))[0])

    async def u32(self) -> int:
        return int(struct.unpack(">I", await self.read(4))[0])


@pytest.fixture
async def desktop_session(
    desktop_installed: None, tmp_path: Path
) -> AsyncIterator[tuple[Desktop, SessionSpec, ShellRunner, SessionStatus]]:
    runner = shell_runner("/bin/sh", tmp_path, {})
    desktop = Desktop()
    spec = new_spec(DesktopOptions(geometry="800x600"))
    started = await desktop.start(spec, runner=runner, log=RecordingLog())
    try:
        yield desktop, spec, runner, started
    finally:
        await desktop.stop(spec, started.data, runner=runner)


@pytest.mark.anyio
async def test_desktop_serves_novnc_and_framebuffer_updates(
    desktop_session: tuple[Desktop, SessionSpec, ShellRunner, SessionStatus],
) -> None:
    desktop, spec, runner, started = desktop_session
    assert started.state in (SessionState.STARTING, SessionState.RUNNING), started.message
    status = await until_running(desktop, spec, runner, started)
    data = status.data
    directory = Path(data["directory"])
    assert directory == runner.home / ".corral" / "sessions" / spec.session_id
    assert private_dir(directory)
    assert all(running(data[key]) for key in PIDS)
    endpoint = status.endpoint
    assert endpoint is not None
    assert (endpoint.host, endpoint.path, endpoint.websocket) == ("127.0.0.1", "/", True)
    assert endpoint.port == int(data["port"])
    assert status.open_path == (
        "vnc.html?autoconnect=1&resize=remote&path=sessions/alice/desk/websockify"
    )
    base = f"http://127.0.0.1:{endpoint.port}"

    # noVNC's page, with the token the proxy adds; nothing without it
    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
        page = await client.get(f"{base}/{status.open_path}", headers=endpoint.headers)
        assert page.status_code == 200
        assert "<title>noVNC</title>" in page.text
        script = await client.get(f"{base}/app/ui.js", headers=endpoint.headers)
        assert script.status_code == 200
        assert (await client.get(f"{base}/vnc.html")).status_code == 403
        wrong = await client.get(f"{base}/vnc.html", headers={TOKEN_HEADER: "guess"})
        assert wrong.status_code == 403

    # VNC itself listens on no TCP port: only on the private Unix socket
    assert private_socket(Path(data["socket"]))
    # and the X display wants the session's cookie
    with socket.socket(socket.AF_UNIX) as x11:
        x11.settimeout(5)
        x11.connect(f"/tmp/.X11-unix/X{data['display']}")
        x11.sendall(b"l\0" + struct.pack("<HHHHxx", 11, 0, 0, 0))
        assert x11.recv(1) == b"\0", "the X server accepted a client without its cookie"

    # the WebSocket: RFB 3.8, security None, a full-screen raw framebuffer update
    ws_url = f"ws://127.0.0.1:{endpoint.port}/websockify"
    with pytest.raises(InvalidStatus):
        async with connect(ws_url, subprotocols=["binary"], proxy=None, open_timeout=10):  # type: ignore[list-item]
            pass
    async with connect(
        ws_url,
        subprotocols=["binary"],  # type: ignore[list-item]
        additional_headers=endpoint.headers,
        proxy=None,
        max_size=None,
        open_timeout=10,
    ) as ws:
        assert ws.subprotocol == "binary"
        rfb = RFB(ws)
        assert await rfb.read(12) == b"RFB 003.008\n"
        await ws.send(b"RFB 003.008\n")
        count = await rfb.u8()
        assert count > 0, (await rfb.read(await rfb.u32())).decode()
        types = await rfb.read(count)
        assert 1 in types, f"security types {list(types)} lack None"
        await ws.send(bytes([1]))
        assert await rfb.u32() == 0, "SecurityResult: failed"
        await ws.send(bytes([1]))  # ClientInit, shared
        width, height = await rfb.u16(), await rfb.u16()
        assert (width, height) == (800, 600)
        await rfb.read(16)  # the server's pixel format
        name = (await rfb.read(await rfb.u32())).decode()
        assert name == "Corral desk"
        # SetPixelFormat: 32 bpp, depth 24, little-endian true colour
        await ws.send(struct.pack(">BxxxBBBBHHHBBBxxx", 0, 32, 24, 0, 1, 255, 255, 255, 16, 8, 0))
        await ws.send(struct.pack(">BxHi", 2, 1, 0))  # SetEncodings: Raw
        await ws.send(struct.pack(">BBHHHH", 3, 0, 0, 0, width, height))  # full, not incremental
        while True:
            kind = await rfb.u8()
            if kind == 0:  # FramebufferUpdate
                break
            if kind == 2:  # Bell
                continue
            if kind == 3:  # ServerCutText
                await rfb.read(3)
                await rfb.read(await rfb.u32())
                continue
            raise AssertionError(f"unexpected server message {kind}")
        await rfb.read(1)
        rectangles = await rfb.u16()
        assert rectangles >= 1
        covered = 0
        for _ in range(rectangles):
            x, y, w, h, encoding = struct.unpack(">HHHHi", await rfb.read(12))
            assert encoding == 0, f"encoding {encoding}, not Raw"
            assert x + w <= width and y + h <= height
            await rfb.read(w * h * 4)
            covered += w * h
        assert covered == width * height

    # starting again (the same session id) finds the running desktop
    again = await desktop.start(spec, runner=runner, log=RecordingLog())
    assert again.state is SessionState.RUNNING
    assert again.data == data

    # stop: nothing listens any more, nothing is left
    await desktop.stop(spec, data, runner=runner)
    assert not listening(endpoint.port)
    assert leftovers(data) == []
    gone = await desktop.status(spec, data, runner=runner)
    assert gone.state is SessionState.STOPPED
    await desktop.stop(spec, data, runner=runner)  # idempotent


@pytest.mark.anyio
async def test_the_desktop_ends_with_its_program(desktop_installed: None, tmp_path: Path) -> None:
    runner = shell_runner("/bin/sh", tmp_path, {})
    desktop = Desktop()
    spec = new_spec(DesktopOptions(geometry="640x480", depth=16, command="sleep 2; exit 7"))
    started = await desktop.start(spec, runner=runner, log=RecordingLog())
    try:
        status = await until_running(desktop, spec, runner, started)
        port = status.data["port"]
        deadline = time.monotonic() + 20
        while status.state is SessionState.RUNNING and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
            status = await desktop.status(spec, started.data, runner=runner)
        assert status.state is SessionState.STOPPED, status.message
        assert "exit status 7" in status.message
        await asyncio.sleep(0.5)
        assert not listening(int(port))
    finally:
        await desktop.stop(spec, started.data, runner=runner)
    assert leftovers(started.data) == []


@pytest.mark.anyio
async def test_missing_programs_are_named(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sh").symlink_to("/bin/sh")
    home = tmp_path / "home"
    home.mkdir()
    runner = ShellRunner("/bin/sh", home, bin_dir, path="")
    with pytest.raises(ProviderError) as caught:
        await Desktop().start(new_spec(DesktopOptions()), runner=runner, log=RecordingLog())
    message = caught.value.message
    assert "tigervnc-standalone-server" in message
    assert "websockify" in message
    assert not (home / ".corral").exists()
    assert os.listdir(home) == []
