"""The marketplace over the API, one test per acceptance test of spec 40 §2 (and the rules
around them): browse, search and filters (§2.2), Use (§2.3), Fork (§2.4), Publish (§2.5),
Edit (§2.6), New version (§2.7), Delete (§2.8); privacy everywhere, 422s naming the field,
403 for what is not yours, 404 for what you cannot see.

The runs of marketplace workflows (what ``latest`` and a pinned version run, and
``uses: marketplace/...``) are in core/tests/test_marketplace.py, in a real workspace.
"""

from __future__ import annotations

from typing import Any

import pytest
from api_support import Api
from sqlmodel import col, select, update

from corral_core.identity.models import Org, User
from corral_core.identity.names import ResourceRef

pytestmark = pytest.mark.anyio

FLOW = "jobs:\n  main:\n    steps:\n      - run: echo {word}\n"


async def workflow(api: Api, who: dict[str, str], name: str, word: str = "one") -> None:
    created = await api.client.post(
        "/api/workflows", json={"name": name, "yaml": FLOW.format(word=word)}, headers=who
    )
    assert created.status_code == 201, created.text


async def publish(
    api: Api, who: dict[str, str], source: str, slug: str, **fields: Any
) -> dict[str, Any]:
    body = {"source": source, "name": fields.pop("name", slug.title()), "slug": slug, **fields}
    published = await api.client.post("/api/marketplace", json=body, headers=who)
    assert published.status_code == 201, published.text
    return dict(published.json())


async def listing(api: Api, who: dict[str, str], **params: Any) -> dict[str, Any]:
    listed = await api.client.get("/api/marketplace", params=params, headers=who)
    assert listed.status_code == 200, listed.text
    return dict(listed.json())


def slugs(page: dict[str, Any]) -> list[str]:
    return [item["slug"] for item in page["items"]]


@pytest.fixture
async def acme(api: Api) -> dict[str, dict[str, str]]:
    """acme: alice (org:admin), bob and carol (members; bob in group ``team``)."""
    alice = await api.org_with_admin("acme", "alice")
    await api.group(alice, "team")
    bob = await api.user(alice, "bob", groups=("team",))
    carol = await api.user(alice, "carol")
    return {"alice": alice, "bob": bob, "carol": carol}


# --- §2.5 publish ---------------------------------------------------------------------------------


async def test_publish_makes_v1_at_the_slug_and_a_second_name_or_slug_is_409(
    api: Api, acme: dict[str, dict[str, str]]
) -> None:
    bob = acme["bob"]
    await workflow(api, bob, "demo_newtest")
    item = await publish(api, bob, "demo_newtest", "demoworkflow", name="Demo", summary="Hi")
    assert (item["slug"], item["type"], item["type_label"], item["publisher"]) == (
        "demoworkflow", "workflow", "local workflow", "bob"
    )  # fmt: skip
    assert (item["versions"], item["latest"], item["privacy"]) == (["v1.0.0"], "v1.0.0", "org")
    # the slug is the item's URL
    page = await api.client.get("/api/marketplace/demoworkflow", headers=acme["carol"])
    assert page.status_code == 200 and page.json()["name"] == "Demo"
    versions = await api.client.get("/api/marketplace/demoworkflow/versions", headers=bob)
    assert [v["version"] for v in versions.json()] == ["v1.0.0"]
    snapshot = await api.client.get(
        "/api/marketplace/demoworkflow/versions/latest", headers=acme["carol"]
    )
    assert snapshot.json()["definition"]["yaml"] == FLOW.format(word="one")
    assert snapshot.json()["source"] == ""  # only those who may edit it see where it came from
    for field, body in (
        ("name", {"name": "Demo", "slug": "other"}),
        ("slug", {"name": "Other", "slug": "demoworkflow"}),
    ):
        again = await api.client.post(
            "/api/marketplace", json={"source": "demo_newtest", **body}, headers=acme["carol"]
        )
        # carol cannot publish bob's workflow (not hers): 422 naming the source
        assert again.status_code == 422 and again.json()["errors"][0]["field"] == "source"
        again = await api.client.post(
            "/api/marketplace", json={"source": "demo_newtest", **body}, headers=bob
        )
        assert again.status_code == 409, again.text
        assert again.json()["errors"][0]["field"] == field, again.text


