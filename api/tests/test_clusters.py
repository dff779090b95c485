"""Cluster definitions through the API: validation, sharing levels, lifecycle rules.

Nothing here connects to a cluster (the clusters stay off); the tests against a real Slurm over
SSH are in tests/test_clusters.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from api_support import Api

pytestmark = pytest.mark.anyio


def field_of(problem: dict[str, Any]) -> str:
    return str(problem["errors"][0]["field"])


def definition(**fields: Any) -> dict[str, Any]:
    return {"name": "hpc", "login_host": "login.example.org", "scheduler": "unused", **fields}


async def test_create_defaults_and_shows_off(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    created = await api.client.post("/api/clusters", json=definition(), headers=alice)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["uri"] == "pw://alice/hpc"
    assert (body["status"], body["display_name"], body["username"]) == ("off", "hpc", "__USER__")
    assert body["type_label"] == "Unused existing cluster"
    listed = await api.client.get("/api/clusters?status=off", headers=alice)
    assert [c["uri"] for c in listed.json()["items"]] == ["pw://alice/hpc"]
    assert (await api.client.get("/api/clusters?status=on", headers=alice)).json()["items"] == []


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"description": "x" * 101}, "description", "100 characters"),
        ({"scheduler": "lsf"}, "scheduler", "not installed"),
        ({"jump_host": "bastion.example.org"}, "jump_user", "needs its user"),
        ({"jump_user": "alice"}, "jump_host", "needs its host"),
        ({"login_host": "not a host"}, "login_host", "not a host name"),
        ({"port": 70000}, "port", "between 1 and 65535"),
        ({"username": "Bad User"}, "username", "not a valid username"),
        ({"group": "nosuchgroup"}, "group", "no group named"),
    ],
)
async def test_bad_definitions_name_the_field(
    api: Api, fields: dict[str, Any], field: str, words: str
) -> None:
    alice = await api.org_with_admin("acme", "alice")
    created = await api.client.post("/api/clusters", json=definition(**fields), headers=alice)
    assert created.status_code == 422, created.text
    problem = created.json()
    assert field_of(problem) == field, problem
    assert words in problem["detail"], problem


async def test_description_of_100_characters_is_accepted(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    created = await api.client.post(
        "/api/clusters", json=definition(description="x" * 100), headers=alice
    )
    assert created.status_code == 201, created.text


async def test_name_is_unique_across_kinds(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    lamp = await api.client.post(
        "/api/resources", json={"kind": "lamp", "name": "demo"}, headers=alice
    )
    assert lamp.status_code == 201, lamp.text
    clash = await api.client.post("/api/clusters", json=definition(name="demo"), headers=alice)
    assert clash.status_code == 422 and field_of(clash.json()) == "name"


async def test_share_levels_decide_who_may_edit_submit_and_delete(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    await api.group(alice, "team")
    bob = await api.user(alice, "bob", groups=("team",))
    await api.user(alice, "carol")
    carol = await api.key("carol")
    assert (
        await api.client.post("/api/clusters", json=definition(), headers=alice)
    ).status_code == 201
    path = "/api/clusters/alice/hpc"

    async def share(level: str) -> None:
        shared = await api.client.put(
            "/api/resources/alice/hpc/grants/team", json={"level": level}, headers=alice
        )
        assert shared.status_code == 200, shared.text

    assert (await api.client.get(path, headers=carol)).status_code == 404
    await share("login")
    assert (await api.client.get(path, headers=bob)).status_code == 200
    edit = await api.client.patch(path, json={"description": "mine now"}, headers=bob)
    assert edit.status_code == 403
    # Login may submit, but the cluster is off.
    job = await api.client.post(f"{path}/jobs", json={"script": "#!/bin/sh\ntrue\n"}, headers=bob)
    assert job.status_code == 409 and "start it" in job.json()["detail"]
    await share("writer")
    edit = await api.client.patch(path, json={"description": "ours"}, headers=bob)
    assert edit.status_code == 200 and edit.json()["description"] == "ours"
    assert (await api.client.delete(path, headers=bob)).status_code == 403
    await share("admin")
    assert (await api.client.delete(path, headers=bob)).status_code == 204
    assert (await api.client.get(path, headers=alice)).status_code == 404


async def test_edit_keeps_what_is_left_out_and_validates_the_result(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    await api.client.post("/api/clusters", json=definition(port=2222), headers=alice)
    path = "/api/clusters/alice/hpc"
    edited = await api.client.patch(path, json={"username": "svc_hpc"}, headers=alice)
    assert edited.status_code == 200, edited.text
    assert (edited.json()["username"], edited.json()["port"]) == ("svc_hpc", 2222)
    bad = await api.client.patch(path, json={"jump_host": "bastion"}, headers=alice)
    assert bad.status_code == 422 and field_of(bad.json()) == "jump_user"
    assert (await api.client.get(path, headers=alice)).json()["jump_host"] == ""


async def test_job_states_filter_is_checked(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    await api.client.post("/api/clusters", json=definition(), headers=alice)
    bad = await api.client.get("/api/clusters/alice/hpc/jobs?state=sleeping", headers=alice)
    assert bad.status_code == 422 and field_of(bad.json()) == "state"
    good = await api.client.get("/api/clusters/alice/hpc/jobs?state=running", headers=alice)
    assert good.status_code == 200 and good.json()["items"] == []


async def test_host_keys_are_for_platform_admins(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    assert (await api.client.get("/api/ssh/host-keys", headers=alice)).status_code == 403
    admin = await api.admin()
    assert (await api.client.get("/api/ssh/host-keys", headers=admin)).json() == []
    missing = await api.client.post(
        "/api/ssh/host-keys/accept",
        json={"host": "10.0.0.1", "fingerprint": "SHA256:nope"},
        headers=admin,
    )
    assert missing.status_code == 404
