"""The sessions' reverse proxy against a real ``corral up``: HTTP throughput of 1 MiB responses
and the median WebSocket round trip, through the proxy beside the same measured directly against
the app in the same run.

The session is a tunnel session in the workspace: the proxy reaches the app over a loopback TCP
connection (no SSH forward, which a cluster's session adds). Both paths use the same client, one
kept-alive connection and one request at a time; the app runs in a process of its own, as a
session's service does. Throughput is measured in alternating rounds (direct, proxied, proxied,
direct...) and each figure is the median over the rounds, so a busy machine's swings hit both.

Targets (issue 7): at least 60% of direct throughput; under 1 ms added median round trip.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets
from run import Figure

from corral_core.testing import CorralProcess, TestDeployment, api_key, free_port

MIB = 1 << 20
REQUESTS = 60
"""Per round and path."""
ROUNDS = 6
ROUND_TRIPS = 2000


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


def run() -> list[Figure]:
    port = free_port()
    backend = subprocess.Popen([sys.executable, "-c", APP, str(port)])
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "the app did not start"
            time.sleep(0.1)
    with tempfile.TemporaryDirectory() as tmp:
        deployment = TestDeployment(Path(tmp))
        api = free_port()
        corral = CorralProcess(
            ["up", "--host", "127.0.0.1", "--port", str(api)],
            deployment.process_env({}),
            Path(tmp) / "up.log",
        )
        try:
            url = f"http://127.0.0.1:{api}"
            corral.wait_http(f"{url}/api/health", timeout=60)
            auth = {"Authorization": f"Bearer {api_key(url)}"}
            with httpx.Client(base_url=url, headers=auth) as client:
                made = client.post(
                    "/api/sessions", json={"name": "bench", "type": "tunnel", "remote_port": port}
                )
                made.raise_for_status()
                owner = made.json()["owner"]
                deadline = time.monotonic() + 30
                while client.get(f"/api/sessions/{owner}/bench").json()["status"] != "running":
                    assert time.monotonic() < deadline, "the session did not run"
                    time.sleep(0.2)
            proxied = f"{url}/sessions/{owner}/bench"
            rounds = _rounds(f"http://127.0.0.1:{port}", proxied, auth)
            direct_rtt = _round_trip_ms(f"ws://127.0.0.1:{port}/ws", {})
            proxy_rtt = _round_trip_ms(f"ws://127.0.0.1:{api}/sessions/{owner}/bench/ws", auth)
        finally:
            corral.stop()
            backend.terminate()
            backend.wait(10)
    direct_mib = statistics.median(d for d, _ in rounds)
    proxy_mib = statistics.median(p for _, p in rounds)
    ratios = " ".join(f"{p / d:.2f}" for d, p in rounds)
    return [
        Figure(
            "HTTP 1 MiB through the proxy", proxy_mib, "MiB/s", "direct", direct_mib,
            target=f">= 0.60 of direct (each round's ratio: {ratios})",
        ),
        Figure(
            "WebSocket round trip through the proxy", proxy_rtt, "ms", "direct", direct_rtt,
            target=f"< 1 ms added (added: {proxy_rtt - direct_rtt:.3f} ms)",
        ),
    ]  # fmt: skip
