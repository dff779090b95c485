"""Workflows through the API: names, descriptions, YAML problems with their places, versions,
favourites, and another tenant's workflows staying out of sight."""

from __future__ import annotations

from typing import Any

import pytest
from api_support import Api

pytestmark = pytest.mark.anyio

YAML = "jobs:\n  main:\n    steps:\n      - run: echo hello\n"


def workflow(**fields: Any) -> dict[str, Any]:
    return {"name": "my_flow2", "yaml": YAML, **fields}


async def test_create_read_list_and_versions(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    created = await api.client.post(
        "/api/workflows", json=workflow(tags=["a", " b "]), headers=alice
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["uri"], body["version"], body["yaml"], body["tags"]) == (
        "pw://alice/my_flow2",
        1,
        YAML,
        ["a", "b"],
    )
    changed = YAML.replace("hello", "again")
    patched = await api.client.patch(
        "/api/workflows/alice/my_flow2", json={"yaml": changed}, headers=alice
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["version"], patched.json()["yaml"]) == (2, changed)
    same = await api.client.patch(
        "/api/workflows/alice/my_flow2", json={"yaml": changed}, headers=alice
    )
    assert same.json()["version"] == 2  # the same YAML is no new version
    versions = await api.client.get("/api/workflows/alice/my_flow2/versions", headers=alice)
    assert [v["version"] for v in versions.json()] == [2, 1]
    first = await api.client.get("/api/workflows/alice/my_flow2/versions/1", headers=alice)
    assert first.json()["yaml"] == YAML
    listed = await api.client.get("/api/workflows", headers=alice)
    assert [w["uri"] for w in listed.json()["items"]] == ["pw://alice/my_flow2"]
    assert listed.json()["items"][0]["yaml"] == ""  # lists leave the YAML out


@pytest.mark.parametrize("name", ["My_flow", "my-flow", "x", "a" * 256])
async def test_workflow_names(api: Api, name: str) -> None:
    alice = await api.org_with_admin("acme", "alice")
    refused = await api.client.post("/api/workflows", json=workflow(name=name), headers=alice)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "name"
    assert "lowercase letters, numbers, and '_'" in refused.json()["detail"]


async def test_duplicate_names_and_long_descriptions(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    assert (
        await api.client.post("/api/workflows", json=workflow(), headers=alice)
    ).status_code == 201
    again = await api.client.post("/api/workflows", json=workflow(), headers=alice)
    assert again.status_code == 422 and again.json()["reason"] == "name-taken"
    long = await api.client.post(
        "/api/workflows", json=workflow(name="other", description="x" * 101), headers=alice
    )
    assert long.status_code == 422 and long.json()["errors"][0]["field"] == "description"


async def test_bad_yaml_is_refused_with_line_and_column(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    bad = "jobs:\n  main:\n    steps:\n      - run: echo hi\n        colour: red\n"
    refused = await api.client.post("/api/workflows", json=workflow(yaml=bad), headers=alice)
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert "line 5, column 9" in problem["detail"]
    assert problem["errors"][0]["problems"] == [
        {"line": 5, "column": 9, "message": "unknown key 'colour'",
         "path": "jobs.main.steps.0.colour"}
    ]  # fmt: skip
    checked = await api.client.post("/api/workflows/lint", json={"yaml": bad}, headers=alice)
    assert checked.status_code == 200
    assert checked.json()["valid"] is False and checked.json()["problems"][0]["line"] == 5
    fine = await api.client.post("/api/workflows/lint", json={"yaml": YAML}, headers=alice)
    assert fine.json() == {"valid": True, "problems": []}
    assert (await api.client.get("/api/workflows", headers=alice)).json()["total"] == 0


async def test_favourites(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    await api.client.post("/api/workflows", json=workflow(), headers=alice)
    await api.client.post("/api/workflows", json=workflow(name="second"), headers=alice)
    done = await api.client.put("/api/workflows/alice/second/favorite", headers=alice)
    assert done.status_code == 204, done.text
    favorites = await api.client.get("/api/workflows?favorite=true", headers=alice)
    assert [w["name"] for w in favorites.json()["items"]] == ["second"]
    assert favorites.json()["items"][0]["favorite"] is True
    await api.client.delete("/api/workflows/alice/second/favorite", headers=alice)
    assert (await api.client.get("/api/workflows?favorite=true", headers=alice)).json()[
        "items"
    ] == []


async def test_another_tenant_gets_404(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    mallory = await api.org_with_admin("evil", "mallory")
    await api.client.post("/api/workflows", json=workflow(), headers=alice)
    for method, path in [
        ("get", "/api/workflows/alice/my_flow2"),
        ("get", "/api/workflows/alice/my_flow2/versions"),
        ("patch", "/api/workflows/alice/my_flow2"),
        ("delete", "/api/workflows/alice/my_flow2"),
        ("put", "/api/workflows/alice/my_flow2/favorite"),
    ]:
        kwargs: dict[str, Any] = {"json": {"description": "x"}} if method == "patch" else {}
        response = await getattr(api.client, method)(path, headers=mallory, **kwargs)
        assert response.status_code == 404, (method, path, response.text)
    assert (await api.client.get("/api/workflows", headers=mallory)).json()["items"] == []
    deleted = await api.client.delete("/api/workflows/alice/my_flow2", headers=alice)
    assert deleted.status_code == 204
    assert (await api.client.get("/api/workflows/alice/my_flow2", headers=alice)).status_code == 404


async def test_the_schema_is_published_without_credentials(api: Api) -> None:
    response = await api.client.get("/api/schema/workflow.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/schema+json")
    assert response.json()["$id"].endswith("/workflow.json")
    assert "Step" in response.json()["$defs"]


async def test_a_workflow_without_yaml_starts_from_the_starter(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    created = await api.client.post("/api/workflows", json={"name": "starter"}, headers=alice)
    assert created.status_code == 201, created.text
    assert "Starter Local Workflow" in created.json()["yaml"]


async def test_runs_refuse_bad_inputs_and_stay_private(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    mallory = await api.org_with_admin("evil", "mallory")
    yaml = YAML + "on:\n  execute:\n    inputs:\n      n:\n        type: number\n        max: 3\n"
    await api.client.post("/api/workflows", json=workflow(yaml=yaml), headers=alice)
    bad = await api.client.post(
        "/api/workflows/alice/my_flow2/runs", json={"inputs": {"n": 7}}, headers=alice
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "inputs.n", bad.text
    started = await api.client.post(
        "/api/workflows/alice/my_flow2/runs", json={"inputs": {"n": 2}}, headers=alice
    )
    assert started.status_code == 201, started.text
    run = started.json()
    assert (run["number"], run["inputs"]) == (1, {"n": 2})
    own = await api.client.get(f"/api/runs/{run['id']}", headers=alice)
    assert own.status_code == 200 and own.json()["jobs"][0]["name"] == "main"
    for path in (f"/api/runs/{run['id']}", f"/api/runs/{run['id']}/logs"):
        assert (await api.client.get(path, headers=mallory)).status_code == 404
    cancel = await api.client.post(f"/api/runs/{run['id']}/cancel", headers=mallory)
    assert cancel.status_code == 404
    listed = await api.client.get("/api/workflows/alice/my_flow2/runs", headers=mallory)
    assert listed.status_code == 404