async def test_publish_refuses_bad_input_naming_the_field(
    api: Api, acme: dict[str, dict[str, str]]
) -> None:
    bob = acme["bob"]
    await workflow(api, bob, "flow")
    good = {"source": "flow", "name": "Flow", "slug": "flow"}
    for change, field in (
        ({"summary": "x" * 201}, "summary"),
        ({"slug": "Flow!"}, "slug"),
        ({"slug": "f-"}, "slug"),
        ({"slug": "f" * 64}, "slug"),
        ({"name": " "}, "name"),
        ({"privacy": "friends"}, "privacy"),
        ({"privacy": "groups"}, "groups"),  # no group
        ({"privacy": "groups", "groups": ["nope"]}, "groups"),
        ({"groups": ["team"]}, "groups"),  # groups without group privacy
        ({"source": "missing"}, "source"),
        ({"source": "pw://alice/x/y"}, "source"),
    ):
        refused = await api.client.post("/api/marketplace", json={**good, **change}, headers=bob)
        assert refused.status_code == 422, (change, refused.text)
        assert field in refused.text, (change, refused.text)
    # a group privacy needs groups the publisher belongs to
    await api.group(acme["alice"], "others")
    refused = await api.client.post(
        "/api/marketplace",
        json={**good, "privacy": "groups", "groups": ["others"]},
        headers=bob,
    )
    assert refused.status_code == 422 and "not a member of 'others'" in refused.text
    # what is not a workflow or a cluster cannot be published
    lamp = await api.client.post(
        "/api/resources", json={"kind": "lamp", "name": "desk"}, headers=bob
    )
    assert lamp.status_code == 201
    refused = await api.client.post(
        "/api/marketplace", json={**good, "source": "desk"}, headers=bob
    )
    assert refused.status_code == 422 and "is a lamp" in refused.text


# --- §2.2 browse ----------------------------------------------------------------------------------


async def test_the_home_page_shows_10_of_12_workflows_and_view_all_12(
    api: Api, acme: dict[str, dict[str, str]]
) -> None:
    bob = acme["bob"]
    for n in range(12):
        await workflow(api, bob, f"flow{n:02d}")
        await publish(api, bob, f"flow{n:02d}", f"flow{n:02d}")
    home = await listing(api, acme["carol"])
    assert slugs(home) == [f"flow{n:02d}" for n in range(10)]
    assert home["counts"] == {"workflow": 12, "storage": 0, "compute": 0} and home["total"] == 12
    everything = await listing(api, acme["carol"], type="workflow")
    assert len(slugs(everything)) == 12 and everything["total"] == 12
    paged = await listing(api, acme["carol"], type="workflow", limit=5, offset=10)
    assert slugs(paged) == ["flow10", "flow11"]
    assert (await api.client.get("/api/marketplace?type=boat", headers=bob)).status_code == 422


