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


RUN_YAML = """jobs:
  first:
    steps:
      - run: echo "hello ${{ inputs.who }}"
  second:
    needs: [first]
    steps:
      - run: echo "port ${ needs.first.outputs.PORT }"
      - run: exit ${{ inputs.code }}
'on':
  execute:
    inputs:
      who:
        type: string
        default: world
      code:
        type: number
        default: 0
        min: 0
        max: 9
"""


def test_run_wait_logs_view_and_exit_status(admin: Cli, tmp_path: Path) -> None:  # noqa: F811
    flow = tmp_path / "run.yaml"
    flow.write_text(RUN_YAML.replace('echo "hello', 'echo PORT=8080 >> $OUTPUTS; echo "hello'))
    admin.ok("workflows", "create", "runner", "--yaml", str(flow))
    done = admin("workflows", "run", "runner", "-i", "who=corral", "--wait")
    assert done.returncode == 0, done.stderr
    assert "first: hello corral" in done.stdout and "second: port 8080" in done.stdout

    failed = admin("workflows", "run", "runner", "-i", "code=3", "--wait")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "exited 3" in failed.stdout

    refused = admin("workflows", "run", "runner", "-i", "code=12")
    assert refused.returncode == 2 and "inputs.code" in refused.stderr, refused.stderr

    runs = admin.json("workflows", "runs", "list", "runner")
    assert [r["number"] for r in runs] == [2, 1]
    assert [r["status"] for r in runs] == ["error", "completed"]
    view = admin.json("workflows", "runs", "view", str(runs[1]["id"]))
    assert [j["status"] for j in view["jobs"]] == ["completed", "completed"]
    assert view["jobs"][0]["outputs"] == {"PORT": "8080"}
    logs = admin("workflows", "runs", "logs", "-f", str(runs[0]["id"]))
    assert logs.returncode == 1 and "exited 3" in logs.stdout
    lines = admin.json("workflows", "runs", "logs", str(runs[1]["id"]))
    assert [x["offset"] for x in lines] == list(range(len(lines)))
