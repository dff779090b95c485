"""``corral orgs``: organizations (creating and deleting them needs ``platform:admin``)."""

from __future__ import annotations

import argparse
import logging
import sys
from urllib.parse import quote

import msgspec

from corral_sdk.cli.client import client_for
from corral_sdk.cli.commands.users import confirm_deletion
from corral_sdk.cli.output import print_json, print_table
from corral_sdk.wire import OrgCreate, OrgInfo

__all__ = ["create", "delete", "ls"]

log = logging.getLogger("corral")


def _print_orgs(orgs: list[OrgInfo]) -> None:
    print_table(
        ["NAME", "DISPLAY NAME", "SEATS", "MANAGED BY", "CREATED"],
        [
            [
                o.name,
                o.display_name,
                o.seats or "unlimited",
                o.managed_by or "-",
                o.created_at.strftime("%Y-%m-%d %H:%M"),
            ]
            for o in orgs
        ],
    )


def ls(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        raw = client.get("/api/orgs", msgspec.Raw)
    if args.output == "json":
        print_json(raw)
        return 0
    orgs = msgspec.json.decode(raw, type=list[OrgInfo])
    if args.output == "list":
        for o in orgs:
            sys.stdout.write(o.name + "\n")
    else:
        _print_orgs(orgs)
    return 0


def create(args: argparse.Namespace) -> int:
    body = OrgCreate(name=args.name, display_name=args.display_name or "", seats=args.seats)
    with client_for(args) as client:
        raw = client.post("/api/orgs", msgspec.Raw, body)
    if args.output == "json":
        print_json(raw)
    else:
        _print_orgs([msgspec.json.decode(raw, type=OrgInfo)])
    return 0


def delete(args: argparse.Namespace) -> int:
    """Deletes the organization with its users and groups: type its name, or pass -f."""
    confirm_deletion("organization", args.name, args.force)
    with client_for(args) as client:
        client.delete(f"/api/orgs/{quote(args.name, safe='')}", confirm=args.name)
    log.info("deleted organization %s", args.name)
    return 0
