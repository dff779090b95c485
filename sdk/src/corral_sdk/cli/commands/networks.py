"""``corral networks``: your organization's networks and the status of their resources."""

from __future__ import annotations

import argparse
import json
import logging
import time
from typing import Any
from urllib.parse import quote

import msgspec

from corral_sdk.cli.client import ApiClient, client_for
from corral_sdk.cli.output import print_json, print_table
from corral_sdk.errors import Invalid, NotFound, Timeout
from corral_sdk.wire import (
    NetworkCreate,
    NetworkDetails,
    NetworkList,
    NetworkRegionDefinition,
    NetworkUpdate,
)

__all__ = ["create", "delete", "get", "ls", "parse_option", "parse_region", "update"]

log = logging.getLogger("corral")

SETTLED = ("Provisioned", "Failed")


def _path(name: str) -> str:
    return f"/api/networks/{quote(name, safe='')}"


def parse_region(text: str) -> NetworkRegionDefinition:
    """``REGION=CIDR`` or ``REGION=CIDR@ZONE`` (``us-east-1=10.0.0.0/16@us-east-1a``)."""
    region, sep, rest = text.partition("=")
    cidr, _, zone = rest.partition("@")
    if not sep or not region or not cidr:
        raise Invalid(f"--region {text!r}: write REGION=CIDR[@ZONE]", field="region")
    return NetworkRegionDefinition(region=region.strip(), cidr=cidr.strip(), zone=zone.strip())


def parse_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``; a value that reads as JSON (``true``, ``3``) is taken as such."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise Invalid(f"--option {text!r}: write KEY=VALUE", field="option")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


def _options(values: list[str] | None) -> dict[str, Any] | None:
    return None if values is None else dict(parse_option(v) for v in values)


def _print_list(networks: list[NetworkDetails]) -> None:
    print_table(
        ["NAME", "CLOUD ACCOUNT", "PROVIDER", "MODE", "REGIONS", "STATUS"],
        [
            [
                n.name,
                n.cloud_account,
                n.provider or "-",
                n.mode or "-",
                ", ".join(f"{r.region}={r.cidr}" for r in n.regions),
                n.status,
            ]
            for n in networks
        ],
    )


def _print_one(network: NetworkDetails) -> None:
    _print_list([network])
    if network.reason:
        print(f"\nreason: {network.reason}")
    if network.steps:
        print()
        print_table(
            ["RESOURCE", "STATUS", "DETAIL"],
            [[s.name, s.status, s.detail or "-"] for s in network.steps],
        )
    if network.resources:
        print()
        print_table(
            ["REGION", "CIDR", "NETWORK ID", "SUBNETS", "SECURITY GROUPS"],
            [
                [
                    r.region,
                    r.cidr,
                    r.network_id,
                    ", ".join(r.subnet_ids) or "-",
                    ", ".join(r.security_group_ids) or "-",
                ]
                for r in network.resources
            ],
        )


def _show(args: argparse.Namespace, raw: msgspec.Raw) -> NetworkDetails:
    network = msgspec.json.decode(raw, type=NetworkDetails)
    if args.output == "json":
        print_json(raw)
    else:
        _print_one(network)
    return network


def _wait(
    args: argparse.Namespace, client: ApiClient, name: str, *, gone: bool = False
) -> msgspec.Raw:
    """Poll until the network is provisioned or failed (or, deleting, gone)."""
    deadline = time.monotonic() + args.wait_timeout
    while True:
        try:
            raw: msgspec.Raw = client.get(_path(name), msgspec.Raw)
        except NotFound:
            if gone:
                return msgspec.Raw(b"null")
            raise
        status = msgspec.json.decode(raw, type=NetworkDetails).status
        if not gone and status in SETTLED:
            return raw
        if time.monotonic() > deadline:
            raise Timeout(f"network {name} is still {status} after {args.wait_timeout:g} s")
        time.sleep(2.0)


def ls(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        params = {"cloud_account": args.cloud_account} if args.cloud_account else {}
        raw = client.get("/api/networks", msgspec.Raw, limit=200, **params)
    if args.output == "json":
        print_json(raw)
    else:
        _print_list(msgspec.json.decode(raw, type=NetworkList).items)
    return 0


def get(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        raw = client.get(_path(args.name), msgspec.Raw)
    _show(args, raw)
    return 0


def _exit(network: NetworkDetails) -> int:
    return 1 if network.status == "Failed" else 0


def create(args: argparse.Namespace) -> int:
    body = NetworkCreate(
        name=args.name,
        cloud_account=args.cloud_account,
        regions=[parse_region(r) for r in args.regions or []],
        mode=args.mode or "",
        options=_options(args.options) or {},
        description=args.description or "",
    )
    with client_for(args) as client:
        raw = client.post("/api/networks", msgspec.Raw, body)
        if args.wait:
            raw = _wait(args, client, args.name)
    network = _show(args, raw)
    return _exit(network) if args.wait else 0


def update(args: argparse.Namespace) -> int:
    body = NetworkUpdate(
        regions=None if args.regions is None else [parse_region(r) for r in args.regions],
        mode=args.mode,
        options=_options(args.options),
        description=args.description,
    )
    with client_for(args) as client:
        raw = client.patch(_path(args.name), msgspec.Raw, body)
        if args.wait:
            raw = _wait(args, client, args.name)
    network = _show(args, raw)
    return _exit(network) if args.wait else 0


def delete(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        client.delete(_path(args.name))
        if args.wait:
            _wait(args, client, args.name, gone=True)
            log.info("network %s deleted", args.name)
        else:
            log.info("network %s is being deleted", args.name)
    return 0
