"""The instance-type catalogue shipped with the plugin, and the way to refresh it.

``instance_types.json`` (in this package) holds, per instance type, its vCPUs, memory, GPUs (count,
model, memory per GPU), architecture, network bandwidth and on-demand Linux prices per region, as
known on the catalogue's ``date``. :func:`refresh` rebuilds it from a live account: the specs from
``DescribeInstanceTypes`` and the prices from the AWS Price List API when it can be reached (prices
it cannot get are kept from the catalogue it started from). Run it as::

    python -m corral_aws.catalogue --region us-east-1 --region us-east-2 --out catalogue.json

(credentials from the usual AWS environment), then point an account's ``catalogue`` setting at the
file written.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from corral_sdk.errors import Invalid
from corral_sdk.providers.cloud import Architecture, InstanceType

__all__ = ["Catalogue", "load", "main", "refresh", "shipped"]

PRICE_REGION_FALLBACK = "us-east-1"
"""Whose price stands in for a region the catalogue has no price for (marked in the type's
description)."""


class Catalogue:
    """Instance types by name, each a JSON object as in ``instance_types.json``."""

    def __init__(self, document: Mapping[str, Any], origin: str) -> None:
        types = document.get("types")
        if not isinstance(types, dict):
            raise Invalid(f"{origin} has no 'types' object", field="settings.catalogue")
        self.date = str(document.get("date", ""))
        self.currency = str(document.get("currency", "USD"))
        self.origin = origin
        self.types: dict[str, dict[str, Any]] = types

    def document(self) -> dict[str, Any]:
        return {"date": self.date, "currency": self.currency, "types": self.types}

    def instance_type(self, name: str, region: str, zones: Iterable[str]) -> InstanceType | None:
        """``name`` as offered in ``region`` (``None`` when the catalogue lacks it or has no
        price to give)."""
        entry = self.types.get(name)
        if entry is None:
            return None
        prices: dict[str, str] = entry.get("prices", {})
        note = f"catalogue of {self.date}"
        price = prices.get(region)
        if price is None:
            price = prices.get(PRICE_REGION_FALLBACK) or next(iter(prices.values()), None)
            if price is None:
                return None
            note += f"; no {region} price, {PRICE_REGION_FALLBACK}'s shown"
        gpus = int(entry.get("gpus", 0))
        return InstanceType(
            name=name,
            vcpus=int(entry["vcpus"]),
            memory_gib=float(entry["memory_gib"]),
            gpus=gpus,
            gpu_model=str(entry.get("gpu_model", "")) if gpus else "",
            gpu_memory_gib=float(entry.get("gpu_memory_gib", 0.0)) if gpus else 0.0,
            architecture=Architecture(entry.get("architecture", "x86_64")),
            price_per_hour=Decimal(str(price)),
            currency=self.currency,
            zones=tuple(sorted(zones)),
            network_gbps=entry.get("network_gbps"),
            local_disk_gib=float(entry.get("local_disk_gib", 0.0)),
            description=note,
        )


@functools.cache
def shipped() -> Catalogue:
    """The catalogue in this package."""
    text = resources.files("corral_aws").joinpath("instance_types.json").read_text()
    return Catalogue(json.loads(text), "the shipped catalogue")


@functools.lru_cache(maxsize=8)
def load(path: str = "") -> Catalogue:
    """The catalogue at ``path`` (a file :func:`refresh` wrote), or the shipped one."""
    if not path:
        return shipped()
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise Invalid(
            f"the instance-type catalogue {path!r} cannot be read: {exc}",
            field="settings.catalogue",
        ) from None
    return Catalogue(document, path)


# --- refresh ------------------------------------------------------------------------------------


def _spec(info: Mapping[str, Any]) -> dict[str, Any]:
    """A catalogue entry's specs from one ``DescribeInstanceTypes`` item."""
    archs = info.get("ProcessorInfo", {}).get("SupportedArchitectures", [])
    entry: dict[str, Any] = {
        "vcpus": int(info["VCpuInfo"]["DefaultVCpus"]),
        "memory_gib": round(info["MemoryInfo"]["SizeInMiB"] / 1024, 3),
        "architecture": "arm64" if "arm64" in archs else "x86_64",
    }
    gpus = info.get("GpuInfo", {}).get("Gpus", [])
    if gpus:
        first = gpus[0]
        entry["gpus"] = sum(int(g.get("Count", 0)) for g in gpus)
        entry["gpu_model"] = f"{first.get('Manufacturer', '')} {first.get('Name', '')}".strip()
        entry["gpu_memory_gib"] = round(first.get("MemoryInfo", {}).get("SizeInMiB", 0) / 1024, 1)
    storage = info.get("InstanceStorageInfo", {})
    if storage.get("TotalSizeInGB"):
        entry["local_disk_gib"] = float(storage["TotalSizeInGB"])
    return entry


