"""Storage over the API (spec 30 §2): the name, description, ephemeral and option rules answer
422 naming the field; start and stop make numbered sessions with their logs; credentials only
while active; sharing at mount and view_edit (§2.6's acceptance tests); another organization
and an unshared colleague get 404.

The storage types here (``shelf-*``, api_support) keep buckets in memory: they stand in for a
cloud's object store, which these tests cannot reach. The AWS S3 type is tested against moto in
plugins/aws, and end to end with the CLI in tests/test_storage_buckets.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_support import Api, ShelfBucket
from sqlmodel import col, select

from corral_core.events.models import EventRecord
from corral_core.resources.models import Resource

pytestmark = pytest.mark.anyio


@pytest.fixture
async def people(api: Api) -> dict[str, dict[str, str]]:
    """acme: alice (org:admin), bob (group team), carol (no group); zeta: zed (org:admin)."""
    ShelfBucket.shelf = {}
    alice = await api.org_with_admin("acme", "alice")
    await api.group(alice, "team")
    await api.group(alice, "finance")
    return {
        "alice": alice,
        "bob": await api.user(alice, "bob", groups=("team",)),
        "carol": await api.user(alice, "carol"),
        "zed": await api.org_with_admin("zeta", "zed"),
    }


def field_of(response: Any) -> str:
    return str(response.json()["errors"][0]["field"])


async def reconcile(api: Api, owner: str, name: str) -> None:
    async with api.runtime.db.session() as session:
        row = (
            await session.exec(
                select(Resource)
                .where(col(Resource.owner) == owner)
                .where(col(Resource.name) == name)
            )
        ).one()
    assert row.id is not None
    await api.runtime.reconciler.reconcile(row.id)


async def create(api: Api, headers: dict[str, str], **body: Any) -> Any:
    return await api.client.post(
        "/api/storage", json={"type": "shelf-bucket", **body}, headers=headers
    )


async def test_the_definition_rules_name_the_field(
    api: Api, people: dict[str, dict[str, str]]
) -> None:
    alice = people["alice"]
    bad = await create(api, alice, name="DemoStorage")
    assert bad.status_code == 422 and field_of(bad) == "name", bad.text
    assert "lowercase letters and digits" in bad.json()["detail"]
    for name in ("a", "demo-storage", "x" * 256):
        assert field_of(await create(api, alice, name=name)) == "name"
    long = await create(api, alice, name="described", description="d" * 101)
    assert long.status_code == 422 and field_of(long) == "description"
    nfs = await create(api, alice, name="share", type="shelf-nfs", ephemeral=True)
    assert nfs.status_code == 422 and field_of(nfs) == "ephemeral"
    assert "only Lustre" in nfs.json()["detail"]
    unknown = await create(api, alice, name="nowhere", type="tape")
    assert unknown.status_code == 422 and field_of(unknown) == "type"
    assert "shelf-bucket" in unknown.json()["detail"]
    option = await create(api, alice, name="odd", storage_options={"colour": "red"})
    assert option.status_code == 422 and field_of(option) == "storage_options.colour"
    region = await create(api, alice, name="far", storage_options={"region": "mars"})
    assert region.status_code == 422 and field_of(region) == "storage_options.region"
    account = await create(api, alice, name="acct", cloud_account="lab")
    assert account.status_code == 422 and field_of(account) == "cloud_account"
    group = await create(api, alice, name="grp", group="nogroup")
    assert group.status_code == 422 and field_of(group) == "group"
    assert (await api.client.get("/api/storage", headers=alice)).json()["total"] == 0

    made = await create(
        api, alice, name="demostorage", description="d" * 100, group="finance", tags=["a", "b"]
    )
    assert made.status_code == 201, made.text
    shown = made.json()
    assert (shown["uri"], shown["status"], shown["category"]) == (
        "pw://alice/demostorage",
        "stopped",
        "bucket",
    )
    assert shown["storage_options"] == {"region": "shelf-1"}  # the type's defaults filled in
    assert (shown["group"], shown["tags"], shown["permission"]) == ("finance", ["a", "b"], "owner")
    again = await create(api, alice, name="demostorage")
    assert again.status_code == 409

    lustre = await create(api, alice, name="scratch", type="shelf-lustre", ephemeral=True)
    assert lustre.status_code == 201 and lustre.json()["ephemeral"] is True
    refused = await api.client.post("/api/storage/alice/scratch/start", headers=alice)
    assert refused.status_code == 409 and "ephemeral" in refused.json()["detail"]
    heart = await api.client.put("/api/storage/alice/scratch/favorite", headers=alice)
    assert heart.status_code == 422 and field_of(heart) == "favorite"
    liked = await api.client.put("/api/storage/alice/demostorage/favorite", headers=alice)
    assert liked.status_code == 204
    listed = (await api.client.get("/api/storage?category=bucket", headers=alice)).json()
    assert [(i["name"], i["favorite"]) for i in listed["items"]] == [("demostorage", True)]
    types = (await api.client.get("/api/storage/types", headers=alice)).json()
    assert {t["name"]: t["category"] for t in types}["shelf-lustre"] == "lustre"


async def test_start_and_stop_make_numbered_sessions_with_logs(
    api: Api, people: dict[str, dict[str, str]]
) -> None:
    alice = people["alice"]
    assert (await create(api, alice, name="data")).status_code == 201
    refused = await api.client.post("/api/storage/alice/data/credentials", headers=alice)
    assert refused.status_code == 409 and "stopped" in refused.json()["detail"]

    started = await api.client.post("/api/storage/alice/data/start", headers=alice)
    assert started.status_code == 202 and started.json()["status"] == "starting"
    await reconcile(api, "alice", "data")
    shown = (await api.client.get("/api/storage/alice/data", headers=alice)).json()
    assert (shown["status"], shown["session"], shown["region"]) == ("active", "00001", "shelf-1")
    uid = next(iter(ShelfBucket.shelf))
    assert shown["csp_uri"] == f"shelf://shelf-{uid}" and shown["provider_id"] == f"shelf-{uid}"

    sessions = (await api.client.get("/api/storage/alice/data/sessions", headers=alice)).json()
    assert [(s["session"], s["status"]) for s in sessions["items"]] == [("00001", "active")]
    logs = await api.client.get("/api/storage/alice/data/sessions/1/logs/provision", headers=alice)
    body = logs.json()
    messages = [line["message"] for line in body["lines"]]
    assert messages[0].startswith("Provisioning Shelf Bucket data (session 00001)")
    assert f"Creating bucket shelf-{uid}" in messages
    assert messages[-1] == f"Storage active: shelf://shelf-{uid}" and body["finished"] is True
    assert [line["offset"] for line in body["lines"]] == list(range(len(messages)))
    later = await api.client.get(
        f"/api/storage/alice/data/sessions/1/logs/provision?offset={body['next_offset']}",
        headers=alice,
    )
    assert later.json()["lines"] == []
    download = await api.client.get(
        "/api/storage/alice/data/sessions/1/logs/provision/download", headers=alice
    )
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/plain")
    text = download.text.splitlines()
    assert [line.split(": ", 1)[1] for line in text] == messages
    stamp = text[0].split(": ", 1)[0]
    assert datetime.fromisoformat(stamp) and len(stamp) == len("2024-06-21T19:55:38.513")
    empty = await api.client.get("/api/storage/alice/data/sessions/1/logs/deletion", headers=alice)
    assert empty.json()["lines"] == [] and empty.json()["finished"] is False
    missing = await api.client.get(
        "/api/storage/alice/data/sessions/2/logs/provision", headers=alice
    )
    assert missing.status_code == 404

    creds = await api.client.post("/api/storage/alice/data/credentials", headers=alice)
    assert creds.status_code == 201, creds.text
    assert creds.headers["cache-control"] == "no-store"
    issued = creds.json()
    assert issued["bucketName"] == f"shelf-{uid}" and issued["credentials"]["token"]
    expires = datetime.fromisoformat(issued["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(hours=12))) < timedelta(minutes=5)

    edit = await api.client.patch(
        "/api/storage/alice/data", json={"storage_options": {"region": "shelf-2"}}, headers=alice
    )
    assert edit.status_code == 409 and "stopped" in edit.json()["detail"]
    busy = await api.client.delete("/api/storage/alice/data", headers=alice)
    assert busy.status_code == 409

    stopped = await api.client.post("/api/storage/alice/data/stop", headers=alice)
    assert stopped.status_code == 202 and stopped.json()["status"] == "stopping"
    await reconcile(api, "alice", "data")
    assert ShelfBucket.shelf == {}
    shown = (await api.client.get("/api/storage/alice/data", headers=alice)).json()
    assert (shown["status"], shown["session"], shown["csp_uri"]) == ("stopped", "", "")
    deletion = await api.client.get(
        "/api/storage/alice/data/sessions/1/logs/deletion", headers=alice
    )
    lines = [line["message"] for line in deletion.json()["lines"]]
    assert lines == [
        "Deleting data (session 00001)",
        f"Deleting bucket shelf-{uid}",
        "Storage deleted",
    ]
    assert deletion.json()["finished"] is True

    edit = await api.client.patch(
        "/api/storage/alice/data", json={"storage_options": {"region": "shelf-2"}}, headers=alice
    )
    assert edit.status_code == 200 and edit.json()["storage_options"] == {"region": "shelf-2"}
    await api.client.post("/api/storage/alice/data/start", headers=alice)
    await reconcile(api, "alice", "data")
    sessions = (await api.client.get("/api/storage/alice/data/sessions", headers=alice)).json()
    assert [(s["session"], s["status"]) for s in sessions["items"]] == [
        ("00002", "active"),
        ("00001", "deleted"),
    ]
    assert sessions["items"][1]["deleted_at"] is not None
    assert (await api.client.get("/api/storage/alice/data", headers=alice)).json()["region"] == (
        "shelf-2"
    )

    async with api.runtime.db.session() as session:
        events = [
            (e.type, e.data.get("session"))
            for e in await session.exec(
                select(EventRecord)
                .where(col(EventRecord.type).startswith("storage."))
                .order_by(col(EventRecord.id))
            )
        ]
    assert events == [
        ("storage.starting", "00001"),
        ("storage.active", "00001"),
        ("storage.stopped", "00001"),
        ("storage.starting", "00002"),
        ("storage.active", "00002"),
    ]

    await api.client.post("/api/storage/alice/data/stop", headers=alice)
    await reconcile(api, "alice", "data")
    gone = await api.client.delete("/api/storage/alice/data", headers=alice)
    assert gone.status_code == 204
    assert (await api.client.get("/api/storage/alice/data", headers=alice)).status_code == 404


async def test_sharing_with_mount_and_with_view_edit(
    api: Api, people: dict[str, dict[str, str]]
) -> None:
    alice, bob, carol, zed = people["alice"], people["bob"], people["carol"], people["zed"]
    assert (await create(api, alice, name="shared", group="finance")).status_code == 201
    base = "/api/storage/alice/shared"
    for who in (zed, bob, carol):  # another organization; colleagues it is not shared with
        assert (await api.client.get(base, headers=who)).status_code == 404
        assert (await api.client.post(f"{base}/start", headers=who)).status_code == 404
        assert (await api.client.post(f"{base}/credentials", headers=who)).status_code == 404
        assert (await api.client.get("/api/storage", headers=who)).json()["total"] == 0
    assert (
        await api.client.put(f"{base}/sharing/team", json={"mount": True}, headers=zed)
    ).status_code == 404

    mounted = await api.client.put(f"{base}/sharing/team", json={"mount": True}, headers=alice)
    assert mounted.json() == [{"group": "team", "view_edit": False, "mount": True}]
    listed = (await api.client.get("/api/storage", headers=bob)).json()["items"]
    assert [(i["uri"], i["permission"], i["status"]) for i in listed] == [
        ("pw://alice/shared", "mount", "stopped")
    ]
    assert "storage_options" not in listed[0]
    assert (await api.client.get(base, headers=bob)).status_code == 403
    assert (await api.client.post(f"{base}/start", headers=bob)).status_code == 403
    assert (await api.client.get(f"{base}/sessions", headers=bob)).status_code == 403
    assert (
        await api.client.put(f"{base}/sharing/team", json={"view_edit": True}, headers=bob)
    ).status_code == 403
    await api.client.post(f"{base}/start", headers=alice)
    await reconcile(api, "alice", "shared")
    creds = await api.client.post(f"{base}/credentials", headers=bob)
    assert creds.status_code == 201 and creds.json()["credentials"]["token"]

    edit = await api.client.put(f"{base}/sharing/team", json={"view_edit": True}, headers=alice)
    assert edit.json() == [{"group": "team", "view_edit": True, "mount": True}]
    assert (await api.client.get(base, headers=bob)).json()["permission"] == "view_edit"
    stopped = await api.client.post(f"{base}/stop", headers=bob)
    assert stopped.status_code == 202
    await reconcile(api, "alice", "shared")
    started = await api.client.post(f"{base}/start", headers=bob)
    assert started.status_code == 202 and started.json()["status"] == "starting"
    group = await api.client.patch(base, json={"group": "team"}, headers=bob)
    assert group.status_code == 403 and field_of(group) == "group"
    account = await api.client.patch(base, json={"cloud_account": "lab"}, headers=bob)
    assert account.status_code == 403 and field_of(account) == "cloud_account"
    same = await api.client.patch(
        base, json={"group": "finance", "description": "by bob"}, headers=bob
    )
    assert same.status_code == 200 and same.json()["description"] == "by bob"
    assert (await api.client.delete(base, headers=bob)).status_code == 403

    unshared = await api.client.put(f"{base}/sharing/team", json={}, headers=alice)
    assert unshared.json() == []
    assert (await api.client.get(base, headers=bob)).status_code == 404


async def test_resolve_by_platform_and_cloud_uri(
    api: Api, people: dict[str, dict[str, str]]
) -> None:
    alice, bob, zed = people["alice"], people["bob"], people["zed"]
    await create(api, alice, name="lookup")
    found = await api.client.get(
        "/api/storage/resolve?ref=pw://alice/lookup/a/b.txt", headers=alice
    )
    assert found.status_code == 200 and found.json()["uri"] == "pw://alice/lookup"
    await api.client.post("/api/storage/alice/lookup/start", headers=alice)
    await reconcile(api, "alice", "lookup")
    csp_uri = (await api.client.get("/api/storage/alice/lookup", headers=alice)).json()["csp_uri"]
    by_cloud = await api.client.get(
        "/api/storage/resolve", params={"ref": f"{csp_uri}/dir/file.txt"}, headers=alice
    )
    assert by_cloud.status_code == 200 and by_cloud.json()["uri"] == "pw://alice/lookup"
    for who in (bob, zed):
        hidden = await api.client.get("/api/storage/resolve", params={"ref": csp_uri}, headers=who)
        assert hidden.status_code == 404
    bad = await api.client.get("/api/storage/resolve?ref=bucket", headers=alice)
    assert bad.status_code == 422 and field_of(bad) == "ref"


async def test_generic_routes_cannot_edit_storage_through_a_share(
    api: Api, people: dict[str, dict[str, str]]
) -> None:
    """``PATCH /api/resources`` asks for level ``edit``, which storage does not share at: only
    its owner may, never a group member (403, not a server error)."""
    alice, bob = people["alice"], people["bob"]
    await create(api, alice, name="generic")
    await api.client.put(
        "/api/storage/alice/generic/sharing/team", json={"view_edit": True}, headers=alice
    )
    patched = await api.client.patch(
        "/api/resources/alice/generic", json={"desired_state": "active"}, headers=bob
    )
    assert patched.status_code == 403, patched.text


async def test_bucket_picker_options_are_active_buckets_own_and_shared(
    api: Api, people: dict[str, dict[str, str]]
) -> None:
    """What a workflow's ``bucket`` input offers (spec 20 §5.3): the caller's own and shared
    buckets that are active, by cloud when the input names one."""
    alice, bob = people["alice"], people["bob"]
    for owner, headers, name in (
        ("alice", alice, "shared"),
        ("alice", alice, "private"),
        ("alice", alice, "cold"),
        ("bob", bob, "mine"),
    ):
        assert (await create(api, headers, name=name)).status_code == 201
        if name != "cold":
            await api.client.post(f"/api/storage/{owner}/{name}/start", headers=headers)
            await reconcile(api, owner, name)
    await api.client.put(
        "/api/storage/alice/shared/sharing/team", json={"mount": True}, headers=alice
    )
    await api.client.put(
        "/api/storage/alice/cold/sharing/team", json={"mount": True}, headers=alice
    )
    await create(api, bob, name="share", type="shelf-nfs")
    options = await api.client.get(
        "/api/storage", params={"category": "bucket", "status": "active"}, headers=bob
    )
    assert [i["uri"] for i in options.json()["items"]] == ["pw://alice/shared", "pw://bob/mine"]
    aws = await api.client.get(
        "/api/storage", params={"category": "bucket", "status": "active", "csp": "aws"}, headers=bob
    )
    assert aws.json()["items"] == []
