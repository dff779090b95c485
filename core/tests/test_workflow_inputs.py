"""Run inputs on the server: defaults, required values, ignore, ranges, options, wizards,
passwords, and refusals naming the input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from corral_core.workflows.inputs import (
    MASK,
    InputWithEnv,
    clashing_inputs,
    resolve_inputs,
    step_environment,
)
from corral_core.workflows.loader import load
from corral_sdk.errors import Invalid

pytestmark = pytest.mark.anyio
EXAMPLES = Path(__file__).parent / "workflows"


def schema_of(name: str) -> dict[str, Any]:
    document = load((EXAMPLES / name).read_text()).document
    return dict(document["on"]["execute"]["inputs"])


async def refused(schema: dict[str, Any], submitted: dict[str, Any]) -> Invalid:
    with pytest.raises(Invalid) as caught:
        await resolve_inputs(schema, submitted)
    return caught.value


async def test_expression_defaults_settle_and_hidden_values_stay() -> None:
    form = await resolve_inputs(schema_of("schema_references.yaml"), {"field_1": 3})
    values = form.values
    assert values["calculated_value"] == 20 and values["base_value"] == 10
    assert values["field_2"] == "3"
    assert values["field_4"] == "number" and values["field_6"] == "number"
    assert values["field_7"] == "string"
    changed = await resolve_inputs(schema_of("schema_references.yaml"), {"base_value": 7})
    assert changed.values["calculated_value"] == 14


async def test_required_values_and_optional_defaults() -> None:
    schema = {
        "name": {"type": "string", "optional": False, "label": "Name"},
        "note": {"type": "string", "default": "hello"},
        "maybe": {"type": "string"},
    }
    problem = await refused(schema, {})
    assert problem.field == "inputs.name" and "required" in problem.message
    form = await resolve_inputs(schema, {"name": "x"})
    assert form.values == {"name": "x", "note": "hello"}


async def test_ignored_inputs_do_not_reach_the_run() -> None:
    schema = {"ui": {"type": "string", "ignore": True, "default": "x"}, "v": {"type": "number"}}
    assert (await resolve_inputs(schema, {"v": "4"})).values == {"v": 4}


async def test_numbers_within_their_range() -> None:
    schema = {"port": {"type": "number", "min": 4000, "max": 65000}}
    assert (await resolve_inputs(schema, {"port": 5000})).values == {"port": 5000}
    problem = await refused(schema, {"port": 80})
    assert problem.field == "inputs.port" and "between 4000 and 65000" in problem.message
    assert (await refused(schema, {"port": "eighty"})).field == "inputs.port"


async def test_dropdowns_static_and_by_key() -> None:
    schema = schema_of("dynamic_dropdown.yaml")
    form = await resolve_inputs(schema, {"scheduler": "pbs", "partition": "workq"})
    assert form.values == {"scheduler": "pbs", "partition": "workq"}
    problem = await refused(schema, {"scheduler": "pbs", "partition": "gpu"})
    assert problem.field == "inputs.partition" and "workq" in problem.message
    assert (await refused(schema, {"scheduler": "lsf"})).field == "inputs.scheduler"


async def test_unknown_inputs_are_refused() -> None:
    problem = await refused({"a": {"type": "string"}}, {"b": "x"})
    assert problem.field == "inputs.b"


async def test_wizard_steps_flatten_unless_told_not_to() -> None:
    schema = schema_of("wizard.yaml")
    schema["step2"]["options"]["resource"]["type"] = "string"
    assert (await resolve_inputs(schema, {"name": "n"})).values == {"name": "n"}
    schema["$meta"]["wizard"]["flatten"] = False
    form = await resolve_inputs(schema, {"step1": {"name": "n"}})
    assert form.values == {"step1": {"name": "n"}}


async def test_passwords_are_masked() -> None:
    form = await resolve_inputs({"secret": {"type": "password"}}, {"secret": "hunter2"})
    assert form.values == {"secret": "hunter2"}
    assert form.masked() == {"secret": MASK}


async def test_resource_pickers_go_through_the_resolver() -> None:
    async def resolve(kind: str, item: Any, value: Any) -> Any:
        if value != "pw://alice/hpc":
            raise Invalid(f"inputs.cluster: no cluster {value!r}", field="inputs.cluster")
        return {"id": "pw://alice/hpc", "ip": "10.0.0.1"}

    schema = {"cluster": {"type": "compute-clusters", "optional": False}}
    form = await resolve_inputs(schema, {"cluster": "pw://alice/hpc"}, resolve=resolve)
    assert form.values["cluster"]["ip"] == "10.0.0.1"
    with pytest.raises(Invalid, match="no cluster"):
        await resolve_inputs(schema, {"cluster": "pw://bob/x"}, resolve=resolve)


async def test_bucket_credentials_reach_steps_but_are_masked_everywhere_else() -> None:
    async def resolve(kind: str, item: Any, value: Any) -> Any:
        found = {"type": "bucket", "uri": value, "name": "b", "user": "alice"}
        if item.get("generateCredentials"):
            found["credentials"] = {"accessKeyId": "AKIA1", "secretAccessKey": "s"}
            env = {"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": "s"}
            return InputWithEnv(value=found, env=env)
        return found

    schema = {
        "b": {"type": "bucket", "generateCredentials": True},
        "plain": {"type": "bucket"},
        "unsent": {"type": "bucket", "generateCredentials": True, "ignore": True},
    }
    form = await resolve_inputs(
        schema,
        {"b": "pw://alice/b", "plain": "pw://alice/b", "unsent": "pw://alice/b"},
        resolve=resolve,
    )
    assert form.values["b"]["credentials"]["accessKeyId"] == "AKIA1"
    assert form.secrets == frozenset({"b", "unsent"})
    # the CLI's environment is kept apart from the values (never in `inputs`, never shown)
    assert form.env == {"b": {"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": "s"}}
    assert "unsent" not in form.values
    shown = form.masked()
    assert shown["b"] == {
        "type": "bucket",
        "uri": "pw://alice/b",
        "name": "b",
        "user": "alice",
        "credentials": {"accessKeyId": MASK, "secretAccessKey": MASK},
    }
    assert shown["plain"] == form.values["plain"]


def test_steps_get_an_inputs_environment_whole_or_not_at_all() -> None:
    aws = {"AWS_ACCESS_KEY_ID": "A1", "AWS_SECRET_ACCESS_KEY": "s1", "AWS_SESSION_TOKEN": "t1"}
    other = {"AWS_ACCESS_KEY_ID": "A2", "AWS_SECRET_ACCESS_KEY": "s2", "AWS_SESSION_TOKEN": "t2"}
    google = {"CLOUDSDK_AUTH_ACCESS_TOKEN": "g"}
    assert step_environment({"b": aws}, {"OTHER": "x"}) == aws
    # the workflow's own env names one of them: it chose its own credentials, none are added
    assert step_environment({"b": aws}, {"AWS_ACCESS_KEY_ID": "mine"}) == {}
    # two buckets of one cloud: which keys a step means would be a guess, so neither's
    assert clashing_inputs({"a": aws, "b": other, "g": google}) == ["a", "b"]
    assert step_environment({"a": aws, "b": other, "g": google}, {}) == google
    assert clashing_inputs({"b": aws, "g": google}) == []
    assert step_environment({"b": aws, "g": google}, {}) == {**aws, **google}


async def test_a_resolver_refusal_names_the_input() -> None:
    async def resolve(kind: str, item: Any, value: Any) -> Any:
        raise Invalid(f"no bucket {value!r} that you own or that is shared with you")

    with pytest.raises(Invalid) as caught:
        await resolve_inputs({"data": {"type": "bucket"}}, {"data": "pw://bob/x"}, resolve=resolve)
    assert caught.value.field == "inputs.data"
    assert caught.value.message.startswith("inputs.data: no bucket 'pw://bob/x'")
