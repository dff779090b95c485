"""The published JSON Schema: the committed copy is the generated one, and the spec's examples
validate against it (an editor using it agrees with the loader)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema_rs  # a test dependency (through schemathesis)
import pytest

from corral_core.workflows.loader import load
from corral_core.workflows.schema import workflow_schema, workflow_schema_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = Path(__file__).parent / "workflows"


def test_the_committed_schema_is_the_generated_one() -> None:
    committed = ROOT / "config" / "schema" / "workflow.schema.json"
    assert committed.read_text() == workflow_schema_text(), (
        "regenerate it: uv run python -c 'from corral_core.workflows.schema import "
        'workflow_schema_text as t; open("config/schema/workflow.schema.json", "w")'
        ".write(t())'"
    )


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_the_examples_validate_against_the_schema(path: Path) -> None:
    validator = jsonschema_rs.Draft202012Validator(workflow_schema())
    document = json.loads(json.dumps(load(path.read_text()).document))
    errors = [str(e) for e in validator.iter_errors(document)]
    assert errors == []


def test_the_schema_refuses_an_unknown_step_key() -> None:
    validator = jsonschema_rs.Draft202012Validator(workflow_schema())
    assert not validator.is_valid({"jobs": {"a": {"steps": [{"run": "x", "colour": "red"}]}}})
    assert validator.is_valid({"jobs": {"a": {"steps": [{"run": "x"}]}}})
