"""Platform-wide sign-in policy from settings, enforced by the kernel's authenticator."""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from corral_core.identity.models import User
from corral_core.migrations import upgrade
from corral_core.plugins import load_kernel
from corral_core.runtime import Runtime
from corral_core.testing import ADMIN_PASSWORD, TestDeployment
from corral_sdk.errors import Invalid

pytestmark = pytest.mark.anyio


async def test_platform_limit_on_api_key_expiry(deployment: TestDeployment) -> None:
    settings = deployment.settings(CORRAL_AUTH_API_KEY_MAX_DAYS="30")
    runtime = Runtime(settings, load_kernel(), "api")
    upgrade(runtime.db)
    try:
        await runtime.identity.bootstrap("default", "root", ADMIN_PASSWORD)
        async with runtime.db.session() as session:
            user = (await session.exec(select(User).where(col(User.username) == "root"))).one()
        principal = await runtime.authn.principal(user)
        with pytest.raises(Invalid, match="this platform allows at most 30 days"):
            await runtime.authn.create_api_key(principal, "k", 60)
        with pytest.raises(Invalid, match="this platform allows at most 30 days"):
            await runtime.authn.create_api_key(principal, "k", None)
        issued = await runtime.authn.create_api_key(principal, "k", 30)
        assert issued.expires_at is not None
        assert (await runtime.authn.authenticate(issued.secret)).username == "root"
    finally:
        await runtime.close()
