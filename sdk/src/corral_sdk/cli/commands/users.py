"""``corral users``: the users of an organization (``org:users``)."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import datetime
from urllib.parse import quote

import msgspec

from corral_sdk.cli.client import client_for
from corral_sdk.cli.commands.auth import read_password_stdin
from corral_sdk.cli.output import print_json, print_table
from corral_sdk.errors import CorralError, Invalid
from corral_sdk.wire import UserCreate, UserInfo, UserList, UserUpdate

__all__ = ["confirm_deletion", "create", "delete", "disable", "enable", "ls"]

log = logging.getLogger("corral")


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def confirm_deletion(kind: str, name: str, force: bool) -> None:
    """Unless ``force``, make the user type ``name``; refuse when there is no terminal."""
    if force:
        return
    if sys.stdin is None or not sys.stdin.isatty():
        raise Invalid(
            f"deleting {kind} {name!r} needs confirmation, and stdin is not a terminal: "
            "pass -f to delete without asking"
        )
    sys.stderr.write(
        f"This deletes {kind} {name!r} and cannot be undone.\nType {name} to confirm: "
    )
    sys.stderr.flush()
    if sys.stdin.readline().strip() != name:
        raise CorralError("aborted")


def print_users(users: list[UserInfo]) -> None:
    print_table(
        ["USERNAME", "NAME", "EMAIL", "ORG", "STATUS", "CREATED", "LAST LOGIN"],
        [
            [
                u.username,
                u.name or "-",
                u.email or "-",
                u.org,
                u.status,
                _when(u.created_at),
                _when(u.last_login_at),
            ]
            for u in users
        ],
    )


def ls(args: argparse.Namespace) -> int:
    active = {"all": None, "true": True, "false": False}[args.active]
    with client_for(args) as client:
        raw = client.get(
            "/api/users",
            msgspec.Raw,
            search=args.search,
            active=active,
            limit=args.limit,
            offset=args.offset,
            sort_by=args.sort_by,
            sort_dir=args.sort_dir,
            org=args.org,
        )
    if args.output == "json":
        print_json(raw)
        return 0
    page = msgspec.json.decode(raw, type=UserList)
    if args.output == "list":
        for u in page.items:
            sys.stdout.write(u.username + "\n")
        return 0
    print_users(page.items)
    if page.total > page.offset + len(page.items):
        log.info(
            "showing %d of %d users: pass --offset %d for more",
            len(page.items),
            page.total,
            page.offset + len(page.items),
        )
    return 0


def _show(args: argparse.Namespace, raw: msgspec.Raw) -> None:
    if args.output == "json":
        print_json(raw)
    else:
        print_users([msgspec.json.decode(raw, type=UserInfo)])


def create(args: argparse.Namespace) -> int:
    password = read_password_stdin() if args.password_stdin else None
    body = UserCreate(
        username=args.username,
        name=args.name or "",
        email=args.email or "",
        password=password,
        groups=list(args.groups or []),
    )
    with client_for(args) as client:
        raw = client.post("/api/users", msgspec.Raw, body, org=args.org)
    _show(args, raw)
    if password is None:
        log.info("%s has no password: they sign in another way, or set one later", args.username)
    return 0


def _set_disabled(args: argparse.Namespace, disabled: bool) -> int:
    with client_for(args) as client:
        raw = client.patch(
            f"/api/users/{quote(args.username, safe='')}",
            msgspec.Raw,
            UserUpdate(disabled=disabled),
        )
    _show(args, raw)
    return 0


def disable(args: argparse.Namespace) -> int:
    return _set_disabled(args, True)


def enable(args: argparse.Namespace) -> int:
    return _set_disabled(args, False)


def delete(args: argparse.Namespace) -> int:
    confirm_deletion("user", args.username, args.force)
    with client_for(args) as client:
        client.delete(f"/api/users/{quote(args.username, safe='')}")
    log.info("deleted user %s", args.username)
    return 0
