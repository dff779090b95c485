"""Organization workflow variables (the ``org`` context): who may read and change them, the
rules of keys and values, and what runs see (spec 40 §4.8, spec 20 §3.6 and §6.3)."""

from __future__ import annotations

import pytest
from sqlmodel import col, func, select
from workflow_lab import Lab

from corral_core.identity.roles import Principal, Role
from corral_core.workflows.inputs import resolve_inputs
from corral_core.workflows.models import WorkflowRun
from corral_core.workflows.variables import MAX_VALUE_BYTES, org_variables
from corral_sdk.errors import Conflict, Invalid, NotFound, PermissionDenied

pytestmark = pytest.mark.anyio

ECHO = """jobs:
  main:
    steps:
      - run: echo ${{ inputs.hello }} ${{ org.orgVariable }}
on:
  execute:
    inputs:
      hello:
        type: string
"""


def someone(lab: Lab, *roles: Role, org: str = "default", org_id: int | None = None) -> Principal:
    """A caller of ``org`` holding ``roles`` (the service reads only these fields)."""
    return Principal(
        user_id=999,
        username="someone",
        org_id=lab.principal.org_id if org_id is None else org_id,
        org=org,
        roles=frozenset(roles),
    )


async def runs_of(lab: Lab) -> int:
    async with lab.runtime.db.session() as session:
        return int((await session.exec(select(func.count()).select_from(WorkflowRun))).one())


async def test_set_list_replace_and_delete(lab: Lab) -> None:
    service = lab.runtime.org_variables
    await service.set_variable(lab.principal, "default", "orgVariable", "hi")
    await service.set_variable(lab.principal, "default", "A_1", "x=1\nline two")
    replaced = await service.set_variable(lab.principal, "default", "orgVariable", "hello")
    assert (replaced.value, replaced.updated_by) == ("hello", "root")
    listed = await service.list_variables(lab.principal, "default")
    assert [(v.key, v.value) for v in listed] == [
        ("A_1", "x=1\nline two"),
        ("orgVariable", "hello"),
    ]
    assert await org_variables(lab.runtime.db, lab.principal.org_id) == {
        "A_1": "x=1\nline two",
        "orgVariable": "hello",
    }
    await service.delete_variable(lab.principal, "default", "A_1")
    with pytest.raises(NotFound):
        await service.delete_variable(lab.principal, "default", "A_1")
    assert [v.key for v in await service.list_variables(lab.principal, "default")] == [
        "orgVariable"
    ]


@pytest.mark.parametrize("key", ["1abc", "a-b", "a.b", "", "a b", "é", "x" * 129])
async def test_keys_are_identifiers(lab: Lab, key: str) -> None:
    with pytest.raises(Invalid) as caught:
        await lab.runtime.org_variables.set_variable(lab.principal, "default", key, "v")
    assert caught.value.field == "key"
    assert "letters, digits and underscores" in caught.value.message