async def test_filters_and_search(api: Api, acme: dict[str, dict[str, str]]) -> None:
    alice, bob, carol = acme["alice"], acme["bob"], acme["carol"]
    await workflow(api, bob, "bobflow")
    await publish(api, bob, "bobflow", "bobs", name="Bob's aligner")
    await workflow(api, alice, "aliceflow")
    await publish(api, alice, "aliceflow", "alices", name="Alice's", verified=True)
    cluster = await api.client.post(
        "/api/clusters",
        json={"name": "hpc", "login_host": "10.0.0.1", "scheduler": "unused"},
        headers=carol,
    )
    assert cluster.status_code == 201, cluster.text
    compute = await publish(api, carol, "hpc", "carols-hpc", name="Carol's cluster")
    assert (compute["type"], compute["type_label"]) == ("compute", "existing compute")

    assert slugs(await listing(api, carol, verified=True)) == ["alices"]
    # q: the creator (publisher), the type or the name
    assert slugs(await listing(api, carol, q="BOB")) == ["bobs"]
    assert slugs(await listing(api, carol, q="compute")) == ["carols-hpc"]
    assert slugs(await listing(api, carol, q="local workflow")) == ["alices", "bobs"]
    assert slugs(await listing(api, carol, q="aligner")) == ["bobs"]
    assert (await listing(api, carol, q="alic"))["total"] == 1
    assert slugs(await listing(api, carol, type="compute")) == ["carols-hpc"]
    assert slugs(await listing(api, bob, my_items=True)) == ["bobs"]
    assert slugs(await listing(api, bob, my_org=True)) == ["alices", "bobs", "carols-hpc"]
    # modifiable by me: the publisher's own, an org admin's every item of the org
    assert slugs(await listing(api, bob, modifiable=True)) == ["bobs"]
    assert slugs(await listing(api, alice, modifiable=True)) == ["alices", "bobs", "carols-hpc"]
    # favourites are per user
    assert (
        await api.client.put("/api/marketplace/bobs/favorite", headers=carol)
    ).status_code == 204
    assert slugs(await listing(api, carol, favorites=True)) == ["bobs"]
    assert slugs(await listing(api, bob, favorites=True)) == []
    assert (await api.client.get("/api/marketplace/bobs", headers=carol)).json()["favorite"]
    await api.client.delete("/api/marketplace/bobs/favorite", headers=carol)
    assert slugs(await listing(api, carol, favorites=True)) == []


async def test_org_privacy_hides_an_item_from_other_orgs_even_at_its_url(
    api: Api, acme: dict[str, dict[str, str]]
) -> None:
    bob = acme["bob"]
    await workflow(api, bob, "flow")
    await publish(api, bob, "flow", "inhouse", privacy="org")
    await workflow(api, bob, "open")
    await publish(api, bob, "open", "for-all", privacy="everyone")
    gil = await api.org_with_admin("globex", "gil")
    hank = await api.user(gil, "hank")
    for who in (gil, hank):
        assert slugs(await listing(api, who)) == ["for-all"]
        for method, path in (
            ("GET", "/api/marketplace/inhouse"),
            ("GET", "/api/marketplace/inhouse/versions"),
            ("GET", "/api/marketplace/inhouse/versions/v1.0.0"),
            ("PATCH", "/api/marketplace/inhouse"),
            ("DELETE", "/api/marketplace/inhouse"),
            ("POST", "/api/marketplace/inhouse/use"),
            ("POST", "/api/marketplace/inhouse/fork"),
            ("PUT", "/api/marketplace/inhouse/favorite"),
        ):
            body = {"name": "mine"} if path.endswith("fork") else {}
            answer = await api.client.request(
                method, path, headers=who, json=body if method != "GET" else None
            )
            assert answer.status_code == 404, (method, path, answer.text)
    # an item for everyone is seen, not changed, by another organization
    seen = await api.client.get("/api/marketplace/for-all", headers=hank)
    assert seen.status_code == 200 and not seen.json()["modifiable"]
    changed = await api.client.patch("/api/marketplace/for-all", json={"summary": "x"}, headers=gil)
    assert changed.status_code == 403


async def test_partner_organizations_see_items_for_the_org_and_its_partners(
    api: Api, acme: dict[str, dict[str, str]]
) -> None:
    bob = acme["bob"]
    await workflow(api, bob, "flow")
    await publish(api, bob, "flow", "partnered", privacy="org_and_partners")
    managed = await api.org_with_admin("acme-east", "erin")
    stranger = await api.org_with_admin("globex", "gil")
    # no API makes an organization a partner's yet: the platform sets managed_by
    async with api.runtime.db.session() as session:
        acme_id = (await session.exec(select(Org.id).where(col(Org.name) == "acme"))).one()
        await session.exec(
            update(Org).where(col(Org.name) == "acme-east").values(managed_by=acme_id)
        )
        await session.commit()
    assert slugs(await listing(api, managed)) == ["partnered"]
    assert (await api.client.get("/api/marketplace/partnered", headers=managed)).status_code == 200
    assert slugs(await listing(api, stranger)) == []
    assert (await api.client.get("/api/marketplace/partnered", headers=stranger)).status_code == 404


