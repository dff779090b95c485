"""Slurm hostlist expressions (``n[1-2]``, ``gpu[01-03,07],login1``, ``r[1-2]n[1-2]``)."""

from __future__ import annotations

import itertools

__all__ = ["MAX_HOSTS", "expand_hostlist", "hostlist_range"]

MAX_HOSTS = 65536
"""More hosts than any expression Slurm prints for a job or a partition."""

_NO_NODES = frozenset({"", "(null)", "None assigned", "none", "n/a"})


def _split_top_level(text: str) -> list[str]:
    """Split at commas that are not inside brackets."""
    parts: list[str] = []
    depth = 0
    start = 0
    for index, char in enumerate(text):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced ']' in hostlist {text!r}")
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    if depth != 0:
        raise ValueError(f"unbalanced '[' in hostlist {text!r}")
    parts.append(text[start:])
    return [part for part in parts if part]


def _expand_range(body: str, expression: str) -> list[str]:
    """``01-03,07`` -> ``["01", "02", "03", "07"]``, keeping zero padding."""
    values: list[str] = []
    for item in body.split(","):
        low, dash, high = item.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(f"bad range {item!r} in hostlist {expression!r}")
        if not dash:
            values.append(low)
            continue
        width = len(low) if low.startswith("0") else 0
        start, stop = int(low), int(high)
        if stop < start or stop - start >= MAX_HOSTS:
            raise ValueError(f"bad range {item!r} in hostlist {expression!r}")
        values.extend(str(number).zfill(width) for number in range(start, stop + 1))
    return values


def _expand_one(name: str, expression: str) -> list[str]:
    """One host pattern, possibly with several bracket groups (their product)."""
    pieces: list[list[str]] = []
    rest = name
    while "[" in rest:
        prefix, _, after = rest.partition("[")
        body, closed, rest = after.partition("]")
        if not closed:
            raise ValueError(f"unbalanced '[' in hostlist {expression!r}")
        pieces.append([prefix])
        pieces.append(_expand_range(body, expression))
    pieces.append([rest])
    total = 1
    for piece in pieces:
        total *= len(piece)
    if total > MAX_HOSTS:
        raise ValueError(f"hostlist {expression!r} names more than {MAX_HOSTS} hosts")
    return ["".join(combination) for combination in itertools.product(*pieces)]


def expand_hostlist(expression: str) -> tuple[str, ...]:
    """Every host an expression names, in order; ``(null)`` and empty give none.

    Raises ``ValueError`` for an expression that is not a hostlist.
    """
    expression = expression.strip()
    if expression in _NO_NODES:
        return ()
    hosts: list[str] = []
    for name in _split_top_level(expression):
        hosts.extend(_expand_one(name, expression))
        if len(hosts) > MAX_HOSTS:
            raise ValueError(f"hostlist {expression!r} names more than {MAX_HOSTS} hosts")
    return tuple(hosts)


def hostlist_range(prefix: str, count: int, *, width: int = 4) -> str:
    """The expression for ``prefix`` followed by ``1..count`` padded to ``width`` digits:
    ``hostlist_range("c-", 3)`` is ``c-[0001-0003]``, and ``c-0001`` for one host."""
    if count < 1:
        raise ValueError("a hostlist range needs at least one host")
    if count == 1:
        return f"{prefix}{1:0{width}d}"
    return f"{prefix}[{1:0{width}d}-{count:0{width}d}]"
