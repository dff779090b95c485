"""Cold start of `corral --help`, beside the bare interpreter start measured in the same run.

Target: under 150 ms median on these machines (the CLI imports its heavy modules lazily).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from run import Figure, median_ms

RUNS = 30


def run() -> list[Figure]:
    corral = shutil.which("corral") or str(Path(sys.executable).with_name("corral"))
    interpreter = median_ms([sys.executable, "-c", "pass"], RUNS)
    help_ms = median_ms([corral, "--help"], RUNS)
    version_ms = median_ms([corral, "version"], RUNS)
    return [
        Figure("corral --help (median)", help_ms, "ms", "python -c pass", interpreter, "< 150 ms"),
        Figure("corral version (median)", version_ms, "ms", "python -c pass", interpreter),
    ]
