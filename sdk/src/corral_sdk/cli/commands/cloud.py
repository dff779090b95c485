"""``corral cloud``: cloud accounts (update credentials, validate), the instance types of a
region, the organization's allowed instance types and its capacity reservations."""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any
from urllib.parse import quote

from corral_sdk.cli.client import ApiClient, client_for
from corral_sdk.cli.output import print_json, print_table
from corral_sdk.errors import Invalid
from corral_sdk.wire import (
    CapacityReservationCreate,
    CapacityReservationInfo,
    CloudAccountInfo,
    CloudAccountUpdate,
    InstanceTypeList,
    InstanceTypePolicy,
    InstanceTypePolicyUpdate,
    Whoami,
)

__all__ = [
    "account_get",
    "account_update",
    "account_validate",
    "accounts_ls",
    "instance_types",
    "policy_get",
    "policy_set",
    "reservation_add",
    "reservation_rm",
    "reservations_ls",
]

log = logging.getLogger("corral.cli")


def _account_path(name: str, tail: str = "") -> str:
    return f"/api/cloud-accounts/{quote(name, safe='')}{tail}"


def _org_path(client: ApiClient, org: str | None, tail: str) -> str:
    name = org or client.get("/api/auth/whoami", Whoami).org
    return f"/api/orgs/{quote(name, safe='')}{tail}"


def _pairs(values: list[str] | None, flag: str) -> dict[str, Any]:
    pairs: dict[str, Any] = {}
    for value in values or []:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise Invalid(f"{flag} takes KEY=VALUE, not {value!r}", field=flag)
        pairs[key] = rest
    return pairs


def _print_account(account: CloudAccountInfo, output: str) -> None:
    if output == "json":
        print_json(account)
        return
    rows = [
        ["name", account.name],
        ["provider", account.provider],
        ["govcloud", "yes" if account.govcloud else "no"],
        ["principal", account.principal or "-"],
        ["permissions", account.permissions],
        ["message", account.message or "-"],
        ["missing permissions", ", ".join(account.missing_permissions) or "-"],
        ["guide", account.guide_url or "-"],
        ["validated", account.validated_at.isoformat() if account.validated_at else "-"],
        ["credentials updated", account.credentials_updated_at.isoformat()],
    ]
    print_table(["FIELD", "VALUE"], rows)


def _wait_checked(client: ApiClient, name: str, timeout: float) -> CloudAccountInfo:
    deadline = time.monotonic() + timeout
    while True:
        account = client.get(_account_path(name), CloudAccountInfo)
        if account.permissions != "checking" or time.monotonic() > deadline:
            return account
        time.sleep(0.5)