async def test_one_slug_in_several_organizations(api: Api, acme: dict[str, dict[str, str]]) -> None:
    bob = acme["bob"]
    await workflow(api, bob, "flow", word="acme")
    await publish(api, bob, "flow", "demo", privacy="everyone")
    gil = await api.org_with_admin("globex", "gil")
    await workflow(api, gil, "flow", word="globex")
    await publish(api, gil, "flow", "demo", privacy="everyone")
    # each organization's own item first
    for who, org in ((bob, "acme"), (gil, "globex")):
        assert (await api.client.get("/api/marketplace/demo", headers=who)).json()["org"] == org
    # a third organization sees both: 409 naming them, until org picks one
    zed = await api.org_with_admin("initech", "zed")
    both = await api.client.get("/api/marketplace/demo", headers=zed)
    assert both.status_code == 409 and "acme, globex" in both.text
    picked = await api.client.get("/api/marketplace/demo?org=globex", headers=zed)
    assert picked.status_code == 200 and picked.json()["org"] == "globex"
    # gil uses acme's: what it runs is acme's, not his own organization's item of that slug
    used = await api.client.post("/api/marketplace/demo/use?org=acme", json={}, headers=gil)
    assert used.status_code == 201, used.text
    snapshot = await api.runtime.marketplace_copies.subscribed_yaml(
        await api.runtime.workflows.get(
            await api.runtime.authn.principal(await _user(api, "gil")),
            ResourceRef("gil", "marketplace.demo.latest"),
        )
    )
    assert snapshot.yaml == FLOW.format(word="acme")
    # once acme's is shown to acme only, gil's use of it stops, his own item notwithstanding
    hidden = await api.client.patch("/api/marketplace/demo", json={"privacy": "org"}, headers=bob)
    assert hidden.status_code == 200
    run = await api.client.post(
        "/api/workflows/gil/marketplace.demo.latest/runs", json={}, headers=gil
    )
    assert run.status_code == 404 and "no longer shown to gil" in run.text, run.text


async def _user(api: Api, username: str) -> User:
    async with api.runtime.db.session() as session:
        return (await session.exec(select(User).where(col(User.username) == username))).one()


async def test_group_privacy_shows_an_item_only_to_members_of_its_groups(
    api: Api, acme: dict[str, dict[str, str]]
) -> None:
    bob, carol = acme["bob"], acme["carol"]
    await workflow(api, bob, "flow")
    item = await publish(api, bob, "flow", "teamonly", privacy="groups", groups=["team"])
    assert item["groups"] == ["team"]
    dave = await api.user(acme["alice"], "dave", groups=("team",))
    assert slugs(await listing(api, dave)) == ["teamonly"]
    assert (await api.client.get("/api/marketplace/teamonly", headers=dave)).status_code == 200
    assert slugs(await listing(api, carol)) == []
    assert (await api.client.get("/api/marketplace/teamonly", headers=carol)).status_code == 404
    # once shown to the whole organization, carol sees it
    opened = await api.client.patch(
        "/api/marketplace/teamonly", json={"privacy": "org"}, headers=bob
    )
    assert opened.status_code == 200 and opened.json()["groups"] == []
    assert slugs(await listing(api, carol)) == ["teamonly"]


# --- §2.6 edit ------------------------------------------------------------------------------------


