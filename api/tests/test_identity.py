"""Identity and access, tested from the attacker's side."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from api_support import PASSWORD, Api
from sqlalchemy import update
from sqlmodel import col, select

from corral_core.db import utcnow
from corral_core.identity import credentials
from corral_core.identity.models import Credential

pytestmark = pytest.mark.anyio


async def test_sign_in_whoami_and_sign_out(api: Api) -> None:
    client = api.client
    assert (await client.get("/api/auth/whoami")).status_code == 401
    login = await client.post("/api/auth/login", json={"username": "admin", "password": "nope"})
    assert login.status_code == 401
    assert login.json()["detail"] == "wrong username or password"
    from corral_core.testing import ADMIN_PASSWORD

    login = await client.post(
        "/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert login.status_code == 200
    cookie = login.headers["set-cookie"]
    assert "corral_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    me = (await client.get("/api/auth/whoami")).json()
    assert me["username"] == "admin" and me["org"] == "default" and me["credential"] == "session"
    assert {"platform:admin", "org:admin"} <= set(me["roles"])
    assert (await client.post("/api/auth/logout")).status_code == 204
    assert (await client.get("/api/auth/whoami")).status_code == 401


async def test_cross_site_cookie_writes_are_refused(api: Api) -> None:
    from corral_core.testing import ADMIN_PASSWORD

    await api.client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    evil = await api.client.post(
        "/api/auth/apikeys", json={"name": "x"}, headers={"Origin": "https://evil.example"}
    )
    assert evil.status_code == 403
    assert evil.json()["detail"] == "cross-site request refused"


async def test_repeated_failures_lock_the_account_with_back_off(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    assert alice
    for _ in range(5):
        response = await api.client.post(
            "/api/auth/login", json={"username": "alice", "password": "wrong"}
        )
        assert response.status_code == 401
    locked = await api.client.post(
        "/api/auth/login", json={"username": "alice", "password": PASSWORD}
    )
    assert locked.status_code == 429
    assert "try again in" in locked.json()["detail"]


async def test_password_policy(api: Api) -> None:
    admin = await api.admin()
    for password, missing in [
        ("Abcdefghijkl1!", "at least 15 characters"),
        ("abcdefghijklm1!", "an uppercase letter"),
        ("ABCDEFGHIJKLM1!", "a lowercase letter"),
        ("Abcdefghijklmn!", "a digit"),
        ("Abcdefghijklm12", "a special character"),
    ]:
        response = await api.client.post(
            "/api/users", json={"username": "bob", "password": password}, headers=admin
        )
        assert response.status_code == 422
        assert missing in response.json()["detail"]
        assert response.json()["errors"] == [{"field": "password"}]
    ok = await api.client.post(
        "/api/users", json={"username": "bob", "password": "Abcdefghijklm1!"}, headers=admin
    )
    assert ok.status_code == 201


async def test_api_keys_are_shown_once_hashed_and_revoked_at_once(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    admin = await api.admin()
    created = await api.client.post(
        "/api/auth/apikeys", json={"name": "ci", "expiration_days": 7}, headers=admin
    )
    assert created.status_code == 201
    body = created.json()
    secret, key_id = body["secret"], body["id"]
    headers = {"Authorization": f"Bearer {secret}"}
    assert (await api.client.get("/api/auth/whoami", headers=headers)).json()[
        "credential"
    ] == "apikey"
    listed = (await api.client.get("/api/auth/apikeys", headers=admin)).json()
    assert all("secret" not in k for k in listed)
    assert secret not in str(listed)
    async with api.runtime.db.session() as session:
        stored = await session.get(Credential, key_id)
    assert stored is not None and secret not in stored.secret_hash
    assert stored.secret_hash == credentials.hash_secret(secret.split("_", 2)[2])
    deleted = await api.client.delete(f"/api/auth/apikeys/{key_id}", headers=admin)
    assert deleted.status_code == 204
    revoked = await api.client.get("/api/auth/whoami", headers=headers)
    assert revoked.status_code == 401
    assert revoked.headers["content-type"] == "application/problem+json"
    assert secret not in caplog.text


async def test_expired_malformed_and_forged_credentials_get_401(api: Api) -> None:
    admin = await api.admin()
    created = (
        await api.client.post(
            "/api/auth/apikeys", json={"name": "soon", "expiration_days": 7}, headers=admin
        )
    ).json()
    async with api.runtime.db.session() as session:
        await session.exec(
            update(Credential)
            .where(col(Credential.id) == created["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    expired = await api.client.get(
        "/api/auth/whoami", headers={"Authorization": f"Bearer {created['secret']}"}
    )
    assert expired.status_code == 401
    assert expired.json()["detail"] == "the credential has expired"
    kind, public_id, _ = created["secret"].split("_", 2)
    for value in ["garbage", f"{kind}_{public_id}_wrong-secret", "cat_" + public_id + "_x", ""]:
        response = await api.client.get(
            "/api/auth/whoami", headers={"Authorization": f"Bearer {value}"}
        )
        assert response.status_code == 401, value
        assert response.headers["content-type"] == "application/problem+json"
    basic = await api.client.get(
        "/api/auth/whoami", headers={"Authorization": "Basic YWRtaW46eA=="}
    )
    assert basic.status_code == 401


async def test_secrets_are_compared_in_constant_time(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hmac

    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(credentials.hmac, "compare_digest", spy)
    admin = await api.admin()
    assert (await api.client.get("/api/auth/whoami", headers=admin)).status_code == 200
    assert calls, "credential secrets must be compared with hmac.compare_digest"


async def test_api_key_expiry_choices_and_org_policy(api: Api) -> None:
    admin = await api.admin()
    for days in (None, 7, 30, 60, 90):
        response = await api.client.post(
            "/api/auth/apikeys", json={"name": f"k{days}", "expiration_days": days}, headers=admin
        )
        assert response.status_code == 201, days
    bad = await api.client.post(
        "/api/auth/apikeys", json={"name": "k", "expiration_days": 45}, headers=admin
    )
    assert bad.status_code == 422
    assert bad.json()["errors"] == [{"field": "expiration_days"}]
    from corral_core.identity.models import Org

    async with api.runtime.db.session() as session:
        await session.exec(
            update(Org).where(col(Org.name) == "default").values(api_key_max_days=30)
        )
        await session.commit()
    assert (
        await api.client.post(
            "/api/auth/apikeys", json={"name": "k", "expiration_days": 60}, headers=admin
        )
    ).status_code == 422
    assert (
        await api.client.post(
            "/api/auth/apikeys", json={"name": "k", "expiration_days": None}, headers=admin
        )
    ).status_code == 422
    assert (
        await api.client.post(
            "/api/auth/apikeys", json={"name": "k", "expiration_days": 30}, headers=admin
        )
    ).status_code == 201


async def test_tokens_last_1_to_24_hours(api: Api) -> None:
    admin = await api.admin()
    for hours, status in [(0, 422), (25, 422), (1, 201), (24, 201)]:
        response = await api.client.post(
            "/api/auth/tokens", json={"expiration_hours": hours}, headers=admin
        )
        assert response.status_code == status, (hours, response.text)
    token = response.json()
    assert token["secret"].startswith("cat_")
    me = await api.client.get(
        "/api/auth/whoami", headers={"Authorization": f"Bearer {token['secret']}"}
    )
    assert me.json()["credential"] == "token"


async def test_roles_limit_who_manages_users_and_groups(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    await api.group(alice, "helpdesk", roles=("org:users",))
    await api.group(alice, "team-leads", roles=("org:groups",))
    carol = await api.user(alice, "carol")  # no role
    dave = await api.user(alice, "dave", groups=("team-leads",))
    erin = await api.user(alice, "erin", groups=("helpdesk",))

    denied = await api.client.post("/api/users", json={"username": "mallory"}, headers=carol)
    assert denied.status_code == 403
    assert "org:users" in denied.json()["detail"]
    assert (
        await api.client.post("/api/users", json={"username": "frank"}, headers=erin)
    ).status_code == 201

    # org:groups manages ordinary groups, but not groups holding org:admin, and never roles
    assert (
        await api.client.post("/api/groups", json={"name": "ml_team-1"}, headers=dave)
    ).status_code == 201
    assert (
        await api.client.put("/api/groups/ml_team-1/members/carol", headers=dave)
    ).status_code == 204
    escalate = await api.client.put("/api/groups/org-admins/members/dave", headers=dave)
    assert escalate.status_code == 403
    roles = await api.client.put(
        "/api/groups/ml_team-1/roles", json={"roles": ["org:admin"]}, headers=dave
    )
    assert roles.status_code == 403
    assert (await api.client.delete("/api/groups/org-admins", headers=dave)).status_code == 403
    me = (await api.client.get("/api/auth/whoami", headers=dave)).json()
    assert me["roles"] == ["org:groups"]

    # only platform admins grant platform:admin
    platform = await api.client.put(
        "/api/groups/helpdesk/roles", json={"roles": ["platform:admin"]}, headers=alice
    )
    assert platform.status_code == 403
    # removing a member takes their role away at once
    assert (
        await api.client.delete("/api/groups/helpdesk/members/erin", headers=alice)
    ).status_code == 204
    assert (
        await api.client.post("/api/users", json={"username": "gina"}, headers=erin)
    ).status_code == 403


async def test_disabled_user_cannot_sign_in_and_their_keys_stop_at_once(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    bob = await api.user(alice, "bob")
    assert (await api.client.get("/api/auth/whoami", headers=bob)).status_code == 200
    disabled = await api.client.patch("/api/users/bob", json={"disabled": True}, headers=alice)
    assert disabled.json()["status"] == "disabled"
    assert (await api.client.get("/api/auth/whoami", headers=bob)).status_code == 401
    login = await api.client.post("/api/auth/login", json={"username": "bob", "password": PASSWORD})
    assert login.status_code == 401
    await api.client.patch("/api/users/bob", json={"disabled": False}, headers=alice)
    assert (await api.client.get("/api/auth/whoami", headers=bob)).status_code == 200


async def test_seats_count_active_users_only(api: Api) -> None:
    admin = await api.admin()
    created = await api.client.post(
        "/api/orgs",
        json={"name": "tiny", "seats": 2, "admin": {"username": "tara", "password": PASSWORD}},
        headers=admin,
    )
    assert created.status_code == 201
    tara = await api.key("tara")
    assert (
        await api.client.post("/api/users", json={"username": "ulla"}, headers=tara)
    ).status_code == 201
    full = await api.client.post("/api/users", json={"username": "vic"}, headers=tara)
    assert full.status_code == 409
    assert "no seat left" in full.json()["detail"]
    await api.client.patch("/api/users/ulla", json={"disabled": True}, headers=tara)
    assert (
        await api.client.post("/api/users", json={"username": "vic"}, headers=tara)
    ).status_code == 201
    again = await api.client.patch("/api/users/ulla", json={"disabled": False}, headers=tara)
    assert again.status_code == 409


async def test_user_listing_paginates_searches_and_filters(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    for i in range(120):
        response = await api.client.post(
            "/api/users",
            json={"username": f"user{i:03d}", "email": f"u{i}@acme.example"},
            headers=alice,
        )
        assert response.status_code == 201
    pages = [
        (await api.client.get(f"/api/users?limit=50&offset={offset}", headers=alice)).json()
        for offset in (0, 50, 100)
    ]
    assert [len(p["items"]) for p in pages] == [50, 50, 21]  # 120 users plus alice
    assert pages[0]["total"] == 121
    found = (await api.client.get("/api/users?search=USER00", headers=alice)).json()
    assert [u["username"] for u in found["items"]] == [f"user00{i}" for i in range(10)]
    await api.client.patch("/api/users/user007", json={"disabled": True}, headers=alice)
    inactive = (await api.client.get("/api/users?active=false", headers=alice)).json()
    assert [u["username"] for u in inactive["items"]] == ["user007"]
    assert (await api.client.get("/api/users?limit=500", headers=alice)).status_code in {400, 422}


async def test_names_are_checked_and_unique_across_kinds(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    bad_user = await api.client.post("/api/users", json={"username": "jo_doe"}, headers=alice)
    assert bad_user.status_code == 422
    assert bad_user.json()["errors"][0]["field"] == "username"
    assert (
        await api.client.post("/api/users", json={"username": "jo.doe-1"}, headers=alice)
    ).status_code == 201
    assert (
        await api.client.post("/api/groups", json={"name": "my group!"}, headers=alice)
    ).status_code == 422

    assert (
        await api.client.post(
            "/api/resources", json={"kind": "lamp", "name": "demo"}, headers=alice
        )
    ).status_code == 201
    duplicate = await api.client.post(
        "/api/resources", json={"kind": "disk", "name": "demo"}, headers=alice
    )
    assert duplicate.status_code == 422
    problem = duplicate.json()
    assert problem["errors"][0]["field"] == "name"
    assert "unique among all your resources of every kind" in problem["errors"][0]["rule"]
    for name in ["Demo", "1abc", "a", "ends-", "has space", "x" * 256]:
        response = await api.client.post(
            "/api/resources", json={"kind": "lamp", "name": name}, headers=alice
        )
        assert response.status_code == 422, name
        error = response.json()["errors"][0]
        assert error["field"] == "name" and "lowercase letters" in error["rule"]
    unknown_kind = await api.client.post(
        "/api/resources", json={"kind": "teleporter", "name": "tp"}, headers=alice
    )
    assert unknown_kind.status_code == 404


async def test_ssh_keys_are_validated_and_the_platform_key_stays_private(api: Api) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    admin = await api.admin()
    public = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    added = await api.client.post(
        "/api/ssh-keys", json={"name": "laptop", "key": public + " me@laptop"}, headers=admin
    )
    assert added.status_code == 201
    assert added.json()["fingerprint"].startswith("SHA256:")
    assert (
        await api.client.post(
            "/api/ssh-keys", json={"name": "laptop", "key": public}, headers=admin
        )
    ).status_code == 409
    bad = await api.client.post(
        "/api/ssh-keys", json={"name": "bad", "key": "ssh-rsa not-base64!"}, headers=admin
    )
    assert bad.status_code == 422
    keys = (await api.client.get("/api/ssh-keys", headers=admin)).json()
    assert [k["name"] for k in keys] == ["laptop", "Corral platform"]
    assert keys[1]["system"] is True and keys[1]["key"].startswith("ssh-ed25519 ")
    assert "PRIVATE" not in str(keys)
    from corral_core.identity.models import UserKeyPair

    async with api.runtime.db.session() as session:
        pair = (await session.exec(select(UserKeyPair))).first()
    assert pair is not None and "PRIVATE KEY" not in pair.private_key_encrypted
    assert "PRIVATE KEY" in api.runtime.authn.private_key(pair)


async def test_sharing_a_resource_with_a_group(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    await api.group(alice, "analysts")
    bob = await api.user(alice, "bob")
    created = await api.client.post(
        "/api/resources", json={"kind": "lamp", "name": "desk"}, headers=alice
    )
    assert created.json()["uri"] == "pw://alice/desk"
    assert (await api.client.get("/api/resources/alice/desk", headers=bob)).status_code == 404
    assert (
        await api.client.put("/api/groups/analysts/members/bob", headers=alice)
    ).status_code == 204
    assert (
        await api.client.put(
            "/api/resources/alice/desk/grants/analysts", json={"level": "view"}, headers=alice
        )
    ).status_code == 200
    assert (await api.client.get("/api/resources/alice/desk", headers=bob)).status_code == 200
    shared = await api.client.get(
        "/api/resources/lookup", params={"ref": "pw://alice/desk"}, headers=bob
    )
    assert shared.status_code == 200
    assert (
        await api.client.get("/api/resources/lookup", params={"ref": "desk"}, headers=bob)
    ).status_code == 404
    listed = (await api.client.get("/api/resources", headers=bob)).json()
    assert [r["uri"] for r in listed["items"]] == ["pw://alice/desk"]
    refused = await api.client.patch(
        "/api/resources/alice/desk", json={"desired_state": "on"}, headers=bob
    )
    assert refused.status_code == 403
    bad_level = await api.client.put(
        "/api/resources/alice/desk/grants/analysts", json={"level": "mount"}, headers=alice
    )
    assert bad_level.status_code == 422
    await api.client.put(
        "/api/resources/alice/desk/grants/analysts", json={"level": "edit"}, headers=alice
    )
    changed = await api.client.patch(
        "/api/resources/alice/desk", json={"desired_state": "on"}, headers=bob
    )
    assert changed.status_code == 200 and changed.json()["desired_state"] == "on"
    assert (
        await api.client.put(
            "/api/resources/alice/desk/grants/analysts", json={"level": "view"}, headers=bob
        )
    ).status_code == 403
    assert (
        await api.client.delete("/api/resources/alice/desk/grants/analysts", headers=alice)
    ).status_code == 204
    assert (await api.client.get("/api/resources/alice/desk", headers=bob)).status_code == 404


async def test_audit_log_records_changes_for_org_admins(api: Api) -> None:
    alice = await api.org_with_admin("acme", "alice")
    await api.client.post("/api/users", json={"username": "bob"}, headers=alice)
    await api.client.post("/api/users", json={"username": "bad_name"}, headers=alice)
    entries = (await api.client.get("/api/audit", headers=alice)).json()["items"]
    actions = [(e["actor"], e["action"], e["outcome"]) for e in entries]
    assert ("alice", "POST /api/users", "success") in actions
    assert ("alice", "POST /api/users", "failed (422)") in actions
    await api.client.post("/api/auth/login", json={"username": "alice", "password": "wrong"})
    entries = (await api.client.get("/api/audit", headers=alice)).json()["items"]
    assert entries[0]["actor"] == "alice"
    assert (entries[0]["action"], entries[0]["outcome"]) == ("POST /api/auth/login", "failed (401)")
    assert all(e["source"] for e in entries)
    other = await api.org_with_admin("globex", "gil")
    assert not [
        e
        for e in (await api.client.get("/api/audit", headers=other)).json()["items"]
        if e["actor"] == "alice"
    ]


async def test_orgs_are_created_and_deleted_by_platform_admins_only(api: Api) -> None:
    admin = await api.admin()
    alice = await api.org_with_admin("acme", "alice")
    assert (
        await api.client.post("/api/orgs", json={"name": "other"}, headers=alice)
    ).status_code == 403
    assert (
        await api.client.post("/api/orgs", json={"name": "Bad Name"}, headers=admin)
    ).status_code == 422
    assert (
        await api.client.post("/api/orgs", json={"name": "acme"}, headers=admin)
    ).status_code == 409
    assert [o["name"] for o in (await api.client.get("/api/orgs", headers=alice)).json()] == [
        "acme"
    ]
    assert {"acme", "default"} <= {
        o["name"] for o in (await api.client.get("/api/orgs", headers=admin)).json()
    }
    await api.client.post("/api/resources", json={"kind": "lamp", "name": "desk"}, headers=alice)
    assert (
        await api.client.delete("/api/orgs/acme", params={"confirm": "acme"}, headers=alice)
    ).status_code == 403
    wrong = await api.client.delete("/api/orgs/acme", params={"confirm": "acm"}, headers=admin)
    assert wrong.status_code == 422
    has_resources = await api.client.delete(
        "/api/orgs/acme", params={"confirm": "acme"}, headers=admin
    )
    assert has_resources.status_code == 409
    assert (await api.client.delete("/api/users/alice", headers=admin)).status_code == 409
    from corral_core.resources.models import Resource

    async with api.runtime.db.session() as session:
        for row in await session.exec(select(Resource)):
            await session.delete(row)
        await session.commit()
    assert (
        await api.client.delete("/api/orgs/acme", params={"confirm": "acme"}, headers=admin)
    ).status_code == 204
    assert (await api.client.get("/api/auth/whoami", headers=alice)).status_code == 401
    assert "acme" not in {
        o["name"] for o in (await api.client.get("/api/orgs", headers=admin)).json()
    }


async def test_values_the_database_cannot_store_are_refused_not_crashed(api: Api) -> None:
    admin = await api.admin()
    login = await api.client.post("/api/auth/login", json={"username": "a\u0000b", "password": "x"})
    assert login.status_code in {401, 422}
    listed = await api.client.get("/api/resources", params={"kind": "la\u0000mp"}, headers=admin)
    assert listed.status_code in {200, 422}
    too_big = await api.client.delete(f"/api/auth/apikeys/{2**40}", headers=admin)
    assert too_big.status_code in {400, 404, 422}


async def test_public_keys_for_authorized_keys_command(api: Api) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    alice = await api.org_with_admin("acme", "alice")
    public = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    await api.client.post("/api/ssh-keys", json={"name": "laptop", "key": public}, headers=alice)
    keys = await api.client.get("/api/users/alice/ssh-public-keys")  # no credential: sshd has none
    assert keys.status_code == 200
    assert keys.headers["content-type"].startswith("text/plain")
    lines = keys.text.splitlines()
    assert lines[0] == public and lines[1].startswith("ssh-ed25519 ")  # theirs, then the platform's
    assert keys.text.endswith("\n")
    unknown = await api.client.get("/api/users/nobody-here/ssh-public-keys")
    assert (unknown.status_code, unknown.text) == (200, "")
    await api.client.patch("/api/users/bob", json={}, headers=alice)
    await api.client.patch("/api/users/alice", json={"disabled": True}, headers=await api.admin())
    assert (await api.client.get("/api/users/alice/ssh-public-keys")).text == ""


async def test_a_run_token_without_permissions_star_reaches_no_route_and_with_it_acts_as_its_user(
    api: Api,
) -> None:
    """§3.7 at the API: a run's token acts as its user with ``permissions: ['*']``; without
    it, only the run's own sessions (routes marked for run tokens), so 403 elsewhere; revoked,
    401."""
    await api.org_with_admin("acme", "alice")
    authn = api.runtime.authn
    narrow = await authn.issue_run_token("alice", 7, everything=False, expires_at=None)
    wide = await authn.issue_run_token("alice", 8, everything=True, expires_at=None)
    refused = await api.client.get("/api/workflows", headers={"Authorization": f"Bearer {narrow}"})
    assert refused.status_code == 403 and refused.json()["reason"] == "run-token-scope"
    assert "permissions: ['*']" in refused.json()["detail"]
    allowed = await api.client.get("/api/workflows", headers={"Authorization": f"Bearer {wide}"})
    assert allowed.status_code == 200, allowed.text
    await authn.revoke_run_token(8)
    gone = await api.client.get("/api/workflows", headers={"Authorization": f"Bearer {wide}"})
    assert gone.status_code == 401
