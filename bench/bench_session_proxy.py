"""The sessions' reverse proxy against a real ``corral up``: HTTP throughput of 1 MiB responses
and the median WebSocket round trip, through the proxy beside the same measured directly against
the app in the same run, for both ways the proxy reaches a session's app:

- ``workspace``: a tunnel session in the workspace; the proxy reaches the app over a loopback
  TCP connection.
- ``SSH tunnel``: a tunnel session on a cluster; the proxy reaches the app through Corral's SSH
  port forward over its pooled connection to the cluster's login host (browser -> proxy -> SSH
  forward -> sshd -> app). The login host is OpenSSH's sshd, started by the bench on a loopback
  port (a throwaway host key; Corral's platform key for the bench's user authorized) and
  registered as an existing cluster, signed in to as the user running the bench. Slurm is not
  what is measured: an ``sinfo`` printing no partitions, first on the sshd's ``PATH``, lets the
  cluster turn active (its health check is one ``sinfo`` a minute).

A reference for the SSH tunnel, without Corral: the same app through OpenSSH's own client's
forward (``ssh -L``, the cipher Corral uses) to the same sshd, against direct in the same way.
On one machine sshd's encryption and the client's decryption share the CPU with the app and the
client, which a cluster's login node does not.

Every path reaches the same app, in a process of its own as a session's service is, with the
same client, one kept-alive connection and one request at a time. Throughput is measured in
alternating rounds (direct, proxied, proxied, direct...) and each figure is the median over the
rounds, so a busy machine's swings hit both.

Targets (issue 7): at least 60% of direct throughput; under 1 ms added median round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import httpx
import websockets
from run import Figure

from corral_core.testing import (
    CorralProcess,
    OpenSSHServer,
    TestDeployment,
    api_key,
    free_port,
)

MIB = 1 << 20
REQUESTS = 60
"""Per round and path."""
ROUNDS = 6
ROUND_TRIPS = 2000
CIPHER = "aes256-gcm@openssh.com"
"""What Corral's SSH connections negotiate with OpenSSH (AES-GCM first, see ssh/pool.py)."""


APP = """
import sys

import uvicorn

BODY = b"x" * (1 << 20)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
    elif scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
    else:
        headers = [(b"content-length", str(len(BODY)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": BODY})


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, lifespan="on")
"""
"""The app: 1 MiB answers and a WebSocket echo, in a process of its own (as a session's
service is)."""


class Measured(NamedTuple):
    """One path's figures: (direct, proxied) MiB/s of each round, and median round trips."""

    rounds: list[tuple[float, float]]
    direct_rtt: float | None
    proxy_rtt: float | None


def _throughput(client: httpx.Client) -> float:
    """MiB per second over the client's kept-alive connection."""
    began = time.perf_counter()
    for _ in range(REQUESTS):
        assert len(client.get("/big").content) == MIB
    return REQUESTS / (time.perf_counter() - began)


def _rounds(
    direct_url: str, proxied_url: str, headers: dict[str, str]
) -> list[tuple[float, float]]:
    """(direct, proxied) MiB/s of each round, in alternating order."""
    with (
        httpx.Client(base_url=direct_url, timeout=60) as direct,
        httpx.Client(base_url=proxied_url, headers=headers, timeout=60) as proxied,
    ):
        for client in (direct, proxied):
            for _ in range(5):
                client.get("/big").read()
        results = []
        for i in range(ROUNDS):
            if i % 2 == 0:
                d = _throughput(direct)
                p = _throughput(proxied)
            else:
                p = _throughput(proxied)
                d = _throughput(direct)
            results.append((d, p))
        return results


def _round_trip_ms(url: str, headers: dict[str, str]) -> float:
    async def measure() -> float:
        async with websockets.connect(url, additional_headers=headers, compression=None) as ws:
            samples = []
            for i in range(ROUND_TRIPS + 100):
                began = time.perf_counter()
                await ws.send(b"ping")
                await ws.recv()
                if i >= 100:
                    samples.append((time.perf_counter() - began) * 1000)
            return statistics.median(samples)

    return asyncio.run(measure())


def _measure(app_port: int, proxied: str, auth: dict[str, str], *, ws: bool = True) -> Measured:
    """``proxied`` (``host:port/path``) beside the app asked directly."""
    direct = f"127.0.0.1:{app_port}"
    return Measured(
        rounds=_rounds(f"http://{direct}", f"http://{proxied}", auth),
        direct_rtt=_round_trip_ms(f"ws://{direct}/ws", {}) if ws else None,
        proxy_rtt=_round_trip_ms(f"ws://{proxied}/ws", auth) if ws else None,
    )


