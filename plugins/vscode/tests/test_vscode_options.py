"""The vscode type's options: defaults, and bad values refused with the field named."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from corral_vscode import plugin
from corral_vscode.options import VSCodeOptions, vscode_options

from corral_sdk.errors import Invalid


def test_defaults_and_decoding() -> None:
    assert vscode_options(None) == VSCodeOptions(directory="~", command="")
    assert plugin.RECORD.config is VSCodeOptions
    options = vscode_options({"directory": "~/project", "command": "~/bin/code-server"})
    assert options == VSCodeOptions(directory="~/project", command="~/bin/code-server")
    assert vscode_options(options) is options


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"command": "code-server; rm -rf ~"}, "command"),
        ({"command": "$(reboot)"}, "command"),
        ({"command": "code server"}, "command"),
        ({"command": "x" * 1001}, "command"),
        ({"command": 3}, "command"),
        ({"directory": ""}, "directory"),
        ({"directory": "a\nb"}, "directory"),
        ({"folder": "~"}, "folder"),
    ],
)
def test_bad_options_name_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(Invalid) as caught:
        vscode_options(options)
    assert caught.value.field == field


def test_bad_options_are_invalid_however_they_are_built() -> None:
    with pytest.raises(Invalid) as built:
        VSCodeOptions(command="a|b")
    assert built.value.field == "command"
    # as the kernel decodes a session's options with the record's config
    with pytest.raises(Invalid) as converted:
        msgspec.convert({"directory": ""}, plugin.RECORD.config)
    assert converted.value.field == "directory"
