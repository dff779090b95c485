"""Transcripts recorded from the Slurm lab or written from Slurm's documented formats, in
``transcripts/`` (a uniquely named module so that test modules can import it)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from corral_sdk.testing import TranscriptRunner

TRANSCRIPTS = Path(__file__).parent / "transcripts"


def transcript(name: str, **kwargs: Any) -> TranscriptRunner:
    """A runner answering from ``transcripts/<name>``."""
    return TranscriptRunner.from_file(TRANSCRIPTS / name, **kwargs)


def header(name: str, key: str) -> dict[str, str]:
    """``key=value`` pairs of a transcript's ``# <key>: a=1 b=2`` line (the job ids and
    states the recording saw)."""
    for line in (TRANSCRIPTS / name).read_text().splitlines():
        match = re.match(rf"^# {re.escape(key)}: (.*)$", line)
        if match:
            return dict(item.split("=", 1) for item in match.group(1).split())
    raise KeyError(f"{name} has no '# {key}:' line")
