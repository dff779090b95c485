"""Organization workflow variables through the API: who may list and change them, tenancy, the
rules of keys and values, and runs that need them or read them (``org.<key>``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from api_support import Api

pytestmark = pytest.mark.anyio

VARIABLES = "/api/orgs/acme/variables"
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


async def put(api: Api, headers: dict[str, str], key: str, value: Any) -> Any:
    return await api.client.put(f"{VARIABLES}/{key}", json={"value": value}, headers=headers)


async def test_admins_set_list_replace_and_delete(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    assert (await api.client.get(VARIABLES, headers=alice)).json() == []
    created = await put(api, alice, "orgVariable", "hi")
    assert created.status_code == 200, created.text
    body = created.json()
    assert (body["key"], body["value"], body["updated_by"]) == ("orgVariable", "hi", "alice")
    assert body["updated_at"]
    assert (await put(api, alice, "AWS_REGION", "us-east-1")).status_code == 200
    assert (await put(api, alice, "orgVariable", "hello")).json()["value"] == "hello"
    listed = await api.client.get(VARIABLES, headers=alice)
    assert [(v["key"], v["value"]) for v in listed.json()] == [
        ("AWS_REGION", "us-east-1"),
        ("orgVariable", "hello"),
    ]
    deleted = await api.client.delete(f"{VARIABLES}/AWS_REGION", headers=alice)
    assert deleted.status_code == 204
    again = await api.client.delete(f"{VARIABLES}/AWS_REGION", headers=alice)
    assert again.status_code == 404
    assert [v["key"] for v in (await api.client.get(VARIABLES, headers=alice)).json()] == [
        "orgVariable"
    ]
    audit = (await api.client.get("/api/audit", headers=alice)).json()["items"]
    assert "PUT /api/orgs/{name}/variables/{key}" in {e["action"] for e in audit}


async def test_org_settings_may_members_may_not(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    await api.group(alice, "settings", roles=("org:settings",))
    await api.group(alice, "people", roles=("org:users",))
    carol = await api.user(alice, "carol", groups=("settings",))
    bob = await api.user(alice, "bob")
    dave = await api.user(alice, "dave", groups=("people",))
    assert (await put(api, carol, "fromCarol", "1")).status_code == 200
    assert (await api.client.get(VARIABLES, headers=carol)).status_code == 200
    assert (await api.client.delete(f"{VARIABLES}/fromCarol", headers=carol)).status_code == 204
    await put(api, alice, "secretish", "x")
    for member in (bob, dave):
        listed = await api.client.get(VARIABLES, headers=member)
        assert listed.status_code == 403, listed.text
        assert "org:admin or org:settings" in listed.json()["detail"]
        assert (await put(api, member, "secretish", "y")).status_code == 403
        assert (await api.client.delete(f"{VARIABLES}/secretish", headers=member)).status_code == (
            403
        )
    values = (await api.client.get(VARIABLES, headers=alice)).json()
    assert [(v["key"], v["value"]) for v in values] == [("secretish", "x")]


async def test_another_org_gets_404_and_keeps_its_own(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    gil = await api.org_with_admin("globex", "gil")
    await put(api, alice, "orgVariable", "acme's")
    for response in (
        await api.client.get(VARIABLES, headers=gil),
        await put(api, gil, "orgVariable", "stolen"),
        await api.client.delete(f"{VARIABLES}/orgVariable", headers=gil),
        await api.client.get("/api/orgs/nowhere/variables", headers=alice),
    ):
        assert response.status_code == 404, response.text
    assert (
        await api.client.put(
            "/api/orgs/globex/variables/orgVariable", json={"value": "globex's"}, headers=gil
        )
    ).status_code == 200
    assert (await api.client.get(VARIABLES, headers=alice)).json()[0]["value"] == "acme's"
    # a platform admin reaches every organization's
    admin = await api.admin()
    listed = await api.client.get("/api/orgs/globex/variables", headers=admin)
    assert [v["value"] for v in listed.json()] == ["globex's"]


@pytest.mark.parametrize("key", ["1abc", "a-b", "a.b", "x" * 129, "%C3%A9"])
async def test_bad_keys_are_422_naming_the_key(api: Api, key: str) -> None:
    alice = await api.org_with_admin("acme", "alice")
    refused = await put(api, alice, key, "v")
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "key"
    assert "letters, digits and underscores" in refused.json()["detail"]


async def test_bad_values_are_422_naming_the_value(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    assert (await put(api, alice, "big", "v" * 65536)).status_code == 200
    for value in ("v" * 65537, "a\x00b"):
        refused = await put(api, alice, "big", value)
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"] == "value"
    for body in ({}, {"value": 3}, {"value": "x", "other": 1}):
        wrong = await api.client.put(f"{VARIABLES}/big", json=body, headers=alice)
        assert wrong.status_code in (400, 422), wrong.text
    assert len((await api.client.get(VARIABLES, headers=alice)).json()[0]["value"]) == 65536


async def finish(api: Api, run_id: int, headers: dict[str, str]) -> list[str]:
    """Drive the run to its end in this process; the lines its steps printed."""
    deadline = time.monotonic() + 60
    while not await api.runtime.engine.tick(run_id, budget=2):
        assert time.monotonic() < deadline, "the run did not finish"
        await asyncio.sleep(0)
    logs = (await api.client.get(f"/api/runs/{run_id}/logs", headers=headers)).json()
    assert logs["status"] == "completed", logs
    return [line["line"] for line in logs["lines"] if not line["line"].startswith("[")]


async def test_runs_read_org_in_steps_and_form_defaults(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    bob = await api.user(alice, "bob")  # a member: runs see the variables he may not list
    await put(api, alice, "orgVariable", "hi")
    form = ECHO + "        default: ${{ org.orgVariable }}\n"
    for name, yaml in (("echo", ECHO), ("form", form)):
        created = await api.client.post(
            "/api/workflows", json={"name": name, "yaml": yaml}, headers=bob
        )
        assert created.status_code == 201, created.text
    started = await api.client.post("/api/workflows/bob/echo/runs", json={}, headers=bob)
    assert started.status_code == 201, started.text
    assert await finish(api, started.json()["id"], bob) == ["hi"]

    defaulted = await api.client.post("/api/workflows/bob/form/runs", json={}, headers=bob)
    assert defaulted.status_code == 201, defaulted.text
    assert defaulted.json()["inputs"] == {"hello": "hi"}  # the form default, rendered
    assert await finish(api, defaulted.json()["id"], bob) == ["hi hi"]

    await put(api, alice, "orgVariable", "changed")  # no redeploy: the next run sees it
    again = await api.client.post("/api/workflows/bob/echo/runs", json={}, headers=bob)
    assert await finish(api, again.json()["id"], bob) == ["changed"]


async def test_a_workflow_needing_unset_variables_is_refused_until_they_are_set(
    api: Api,
) -> None:
    alice = await api.org_with_admin("acme", "alice")
    bob = await api.user(alice, "bob")
    await put(api, alice, "AWS_REGION", "us-east-1")
    yaml = "needs:\n  organizationVariables: [AWS_REGION, LICENSE_KEY]\n" + ECHO
    created = await api.client.post(
        "/api/workflows", json={"name": "licensed", "yaml": yaml}, headers=bob
    )
    assert created.status_code == 201, created.text
    refused = await api.client.post("/api/workflows/bob/licensed/runs", json={}, headers=bob)
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["reason"] == "organization-variables-missing"
    assert problem["errors"] == [{"missing": ["LICENSE_KEY"]}]
    assert "LICENSE_KEY" in problem["detail"] and "AWS_REGION" not in problem["detail"]
    runs = await api.client.get("/api/workflows/bob/licensed/runs", headers=bob)
    assert runs.json()["total"] == 0  # no run was created

    assert (await put(api, alice, "LICENSE_KEY", "k-123")).status_code == 200
    started = await api.client.post("/api/workflows/bob/licensed/runs", json={}, headers=bob)
    assert started.status_code == 201, started.text
    assert started.json()["number"] == 1