def _prices(pricing: Any, region: str, names: set[str]) -> dict[str, str]:
    """On-demand Linux shared-tenancy prices of ``names`` in ``region`` from the Price List
    API (``pricing:GetProducts``)."""
    filters = [
        {"Type": "TERM_MATCH", "Field": field, "Value": value}
        for field, value in (
            ("regionCode", region),
            ("operatingSystem", "Linux"),
            ("tenancy", "Shared"),
            ("preInstalledSw", "NA"),
            ("capacitystatus", "Used"),
        )
    ]
    found: dict[str, str] = {}
    for page in pricing.get_paginator("get_products").paginate(
        ServiceCode="AmazonEC2", Filters=filters
    ):
        for raw in page.get("PriceList", []):
            product = json.loads(raw) if isinstance(raw, str) else raw
            name = product.get("product", {}).get("attributes", {}).get("instanceType")
            if name not in names:
                continue
            for term in product.get("terms", {}).get("OnDemand", {}).values():
                for dimension in term.get("priceDimensions", {}).values():
                    usd = dimension.get("pricePerUnit", {}).get("USD")
                    if usd and Decimal(usd) > 0:
                        found[name] = str(Decimal(usd).normalize())
    return found


def refresh(
    ec2_in: Callable[[str], Any],
    regions: Iterable[str],
    *,
    pricing: Any = None,
    base: Catalogue | None = None,
    families: Iterable[str] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """A new catalogue document and notes on what could not be refreshed.

    ``ec2_in(region)`` gives an EC2 client of that region; ``pricing`` a Price List client (it
    lives in ``us-east-1``) or ``None``. Only the instance families of ``base`` (default: the
    shipped catalogue) are kept unless ``families`` says otherwise. Blocking: run it in a thread.
    """
    base = base or shipped()
    wanted = set(families or {name.split(".")[0] for name in base.types})
    types: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    for region in regions:
        ec2 = ec2_in(region)
        for page in ec2.get_paginator("describe_instance_types").paginate():
            for info in page.get("InstanceTypes", []):
                name = info["InstanceType"]
                if name.split(".")[0] not in wanted or name in types:
                    continue
                old = base.types.get(name, {})
                entry = _spec(info)
                if "network_gbps" in old:
                    entry["network_gbps"] = old["network_gbps"]
                entry["prices"] = dict(old.get("prices", {}))
                types[name] = entry
        if pricing is None:
            notes.append(f"{region}: prices kept from the catalogue of {base.date}")
            continue
        try:
            fresh = _prices(pricing, region, set(types))
        except Exception as exc:  # the Price List API is optional: keep the old prices
            notes.append(f"{region}: prices kept from {base.date} ({type(exc).__name__}: {exc})")
            continue
        for name, price in fresh.items():
            types[name]["prices"][region] = price
        notes.append(f"{region}: {len(fresh)} prices from the Price List API")
    for name in [n for n, e in types.items() if not e["prices"]]:
        notes.append(f"{name}: no price known, left out")
        del types[name]
    document = {
        "date": datetime.now(UTC).date().isoformat(),
        "source": "refreshed: DescribeInstanceTypes"
        + (" and the Price List API" if pricing else ""),
        "currency": "USD",
        "types": dict(sorted(types.items())),
    }
    return document, notes


def main(argv: list[str] | None = None) -> int:
    """``python -m corral_aws.catalogue``: write a refreshed catalogue."""
    parser = argparse.ArgumentParser(prog="python -m corral_aws.catalogue", description=__doc__)
    parser.add_argument("--region", action="append", required=True, help="repeat for each")
    parser.add_argument("--out", required=True, help="where to write the catalogue (JSON)")
    parser.add_argument("--endpoint-url", default=None, help="an EC2 endpoint (an emulator)")
    parser.add_argument("--no-pricing", action="store_true", help="keep the shipped prices")
    args = parser.parse_args(argv)

    import boto3

    session = boto3.session.Session()
    pricing = None if args.no_pricing else session.client("pricing", region_name="us-east-1")
    document, notes = refresh(
        lambda region: session.client("ec2", region_name=region, endpoint_url=args.endpoint_url),
        args.region,
        pricing=pricing,
    )
    Path(args.out).write_text(json.dumps(document, indent=1) + "\n")
    for note in notes:
        print(note, file=sys.stderr)
    print(f"{len(document['types'])} instance types written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