async def test_admin_settings_need_an_org_admin_and_featured_items_come_first(
    api: Api, acme: dict[str, dict[str, str]]
) -> None:
    alice, bob, carol = acme["alice"], acme["bob"], acme["carol"]
    for name in ("aaa", "zzz"):
        await workflow(api, bob, name)
        await publish(api, bob, name, name)
    for setting in ("featured", "verified", "publish_as_organization"):
        refused = await api.client.patch("/api/marketplace/zzz", json={setting: True}, headers=bob)
        assert refused.status_code == 403, refused.text
        assert setting in refused.json()["detail"]
        refused = await api.client.post(
            "/api/marketplace",
            json={"source": "aaa", "name": "x", "slug": "xx", setting: True},
            headers=bob,
        )
        assert refused.status_code == 403, refused.text
    # the owner edits the rest; someone else of the org may not
    edited = await api.client.patch(
        "/api/marketplace/zzz",
        json={"name": "Zed", "summary": "s" * 200, "description": "# Zed\n\n*markdown*"},
        headers=bob,
    )
    assert edited.status_code == 200 and edited.json()["description"].startswith("# Zed")
    assert (
        await api.client.patch("/api/marketplace/zzz", json={"summary": "x"}, headers=carol)
    ).status_code == 403
    assert slugs(await listing(api, carol)) == ["aaa", "zzz"]
    featured = await api.client.patch(
        "/api/marketplace/zzz",
        json={"featured": True, "publish_as_organization": True},
        headers=alice,
    )
    assert featured.status_code == 200, featured.text
    for who in (alice, bob, carol):
        assert slugs(await listing(api, who)) == ["zzz", "aaa"]
        assert slugs(await listing(api, who, type="workflow")) == ["zzz", "aaa"]
    card = (await api.client.get("/api/marketplace/zzz", headers=carol)).json()
    # "By <org name>", the username no longer shown
    assert (card["publisher"], card["owner"], card["featured"]) == ("acme", "", True)
    assert (await api.client.get("/api/marketplace/zzz", headers=bob)).json()["owner"] == "bob"
    assert slugs(await listing(api, carol, q="acme")) == ["zzz"]
    assert slugs(await listing(api, carol, featured=True)) == ["zzz"]
    # the slug changes with the item's URL; a taken one is 409
    assert (
        await api.client.patch("/api/marketplace/zzz", json={"slug": "aaa"}, headers=bob)
    ).status_code == 409
    moved = await api.client.patch("/api/marketplace/zzz", json={"slug": "zed"}, headers=bob)
    assert moved.status_code == 200
    assert (await api.client.get("/api/marketplace/zzz", headers=bob)).status_code == 404


# --- §2.7 versions --------------------------------------------------------------------------------


async def test_versions_start_with_v_and_two_more_characters(
    api: Api, acme: dict[str, dict[str, str]]
) -> None:
    bob = acme["bob"]
    await workflow(api, bob, "flow")
    await publish(api, bob, "flow", "flow")
    for version in ("v1", "1.0.0", "v", "v 1", "v1/2", "latest"):
        refused = await api.client.post(
            "/api/marketplace/flow/versions", json={"version": version}, headers=bob
        )
        assert refused.status_code == 422, (version, refused.text)
        assert refused.json()["errors"][0]["field"] == "version"
    made = await api.client.post(
        "/api/marketplace/flow/versions", json={"version": "v10"}, headers=bob
    )
    assert made.status_code == 201 and made.json()["version"] == "v10", made.text
    again = await api.client.post(
        "/api/marketplace/flow/versions", json={"version": "v10"}, headers=bob
    )
    assert again.status_code == 409
    # a version from another workflow of the publisher's; not from another kind
    await workflow(api, bob, "better", word="two")
    made = await api.client.post(
        "/api/marketplace/flow/versions",
        json={"version": "v2.0.0", "resource": "better"},
        headers=bob,
    )
    assert made.status_code == 201 and made.json()["source"] == "pw://bob/better"
    cluster = await api.client.post(
        "/api/clusters",
        json={"name": "hpc", "login_host": "10.0.0.1", "scheduler": "unused"},
        headers=bob,
    )
    assert cluster.status_code == 201
    refused = await api.client.post(
        "/api/marketplace/flow/versions",
        json={"version": "v3.0.0", "resource": "hpc"},
        headers=bob,
    )
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "resource"
    item = (await api.client.get("/api/marketplace/flow", headers=bob)).json()
    assert (item["latest"], item["versions"]) == ("v2.0.0", ["v2.0.0", "v10", "v1.0.0"])
    latest = await api.client.get("/api/marketplace/flow/versions/latest", headers=bob)
    assert latest.json()["definition"]["yaml"] == FLOW.format(word="two")
    # only its publisher and org admins add versions
    refused = await api.client.post(
        "/api/marketplace/flow/versions", json={"version": "v4.0.0"}, headers=acme["carol"]
    )
    assert refused.status_code == 403


