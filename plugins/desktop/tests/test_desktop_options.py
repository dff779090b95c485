"""The desktop's options: defaults, and bad values refused with the field named."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from corral_desktop import plugin
from corral_desktop.options import DesktopOptions, desktop_options

from corral_sdk.errors import Invalid


def test_defaults() -> None:
    options = desktop_options(None)
    assert options == DesktopOptions(geometry="1280x800", depth=24, command="")
    assert plugin.RECORD.config is DesktopOptions


def test_valid_options_decode() -> None:
    options = desktop_options({"geometry": "1920x1080", "depth": 16, "command": "xterm -e top"})
    assert options == DesktopOptions(geometry="1920x1080", depth=16, command="xterm -e top")
    assert desktop_options(options) is options


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"geometry": "big"}, "geometry"),
        ({"geometry": "1280x"}, "geometry"),
        ({"geometry": "1280x800+0+0"}, "geometry"),
        ({"geometry": "100x100"}, "geometry"),
        ({"geometry": "10000x800"}, "geometry"),
        ({"depth": 8}, "depth"),
        ({"depth": "24"}, "depth"),
        ({"command": "xterm\nrm -rf ~"}, "command"),
        ({"command": "x" * 2001}, "command"),
        ({"resolution": "1280x800"}, "resolution"),
    ],
)
def test_bad_options_name_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(Invalid) as caught:
        desktop_options(options)
    assert caught.value.field == field
    assert caught.value.details["field"] == field


def test_big_geometry_is_invalid_however_it_is_built() -> None:
    with pytest.raises(Invalid, match="WIDTHxHEIGHT") as built:
        DesktopOptions(geometry="big")
    assert built.value.field == "geometry"
    # as the kernel decodes a session's options with the record's config
    with pytest.raises(Invalid) as converted:
        msgspec.convert({"geometry": "big"}, plugin.RECORD.config)
    assert converted.value.field == "geometry"
