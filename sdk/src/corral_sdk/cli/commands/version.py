"""``corral version``."""

from __future__ import annotations

import argparse
from importlib.metadata import PackageNotFoundError, version as dist_version

from corral_sdk import __version__
from corral_sdk.cli.output import print_json
from corral_sdk.wire import VersionInfo

__all__ = ["version"]

COMPONENTS = ("corral-sdk", "corral-core", "corral-api")


def version(args: argparse.Namespace) -> int:
    components = {}
    for dist in COMPONENTS:
        try:
            components[dist] = dist_version(dist)
        except PackageNotFoundError:
            continue
    info = VersionInfo(version=__version__, components=components)
    if args.output == "json":
        print_json(info)
    else:
        print(f"corral {info.version}")
        for name, value in components.items():
            print(f"  {name} {value}")
    return 0
