"""The names of a batch of instances, kept without a tag per instance.

One ``RunInstances`` launches a whole batch with one set of tags, and EC2 numbers the batch's
instances by their launch index (0, 1, ...). Instead of a ``CreateTags`` call per instance to
give each its own ``Name`` (200 calls for 200 nodes, which AWS throttles), the batch's names are
written once, compactly, and the instance with launch index *i* is called by the *i*-th name:

- on the instances, in the ``corral:names`` tag (``compact``: ``alice-c-00001-1-[0001-0200]``,
  Slurm's hostlist notation, at most 256 characters as AWS allows), which
  :func:`expand` reads back when instances are described;
- in the user data (``runs``: one ``prefix width first last`` line per run of numbered names),
  which the instance reads at boot with its launch index from the metadata service to take its
  hostname.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["MAX_TAG", "compact", "expand", "runs"]

MAX_TAG = 256
"""AWS's limit on a tag value."""

_NUMBERED = re.compile(r"^(.*?)(\d+)$")
_GROUP = re.compile(r"([^\[\],]*)\[([0-9,\-]+)\]|([^\[\],]+)")


def _runs(names: Sequence[str]) -> list[tuple[str, int, int, int]]:
    """``(prefix, width, first, last)`` runs in order; width 0 is a name without a number."""
    found: list[tuple[str, int, int, int]] = []
    for name in names:
        match = _NUMBERED.match(name)
        if match is None:
            found.append((name, 0, 0, 0))
            continue
        prefix, digits = match.group(1), match.group(2)
        number, width = int(digits), len(digits)
        if found:
            last = found[-1]
            if last[0] == prefix and last[1] == width and last[3] + 1 == number:
                found[-1] = (prefix, width, last[2], number)
                continue
        found.append((prefix, width, number, number))
    return found


def runs(names: Sequence[str]) -> str:
    """The names as ``prefix width first last`` lines (what the boot script reads)."""
    return "".join(f"{p} {w} {a} {b}\n" for p, w, a, b in _runs(names))


def compact(names: Sequence[str]) -> str:
    """The names in hostlist notation, in order (``a-[0001-0003,0007],b``)."""
    groups: list[tuple[str, list[str]]] = []
    for prefix, width, first, last in _runs(names):
        if width == 0:
            groups.append((prefix, []))
            continue
        piece = f"{first:0{width}d}" if first == last else f"{first:0{width}d}-{last:0{width}d}"
        if groups and groups[-1][0] == prefix and groups[-1][1]:
            groups[-1][1].append(piece)
        else:
            groups.append((prefix, [piece]))
    return ",".join(f"{p}[{','.join(pieces)}]" if pieces else p for p, pieces in groups)


def expand(text: str) -> list[str]:
    """The names of :func:`compact`'s notation, in order."""
    names: list[str] = []
    for match in _GROUP.finditer(text):
        prefix, ranges, plain = match.group(1), match.group(2), match.group(3)
        if plain is not None:
            names.append(plain)
            continue
        for piece in ranges.split(","):
            first, _, last = piece.partition("-")
            width = len(first)
            for number in range(int(first), int(last or first) + 1):
                names.append(f"{prefix}{number:0{width}d}")
    return names
