"""The published JSON Schema of the workflow format, made from :mod:`~corral_core.workflows.format`
(served at ``/api/schema/workflow.json``; a copy is kept in ``config/schema/workflow.schema.json``
for editors, and a test keeps the two equal)."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from corral_core.workflows.format import Input, Workflow

__all__ = ["SCHEMA_ID", "workflow_schema", "workflow_schema_text"]

SCHEMA_ID = "https://corral.dev/schema/workflow.json"


def workflow_schema() -> dict[str, Any]:
    (root, _), definitions = msgspec.json.schema_components(
        [Workflow, Input], ref_template="#/$defs/{name}"
    )
    schema: dict[str, Any] = {**root, "$defs": definitions}
    # inputs are Input objects by name, and the form's options under "$meta"
    definitions["Execute"]["properties"]["inputs"] = {
        "type": "object",
        "description": "The run form: inputs by name (letters, digits, '-' and '_'), and "
        "'$meta' for the form's options (wizard, label position)",
        "properties": {"$meta": {"type": "object"}},
        "patternProperties": {"^[A-Za-z0-9_-]+$": {"$ref": "#/$defs/Input"}},
        "additionalProperties": False,
    }
    definitions["Input"]["properties"]["items"] = {
        "type": "object",
        "additionalProperties": {"$ref": "#/$defs/Input"},
        "description": "A group's inputs",
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Corral workflow",
        **schema,
    }


def workflow_schema_text() -> str:
    return json.dumps(workflow_schema(), indent=2, sort_keys=True) + "\n"
