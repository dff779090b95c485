"""The API shell: health, plugins, OpenAPI, plugin routes, problem details for every error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from litestar import get, post
from litestar.params import FromPath, JSONBody
from litestar.testing import AsyncTestClient

from corral_api.app import create_app
from corral_core.migrations import upgrade
from corral_core.plugins import PluginSource, load_kernel
from corral_core.plugins.manager import builtin_sources
from corral_core.runtime import Runtime
from corral_core.testing import ADMIN_PASSWORD, ADMIN_USERNAME, TestDeployment
from corral_sdk.errors import Conflict
from corral_sdk.plugin import hookimpl

pytestmark = pytest.mark.anyio


class Greeting(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    times: int = 1


class GreeterPlugin:
    @hookimpl
    def corral_api_routes(self) -> list[Any]:
        @get("/hello/{name:str}")
        async def hello(name: FromPath[str]) -> dict[str, str]:
            return {"greeting": f"hello {name}"}

        @post("/greetings")
        async def greet(data: JSONBody[Greeting]) -> dict[str, str]:
            return {"greeting": " ".join([f"hello {data.name}"] * data.times)}

        @get("/taken")
        async def taken() -> None:
            raise Conflict("the greeting is taken", reason="greeting-taken")

        @get("/crash")
        async def crash() -> None:
            raise RuntimeError("database password is hunter2")

        return [hello, greet, taken, crash]


@pytest.fixture
async def client(deployment: TestDeployment) -> AsyncIterator[AsyncTestClient[Any]]:
    source = PluginSource(
        name="greeter", distribution="corral-greeter", version="3", load=GreeterPlugin
    )
    runtime = Runtime(
        deployment.settings(), load_kernel(sources=[*builtin_sources(), source]), "api"
    )
    upgrade(runtime.db)
    await runtime.identity.bootstrap("default", ADMIN_USERNAME, ADMIN_PASSWORD)
    async with AsyncTestClient(app=create_app(runtime)) as client:
        login = await client.post(
            "/api/auth/login", json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}
        )
        assert login.status_code == 200, login.text
        yield client
    await runtime.close()


async def test_health(client: AsyncTestClient[Any], deployment: TestDeployment) -> None:
    response = await client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "version": "0.1.0",
        "mode": deployment.mode,
        "checks": {"database": "ok"},
    }


async def test_plugins_lists_builtin_then_installed(client: AsyncTestClient[Any]) -> None:
    response = await client.get("/api/plugins")
    assert response.status_code == 200
    assert [(p["name"], p["distribution"], p["status"]) for p in response.json()] == [
        ("builtin", "corral-core", "loaded"),
        ("greeter", "corral-greeter", "loaded"),
    ]


async def test_plugin_routes_are_mounted_under_their_name(client: AsyncTestClient[Any]) -> None:
    response = await client.get("/api/plugins/greeter/hello/ada")
    assert response.json() == {"greeting": "hello ada"}
    response = await client.post("/api/plugins/greeter/greetings", json={"name": "bo", "times": 2})
    assert response.json() == {"greeting": "hello bo hello bo"}


async def test_openapi_document_lists_kernel_and_plugin_routes(
    client: AsyncTestClient[Any],
) -> None:
    response = await client.get("/api/schema")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/api/health", "/api/plugins", "/api/version", "/api/plugins/greeter/greetings"} <= set(
        paths
    )
    assert (await client.get("/api/schema/openapi.json")).json()["paths"] == paths


async def test_errors_are_problem_details(client: AsyncTestClient[Any]) -> None:
    missing = await client.get("/api/nowhere")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json() == {
        "title": "Not found",
        "status": 404,
        "detail": "Not Found",
        "instance": "/api/nowhere",
    }

    wrong_method = await client.delete("/api/health")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"] == "application/problem+json"

    invalid = await client.post(
        "/api/plugins/greeter/greetings", json={"name": "x", "times": "two"}
    )
    assert invalid.status_code == 422
    body = invalid.json()
    assert body["status"] == 422 and "times" in body["detail"]

    unknown_field = await client.post("/api/plugins/greeter/greetings", json={"nam": "x"})
    assert unknown_field.status_code == 422
    assert "nam" in unknown_field.json()["detail"]

    conflict = await client.get("/api/plugins/greeter/taken")
    assert conflict.status_code == 409
    assert conflict.json() == {
        "type": "https://corral.dev/problems/greeting-taken",
        "title": "Conflict",
        "status": 409,
        "detail": "the greeting is taken",
        "instance": "/api/plugins/greeter/taken",
        "reason": "greeting-taken",
    }

    crash = await client.get("/api/plugins/greeter/crash")
    assert crash.status_code == 500
    assert crash.headers["content-type"] == "application/problem+json"
    assert "hunter2" not in crash.text
    assert "Traceback" not in crash.text


async def test_malformed_json_is_a_problem_not_a_crash(client: AsyncTestClient[Any]) -> None:
    response = await client.post(
        "/api/plugins/greeter/greetings",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code in {400, 422}
    assert response.headers["content-type"] == "application/problem+json"
