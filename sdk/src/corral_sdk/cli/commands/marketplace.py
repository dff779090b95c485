"""``corral marketplace``: browse, publish, edit and delete items and their versions; use
(subscribe to) a workflow item; fork an item into a workflow or cluster of your own."""

from __future__ import annotations

import argparse
import logging
from typing import Any
from urllib.parse import quote, urlencode

import msgspec

from corral_sdk.cli.client import client_for
from corral_sdk.cli.output import print_json, print_table
from corral_sdk.wire import (
    MarketplaceFork,
    MarketplaceForked,
    MarketplaceItemInfo,
    MarketplaceList,
    MarketplacePublish,
    MarketplaceUpdate,
    MarketplaceUse,
    MarketplaceVersionCreate,
    MarketplaceVersionInfo,
    WorkflowInfo,
)

__all__ = [
    "delete",
    "fork",
    "get",
    "ls",
    "publish",
    "update",
    "use",
    "versions_delete",
    "versions_ls",
    "versions_publish",
]

log = logging.getLogger("corral")

FILTERS = ("my_items", "my_org", "favorites", "featured", "verified", "modifiable")


def _path(args: argparse.Namespace, *rest: str) -> str:
    """``/api/marketplace/<slug>/...``, with ``?org=`` when ``--org`` names the publisher's."""
    path = "/".join(["/api/marketplace", *(quote(p, safe="") for p in (args.slug, *rest))])
    return path + (f"?{urlencode({'org': args.org})}" if getattr(args, "org", None) else "")


def _print_items(items: list[MarketplaceItemInfo]) -> None:
    print_table(
        ["SLUG", "NAME", "TYPE", "BY", "LATEST", "PRIVACY", "FLAGS", "SUMMARY"],
        [
            [
                i.slug,
                i.name,
                i.type_label,
                i.publisher,
                i.latest,
                i.privacy + (f" ({', '.join(i.groups)})" if i.groups else ""),
                ",".join(
                    flag
                    for flag, on in (
                        ("featured", i.featured),
                        ("verified", i.verified),
                        ("favorite", i.favorite),
                    )
                    if on
                ),
                i.summary,
            ]
            for i in items
        ],
    )


def _show_item(args: argparse.Namespace, raw: msgspec.Raw) -> None:
    if args.output == "json":
        print_json(raw)
        return
    item = msgspec.json.decode(raw, type=MarketplaceItemInfo)
    _print_items([item])
    print(f"\nversions: {', '.join(item.versions)}")
    if item.source:
        print(f"source: {item.source}")
    if item.description:
        print(f"\n{item.description}")


def ls(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {name: True for name in FILTERS if getattr(args, name)}
    if args.q:
        params["q"] = args.q
    if args.type:
        params.update(type=args.type, limit=200)
    with client_for(args) as client:
        raw = client.get("/api/marketplace", msgspec.Raw, **params)
    if args.output == "json":
        print_json(raw)
        return 0
    page = msgspec.json.decode(raw, type=MarketplaceList)
    _print_items(page.items)
    if not args.type and page.total > len(page.items):
        counts = ", ".join(f"{n} {kind}" for kind, n in page.counts.items() if n)
        print(f"\n{page.total} items ({counts}); all of one type: --type TYPE")
    return 0


def get(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        raw = client.get(_path(args), msgspec.Raw)
    _show_item(args, raw)
    return 0


def publish(args: argparse.Namespace) -> int:
    body = MarketplacePublish(
        source=args.source,
        name=args.name,
        slug=args.slug,
        privacy=args.privacy,
        groups=list(args.group or []),
        summary=args.summary or "",
        description=_description(args) or "",
        verified=args.verified,
        featured=args.featured,
        publish_as_organization=args.as_organization,
    )
    with client_for(args) as client:
        raw = client.post("/api/marketplace", msgspec.Raw, body)
    _show_item(args, raw)
    return 0


def _description(args: argparse.Namespace) -> str | None:
    if args.description_file:
        with open(args.description_file, encoding="utf-8") as source:
            return source.read()
    description: str | None = args.description
    return description


def _switch(value: str | None) -> bool | None:
    return None if value is None else value == "on"


def update(args: argparse.Namespace) -> int:
    body = MarketplaceUpdate(
        name=args.name,
        slug=args.new_slug,
        privacy=args.privacy,
        groups=args.group,
        summary=args.summary,
        description=_description(args),
        verified=_switch(args.verified),
        featured=_switch(args.featured),
        publish_as_organization=_switch(args.as_organization),
    )
    with client_for(args) as client:
        raw = client.patch(_path(args), msgspec.Raw, body)
    _show_item(args, raw)
    return 0


def delete(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        client.delete(_path(args))
    log.info("marketplace item %s deleted", args.slug)
    return 0


def versions_ls(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        raw = client.get(_path(args, "versions"), msgspec.Raw)
    if args.output == "json":
        print_json(raw)
        return 0
    rows = msgspec.json.decode(raw, type=list[MarketplaceVersionInfo])
    print_table(
        ["VERSION", "CREATED", "BY", "SOURCE"],
        [[v.version, f"{v.created_at:%Y-%m-%d %H:%M}", v.created_by, v.source] for v in rows],
    )
    return 0


def versions_publish(args: argparse.Namespace) -> int:
    body = MarketplaceVersionCreate(version=args.version, resource=args.resource or "")
    with client_for(args) as client:
        raw = client.post(_path(args, "versions"), msgspec.Raw, body)
    if args.output == "json":
        print_json(raw)
    else:
        made = msgspec.json.decode(raw, type=MarketplaceVersionInfo)
        log.info("version %s of %s published from %s", made.version, args.slug, made.source)
    return 0


def versions_delete(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        client.delete(_path(args, "versions", args.version))
    log.info("version %s of %s deleted", args.version, args.slug)
    return 0


def use(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        raw = client.post(_path(args, "use"), msgspec.Raw, MarketplaceUse(version=args.version))
    if args.output == "json":
        print_json(raw)
    else:
        used = msgspec.json.decode(raw, type=WorkflowInfo)
        log.info("using %s: your workflow %s (%s)", args.slug, used.name, used.display_name)
    return 0


def fork(args: argparse.Namespace) -> int:
    body = MarketplaceFork(
        name=args.name,
        version=args.version,
        display_name=args.display_name or "",
        persistent=True if args.persistent else False if args.ephemeral else None,
    )
    with client_for(args) as client:
        raw = client.post(_path(args, "fork"), msgspec.Raw, body)
    if args.output == "json":
        print_json(raw)
    else:
        forked = msgspec.json.decode(raw, type=MarketplaceForked)
        log.info("forked %s %s as %s %s", args.slug, forked.version, forked.kind, forked.uri)
    return 0