def accounts_ls(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        accounts = client.get("/api/cloud-accounts", list[CloudAccountInfo])
    if args.output == "json":
        print_json(accounts)
        return 0
    print_table(
        ["NAME", "PROVIDER", "PRINCIPAL", "PERMISSIONS", "CREDENTIALS UPDATED"],
        [
            [a.name, a.provider, a.principal, a.permissions, a.credentials_updated_at.isoformat()]
            for a in accounts
        ],
    )
    return 0


def account_get(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        _print_account(client.get(_account_path(args.name), CloudAccountInfo), args.output)
    return 0


def account_update(args: argparse.Namespace) -> int:
    credentials = _pairs(args.credential, "--credential")
    settings = _pairs(args.setting, "--setting")
    if not credentials and not settings and args.govcloud is None:
        raise Invalid("give --credential, --setting or --govcloud/--no-govcloud to change")
    body = CloudAccountUpdate(
        credentials=credentials or None,
        settings=settings or None,
        govcloud=args.govcloud,
    )
    with client_for(args) as client:
        account = client.patch(_account_path(args.name), CloudAccountInfo, body)
        if args.wait:
            account = _wait_checked(client, args.name, args.wait_timeout)
    _print_account(account, args.output)
    return 0 if account.permissions in ("sufficient", "checking") else 1


def account_validate(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        account = client.post(_account_path(args.name, "/validate"), CloudAccountInfo)
        if args.wait:
            account = _wait_checked(client, args.name, args.wait_timeout)
    _print_account(account, args.output)
    return 0 if account.permissions in ("sufficient", "checking") else 1


def instance_types(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {}
    if args.region:
        params["region"] = args.region
    if args.all:
        params["all"] = "true"
    with client_for(args) as client:
        found = client.get(
            _account_path(args.account, "/instance-types"), InstanceTypeList, **params
        )
    if args.output == "json":
        print_json(found)
        return 0
    headers = ["NAME", "VCPUS", "MEMORY GIB", "GPUS", "PRICE/HOUR", "SPOT/HOUR"]
    if args.all:
        headers.append("ALLOWED")
    rows = []
    for t in found.items:
        gpus = f"{t.gpus} x {t.gpu_model}" if t.gpus and t.gpu_model else str(t.gpus)
        row = [t.name, t.vcpus, f"{t.memory_gib:g}", gpus]
        row += [t.price_per_hour or "-", t.spot_price_per_hour or "-"]
        if args.all:
            row.append("yes" if t.allowed else "no")
        rows.append(row)
    print_table(headers, rows)
    currency = found.items[0].currency if found.items else "USD"
    print(f"\n{found.provider} {found.region}, prices in {currency} per hour")
    return 0


def _print_policy(policy: InstanceTypePolicy, output: str) -> None:
    if output == "json":
        print_json(policy)
        return
    print(f"mode: {policy.mode}")
    if policy.mode == "custom":
        rows = [[p, ", ".join(types) or "(none allowed)"] for p, types in policy.allowed.items()]
        print_table(["PROVIDER", "ALLOWED INSTANCE TYPES"], rows)
        print("providers not listed are not restricted")


def policy_get(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        policy = client.get(_org_path(client, args.org, "/instance-types"), InstanceTypePolicy)
    _print_policy(policy, args.output)
    return 0


def policy_set(args: argparse.Namespace) -> int:
    allowed: dict[str, list[str]] = {}
    for value in args.allow or []:
        provider, sep, types = value.partition("=")
        if not sep or not provider:
            raise Invalid(f"--allow takes PROVIDER=TYPE,TYPE... not {value!r}", field="--allow")
        allowed[provider] = [t for t in (s.strip() for s in types.split(",")) if t]
    if args.default and allowed:
        raise Invalid("--default allows every type: leave out --allow", field="--allow")
    body = InstanceTypePolicyUpdate(mode="default" if args.default else "custom", allowed=allowed)
    with client_for(args) as client:
        policy = client.put(
            _org_path(client, args.org, "/instance-types"), InstanceTypePolicy, body
        )
    _print_policy(policy, args.output)
    return 0


def reservations_ls(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        found = client.get(
            _org_path(client, args.org, "/capacity-reservations"), list[CapacityReservationInfo]
        )
    if args.output == "json":
        print_json(found)
        return 0
    print_table(
        ["RESERVATION", "GROUP", "DESCRIPTION", "ADDED BY"],
        [[r.reservation_id, r.group, r.description, r.created_by] for r in found],
    )
    return 0


def reservation_add(args: argparse.Namespace) -> int:
    body = CapacityReservationCreate(
        reservation_id=args.reservation_id, group=args.group, description=args.description or ""
    )
    with client_for(args) as client:
        added = client.post(
            _org_path(client, args.org, "/capacity-reservations"), CapacityReservationInfo, body
        )
    if args.output == "json":
        print_json(added)
    else:
        log.info("capacity reservation %s is now %s's", added.reservation_id, added.group)
    return 0


def reservation_rm(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        client.delete(
            _org_path(
                client, args.org, f"/capacity-reservations/{quote(args.reservation_id, safe='')}"
            )
        )
    log.info("removed capacity reservation %s", args.reservation_id)
    return 0
