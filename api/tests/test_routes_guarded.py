"""Every route of the OpenAPI document, walked from the outside and from another tenant.

Without credentials every route answers 401 but the public ones listed in
``corral_api.security.PUBLIC_ROUTES``; a user of another organization gets 404 for every route
that names an object of this one, and sees none of it in any listing. A new route is covered
as soon as it is in the OpenAPI document: give it sample path values in ``SAMPLES`` below.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from api_support import Api

from corral_api.security import PUBLIC_ROUTES

pytestmark = pytest.mark.anyio

# Path parameter values naming acme's objects, by path prefix (first match wins).
SAMPLES: list[tuple[str, dict[str, str]]] = [
    ("/api/orgs/", {"name": "acme", "key": "orgVariable", "reservation_id": "cr-0abc"}),
    ("/api/users/", {"username": "bob"}),
    ("/api/groups/", {"name": "team", "username": "bob"}),
    ("/api/resources/", {"owner": "alice", "name": "desk", "group": "team"}),
    ("/api/ssh-keys/", {"name": "laptop"}),
    ("/api/clusters/", {"owner": "alice", "name": "hpc", "job": "1"}),
    ("/api/cloud-accounts/", {"name": "lab"}),
    ("/api/marketplace/", {"slug": "flowitem", "version": "v1.0.0"}),
    ("/api/networks/", {"name": "net1"}),
    ("/api/os-snapshots/", {"owner": "alice", "name": "snap"}),
    ("/api/static-ips/", {"owner": "alice", "name": "ip1"}),
    (
        "/api/storage/",
        {"owner": "alice", "name": "bucket1", "group": "team", "session": "1", "log": "provision"},
    ),
    ("/api/workflows/", {"owner": "alice", "name": "flow", "version": "1"}),
    ("/api/runs/", {"ref": "alice.flow.00001"}),
    ("/api/sessions/", {"owner": "alice", "name": "desk"}),
]


QUERY_SAMPLES = {
    "confirm": "acme",
    "ref": "pw://alice/desk",
    "host": "alice-hpc-00001-mgmt",
    "exit_status": "0",
}


async def operations(api: Api) -> list[tuple[str, str, dict[str, Any]]]:
    """``(METHOD, path template, request kwargs with valid required query and body)``."""
    schema = (await api.client.get("/api/schema")).json()
    ops = []
    for path, item in schema["paths"].items():
        for method, op in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            kwargs: dict[str, Any] = {}
            query = {
                p["name"]: QUERY_SAMPLES[p["name"]]
                for p in op.get("parameters", [])
                if p["in"] == "query" and p.get("required")
            }
            if query:
                kwargs["params"] = query
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                kwargs["json"] = sample(body["schema"], schema)
            ops.append((method.upper(), path, kwargs))
    return sorted(ops, key=lambda op: (op[1], op[0]))


def sample(node: dict[str, Any], schema: dict[str, Any]) -> Any:
    """A minimal valid value for a JSON schema node (required properties only)."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return sample(schema["components"]["schemas"][name], schema)
    for key in ("oneOf", "anyOf"):
        if key in node:
            options = [o for o in node[key] if o.get("type") != "null"]
            return sample(options[0], schema) if options else None
    kind = node.get("type")
    if kind == "object":
        props = node.get("properties", {})
        return {k: sample(props[k], schema) for k in node.get("required", [])}
    if "enum" in node:
        return node["enum"][0]
    return {"string": "view", "integer": 1, "number": 1, "boolean": False, "array": []}.get(kind)


def fill(path: str, ids: dict[str, str]) -> str:
    values = dict(ids)
    for prefix, sample in SAMPLES:
        if path.startswith(prefix):
            values = {**sample, **values}
            break
    params = re.findall(r"\{(\w+)\}", path)
    missing = [p for p in params if p not in values]
    assert not missing, f"add sample values for {missing} of {path} to SAMPLES"
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


async def call(
    api: Api, method: str, url: str, kwargs: dict[str, Any], headers: dict[str, str] | None = None
) -> Any:
    return await api.client.request(method, url, headers=headers or {}, **kwargs)


