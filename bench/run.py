"""Run Corral's benchmarks and print their figures, each beside a baseline measured in the same run.

    uv run python bench/run.py              # every benchmark
    uv run python bench/run.py cli_cold_start

Each benchmark is a module ``bench/bench_<name>.py`` with ``run() -> list[Figure]``. Timings are
never pass/fail: they are printed as ratios against the baseline, since these machines are noisy.
"""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).parent


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    baseline_name: str = ""
    baseline: float | None = None
    target: str = ""

    def line(self) -> str:
        text = f"{self.name}: {self.value:.1f} {self.unit}"
        if self.baseline is not None:
            ratio = self.value / self.baseline if self.baseline else float("inf")
            text += f" | {self.baseline_name}: {self.baseline:.1f} {self.unit} | ratio {ratio:.2f}"
        if self.target:
            text += f" | target {self.target}"
        return text


def median_ms(command: list[str], runs: int, warmup: int = 3) -> float:
    """Median wall time of ``command`` in milliseconds."""
    for _ in range(warmup):
        subprocess.run(command, check=True, capture_output=True)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def load(name: str) -> ModuleType:
    path = HERE / f"bench_{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"no benchmark {name!r} ({path} missing)")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(names: list[str]) -> int:
    names = names or sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    for name in names:
        print(f"== {name}")
        for figure in load(name).run():
            print(figure.line())
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    sys.exit(main(sys.argv[1:]))
