"""``corral version``."""

from __future__ import annotations

import argparse
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version

from corral_sdk import __version__

__all__ = ["version"]

COMPONENTS = ("corral-sdk", "corral-core", "corral-api")


def version(args: argparse.Namespace) -> int:
    components = {}
    for dist in COMPONENTS:
        try:
            components[dist] = dist_version(dist)
        except PackageNotFoundError:
            continue
    if args.output == "json":
        from corral_sdk.cli.output import print_json
        from corral_sdk.wire import VersionInfo

        print_json(VersionInfo(version=__version__, components=components))
        return 0
    print(f"corral {__version__}")
    for name, value in components.items():
        print(f"  {name} {value}")
    return 0