async def test_every_route_needs_credentials_except_the_listed_public_ones(api: Api) -> None:
    ops = await operations(api)
    assert len(ops) > 30
    public_handlers = {
        (method, re.sub(r":\w+\}", "}", route.path))
        for route in api.client.app.routes
        for handler in getattr(route, "route_handlers", [])
        if handler.opt.get("public")
        for method in handler.http_methods
    }
    assert public_handlers == set(PUBLIC_ROUTES), "mark public routes in one place: PUBLIC_ROUTES"
    for method, path, kwargs in ops:
        response = await call(api, method, fill(path, {"key_id": "1", "token_id": "1"}), kwargs)
        if (method, path) in PUBLIC_ROUTES:
            # answered on its own terms (a login may fail), never for want of a credential
            assert response.status_code < 500, (method, path)
            assert response.status_code != 401 or response.json()["reason"] != "not-authenticated"
        else:
            assert response.status_code == 401, (method, path, response.status_code, response.text)
            assert response.headers["content-type"] == "application/problem+json"


@pytest.fixture
async def acme(api: Api) -> dict[str, str]:
    """An organization with a user, a group, a resource shared with it, keys and a token."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    alice = await api.org_with_admin("acme", "alice")
    await api.group(alice, "team")
    await api.user(alice, "bob", groups=("team",))
    created = await api.client.post(
        "/api/resources", json={"kind": "lamp", "name": "desk"}, headers=alice
    )
    assert created.status_code == 201
    shared = await api.client.put(
        "/api/resources/alice/desk/grants/team", json={"level": "view"}, headers=alice
    )
    assert shared.status_code == 200
    cluster = await api.client.post(
        "/api/clusters",
        json={"name": "hpc", "login_host": "10.0.0.1", "scheduler": "unused"},
        headers=alice,
    )
    assert cluster.status_code == 201, cluster.text
    shared = await api.client.put(
        "/api/resources/alice/hpc/grants/team", json={"level": "login"}, headers=alice
    )
    assert shared.status_code == 200
    flow = await api.client.post(
        "/api/workflows",
        json={"name": "flow", "yaml": "jobs:\n  a:\n    steps:\n      - run: true\n"},
        headers=alice,
    )
    assert flow.status_code == 201, flow.text
    run = await api.client.post("/api/workflows/alice/flow/runs", json={}, headers=alice)
    assert run.status_code == 201 and run.json()["slug"] == "alice.flow.00001", run.text
    bucket = await api.client.post(
        "/api/storage", json={"name": "bucket1", "type": "shelf-bucket"}, headers=alice
    )
    assert bucket.status_code == 201, bucket.text
    shared = await api.client.put(
        "/api/storage/alice/bucket1/sharing/team", json={"mount": True}, headers=alice
    )
    assert shared.status_code == 200, shared.text
    item = await api.client.post(
        "/api/marketplace",
        json={"source": "flow", "name": "Flow", "slug": "flowitem", "privacy": "org"},
        headers=alice,
    )
    assert item.status_code == 201, item.text
    variable = await api.client.put(
        "/api/orgs/acme/variables/orgVariable", json={"value": "hi"}, headers=alice
    )
    assert variable.status_code == 200, variable.text
    reservation = await api.client.post(
        "/api/orgs/acme/capacity-reservations",
        json={"reservation_id": "cr-0abc", "group": "team"},
        headers=alice,
    )
    assert reservation.status_code == 201, reservation.text
    public = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    assert (
        await api.client.post(
            "/api/ssh-keys", json={"name": "laptop", "key": public}, headers=alice
        )
    ).status_code == 201
    key = (await api.client.post("/api/auth/apikeys", json={"name": "k"}, headers=alice)).json()
    token = (
        await api.client.post("/api/auth/tokens", json={"expiration_hours": 1}, headers=alice)
    ).json()
    return {"key_id": str(key["id"]), "token_id": str(token["id"])}


@pytest.mark.parametrize("intruder", ["org-admin", "member"])
async def test_another_org_gets_404_for_every_object_and_sees_none_in_lists(
    api: Api, acme: dict[str, str], intruder: str
) -> None:
    gil = await api.org_with_admin("globex", "gil")
    headers = gil if intruder == "org-admin" else await api.user(gil, "hank")
    for method, path, kwargs in await operations(api):
        if (method, path) in PUBLIC_ROUTES:
            continue
        if "{" in path or "ref" in kwargs.get("params", {}):  # names one of acme's objects
            response = await call(api, method, fill(path, acme), kwargs, headers)
            assert response.status_code == 404, (
                intruder,
                method,
                path,
                response.status_code,
                response.text,
            )
        elif method == "GET":
            response = await call(api, method, path, kwargs, headers)
            assert response.status_code in {200, 403}, (method, path, response.text)
            for secret in ("alice", "acme", "bob", "pw://alice", '"team"'):
                assert secret not in response.text, (intruder, path, secret)
