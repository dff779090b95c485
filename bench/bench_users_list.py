"""Throughput and latency of `GET /api/users?limit=50` with 1,000 users, beside `GET /api/health`.

`corral up` runs on a fresh data directory (embedded mode: SQLite, in-process broker) as its own
process; the load comes from this process, 32 concurrent clients with keep-alive connections, for
a fixed time after a warm-up. The load generator is `wrk` when it is installed (it costs the
machine least), else asyncio with an httpx pool of 32; `BENCH_LOAD_GENERATOR=httpx` forces the
latter. `BENCH_DATABASE_URL=postgresql://...` (an empty database) runs the same server on
PostgreSQL instead of SQLite.

Target: the authenticated users list answers at least half as many requests per second as the
public health check (ratio >= 0.5).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import httpx
from run import Figure

USERS = 1000
CLIENTS = 32
DURATION = 10.0
WARMUP = 2.0
ADMIN_PASSWORD = "Bench-admin-Passw0rd!"


class Load(NamedTuple):  # not a dataclass: run.py loads modules outside sys.modules
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(data: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    corral = shutil.which("corral") or str(Path(sys.executable).with_name("corral"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
    env["CORRAL_BOOTSTRAP_ADMIN_USERNAME"] = "admin"
    env["CORRAL_BOOTSTRAP_ADMIN_PASSWORD"] = ADMIN_PASSWORD
    # BENCH_DATABASE_URL=postgresql://... measures the same against an (empty) PostgreSQL database.
    if database := os.environ.get("BENCH_DATABASE_URL"):
        env["CORRAL_DATABASE_URL"] = database
        env["CORRAL_SECRETS_KEY"] = "x" * 43 + "="
    with log.open("wb") as out:
        return subprocess.Popen(
            [corral, "up", "--data-dir", data, "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def _wait_healthy(proc: subprocess.Popen[bytes], base: str, log: Path) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"corral up exited early:\n{log.read_text(errors='replace')}")
        try:
            response = httpx.get(f"{base}/api/health", timeout=1)
            if response.status_code == 200:
                health: dict[str, object] = response.json()
                return health
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"corral up did not become healthy:\n{log.read_text(errors='replace')}")


def _admin_key(base: str) -> str:
    with httpx.Client(base_url=base, timeout=30) as client:
        client.post(
            "/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        ).raise_for_status()
        created = client.post("/api/auth/apikeys", json={"name": "bench"})
        created.raise_for_status()
        secret: str = created.json()["secret"]
        return secret


async def _create_users(base: str, key: str) -> None:
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=60
    ) as client:
        names = iter(f"bench-user-{i:04d}" for i in range(USERS))

        async def worker() -> None:
            for name in names:
                response = await client.post(
                    "/api/users", json={"username": name, "email": f"{name}@example.com"}
                )
                response.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(CLIENTS)))
        listed = await client.get("/api/users", params={"limit": 1})
        listed.raise_for_status()
        total = listed.json()["total"]
        if total < USERS:
            raise RuntimeError(f"only {total} users listed after creating {USERS}")


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index]


async def _httpx_load(url: str, headers: dict[str, str], duration: float) -> Load:
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as client:

        async def worker(until: float, samples: list[float] | None) -> int:
            errors = 0
            while (start := time.perf_counter()) < until:
                response = await client.get(url)
                if samples is not None:
                    samples.append(time.perf_counter() - start)
                if response.status_code != 200:
                    errors += 1
            return errors

        warm_until = time.perf_counter() + WARMUP
        await asyncio.gather(*(worker(warm_until, None) for _ in range(CLIENTS)))
        samples: list[float] = []
        start = time.perf_counter()
        errors = await asyncio.gather(*(worker(start + duration, samples) for _ in range(CLIENTS)))
        elapsed = time.perf_counter() - start
    samples.sort()
    return Load(
        rps=len(samples) / elapsed,
        p50_ms=_percentile(samples, 0.50) * 1000,
        p99_ms=_percentile(samples, 0.99) * 1000,
        requests=len(samples),
        errors=sum(errors),
    )


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _wrk_ms(text: str, label: str) -> float:
    match = re.search(rf"^\s*{re.escape(label)}\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no {label} latency in wrk's output:\n{text}")
    return float(match.group(1)) * _UNIT_MS[match.group(2)]


def _wrk_load(wrk: str, url: str, headers: dict[str, str], duration: float) -> Load:
    header_args = [arg for k, v in headers.items() for arg in ("-H", f"{k}: {v}")]
    base = [wrk, "-t", "2", "-c", str(CLIENTS), *header_args]
    subprocess.run([*base, "-d", f"{WARMUP:.0f}s", url], check=True, capture_output=True)
    out = subprocess.run(
        [*base, "-d", f"{duration:.0f}s", "--latency", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.MULTILINE)
    total = re.search(r"^\s*(\d+) requests in", out, re.MULTILINE)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    if rps is None or total is None:
        raise RuntimeError(f"could not read wrk's output:\n{out}")
    errors = int(bad.group(1)) if bad else 0
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return Load(
        rps=float(rps.group(1)),
        p50_ms=_wrk_ms(out, "50%"),
        p99_ms=_wrk_ms(out, "99%"),
        requests=int(total.group(1)),
        errors=errors,
    )


def _measure(url: str, headers: dict[str, str]) -> Load:
    wrk = shutil.which("wrk")
    if wrk and os.environ.get("BENCH_LOAD_GENERATOR", "wrk") != "httpx":
        return _wrk_load(wrk, url, headers, DURATION)
    return asyncio.run(_httpx_load(url, headers, DURATION))


def run() -> list[Figure]:
    generator = "wrk" if shutil.which("wrk") else "httpx"
    if os.environ.get("BENCH_LOAD_GENERATOR") == "httpx":
        generator = "httpx"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        data = str(Path(tmp) / "data")
        log = Path(tmp) / "up.log"
        proc = _start(data, port, log)
        try:
            health = _wait_healthy(proc, base, log)
            key = _admin_key(base)
            started = time.perf_counter()
            asyncio.run(_create_users(base, key))
            setup_s = time.perf_counter() - started
            print(
                f"server: corral up, {health.get('mode')} mode, pid {proc.pid}; "
                f"{USERS} users created in {setup_s:.1f} s; load: {generator}, "
                f"{CLIENTS} connections, {DURATION:.0f} s each after {WARMUP:.0f} s warm-up"
            )
            health_load = _measure(f"{base}/api/health", {})
            users_load = _measure(f"{base}/api/users?limit=50", {"Authorization": f"Bearer {key}"})
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    for name, load in (("health", health_load), ("users", users_load)):
        print(f"{name}: {load.requests} requests, {load.errors} not 200")
        if load.errors:
            raise RuntimeError(f"{load.errors} requests to the {name} route failed")
    return [
        Figure("GET /api/health", health_load.rps, "req/s"),
        Figure("GET /api/health p50", health_load.p50_ms, "ms"),
        Figure("GET /api/health p99", health_load.p99_ms, "ms"),
        Figure(
            "GET /api/users?limit=50 (1,000 users)",
            users_load.rps,
            "req/s",
            "GET /api/health",
            health_load.rps,
            "ratio >= 0.5",
        ),
        Figure(
            "GET /api/users?limit=50 p50",
            users_load.p50_ms,
            "ms",
            "GET /api/health p50",
            health_load.p50_ms,
        ),
        Figure(
            "GET /api/users?limit=50 p99",
            users_load.p99_ms,
            "ms",
            "GET /api/health p99",
            health_load.p99_ms,
        ),
    ]
