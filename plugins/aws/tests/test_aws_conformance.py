"""The SDK's cloud conformance suite against moto, live: instances are really launched, described
and terminated through the EC2 API (moto's), networks by the networks mixin."""

from __future__ import annotations

from types import ModuleType

import pytest

from corral_aws import plugin
from corral_aws.provider import AwsCloud
from corral_sdk.records import CloudRecord
from corral_sdk.testing.conformance import CloudConformance


class TestAwsConformance(CloudConformance):
    @pytest.fixture
    def record(self) -> CloudRecord:
        return plugin.RECORD

    @pytest.fixture
    def plugin(self) -> ModuleType:
        return plugin

    @pytest.fixture
    def provider(self) -> AwsCloud:
        return AwsCloud()

    @pytest.fixture
    def live(self) -> bool:
        return True

    @pytest.fixture
    def region(self) -> str:
        return "us-east-1"

    @pytest.fixture
    def poll_interval(self) -> float:
        return 0.1

    @pytest.fixture
    def poll_timeout(self) -> float:
        return 30.0
