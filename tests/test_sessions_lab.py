"""Session types on the lab's real cluster, through the platform's proxy: JupyterLab started on
the cluster's login host (a kernel runs ``1+1`` over the proxied WebSocket and answers 2; the
page is JupyterLab's), stopped with nothing left listening; JupyterLab on a compute node as a
Slurm job (``squeue`` shows it, the kernel runs on the node and answers 2 through the proxy,
stop cancels the job and nothing of it is left), and a job Slurm refuses failing with Slurm's
reason; a desktop's noVNC page and its framebuffer over the proxied WebSocket."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import websockets

from corral_core.testing import free_port
from tests.browser import open_page
from tests.lab import LabServer, SlurmLab, lab_server

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def lab() -> SlurmLab:
    return SlurmLab.up()


@pytest.fixture(scope="module")
def server(lab: SlurmLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    yield from lab_server(tmp_path_factory.mktemp("sessions"), lab)


@pytest.fixture(scope="module")
def cluster(server: LabServer) -> str:
    assert server.lab is not None
    done = server.corral(
        "alice", "cluster", "create", "hpc", "--host", server.lab.login_host, "--start"
    )
    assert done.returncode == 0, done.stderr
    return "pw://alice/hpc"


@pytest.fixture(scope="module")
def jupyter() -> str:
    """A JupyterLab every lab user can run (contrib/lab/jupyter.sh makes it when missing)."""
    done = subprocess.run(
        ["bash", str(ROOT / "contrib" / "lab" / "jupyter.sh")],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().partition("=")[2]


def wait_session(client: Any, name: str, *states: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = client.get(f"/api/sessions/alice/{name}")
        if found.status_code == 200 and found.json()["status"] in states:
            return dict(found.json())
        assert time.monotonic() < deadline, found.text
        time.sleep(0.5)


def jupyter_running(server: LabServer, cluster: str) -> bool:
    done = server.corral(
        "alice", "ssh", cluster, "pgrep -u alice -f '[j]upyter|[i]pykernel' || true"
    )
    return bool(done.stdout.strip())


async def execute(url: str, headers: dict[str, str], code: str) -> str:
    """Run ``code`` in a Jupyter kernel over its channels WebSocket; the execute_result."""
    async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
        msg_id = uuid.uuid4().hex
        await ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id, "msg_type": "execute_request", "username": "alice",
                        "session": uuid.uuid4().hex, "version": "5.3", "date": "",
                    },
                    "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                    "content": {"code": code, "silent": False, "store_history": False,
                                "user_expressions": {}, "allow_stdin": False},
                }
            )
        )  # fmt: skip
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "execute_result":
                return str(message["content"]["data"]["text/plain"])
            if message["msg_type"] == "error":
                raise AssertionError(message["content"])


@pytest.fixture(scope="module")
def chromium() -> None:
    done = subprocess.run(
        ["bash", str(ROOT / "contrib" / "lab" / "chromium.sh")],
        capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


async def render(open_url: str, server_url: str, headers: dict[str, str]) -> tuple[bytes, Any]:
    """Open the session's page in headless Chromium; JupyterLab's shell once it is drawn."""
    url = server_url + urlsplit(open_url).path
    async with open_page(url, headers) as page:
        shell = await page.wait_for(
            "(() => { const shell = document.querySelector('#main.jp-LabShell, .jp-LabShell');"
            " const launcher = document.querySelector('.jp-Launcher, .jp-LauncherCard');"
            " return shell && launcher ? {title: document.title, shell: shell.id || 'shell',"
            " launcher: launcher.className} : null; })()"
        )
        return await page.screenshot(), shell


def test_jupyterlab_on_the_cluster_runs_a_kernel_through_the_proxy(
    server: LabServer, cluster: str, jupyter: str, chromium: None, tmp_path: Path
) -> None:
    with server.client("alice") as client:
        made = client.post(
            "/api/sessions",
            json={"name": "nb1", "type": "jupyter", "target": cluster,
                  "options": {"command": jupyter}},
        )  # fmt: skip
        assert made.status_code == 201, made.text
        session = wait_session(client, "nb1", "running", "failed")
        assert session["status"] == "running", session
        assert session["open_url"].endswith("/sessions/alice/nb1/lab"), session
        page = client.get("/sessions/alice/nb1/lab")
        assert page.status_code == 200 and "JupyterLab" in page.text, page.text[:500]
        kernel = client.post("/sessions/alice/nb1/api/kernels", json={"name": "python3"})
        assert kernel.status_code == 201, kernel.text
        ws_url = f"ws{server.url[4:]}/sessions/alice/nb1/api/kernels/{kernel.json()['id']}/channels"
        auth = {"Authorization": client.headers["Authorization"]}
        assert asyncio.run(execute(ws_url, auth, "1+1")) == "2"

        # in a real browser: JupyterLab's shell renders, through the proxy, behind the sign-in
        shot, shell = asyncio.run(render(session["open_url"], server.url, auth))
        assert shell["title"].endswith("JupyterLab"), shell
        assert shell["shell"] and shell["launcher"], shell
        (tmp_path / "jupyterlab.png").write_bytes(shot)  # for a person to look at; never committed

        assert jupyter_running(server, cluster)
        assert client.delete("/api/sessions/alice/nb1").status_code == 204
        deadline = time.monotonic() + 20
        while jupyter_running(server, cluster):
            assert time.monotonic() < deadline, "jupyter still runs after the stop"
            time.sleep(0.5)


def jobs_of(lab: SlurmLab, session: str) -> list[list[str]]:
    """The session's jobs in Slurm's queue (pending, running, completing): id, state, node."""
    out = lab.run(
        "exec", "squeue", "-h", "-u", "alice", "-n", f"corral-jupyter-{session}", "-o", "%i %T %N"
    )
    return [line.split() for line in out.splitlines() if line.strip()]


def node_processes(session: str) -> str:
    """alice's processes of the session's server (its base URL is on its command line); the
    lab's hosts share this machine's process table."""
    done = subprocess.run(
        ["pgrep", "-a", "-u", "alice", "-f", f"sessions/alice/{session}/"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.stdout.strip()


def test_jupyterlab_on_a_compute_node_through_the_scheduler(
    server: LabServer, cluster: str, jupyter: str
) -> None:
    assert server.lab is not None
    lab = server.lab
    with server.client("alice") as client:
        made = client.post(
            "/api/sessions",
            json={"name": "nbnode", "type": "jupyter", "target": cluster,
                  "options": {"command": jupyter, "placement": "compute", "partition": "debug",
                              "time_limit": "20m", "cpus": 1, "memory": "300M"}},
        )  # fmt: skip
        assert made.status_code == 201, made.text
        session = wait_session(client, "nbnode", "running", "failed", timeout=180)
        assert session["status"] == "running", session
        assert session["open_url"].endswith("/sessions/alice/nbnode/lab"), session
        jobs = jobs_of(lab, "nbnode")
        assert len(jobs) == 1 and jobs[0][1] == "RUNNING", jobs
        job_id, node = jobs[0][0], jobs[0][2]
        assert node in lab.nodes, jobs

        page = client.get("/sessions/alice/nbnode/lab")
        assert page.status_code == 200 and "JupyterLab" in page.text, page.text[:500]
        kernel = client.post("/sessions/alice/nbnode/api/kernels", json={"name": "python3"})
        assert kernel.status_code == 201, kernel.text
        ws_url = (
            f"ws{server.url[4:]}/sessions/alice/nbnode/api/kernels/{kernel.json()['id']}/channels"
        )
        auth = {"Authorization": client.headers["Authorization"]}
        assert asyncio.run(execute(ws_url, auth, "1+1")) == "2"
        # the kernel runs on the job's node, not on the login host
        where = asyncio.run(execute(ws_url, auth, "__import__('socket').gethostname()"))
        assert where == repr(node), (where, node)
        kernel_pid = int(asyncio.run(execute(ws_url, auth, "__import__('os').getpid()")))
        assert node_processes("nbnode")

        assert client.delete("/api/sessions/alice/nbnode").status_code == 204
        deadline = time.monotonic() + 120
        while jobs_of(lab, "nbnode"):
            assert time.monotonic() < deadline, f"job {job_id} still queued after the stop"
            time.sleep(1)
        state = lab.run("exec", "squeue", "-h", "--states=all", "-j", job_id, "-o", "%T")
        assert state.strip() == "CANCELLED", state
        assert not node_processes("nbnode")  # the server ended with its job
        assert not Path(f"/proc/{kernel_pid}").exists()  # and its kernel


def test_a_job_slurm_refuses_fails_the_session_with_slurms_reason(
    server: LabServer, cluster: str, jupyter: str
) -> None:
    with server.client("alice") as client:
        made = client.post(
            "/api/sessions",
            json={"name": "nbnowhere", "type": "jupyter", "target": cluster,
                  "options": {"command": jupyter, "placement": "compute",
                              "partition": "nosuch"}},
        )  # fmt: skip
        assert made.status_code == 201, made.text
        session = wait_session(client, "nbnowhere", "running", "failed")
        assert session["status"] == "failed", session
        assert "Invalid partition name specified" in session["reason"], session
        assert client.delete("/api/sessions/alice/nbnowhere").status_code == 204


@pytest.fixture(scope="module")
def desktop_installed() -> None:
    done = subprocess.run(
        ["bash", str(ROOT / "contrib" / "lab" / "desktop.sh")],
        capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


async def framebuffer_update(url: str, headers: dict[str, str]) -> tuple[int, int, int]:
    """RFB 3.8 over noVNC's WebSocket (security None): the screen's size and the rectangles
    of the first full framebuffer update."""
    async with websockets.connect(
        url,
        additional_headers=headers,
        subprotocols=["binary"],
        max_size=None,  # type: ignore[list-item]
    ) as ws:
        assert ws.subprotocol == "binary"
        buffer = bytearray()

        async def read(n: int) -> bytes:
            while len(buffer) < n:
                message = await asyncio.wait_for(ws.recv(), 20)
                assert isinstance(message, bytes)
                buffer.extend(message)
            out = bytes(buffer[:n])
            del buffer[:n]
            return out

        assert await read(12) == b"RFB 003.008\n"
        await ws.send(b"RFB 003.008\n")
        types = await read((await read(1))[0])
        assert 1 in types
        await ws.send(bytes([1]))
        assert struct.unpack(">I", await read(4))[0] == 0
        await ws.send(bytes([1]))
        width, height = struct.unpack(">HH", await read(4))
        await read(16)
        await read(struct.unpack(">I", await read(4))[0])
        await ws.send(struct.pack(">BxxxBBBBHHHBBBxxx", 0, 32, 24, 0, 1, 255, 255, 255, 16, 8, 0))
        await ws.send(struct.pack(">BxHi", 2, 1, 0))
        await ws.send(struct.pack(">BBHHHH", 3, 0, 0, 0, width, height))
        while (kind := (await read(1))[0]) != 0:
            if kind == 3:
                await read(3)
                await read(struct.unpack(">I", await read(4))[0])
        await read(1)
        rectangles = struct.unpack(">H", await read(2))[0]
        return width, height, rectangles


def test_a_desktop_on_the_cluster_streams_its_framebuffer_through_the_proxy(
    server: LabServer, cluster: str, desktop_installed: None
) -> None:
    with server.client("alice") as client:
        made = client.post(
            "/api/sessions",
            json={"name": "desk1", "type": "desktop", "target": cluster,
                  "options": {"geometry": "800x600"}},
        )  # fmt: skip
        assert made.status_code == 201, made.text
        session = wait_session(client, "desk1", "running", "failed")
        assert session["status"] == "running", session
        opened = session["open_url"]
        assert "vnc.html" in opened and "path=sessions/alice/desk1/websockify" in opened
        parts = urlsplit(opened)
        page = client.get(f"{parts.path}?{parts.query}")
        assert page.status_code == 200 and "noVNC" in page.text, page.text[:300]
        ws_url = f"ws{server.url[4:]}/sessions/alice/desk1/websockify"
        auth = {"Authorization": client.headers["Authorization"]}
        width, height, rectangles = asyncio.run(framebuffer_update(ws_url, auth))
        assert (width, height) == (800, 600) and rectangles >= 1

        # corral sessions connect: a local port a VNC client attaches to
        port = free_port()
        connect = subprocess.Popen(
            [sys.executable, "-m", "corral_sdk.cli.main", "sessions", "connect", "desk1",
             "--port", str(port)],
            env=server.cli_env("alice"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert connect.stdout is not None
            assert f"127.0.0.1:{port}" in connect.stdout.readline()
            with socket.create_connection(("127.0.0.1", port), timeout=10) as vnc:
                assert vnc.recv(12) == b"RFB 003.008\n"  # the VNC server's greeting
        finally:
            connect.terminate()
            connect.communicate(timeout=10)
        assert client.delete("/api/sessions/alice/desk1").status_code == 204


def test_a_session_on_a_cluster_that_is_not_running_is_refused(server: LabServer) -> None:
    assert server.lab is not None
    made = server.corral("alice", "cluster", "create", "cold", "--host", server.lab.login_host)
    assert made.returncode == 0, made.stderr
    with server.client("alice") as client:
        refused = client.post("/api/sessions", json={"type": "vscode", "target": "pw://alice/cold"})
        assert refused.status_code == 409, refused.text
        assert "start it first" in refused.json()["detail"]
