"""``corral orgs``: organizations (creating and deleting them needs ``platform:admin``), and
their workflow variables (``org:admin`` or ``org:settings``)."""

from __future__ import annotations

import argparse
import logging
import sys
from urllib.parse import quote

import msgspec

from corral_sdk.cli.client import ApiClient, client_for
from corral_sdk.cli.commands.users import confirm_deletion
from corral_sdk.cli.output import print_json, print_table
from corral_sdk.errors import Invalid
from corral_sdk.wire import OrgCreate, OrgInfo, OrgVariableInfo, OrgVariableSet, Whoami

__all__ = ["create", "delete", "ls", "variables_ls", "variables_set", "variables_unset"]

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


# --- workflow variables (org.<key> in workflows) -------------------------------------------------

_SHOWN_VALUE = 60
"""Characters of a value a table shows (``-o json`` shows all)."""


def _variables_path(client: ApiClient, org: str | None, *key: str) -> str:
    """The variables of ``org``, by default the caller's own organization."""
    name = org or client.get("/api/auth/whoami", Whoami).org
    return "/".join(["/api/orgs", *(quote(p, safe="") for p in (name, "variables", *key))])


def _shown(value: str) -> str:
    line = value.replace("\r", "").replace("\n", "\\n")
    return line if len(line) <= _SHOWN_VALUE else line[: _SHOWN_VALUE - 3] + "..."


def _print_variables(variables: list[OrgVariableInfo]) -> None:
    print_table(
        ["KEY", "VALUE", "UPDATED BY", "UPDATED"],
        [
            [v.key, _shown(v.value), v.updated_by, v.updated_at.strftime("%Y-%m-%d %H:%M")]
            for v in variables
        ],
    )


def variables_ls(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        raw = client.get(_variables_path(client, args.org), msgspec.Raw)
    if args.output == "json":
        print_json(raw)
    else:
        _print_variables(msgspec.json.decode(raw, type=list[OrgVariableInfo]))
    return 0


def variables_set(args: argparse.Namespace) -> int:
    """Set KEY to VALUE, or to standard input with --stdin (less one final line break)."""
    if args.stdin == (args.value is not None):
        raise Invalid("give VALUE or --stdin, not both or neither")
    value: str = args.value
    if args.stdin:
        value = sys.stdin.read() if sys.stdin is not None else ""
        value = value.removesuffix("\n").removesuffix("\r")
    with client_for(args) as client:
        raw = client.put(
            _variables_path(client, args.org, args.key), msgspec.Raw, OrgVariableSet(value=value)
        )
    if args.output == "json":
        print_json(raw)
    else:
        _print_variables([msgspec.json.decode(raw, type=OrgVariableInfo)])
    return 0


def variables_unset(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        client.delete(_variables_path(client, args.org, args.key))
    log.info("deleted organization variable %s", args.key)
    return 0