# --- §2.3 use and §2.4 fork -----------------------------------------------------------------------


async def test_use_latest_follows_new_versions_and_a_pinned_version_stays(
    api: Api, acme: dict[str, dict[str, str]]
) -> None:
    bob, carol = acme["bob"], acme["carol"]
    await workflow(api, bob, "demo")
    await publish(api, bob, "demo", "demo", name="Demo")
    used = await api.client.post("/api/marketplace/demo/use", json={}, headers=carol)
    assert used.status_code == 201, used.text
    entry = used.json()
    assert (entry["name"], entry["display_name"], entry["tags"], entry["source"]) == (
        "marketplace.demo.latest", "Demo latest", ["latest"], "marketplace"
    )  # fmt: skip
    assert entry["marketplace"] == {
        "slug": "demo", "version": "latest", "runs": "v1.0.0", "broken": ""
    }  # fmt: skip
    pinned = await api.client.post(
        "/api/marketplace/demo/use", json={"version": "v1.0.0"}, headers=carol
    )
    assert pinned.status_code == 201 and pinned.json()["name"] == "marketplace.demo.v1.0.0"
    again = await api.client.post("/api/marketplace/demo/use", json={}, headers=carol)
    assert again.status_code == 409
    missing = await api.client.post(
        "/api/marketplace/demo/use", json={"version": "v9.0.0"}, headers=carol
    )
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "version"
    # the publisher publishes v2.0.0: latest now resolves to it, the pinned one does not move
    await api.client.patch(
        "/api/workflows/bob/demo", json={"yaml": FLOW.format(word="two")}, headers=bob
    )
    made = await api.client.post(
        "/api/marketplace/demo/versions", json={"version": "v2.0.0"}, headers=bob
    )
    assert made.status_code == 201
    marketplace = (await api.client.get("/api/workflows?marketplace=true", headers=carol)).json()
    assert {w["name"]: w["marketplace"]["runs"] for w in marketplace["items"]} == {
        "marketplace.demo.latest": "v2.0.0",
        "marketplace.demo.v1.0.0": "v1.0.0",
    }
    # listed apart from My Workflows
    mine = (await api.client.get("/api/workflows?marketplace=false", headers=carol)).json()
    assert mine["items"] == []
    one = await api.client.get("/api/workflows/carol/marketplace.demo.latest", headers=carol)
    assert one.status_code == 200 and one.json()["marketplace"]["runs"] == "v2.0.0"
    # the name a user types for a workflow of their own cannot look like one
    taken = await api.client.post(
        "/api/workflows", json={"name": "marketplace.demo.v3.0.0", "yaml": FLOW}, headers=carol
    )
    assert taken.status_code == 422 and taken.json()["errors"][0]["field"] == "name"


