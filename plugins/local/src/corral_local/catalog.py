"""The local cloud's catalogue: one region (this machine), CPU and memory slices with a price per
hour (so that estimates and cost limits are exercised), and one image (this machine's system)."""

from __future__ import annotations

import platform
from decimal import Decimal
from pathlib import Path

from corral_sdk.providers.cloud import Architecture, Image, InstanceType, Region

__all__ = ["IMAGE_ID", "INSTANCE_TYPES", "REGION", "ZONE", "host_image", "region"]

REGION = "local"
ZONE = "local-a"
IMAGE_ID = "host"


def _type(name: str, vcpus: int, memory_gib: float, price: str) -> InstanceType:
    return InstanceType(
        name=name,
        vcpus=vcpus,
        memory_gib=memory_gib,
        price_per_hour=Decimal(price),
        currency="USD",
        description=f"{vcpus} CPU and {memory_gib:g} GiB of this machine",
    )


INSTANCE_TYPES = (
    _type("local.nano", 1, 0.5, "0.0050"),
    _type("local.small", 1, 1, "0.0100"),
    _type("local.medium", 2, 2, "0.0200"),
    _type("local.large", 2, 4, "0.0400"),
    _type("local.xlarge", 4, 8, "0.0800"),
)
"""Slices of this machine. The prices are nominal: they make the hourly estimate, the
per-partition maximum and cost limits work the same as on a paid cloud."""


def region() -> Region:
    return Region(name=REGION, display_name=f"This machine ({platform.node()})", zones=(ZONE,))


def host_image() -> Image:
    """The machine's own system: every host runs the programs installed here."""
    pretty = "this machine's system"
    os_release = Path("/etc/os-release")
    if os_release.exists():
        for line in os_release.read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                pretty = line.split("=", 1)[1].strip('"')
    arch = Architecture.ARM64 if platform.machine() in ("aarch64", "arm64") else Architecture.X86_64
    return Image(
        id=IMAGE_ID,
        name=pretty,
        region=REGION,
        architecture=arch,
        latest=True,
        os=pretty,
        description="the programs installed on this machine, shared by every local host",
    )
