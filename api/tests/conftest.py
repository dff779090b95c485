"""The ``api`` fixture: an in-process API on the suite's database, with the admin bootstrapped."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from api_support import Api, LampPlugin, make_runtime
from litestar.testing import AsyncTestClient

from corral_api.app import create_app
from corral_core.plugins import PluginSource
from corral_core.testing import ADMIN_PASSWORD, ADMIN_USERNAME, TestDeployment


@pytest.fixture
async def api(deployment: TestDeployment) -> AsyncIterator[Api]:
    runtime = make_runtime(
        deployment,
        PluginSource(name="lamps", distribution="corral-lamps", version="1", load=LampPlugin),
    )
    await runtime.identity.bootstrap("default", ADMIN_USERNAME, ADMIN_PASSWORD)
    async with AsyncTestClient(app=create_app(runtime)) as client:
        yield Api(client, runtime)
    await runtime.close()
