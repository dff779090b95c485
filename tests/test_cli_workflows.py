"""``corral workflows`` as a real process against a real ``corral up``: add, show, change,
check, delete; a bad YAML is reported line by line with exit status 2."""

from __future__ import annotations

from pathlib import Path

from tests.test_cli_identity import Cli, admin, cli, server  # noqa: F401 (fixtures)

YAML = "jobs:\n  main:\n    steps:\n      - run: echo hello\n"
BAD = "jobs:\n  main:\n    steps:\n      - run: echo hi\n        colour: red\n\tneeds: []\n"


def test_create_get_update_lint_and_delete(admin: Cli, tmp_path: Path) -> None:  # noqa: F811
    good, bad = tmp_path / "flow.yaml", tmp_path / "bad.yaml"
    good.write_text(YAML)
    bad.write_text(BAD)
    created = admin.json("workflows", "create", "my_flow", "--yaml", str(good), "--tag", "demo")
    assert (created["uri"], created["version"]) == ("pw://admin/my_flow", 1)
    assert admin.ok("workflows", "get", "my_flow", "-o", "yaml") == YAML
    listed = admin.ok("workflows", "ls")
    assert "pw://admin/my_flow" in listed and "demo" in listed

    good.write_text(YAML.replace("hello", "again"))
    assert admin.json("workflows", "update", "my_flow", "--yaml", str(good))["version"] == 2

    refused = admin("workflows", "create", "broken", "--yaml", str(bad))
    assert refused.returncode == 2, refused.stderr
    assert f"{bad}:6:1:" in refused.stderr and "tab" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr

    checked = admin("workflows", "lint", str(bad))
    assert checked.returncode == 1 and f"{bad}:6:1:" in checked.stdout, checked.stdout
    assert admin("workflows", "lint", str(good)).returncode == 0

    admin.ok("workflows", "delete", "my_flow")
    gone = admin("workflows", "get", "my_flow")
    assert gone.returncode == 1 and "not found" in gone.stderr
