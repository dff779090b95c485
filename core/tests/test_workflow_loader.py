"""Reading workflow YAML: every example of the spec loads; every kind of bad YAML is refused with
its line, column and a message."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from corral_core.workflows.durations import parse_duration
from corral_core.workflows.loader import WorkflowInvalid, load

EXAMPLES = Path(__file__).parent / "workflows"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_example_of_the_spec_loads(path: Path) -> None:
    loaded = load(path.read_text(), source=path.name)
    assert loaded.workflow.jobs


def problems(text: str, **kwargs: str) -> list[tuple[int, int, str]]:
    with pytest.raises(WorkflowInvalid) as caught:
        load(text, **kwargs)
    return [(p.line, p.column, p.message) for p in caught.value.problems]


def test_a_tab_is_refused_with_its_line_and_column() -> None:
    found = problems("jobs:\n  main:\n\tsteps:\n      - run: true\n")
    assert len(found) == 1
    line, column, message = found[0]
    assert line == 3 and column == 1, found
    assert "tab" in message


def test_an_unknown_key_names_itself_and_its_place() -> None:
    text = "jobs:\n  main:\n    steps:\n      - run: echo hi\n        colour: red\n"
    assert problems(text) == [(5, 9, "unknown key 'colour'")]
    assert problems("jobz: {}\njobs:\n  a:\n    steps: [{run: x}]\n")[0][:2] == (1, 1)


def test_a_needs_cycle_is_refused() -> None:
    text = """jobs:
  a:
    needs: [c]
    steps: [{run: x}]
  b:
    needs: [a]
    steps: [{run: x}]
  c:
    needs: [b]
    steps: [{run: x}]
"""
    [(line, _, message)] = problems(text)
    assert "cycle" in message and "a -> c -> b -> a" in message, message
    assert line == 3


def test_needs_of_a_job_that_does_not_exist() -> None:
    text = "jobs:\n  a:\n    needs: [nope]\n    steps: [{run: x}]\n"
    [(line, _, message)] = problems(text)
    assert line == 3 and "'nope'" in message


def test_an_unknown_input_type_is_refused() -> None:
    text = """jobs:
  a:
    steps: [{run: x}]
on:
  execute:
    inputs:
      size:
        type: huge
"""
    [(line, column, message)] = problems(text)
    assert (line, column) == (8, 15)
    assert "unknown type 'huge'" in message


@pytest.mark.parametrize("name", ["a b", "a.b"])
def test_input_names_are_letters_digits_dashes_and_underscores(name: str) -> None:
    text = (
        "jobs:\n  a:\n    steps: [{run: x}]\n"
        f"on:\n  execute:\n    inputs:\n      '{name}':\n        type: string\n"
    )
    [(line, _, message)] = problems(text)
    assert line == 7 and repr(name) in message


def test_a_workflow_that_uses_itself_is_refused() -> None:
    text = "jobs:\n  a:\n    steps:\n      - uses: workflow/my_flow\n"
    [(line, column, message)] = problems(text, name="my_flow")
    assert (line, column) == (4, 15) and "recursion" in message
    load(text, name="other_flow")


def test_steps_need_exactly_one_of_run_and_uses() -> None:
    both = "jobs:\n  a:\n    steps:\n      - run: x\n        uses: parallelworks/checkout\n"
    neither = "jobs:\n  a:\n    steps:\n      - name: nothing\n"
    assert "exactly one of" in problems(both)[0][2]
    assert "exactly one of" in problems(neither)[0][2]


def test_jobs_and_steps_are_required() -> None:
    assert "at least one job" in problems("env: {a: b}\n")[0][2]
    assert "at least one step" in problems("jobs:\n  a:\n    steps: []\n")[0][2]
    assert "'steps'" in problems("jobs:\n  a:\n    env: {}\n")[0][2]


def test_at_most_one_session_redirects() -> None:
    text = (
        "sessions:\n  a:\n    redirect: true\n  b:\n    redirect: true\n"
        "jobs:\n  j:\n    steps: [{run: x}]\n"
    )
    [(line, _, message)] = problems(text)
    assert line == 5 and "only one session" in message


def test_bad_durations_and_unknown_early_cancel() -> None:
    text = "timeout: soon\njobs:\n  a:\n    steps:\n      - run: x\n        early-cancel: always\n"
    found = problems(text)
    assert [f[0] for f in found] == [1, 6], found
    assert "'soon' is not a duration" in found[0][2]


def test_on_unquoted_and_quoted_are_the_same() -> None:
    body = (
        "  execute:\n    inputs:\n      x:\n        type: string\n"
        "jobs:\n  a:\n    steps: [{run: x}]\n"
    )
    plain, quoted = load("on:\n" + body), load("'on':\n" + body)
    assert plain.workflow == quoted.workflow
    assert plain.workflow.on is not None and plain.workflow.on.execute is not None
    assert "x" in plain.workflow.on.execute.inputs


def test_unquoted_braces_are_expressions_not_mappings() -> None:
    loaded = load((EXAMPLES / "cleanup_order.yaml").read_text())
    steps = loaded.workflow.jobs["main"].steps
    assert steps[1].if_ == "{{ always }}"


def test_a_malformed_expression_is_reported_where_it_is() -> None:
    text = "jobs:\n  a:\n    steps:\n      - run: echo {{ 1 + }}\n"
    [(line, _, message)] = problems(text)
    assert line == 4 and "malformed expression" in message


def test_ssh_null_is_not_the_same_as_no_ssh() -> None:
    loaded = load((EXAMPLES / "ssh_targets.yaml").read_text())
    job = loaded.workflow.jobs["echo_on_remote"]
    assert job.ssh is not None and job.steps[2].ssh is None
    assert job.steps[0].ssh is msgspec.UNSET  # inherits the job's


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10), ("1m", 60), ("1h30m", 5400), ("1d", 86400), ("500ms", 0.5), (5, 5), ("2", 2)],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "10x", "1m soon", "-1s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_run_true_is_the_command_true() -> None:
    loaded = load("jobs:\n  a:\n    steps:\n      - run: true\n        cleanup: 1\n")
    step = loaded.workflow.jobs["a"].steps[0]
    assert (step.run, step.cleanup) == ("true", "1")
