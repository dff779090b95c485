"""`corral up` on a fresh data directory: time until `/api/health` answers 200.

Acceptance target: within 10 s. Printed beside the bare interpreter start measured in the same run.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from run import Figure, median_ms

RUNS = 5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _time_to_health() -> float:
    corral = shutil.which("corral") or str(Path(sys.executable).with_name("corral"))
    port = _free_port()
    with tempfile.TemporaryDirectory() as data:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
        start = time.perf_counter()
        proc = subprocess.Popen(
            [corral, "up", "--data-dir", data, "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1):
                        return (time.perf_counter() - start) * 1000
                except OSError:
                    if proc.poll() is not None or time.perf_counter() - start > 60:
                        raise RuntimeError("corral up did not become healthy") from None
                    time.sleep(0.02)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def run() -> list[Figure]:
    interpreter = median_ms([sys.executable, "-c", "pass"], 10)
    samples = [_time_to_health() for _ in range(RUNS)]
    return [
        Figure(
            "corral up to healthy, fresh data dir (median of 5)",
            statistics.median(samples),
            "ms",
            "python -c pass",
            interpreter,
            "< 10000 ms",
        )
    ]