async def test_fork_compute_at_a_version_makes_an_independent_cluster(
    api: Api, acme: dict[str, dict[str, str]]
) -> None:
    bob, carol = acme["bob"], acme["carol"]
    cluster = await api.client.post(
        "/api/clusters",
        json={"name": "hpc", "login_host": "10.0.0.1", "scheduler": "unused", "group": "team"},
        headers=bob,
    )
    assert cluster.status_code == 201, cluster.text
    await publish(api, bob, "hpc", "x", name="X")
    # X changes: its cluster's login host, a v2.0.0 from it, a new name
    changed = await api.client.patch(
        "/api/clusters/bob/hpc", json={"login_host": "10.0.0.2"}, headers=bob
    )
    assert changed.status_code == 200, changed.text
    await api.client.post("/api/marketplace/x/versions", json={"version": "v2.0.0"}, headers=bob)
    forked = await api.client.post(
        "/api/marketplace/x/fork", json={"name": "mycluster", "version": "v1.0.0"}, headers=carol
    )
    assert forked.status_code == 201, forked.text
    assert forked.json() == {
        "type": "compute", "kind": "cluster", "uri": "pw://carol/mycluster", "owner": "carol",
        "name": "mycluster", "version": "v1.0.0", "tags": ["v1.0.0"],
    }  # fmt: skip
    mine = (await api.client.get("/api/clusters/carol/mycluster", headers=carol)).json()
    assert (mine["owner"], mine["tags"], mine["login_host"]) == ("carol", ["v1.0.0"], "10.0.0.1")
    # the group was acme's: carol is of acme too, so it stays
    assert mine["group"] == "team"
    await api.client.post("/api/marketplace/x/versions", json={"version": "v3.0.0"}, headers=bob)
    await api.client.patch("/api/marketplace/x", json={"name": "Y"}, headers=bob)
    await api.client.delete("/api/marketplace/x", headers=bob)
    after = (await api.client.get("/api/clusters/carol/mycluster", headers=carol)).json()
    assert (after["tags"], after["login_host"]) == (["v1.0.0"], "10.0.0.1")
    # a storage setting on a compute fork; a name taken
    await publish(api, bob, "hpc", "z")
    refused = await api.client.post(
        "/api/marketplace/z/fork", json={"name": "other", "persistent": True}, headers=carol
    )
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "persistent"
    taken = await api.client.post(
        "/api/marketplace/z/fork", json={"name": "mycluster"}, headers=carol
    )
    assert taken.status_code == 422 and taken.json()["errors"][0]["field"] == "name"
    # compute is forked, not used
    refused = await api.client.post("/api/marketplace/z/use", json={}, headers=carol)
    assert refused.status_code == 422


async def test_fork_workflow_from_latest_is_one_of_my_workflows_tagged_with_its_version(
    api: Api, acme: dict[str, dict[str, str]]
) -> None:
    bob, carol = acme["bob"], acme["carol"]
    await workflow(api, bob, "demo")
    await publish(api, bob, "demo", "demo")
    forked = await api.client.post(
        "/api/marketplace/demo/fork", json={"name": "mine"}, headers=carol
    )
    assert forked.status_code == 201, forked.text
    assert (forked.json()["kind"], forked.json()["tags"]) == ("workflow", ["v1.0.0"])
    mine = (await api.client.get("/api/workflows?marketplace=false", headers=carol)).json()
    assert [(w["name"], w["tags"], w["source"]) for w in mine["items"]] == [
        ("mine", ["v1.0.0"], "local")
    ]
    got = (await api.client.get("/api/workflows/carol/mine", headers=carol)).json()
    assert got["yaml"] == FLOW.format(word="one")
    bad = await api.client.post("/api/marketplace/demo/fork", json={"name": "Bad-Name"},
                                headers=carol)  # fmt: skip
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "name"


async def test_a_storage_fork_with_persistent_makes_persistent_storage(
    api: Api, acme: dict[str, dict[str, str]]
) -> None:
    bob, carol = acme["bob"], acme["carol"]
    for name, kind in (("scratch", "shelf-lustre"), ("bucket", "shelf-bucket")):
        made = await api.client.post(
            "/api/storage",
            json={"name": name, "type": kind, "ephemeral": kind == "shelf-lustre",
                  "storage_options": {"region": "shelf-2"}},
            headers=bob,
        )  # fmt: skip
        assert made.status_code == 201, made.text
    item = await publish(api, bob, "scratch", "scratch", name="Scratch")
    assert (item["type"], item["type_label"]) == ("storage", "shelf-lustre storage")
    await publish(api, bob, "bucket", "bucket", name="Bucket")
    assert (await listing(api, carol))["counts"]["storage"] == 2
    assert slugs(await listing(api, carol, type="storage")) == ["bucket", "scratch"]
    for name, persistent, ephemeral in (("kept", True, False), ("temp", False, True),
                                        ("asis", None, True)):  # fmt: skip
        body: dict[str, Any] = {"name": name}
        if persistent is not None:
            body["persistent"] = persistent
        forked = await api.client.post("/api/marketplace/scratch/fork", json=body, headers=carol)
        assert forked.status_code == 201, forked.text
        assert (forked.json()["kind"], forked.json()["tags"]) == ("storage", ["v1.0.0"])
        mine = (await api.client.get(f"/api/storage/carol/{name}", headers=carol)).json()
        assert (mine["owner"], mine["ephemeral"], mine["status"]) == ("carol", ephemeral, "stopped")
        assert mine["storage_options"] == {"region": "shelf-2"}
    # only Lustre may be ephemeral: the storage's own rule, naming the field
    refused = await api.client.post(
        "/api/marketplace/bucket/fork", json={"name": "nope", "persistent": False}, headers=carol
    )
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "ephemeral"
    assert (await api.client.post("/api/marketplace/bucket/use", json={},
                                  headers=carol)).status_code == 422  # fmt: skip


