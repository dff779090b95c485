"""The SDK's scheduler conformance suite against transcripts of real PBS output."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest

import corral_pbs.plugin
from corral_pbs.plugin import RECORD
from corral_pbs.scheduler import PBS
from corral_sdk.records import SchedulerRecord
from corral_sdk.testing import SchedulerConformance, TranscriptRunner


class TestPBSConformance(SchedulerConformance):
    @pytest.fixture
    def record(self) -> SchedulerRecord:
        return RECORD

    @pytest.fixture
    def plugin(self) -> ModuleType:
        return corral_pbs.plugin

    @pytest.fixture
    def runner(self, pbs_transcript: Callable[..., TranscriptRunner]) -> TranscriptRunner:
        # the suite's submit, status, cancel, hold, queue, partitions, nodes and accounting
        return pbs_transcript("conformance", "queue_aurora", "partitions_alcf", reusable=True)

    @pytest.fixture
    def provider(self, record: SchedulerRecord, runner: TranscriptRunner) -> PBS:
        provider = record.create(runner, None)
        assert isinstance(provider, PBS)
        return provider
