"""Slurm's ways of writing durations, times, exit codes, sizes and GPU counts."""

from __future__ import annotations

import re
from datetime import UTC, datetime

__all__ = [
    "format_duration",
    "gpu_count",
    "json_number",
    "parse_duration",
    "parse_epoch",
    "parse_exit_code",
    "parse_size_mb",
    "wait_status_exit_code",
]

_UNSET = frozenset({"", "n/a", "none", "unknown", "infinite", "unlimited", "not_set", "invalid"})


def parse_duration(text: str) -> float | None:
    """Seconds in a Slurm duration: ``D-HH:MM:SS``, ``D-HH:MM``, ``D-HH``, ``HH:MM:SS``,
    ``MM:SS``, ``MM`` (minutes, as ``sbatch --time`` reads it), with optional fractional
    seconds (``sacct``'s ``TotalCPU`` prints ``01:02.345``). ``infinite``, ``UNLIMITED``,
    ``n/a`` and the like are ``None``; so is anything else that is not a duration."""
    text = text.strip()
    if text.lower() in _UNSET:
        return None
    days_text, dash, clock = text.partition("-")
    if not dash:
        days_text, clock = "0", text
    parts = clock.split(":")
    try:
        days = int(days_text)
        numbers = [float(part) for part in parts]
    except ValueError:
        return None
    if days < 0 or any(number < 0 for number in numbers) or len(numbers) > 3:
        return None
    if dash:  # days-hours[:minutes[:seconds]]
        hours, minutes, seconds = [*numbers, 0.0, 0.0][:3]
    elif len(numbers) == 3:
        hours, minutes, seconds = numbers
    elif len(numbers) == 2:
        hours, (minutes, seconds) = 0.0, numbers
    else:
        hours, minutes, seconds = 0.0, numbers[0], 0.0
    return days * 86400 + hours * 3600 + minutes * 60 + seconds


def format_duration(seconds: int) -> str:
    """``D-HH:MM:SS``, which ``sbatch --time`` reads on every Slurm version. Slurm rounds
    seconds up to the next minute itself."""
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"


def parse_epoch(value: object) -> datetime | None:
    """A time Slurm printed as seconds since the epoch (``SLURM_TIME_FORMAT=%s``, or a JSON
    number or ``{"set": true, "number": ...}``); 0, unset and non-numbers are ``None``."""
    number = json_number(value)
    if number is None and isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if number is None or number <= 0:
        return None
    return datetime.fromtimestamp(number, UTC)


def json_number(value: object) -> int | None:
    """A number in ``squeue --json``: a plain integer (22.05), or an object
    ``{"set": bool, "infinite": bool, "number": int}`` (23.02+) that counts only when set."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        if not value.get("set", False) or value.get("infinite", False):
            return None
        return json_number(value.get("number"))
    return None


_NO_VAL = 0xFFFFFFFE


def wait_status_exit_code(status: int | None) -> int | None:
    """The exit code in a raw wait status (what Slurm stores): the exit value, or
    ``128 + signal`` when a signal ended the job, as shells report it."""
    if status is None or status < 0 or status >= _NO_VAL:
        return None
    signal = status & 0x7F
    if signal:
        return 128 + signal
    return (status >> 8) & 0xFF


def parse_exit_code(text: str) -> int | None:
    """``sacct``'s ``ExitCode``, ``code:signal``: the code, or ``128 + signal`` when a
    signal ended the job."""
    code_text, _, signal_text = text.strip().partition(":")
    try:
        code = int(code_text)
        signal = int(signal_text or "0")
    except ValueError:
        return None
    return 128 + signal if signal else code


_SIZE_UNITS = {"": 1 / 1024, "K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2, "P": 1024.0**3}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([KMGTP]?)$", re.IGNORECASE)


def parse_size_mb(text: str) -> float | None:
    """Megabytes in a Slurm size (``sacct``'s ``MaxRSS``: ``1234K``, ``5.50M``, ``2G``; a
    number without unit is kilobytes, as ``MaxRSS`` counts)."""
    match = _SIZE.match(text.strip())
    if match is None:
        return None
    return float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()]


_GRES_GPU = re.compile(r"(?:^|,)gpu(?::[^:(,=]+)?:(\d+)")
_TRES_GPU = re.compile(r"(?:^|,)gres/gpu=(\d+)")
_TRES_TYPED_GPU = re.compile(r"(?:^|,)gres/gpu:[^=,]+=(\d+)")


def gpu_count(gres: str) -> int:
    """GPUs in a ``Gres`` string (``gpu:a100:4(S:0-1)``, ``gpu:2,shard:8``) or an ``AllocTRES``
    string (``cpu=4,gres/gpu=2,gres/gpu:a100=2``, where the untyped total is counted)."""
    text = gres.strip()
    if "gres/" in text:
        total = _TRES_GPU.findall(text)
        if total:
            return sum(int(count) for count in total)
        return sum(int(count) for count in _TRES_TYPED_GPU.findall(text))
    return sum(int(count) for count in _GRES_GPU.findall(text))