# --- §2.8 delete ----------------------------------------------------------------------------------


async def test_delete_keeps_forks_and_breaks_subscriptions_saying_so(
    api: Api, acme: dict[str, dict[str, str]]
) -> None:
    bob, carol = acme["bob"], acme["carol"]
    await workflow(api, bob, "demo")
    await publish(api, bob, "demo", "demo", name="Demo")
    await api.client.post("/api/marketplace/demo/use", json={}, headers=carol)
    await api.client.post("/api/marketplace/demo/fork", json={"name": "mine"}, headers=carol)
    assert (await api.client.delete("/api/marketplace/demo", headers=carol)).status_code == 403
    assert (await api.client.delete("/api/marketplace/demo", headers=bob)).status_code == 204
    assert (await api.client.get("/api/marketplace/demo", headers=bob)).status_code == 404
    assert slugs(await listing(api, bob)) == []
    used = (await api.client.get("/api/workflows/carol/marketplace.demo.latest",
                                 headers=carol)).json()  # fmt: skip
    assert used["marketplace"]["broken"].startswith(
        "the marketplace item 'Demo' (demo) was deleted"
    )
    assert used["marketplace"]["runs"] == ""
    run = await api.client.post(
        "/api/workflows/carol/marketplace.demo.latest/runs", json={}, headers=carol
    )
    assert run.status_code == 409 and "was deleted" in run.text
    fork = await api.client.get("/api/workflows/carol/mine", headers=carol)
    assert fork.status_code == 200 and fork.json()["yaml"] == FLOW.format(word="one")
    # the subscriber removes the broken entry like any workflow of theirs
    gone = await api.client.delete("/api/workflows/carol/marketplace.demo.latest", headers=carol)
    assert gone.status_code == 204


async def test_a_version_is_deleted_unless_it_is_the_last(
    api: Api, acme: dict[str, dict[str, str]]
) -> None:
    bob, carol = acme["bob"], acme["carol"]
    await workflow(api, bob, "demo")
    await publish(api, bob, "demo", "demo")
    await api.client.post("/api/marketplace/demo/versions", json={"version": "v2.0.0"},
                          headers=bob)  # fmt: skip
    await api.client.post("/api/marketplace/demo/use", json={"version": "v1.0.0"}, headers=carol)
    refused = await api.client.delete("/api/marketplace/demo/versions/v1.0.0", headers=carol)
    assert refused.status_code == 403
    deleted = await api.client.delete("/api/marketplace/demo/versions/v1.0.0", headers=bob)
    assert deleted.status_code == 204
    assert (
        await api.client.get("/api/marketplace/demo/versions/v1.0.0", headers=bob)
    ).status_code == 404
    pinned = (await api.client.get("/api/workflows/carol/marketplace.demo.v1.0.0",
                                   headers=carol)).json()  # fmt: skip
    assert pinned["marketplace"]["broken"].startswith("version v1.0.0 of demo was deleted")
    last = await api.client.delete("/api/marketplace/demo/versions/v2.0.0", headers=bob)
    assert last.status_code == 409 and "delete the item instead" in last.text
