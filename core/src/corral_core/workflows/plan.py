"""A workflow compiled for one run: matrix jobs expanded into instances, ``needs`` resolved to
instances, in an order the engine can start them in.

Matrix semantics follow GitHub Actions (spec §4.5): the axes' Cartesian product, minus the
combinations an ``exclude`` entry matches, then each ``include`` entry extends every combination
whose original axes it matches, or becomes a combination of its own when it matches none.
Instances are named ``<job> (<value>, <value>)`` in axis order; ``needs: [job]`` waits for every
instance of ``job``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import msgspec

from corral_core.workflows import expressions
from corral_core.workflows.format import Job, Workflow
from corral_sdk.errors import Invalid

__all__ = ["MAX_MATRIX", "Plan", "PlannedJob", "expand_matrix", "plan"]

MAX_MATRIX = 256
"""Instances one matrix job may have."""


class PlannedJob(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    """The instance's name: the job's, or ``job (v1, v2)`` for a matrix instance."""
    job: str
    """The job of the YAML it comes from."""
    matrix: dict[str, Any] = {}
    needs: tuple[str, ...] = ()
    """Instances that must complete first."""
    group_size: int = 1
    """How many instances the job has (a matrix's size)."""


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    jobs: tuple[PlannedJob, ...]
    """In an order where every job comes after what it needs."""


def _combination_name(values: Mapping[str, Any]) -> str:
    return ", ".join(expressions.to_text(v) for v in values.values())


def expand_matrix(matrix: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The combinations of a (rendered) ``strategy.matrix``; raises ``Invalid`` naming the axis
    for what is not a matrix."""
    axes = {k: v for k, v in matrix.items() if k not in ("include", "exclude")}
    for axis, values in axes.items():
        if not isinstance(values, list) or not values:
            raise Invalid(f"matrix axis {axis!r} must be a non-empty list", field=f"matrix.{axis}")
    include = matrix.get("include") or []
    exclude = matrix.get("exclude") or []
    for name, entries in (("include", include), ("exclude", exclude)):
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise Invalid(f"matrix {name} must be a list of mappings", field=f"matrix.{name}")
    combinations: list[dict[str, Any]] = (
        [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]
        if axes
        else []
    )
    combinations = [
        c
        for c in combinations
        if not any(all(c.get(k) == v for k, v in entry.items()) for entry in exclude)
    ]
    originals = [dict(c) for c in combinations]
    for entry in include:
        matched = False
        for index, original in enumerate(originals):
            if all(original[k] == v for k, v in entry.items() if k in axes):
                combinations[index].update(entry)
                matched = True
        if not matched:
            combinations.append(dict(entry))
    if len(combinations) > MAX_MATRIX:
        raise Invalid(
            f"the matrix has {len(combinations)} combinations; at most {MAX_MATRIX}",
            field="matrix",
        )
    return combinations


def _needs(job: Job) -> list[str]:
    return [job.needs] if isinstance(job.needs, str) else list(job.needs)


def plan(workflow: Workflow, contexts: Mapping[str, Any]) -> Plan:
    """Expand the matrices (rendered with ``contexts``: inputs, org) and order the jobs."""
    instances: dict[str, list[PlannedJob]] = {}
    for name, job in workflow.jobs.items():
        if job.strategy is None:
            instances[name] = [PlannedJob(name=name, job=name)]
            continue
        rendered = expressions.render_deep(job.strategy.matrix, contexts)
        if not isinstance(rendered, dict):
            raise Invalid(f"the matrix of job {name!r} is not a mapping", field=f"jobs.{name}")
        try:
            combinations = expand_matrix(rendered)
        except Invalid as exc:
            raise Invalid(f"job {name!r}: {exc.message}", field=f"jobs.{name}.strategy") from None
        if not combinations:
            raise Invalid(f"the matrix of job {name!r} has no combination", field=f"jobs.{name}")
        instances[name] = [
            PlannedJob(
                name=f"{name} ({_combination_name(c)})",
                job=name,
                matrix=c,
                group_size=len(combinations),
            )
            for c in combinations
        ]
    ordered: list[PlannedJob] = []
    done: set[str] = set()
    pending = list(workflow.jobs)
    while pending:
        progressed = False
        for name in list(pending):
            needs = _needs(workflow.jobs[name])
            if all(n in done for n in needs):
                required = tuple(i.name for n in needs for i in instances[n])
                ordered += [msgspec.structs.replace(i, needs=required) for i in instances[name]]
                done.add(name)
                pending.remove(name)
                progressed = True
        if not progressed:  # the loader refuses cycles; a plan never loops
            raise Invalid("the jobs' needs make a cycle", field="jobs")
    return Plan(jobs=tuple(ordered))
