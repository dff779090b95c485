"""Transcripts of real PBS output (``transcripts/``; each file says where its output comes from)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from corral_sdk.testing import TranscriptEntry, TranscriptRunner
from corral_sdk.testing.transcript import parse_transcript

TRANSCRIPTS = Path(__file__).parent / "transcripts"

TranscriptFactory = Callable[..., TranscriptRunner]


def transcript_entries(*names: str, reusable: bool = False) -> list[TranscriptEntry]:
    """The entries of ``transcripts/<name>.transcript`` files; ``reusable`` lets every entry
    answer any number of calls."""
    entries: list[TranscriptEntry] = []
    for name in names:
        parsed = parse_transcript((TRANSCRIPTS / f"{name}.transcript").read_text())
        if reusable:
            parsed = [msgspec.structs.replace(entry, times=None) for entry in parsed]
        entries.extend(parsed)
    return entries


@pytest.fixture
def pbs_transcript() -> TranscriptFactory:
    """``pbs_transcript("status_aurora", ...)``: a runner answering from those transcripts."""

    def make(*names: str, reusable: bool = False) -> TranscriptRunner:
        return TranscriptRunner(transcript_entries(*names, reusable=reusable), target="pbs-login")

    return make
