"""``corral context`` (alias ``ctx``): the contexts of the credentials file. Local only.

This module uses only the standard library, so these commands start fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from corral_sdk.cli.credentials import CredentialsFile
from corral_sdk.errors import CorralError

__all__ = ["current", "delete", "ls", "rename", "use"]

log = logging.getLogger("corral")


def _table(headers: list[str], rows: list[list[str]]) -> None:
    cells = [headers, *rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        sys.stdout.write(
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n"
        )


def ls(args: argparse.Namespace) -> int:
    store = CredentialsFile.load()
    contexts = list(store.contexts.values())
    if args.output == "json":
        shown = [c.public(c.name == store.current) for c in contexts]
        sys.stdout.write(json.dumps(shown, indent=2) + "\n")
    elif args.output == "list":
        for c in contexts:
            sys.stdout.write(c.name + "\n")
    else:
        _table(
            ["CURRENT", "NAME", "SERVER", "USER", "ORG", "AUTH TYPE", "EXPIRES"],
            [
                [
                    "*" if c.name == store.current else "",
                    c.name,
                    c.server,
                    c.username or "-",
                    c.org or "-",
                    c.kind if c.credential else "-",
                    (c.expires_at or "never") if c.credential else "-",
                ]
                for c in contexts
            ],
        )
    return 0


def current(args: argparse.Namespace) -> int:
    store = CredentialsFile.load()
    if store.current_context() is None:
        raise CorralError(
            "no current context: run `corral auth login`, or `corral context use NAME`"
        )
    sys.stdout.write(f"{store.current}\n")
    return 0


def use(args: argparse.Namespace) -> int:
    store = CredentialsFile.load()
    store.use(args.name)
    store.save()
    log.info("switched to context %s", args.name)
    return 0


def rename(args: argparse.Namespace) -> int:
    store = CredentialsFile.load()
    store.rename(args.old, args.new)
    store.save()
    log.info("renamed context %s to %s", args.old, args.new)
    return 0


def delete(args: argparse.Namespace) -> int:
    store = CredentialsFile.load()
    was_current = store.current == args.name
    now_current = store.delete(args.name, force=args.force)
    store.save()
    log.info("deleted context %s", args.name)
    if was_current:
        log.info("current context is now %s", now_current or "(none)")
    return 0
