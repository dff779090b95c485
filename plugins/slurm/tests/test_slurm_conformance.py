"""The SDK's scheduler conformance suite, against transcripts of Slurm's answers."""

from __future__ import annotations

from types import ModuleType

import pytest
from slurm_transcripts import transcript

from corral_sdk.records import SchedulerRecord
from corral_sdk.testing import TranscriptRunner
from corral_sdk.testing.conformance import SchedulerConformance
from corral_slurm import plugin
from corral_slurm.scheduler import Slurm


class TestSlurmConformance(SchedulerConformance):
    @pytest.fixture
    def record(self) -> SchedulerRecord:
        return plugin.RECORD

    @pytest.fixture
    def plugin(self) -> ModuleType:
        return plugin

    @pytest.fixture
    def runner(self) -> TranscriptRunner:
        return transcript("conformance.txt", target="alice@login1")

    @pytest.fixture
    def provider(self, record: SchedulerRecord, runner: TranscriptRunner) -> Slurm:
        provider = record.create(runner, None)
        assert isinstance(provider, Slurm)
        return provider
