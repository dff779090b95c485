"""``corral groups``: an organization's groups, their members and their roles."""

from __future__ import annotations

import argparse
import logging
import sys
from urllib.parse import quote

import msgspec

from corral_sdk.cli.client import client_for
from corral_sdk.cli.commands.users import print_users
from corral_sdk.cli.output import print_json, print_table
from corral_sdk.errors import Invalid
from corral_sdk.wire import GroupCreate, GroupInfo, GroupRoles, UserInfo

__all__ = ["add_member", "create", "delete", "ls", "members", "remove_member", "roles"]

log = logging.getLogger("corral")


def _path(name: str, *rest: str) -> str:
    return "/".join(["/api/groups", *(quote(p, safe="") for p in (name, *rest))])


def _print_groups(groups: list[GroupInfo]) -> None:
    print_table(
        ["NAME", "DESCRIPTION", "ROLES", "MEMBERS", "CREATED"],
        [
            [
                g.name,
                g.description or "-",
                ",".join(g.roles) or "-",
                g.members,
                g.created_at.strftime("%Y-%m-%d %H:%M"),
            ]
            for g in groups
        ],
    )


def ls(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        raw = client.get("/api/groups", msgspec.Raw, org=args.org)
    if args.output == "json":
        print_json(raw)
    else:
        _print_groups(msgspec.json.decode(raw, type=list[GroupInfo]))
    return 0


def create(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        raw = client.post(
            "/api/groups",
            msgspec.Raw,
            GroupCreate(name=args.name, description=args.description or ""),
        )
    if args.output == "json":
        print_json(raw)
    else:
        _print_groups([msgspec.json.decode(raw, type=GroupInfo)])
    return 0


def delete(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        client.delete(_path(args.name))
    log.info("deleted group %s", args.name)
    return 0


def members(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        raw = client.get(_path(args.name, "members"), msgspec.Raw)
    if args.output == "json":
        print_json(raw)
    else:
        print_users(msgspec.json.decode(raw, type=list[UserInfo]))
    return 0


def add_member(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        client.put(_path(args.name, "members", args.username))
    log.info("added %s to group %s", args.username, args.name)
    return 0


def remove_member(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        client.delete(_path(args.name, "members", args.username))
    log.info("removed %s from group %s", args.username, args.name)
    return 0


def roles(args: argparse.Namespace) -> int:
    """Without ROLEs (and without --clear), print the group's roles; otherwise set them."""
    if args.clear and args.roles:
        raise Invalid("give ROLEs or --clear, not both")
    with client_for(args) as client:
        if args.roles or args.clear:
            raw = client.put(_path(args.name, "roles"), msgspec.Raw, GroupRoles(roles=args.roles))
        else:
            raw = client.get(_path(args.name), msgspec.Raw)
    if args.output == "json":
        print_json(raw)
        return 0
    for role in msgspec.json.decode(raw, type=GroupInfo).roles:
        sys.stdout.write(role + "\n")
    return 0
