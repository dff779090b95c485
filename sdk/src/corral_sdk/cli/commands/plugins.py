"""``corral plugins``."""

from __future__ import annotations

import argparse

from corral_sdk.cli.client import client_for
from corral_sdk.cli.output import print_json, print_table
from corral_sdk.wire import PluginInfo

__all__ = ["ls"]


def ls(args: argparse.Namespace) -> int:
    client = client_for(args)
    try:
        plugins = client.get("/api/plugins", list[PluginInfo])
    finally:
        client.close()
    if args.output == "json":
        print_json(plugins)
        return 0
    print_table(
        ["NAME", "DISTRIBUTION", "VERSION", "STATUS", "REGISTERS"],
        [
            [
                p.name,
                p.distribution,
                p.version,
                p.status if not p.reason else f"{p.status}: {p.reason}",
                "; ".join(f"{r.kind}: {', '.join(r.names)}" for r in p.registers) or "-",
            ]
            for p in plugins
        ],
    )
    return 0
