"""Compiling a workflow for a run: matrix instances and the needs between them."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral_core.workflows.loader import load
from corral_core.workflows.plan import MAX_MATRIX, expand_matrix, plan
from corral_sdk.errors import Invalid

EXAMPLES = Path(__file__).parent / "workflows"


def planned(name: str, **contexts: object) -> list[tuple[str, dict[str, object]]]:
    loaded = load((EXAMPLES / name).read_text())
    return [(j.name, j.matrix) for j in plan(loaded.workflow, contexts).jobs]


def test_a_two_by_three_matrix_makes_six_instances() -> None:
    jobs = planned("matrix.yaml")
    assert [n for n, _ in jobs] == [
        "test (ubuntu, 1)", "test (ubuntu, 2)", "test (ubuntu, 3)",
        "test (centos, 1)", "test (centos, 2)", "test (centos, 3)",
    ]  # fmt: skip


def test_include_extends_a_matching_combination_or_adds_one() -> None:
    combos = [m for _, m in planned("matrix_include.yaml")]
    assert combos == [
        {"os": "ubuntu", "version": 1},
        {"os": "ubuntu", "version": 2, "experimental": True},
        {"os": "centos", "version": 1},
        {"os": "centos", "version": 2},
        {"os": "fedora", "version": 3},
    ]


def test_exclude_and_include_together() -> None:
    combos = expand_matrix(
        {
            "os": ["ubuntu", "centos"],
            "version": [1, 2, 3],
            "exclude": [{"os": "centos", "version": 1}],
            "include": [{"os": "arch", "version": 9}, {"color": "green"}],
        }
    )
    assert len(combos) == 6
    assert {"os": "centos", "version": 1, "color": "green"} not in combos
    assert combos[-1] == {"os": "arch", "version": 9}
    assert all(c.get("color") == "green" for c in combos[:-1])


def test_a_matrix_from_an_input() -> None:
    text = """jobs:
  deploy:
    strategy:
      matrix:
        region: ${{ inputs.regions }}
    steps:
      - run: echo ${ matrix.region }
"""
    jobs = plan(load(text).workflow, {"inputs": {"regions": ["a", "b"]}}).jobs
    assert [j.name for j in jobs] == ["deploy (a)", "deploy (b)"]


def test_needs_on_a_matrix_job_waits_for_every_instance() -> None:
    text = """jobs:
  report:
    needs: [test]
    steps: [{run: x}]
  test:
    strategy:
      matrix:
        n: [1, 2]
    steps: [{run: x}]
"""
    jobs = plan(load(text).workflow, {}).jobs
    assert [j.name for j in jobs] == ["test (1)", "test (2)", "report"]
    assert jobs[2].needs == ("test (1)", "test (2)")
    assert jobs[0].group_size == 2


def test_bad_matrices() -> None:
    with pytest.raises(Invalid, match="'os' must be a non-empty list"):
        expand_matrix({"os": []})
    with pytest.raises(Invalid, match=f"at most {MAX_MATRIX}"):
        expand_matrix({"a": list(range(20)), "b": list(range(20))})
