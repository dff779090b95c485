"""``corral marketplace`` as a real process against a real ``corral up``: publish, list, show,
edit, versions, use (and run the marketplace workflow: latest follows the item), fork, delete;
refusals with their exit status and the field they name."""

from __future__ import annotations

from pathlib import Path

from tests.test_cli_identity import Cli, admin, cli, server  # noqa: F401 (fixtures)

YAML = "jobs:\n  main:\n    steps:\n      - run: echo {word}\n"


def test_publish_version_use_fork_and_delete(admin: Cli, tmp_path: Path) -> None:  # noqa: F811
    flow = tmp_path / "flow.yaml"
    flow.write_text(YAML.format(word="first"))
    admin.ok("workflows", "create", "demo_flow", "--yaml", str(flow))
    item = admin.json(
        "marketplace", "publish", "demo_flow", "--name", "Demo", "--slug", "demo",
        "--summary", "Says a word", "--featured",
    )  # fmt: skip
    assert (item["slug"], item["versions"], item["type_label"], item["featured"]) == (
        "demo", ["v1.0.0"], "local workflow", True
    )  # fmt: skip
    listed = admin.ok("marketplace", "ls")
    assert "demo" in listed and "local workflow" in listed and "featured" in listed
    assert admin.json("marketplace", "ls", "-q", "nothing-like-it")["items"] == []
    assert [i["slug"] for i in admin.json("marketplace", "ls", "--featured")["items"]] == ["demo"]
    shown = admin.ok("marketplace", "get", "demo")
    assert "versions: v1.0.0" in shown and "source: pw://admin/demo_flow" in shown

    used = admin.json("marketplace", "use", "demo")
    assert (used["name"], used["display_name"], used["tags"]) == (
        "marketplace.demo.latest", "Demo latest", ["latest"]
    )  # fmt: skip
    admin.ok("marketplace", "use", "demo", "--version", "v1.0.0")
    mine = [w["name"] for w in admin.json("workflows", "ls", "--marketplace")]
    assert mine == ["marketplace.demo.latest", "marketplace.demo.v1.0.0"]
    assert "demo_flow" in [w["name"] for w in admin.json("workflows", "ls", "--mine")]
    done = admin("workflows", "run", "marketplace.demo.latest", "--wait")
    assert done.returncode == 0 and "main: first" in done.stdout, done.stdout + done.stderr

    flow.write_text(YAML.format(word="second"))
    admin.ok("workflows", "update", "demo_flow", "--yaml", str(flow))
    refused = admin("marketplace", "versions", "publish", "demo", "v1")
    assert refused.returncode == 2 and "version" in refused.stderr, refused.stderr
    admin.ok("marketplace", "versions", "publish", "demo", "v2.0.0")
    versions = admin.json("marketplace", "versions", "ls", "demo")
    assert [v["version"] for v in versions] == ["v2.0.0", "v1.0.0"]
    # latest follows the item; the pinned one does not move
    done = admin("workflows", "run", "marketplace.demo.latest", "--wait")
    assert "main: second" in done.stdout, done.stdout + done.stderr
    done = admin("workflows", "run", "marketplace.demo.v1.0.0", "--wait")
    assert "main: first" in done.stdout, done.stdout + done.stderr

    forked = admin.json("marketplace", "fork", "demo", "--name", "my_demo", "--version", "v1.0.0")
    assert (forked["uri"], forked["tags"]) == ("pw://admin/my_demo", ["v1.0.0"])
    edited = admin.json("marketplace", "update", "demo", "--name", "Demo 2", "--featured", "off")
    assert (edited["name"], edited["featured"]) == ("Demo 2", False)

    admin.ok("marketplace", "versions", "delete", "demo", "v1.0.0")
    last = admin("marketplace", "versions", "delete", "demo", "v2.0.0")
    assert last.returncode == 1 and "delete the item instead" in last.stderr, last.stderr
    admin.ok("marketplace", "delete", "demo")
    gone = admin("marketplace", "get", "demo")
    assert gone.returncode == 1 and "no item 'demo'" in gone.stderr, gone.stderr
    broken = admin.json("workflows", "get", "marketplace.demo.latest")
    assert broken["marketplace"]["broken"].startswith("the marketplace item 'Demo 2'")
    assert admin.ok("workflows", "get", "my_demo", "-o", "yaml") == YAML.format(word="first")
