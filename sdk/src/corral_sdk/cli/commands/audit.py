"""``corral audit``: the state-changing calls in your organization (``org:admin``)."""

from __future__ import annotations

import argparse
import logging

import msgspec

from corral_sdk.cli.client import client_for
from corral_sdk.cli.output import print_json, print_table
from corral_sdk.wire import AuditList

__all__ = ["ls"]

log = logging.getLogger("corral")


def ls(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        raw = client.get(
            "/api/audit", msgspec.Raw, actor=args.actor, limit=args.limit, offset=args.offset
        )
    if args.output == "json":
        print_json(raw)
        return 0
    page = msgspec.json.decode(raw, type=AuditList)
    print_table(
        ["ID", "AT", "ACTOR", "ACTION", "TARGET", "SOURCE", "OUTCOME"],
        [
            [
                e.id,
                e.at.strftime("%Y-%m-%d %H:%M:%S"),
                e.actor,
                e.action,
                e.target,
                e.source or "-",
                e.outcome,
            ]
            for e in page.items
        ],
    )
    if page.total > page.offset + len(page.items):
        log.info(
            "showing %d of %d entries: pass --offset %d for more",
            len(page.items),
            page.total,
            page.offset + len(page.items),
        )
    return 0
