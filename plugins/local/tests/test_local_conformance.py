"""The SDK's cloud conformance suite against the local cloud, live: hosts are really created and
deleted on this machine (as root, which the lab and CI are)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from corral_local import plugin
from corral_local.provider import LocalCloud

from corral_sdk.providers.cloud import CloudAccount
from corral_sdk.records import CloudRecord
from corral_sdk.testing.conformance import CloudConformance

ROOT = os.geteuid() == 0


class TestLocalConformance(CloudConformance):
    @pytest.fixture
    def record(self) -> CloudRecord:
        return plugin.RECORD

    @pytest.fixture
    def plugin(self) -> ModuleType:
        return plugin

    @pytest.fixture
    def provider(self) -> LocalCloud:
        return LocalCloud()

    @pytest.fixture
    def account(self) -> Iterator[CloudAccount]:
        # not under /tmp: every host has its own /tmp, so hosts could not see their own files
        root = Path("/var/lib/corral-local-tests") / uuid.uuid4().hex[:8]
        yield CloudAccount(
            name="local",
            credentials=None,
            settings={"root": str(root), "subnet": "10.81.0.0/24", "bridge": "crltest0"},
        )
        shutil.rmtree(root, ignore_errors=True)

    @pytest.fixture
    def live(self) -> bool:
        return ROOT

    @pytest.fixture
    def poll_interval(self) -> float:
        return 0.2

    @pytest.fixture
    def poll_timeout(self) -> float:
        return 30.0