async def test_key_and_value_limits(lab: Lab) -> None:
    service = lab.runtime.org_variables
    await service.set_variable(lab.principal, "default", "_" + "x" * 127, "")
    await service.set_variable(lab.principal, "default", "big", "v" * MAX_VALUE_BYTES)
    for value in ("v" * (MAX_VALUE_BYTES + 1), "é" * (MAX_VALUE_BYTES // 2 + 1), "a\x00b"):
        with pytest.raises(Invalid) as caught:
            await service.set_variable(lab.principal, "default", "big", value)
        assert caught.value.field == "value"
    assert len((await org_variables(lab.runtime.db, lab.principal.org_id))["big"]) == (
        MAX_VALUE_BYTES
    )


async def test_only_admins_and_settings_managers_and_never_another_org(lab: Lab) -> None:
    service = lab.runtime.org_variables
    member = someone(lab)
    for call in (
        service.list_variables(member, "default"),
        service.set_variable(member, "default", "k", "v"),
        service.delete_variable(member, "default", "k"),
    ):
        with pytest.raises(PermissionDenied):
            await call
    for roles in ((Role.ORG_SETTINGS,), (Role.ORG_ADMIN,)):
        await service.set_variable(someone(lab, *roles), "default", "k", "v")
        assert [v.key for v in await service.list_variables(someone(lab, *roles), "default")]
    with pytest.raises(PermissionDenied):  # org:users manages users, not settings
        await service.list_variables(someone(lab, Role.ORG_USERS), "default")

    other = await lab.runtime.identity.create_org(lab.principal, "globex")
    assert other.id is not None
    outsider = someone(lab, Role.ORG_ADMIN, org="globex", org_id=other.id)
    for call in (
        service.list_variables(outsider, "default"),
        service.set_variable(outsider, "default", "k", "stolen"),
        service.delete_variable(outsider, "default", "k"),
    ):
        with pytest.raises(NotFound):
            await call
    await service.set_variable(outsider, "globex", "k", "theirs")
    assert await org_variables(lab.runtime.db, other.id) == {"k": "theirs"}
    assert (await org_variables(lab.runtime.db, lab.principal.org_id))["k"] == "v"


async def test_a_run_reads_org_in_its_steps_and_form_defaults(lab: Lab) -> None:
    await lab.runtime.org_variables.set_variable(lab.principal, "default", "orgVariable", "hi")
    done = await lab.run(ECHO)
    assert done.run.status == "completed"
    assert done.printed("main") == ["hi"]

    form = ECHO.replace("type: string", "type: string\n        default: ${{ org.orgVariable }}")
    defaulted = await lab.run(form)
    assert defaulted.run.inputs == {"hello": "hi"}
    assert defaulted.printed("main") == ["hi hi"]


async def test_form_defaults_render_org_without_a_run() -> None:
    schema = {
        "hello": {"type": "string", "default": "${{ org.orgVariable }}"},
        "mixed": {"type": "string", "default": "a-{{ org.orgVariable }}-{{ org.unset }}"},
    }
    form = await resolve_inputs(schema, {}, org={"orgVariable": "hi"})
    assert form.values == {"hello": "hi", "mixed": "a-hi-"}


async def test_needed_variables_refuse_the_run_until_set(lab: Lab) -> None:
    yaml = "needs:\n  organizationVariables: [X, orgVariable]\n" + ECHO
    service = lab.runtime.org_variables
    await service.set_variable(lab.principal, "default", "orgVariable", "hi")
    before = await runs_of(lab)
    with pytest.raises(Conflict) as caught:
        await lab.start(yaml)
    assert caught.value.details["missing"] == ["X"]  # only the missing one
    assert "X" in caught.value.message and "orgVariable" not in caught.value.message
    assert caught.value.reason == "organization-variables-missing"
    assert await runs_of(lab) == before  # no run was created

    await service.set_variable(lab.principal, "default", "X", "")  # set, even if empty
    done = await lab.run(yaml)
    assert done.run.status == "completed" and done.printed("main") == ["hi"]


async def test_a_change_shows_in_the_next_run_and_a_started_run_keeps_its_values(
    lab: Lab,
) -> None:
    service = lab.runtime.org_variables
    await service.set_variable(lab.principal, "default", "orgVariable", "one")
    first = await lab.start(ECHO)
    await service.set_variable(lab.principal, "default", "orgVariable", "two")
    second = await lab.start(ECHO)
    assert (await lab.finish(first.id or 0)).printed("main") == ["one"]
    assert (await lab.finish(second.id or 0)).printed("main") == ["two"]
    await service.delete_variable(lab.principal, "default", "orgVariable")
    assert (await lab.run(ECHO)).printed("main") == [""]
    async with lab.runtime.db.session() as session:
        row = await session.get(WorkflowRun, second.id)
        assert row is not None and row.plan["org"] == {"orgVariable": "two"}
        runs = await session.exec(select(WorkflowRun.id).where(col(WorkflowRun.id) > 0))
        assert len(runs.all()) == 3
