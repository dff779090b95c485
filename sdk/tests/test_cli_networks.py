"""``corral networks``: the flags become the API's request bodies."""

from __future__ import annotations

import pytest

from corral_sdk.cli.commands.networks import parse_option, parse_region
from corral_sdk.cli.main import build_parser
from corral_sdk.errors import Invalid
from corral_sdk.wire import NetworkRegionDefinition


def test_regions_are_region_equals_cidr_with_an_optional_zone() -> None:
    assert parse_region("us-east-1=10.0.0.0/16") == NetworkRegionDefinition(
        region="us-east-1", cidr="10.0.0.0/16"
    )
    assert parse_region("us-east-1=10.0.0.0/16@us-east-1a").zone == "us-east-1a"
    for bad in ("us-east-1", "=10.0.0.0/16", "us-east-1="):
        with pytest.raises(Invalid) as raised:
            parse_region(bad)
        assert raised.value.field == "region"


def test_options_take_json_values_and_keep_other_text() -> None:
    assert parse_option("enable_nat_gateway=true") == ("enable_nat_gateway", True)
    assert parse_option("transit_gateway_id=tgw-0abc") == ("transit_gateway_id", "tgw-0abc")
    with pytest.raises(Invalid):
        parse_option("novalue")


def test_the_command_tree_has_every_networks_command() -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["networks", "create", "net1", "--cloud-account", "aws1", "--region", "r1=10.0.0.0/16",
         "--region", "r2=10.1.0.0/16", "--option", "enable_nat_gateway=true", "--wait"]
    )  # fmt: skip
    assert (args.name, args.cloud_account, args.regions, args.options, args.wait) == (
        "net1",
        "aws1",
        ["r1=10.0.0.0/16", "r2=10.1.0.0/16"],
        ["enable_nat_gateway=true"],
        True,
    )
    for command in (["ls"], ["get", "n"], ["update", "n", "--mode", "private"], ["delete", "n"]):
        parser.parse_args(["networks", *command])