def _wait(what: Callable[[], str], ready: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(what())
        time.sleep(0.2)


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return False
    return True


def _start_session(client: httpx.Client, body: dict[str, object]) -> str:
    """Start a tunnel session; once running, its path at the proxy."""
    made = client.post("/api/sessions", json={"type": "tunnel", **body})
    assert made.status_code == 201, made.text
    url = f"/api/sessions/{made.json()['owner']}/{body['name']}"
    _wait(
        lambda: f"the session {body['name']} did not run: {client.get(url).text}",
        lambda: client.get(url).json()["status"] == "running",
    )
    return f"/sessions/{made.json()['owner']}/{body['name']}"


def _start_cluster(client: httpx.Client, sshd: OpenSSHServer) -> str:
    """Register ``sshd`` as an existing cluster and start it; its name once active."""
    made = client.post(
        "/api/clusters",
        json={"name": "benchlogin", "login_host": "127.0.0.1", "port": sshd.port,
              "username": sshd.username},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    url = f"/api/clusters/{made.json()['owner']}/benchlogin"
    client.post(f"{url}/start").raise_for_status()
    _wait(
        lambda: f"the cluster did not turn active: {client.get(url).text}\n{sshd.output()}",
        lambda: client.get(url).json()["status"] == "active",
    )
    return "benchlogin"


@contextlib.contextmanager
def _ssh_forward(directory: Path, sshd: OpenSSHServer, key: Path, app_port: int) -> Iterator[int]:
    """OpenSSH's ``ssh -L`` to the app through ``sshd``; its local port."""
    known_hosts = directory / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {sshd.host_key}\n")
    port = free_port()
    ssh = subprocess.Popen(
        ["ssh", "-N", "-F", "/dev/null", "-i", str(key), "-p", str(sshd.port), "-c", CIPHER,
         "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={known_hosts}",
         "-o", "ExitOnForwardFailure=yes", "-L", f"127.0.0.1:{port}:127.0.0.1:{app_port}",
         f"{sshd.username}@127.0.0.1"],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait(lambda: "ssh -L did not start", lambda: _answers(f"http://127.0.0.1:{port}/"), 30)
        yield port
    finally:
        ssh.terminate()
        ssh.wait(10)


class Setup(NamedTuple):
    """What :func:`serving` started."""

    app_port: int
    api_port: int
    auth: dict[str, str]
    sessions: dict[str, str]
    """The proxy's path of each session, by the way it reaches the app."""
    ssh_forward_port: int
    """OpenSSH's ``ssh -L`` to the app through the same sshd."""
    corral: CorralProcess


@contextlib.contextmanager
def serving() -> Iterator[Setup]:
    """The app, ``corral up``, the login host's sshd registered as a cluster, a session on each
    path, and ``ssh -L`` to the app through the same sshd."""
    port = free_port()
    backend = subprocess.Popen([sys.executable, "-c", APP, str(port)])
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        stack.callback(lambda: (backend.terminate(), backend.wait(10)))
        deployment = TestDeployment(tmp)
        stack.callback(deployment.close)
        api = free_port()
        corral = CorralProcess(
            ["up", "--host", "127.0.0.1", "--port", str(api)],
            deployment.process_env({}),
            tmp / "up.log",
        )
        stack.callback(corral.stop)
        _wait(lambda: "the app did not start", lambda: _answers(f"http://127.0.0.1:{port}/"), 30)
        url = f"http://127.0.0.1:{api}"
        corral.wait_http(f"{url}/api/health", timeout=60)
        auth = {"Authorization": f"Bearer {api_key(url)}"}
        with httpx.Client(base_url=url, headers=auth, timeout=60) as client:
            workspace = _start_session(client, {"name": "bench", "remote_port": port})
            platform_key = next(k["key"] for k in client.get("/api/ssh-keys").json() if k["system"])
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / "bench_key")],
                check=True,
            )
            (tmp / "bin").mkdir()
            (tmp / "bin" / "sinfo").write_text("#!/bin/sh\nexit 0\n")
            (tmp / "bin" / "sinfo").chmod(0o755)
            sshd = OpenSSHServer(
                tmp / "sshd",
                [platform_key, (tmp / "bench_key.pub").read_text()],
                path=(tmp / "bin",),
            )
            stack.callback(sshd.stop)
            stack.callback(corral.stop)  # (again) before sshd, whose connections it holds
            cluster = _start_cluster(client, sshd)
            tunnel = _start_session(
                client,
                {"name": "benchssh", "target": cluster, "remote_host": "127.0.0.1",
                 "remote_port": port},
            )  # fmt: skip
        forward = stack.enter_context(_ssh_forward(tmp, sshd, tmp / "bench_key", port))
        yield Setup(
            port, api, auth, {"workspace": workspace, "SSH tunnel": tunnel}, forward, corral
        )


def run() -> list[Figure]:
    with serving() as setup:
        measured = {
            path: _measure(setup.app_port, f"127.0.0.1:{setup.api_port}{session}", setup.auth)
            for path, session in setup.sessions.items()
        }
        reference = _measure(setup.app_port, f"127.0.0.1:{setup.ssh_forward_port}", {}, ws=False)
    figures = []
    for path, m in measured.items():
        assert m.direct_rtt is not None and m.proxy_rtt is not None
        figures += [
            _throughput_figure(
                f"HTTP 1 MiB through the proxy ({path})", m.rounds, ">= 0.60 of direct"
            ),
            Figure(
                f"WebSocket round trip through the proxy ({path})", m.proxy_rtt, "ms", "direct",
                m.direct_rtt, target=f"< 1 ms added (added: {m.proxy_rtt - m.direct_rtt:.3f} ms)",
            ),
        ]  # fmt: skip
    figures.append(
        _throughput_figure(
            "HTTP 1 MiB through OpenSSH's ssh -L to the same sshd (reference, no Corral)",
            reference.rounds,
            "none",
        )
    )
    return figures


def _throughput_figure(name: str, rounds: list[tuple[float, float]], target: str) -> Figure:
    ratios = " ".join(f"{p / d:.2f}" for d, p in rounds)
    return Figure(
        name,
        statistics.median(p for _, p in rounds),
        "MiB/s",
        "direct",
        statistics.median(d for d, _ in rounds),
        target=f"{target} (each round's ratio: {ratios})",
    )
