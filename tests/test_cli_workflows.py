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


def test_runs_errors_failed_rerun_clean_and_live_follow(admin: Cli, tmp_path: Path) -> None:  # noqa: F811
    import time

    flow = tmp_path / "errs.yaml"
    flow.write_text(
        "jobs:\n  good:\n    steps:\n      - run: echo fine\n"
        "  bad:\n    steps:\n      - run: echo about to fail; exit 5\n"
    )
    admin.ok("workflows", "create", "errs", "--yaml", str(flow))
    assert admin("workflows", "run", "errs", "--wait").returncode == 1
    slug = admin.json("workflows", "runs", "list", "--workflow", "errs")[0]["slug"]
    errors = admin.json("workflows", "runs", "errors", slug)
    assert [(e["job"], e["exit_status"]) for e in errors if e["kind"] == "step"] == [("bad", 5)]
    assert "about to fail" in errors[0]["log_tail"]
    failed = admin("workflows", "runs", "logs", "--failed", slug)
    assert "about to fail" in failed.stdout and "fine" not in failed.stdout
    tailed = admin("workflows", "runs", "logs", "--tail", "1", slug)
    followed = admin("workflows", "runs", "logs", "-f", "--tail", "1", slug)
    assert followed.returncode == 1 and followed.stdout == tailed.stdout, followed.stdout
    assert len(tailed.stdout.splitlines()) < len(
        admin.ok("workflows", "runs", "logs", slug).splitlines()
    )
    assert admin("workflows", "runs", "logs", "-f", "--failed", slug).returncode == 2
    again = admin("workflows", "runs", "rerun", slug, "--wait")
    assert again.returncode == 1 and "about to fail" in again.stdout
    assert [r["number"] for r in admin.json("workflows", "runs", "list", "errs")] == [2, 1]
    cleaned = admin("workflows", "runs", "clean", "--slugs", slug)
    assert cleaned.returncode == 0 and slug in cleaned.stdout
    assert [r["number"] for r in admin.json("workflows", "runs", "list", "errs")] == [2]
    refused = admin("workflows", "runs", "clean")
    assert refused.returncode == 2, refused.stderr

    # -f prints lines while the run goes on: the first is there before the run ends
    slow = tmp_path / "slow.yaml"
    slow.write_text("jobs:\n  main:\n    steps:\n      - run: echo early; sleep 4; echo late\n")
    admin.ok("workflows", "create", "slow", "--yaml", str(slow))
    admin.ok("workflows", "run", "slow")
    ref = admin.json("workflows", "runs", "list", "slow")[0]["slug"]
    follower = admin.spawn("workflows", "runs", "logs", "-f", ref)
    assert follower.stdout is not None
    began = time.monotonic()
    while (line := follower.stdout.readline()) and line.strip() != "main: early":
        pass
    assert line.strip() == "main: early"
    assert time.monotonic() - began < 3.5, "the first line came only at the end"
    rest, _ = follower.communicate(timeout=60)
    assert follower.returncode == 0 and "main: late" in rest.splitlines()


PLATFORM = """{permissions}jobs:
  main:
    steps:
      - run: pw workflows ls -o json
"""


def test_a_step_calls_the_platform_as_its_run(admin: Cli, tmp_path: Path) -> None:  # noqa: F811
    """§3.7: ``pw`` in a step reaches Corral with the run's token (``PW_PLATFORM_HOST``,
    ``PW_API_KEY``): as the user with ``permissions: ['*']``, refused without."""
    for name, permissions in (("wide", "permissions: ['*']\n"), ("narrow", "")):
        flow = tmp_path / f"{name}.yaml"
        flow.write_text(PLATFORM.format(permissions=permissions))
        admin.ok("workflows", "create", name, "--yaml", str(flow))
    wide = admin("workflows", "run", "wide", "--wait")
    assert wide.returncode == 0, wide.stdout + wide.stderr
    assert "pw://admin/wide" in wide.stdout and "pw://admin/narrow" in wide.stdout
    narrow = admin("workflows", "run", "narrow", "--wait")
    assert narrow.returncode == 1, narrow.stdout + narrow.stderr
    assert "may only update the sessions the run created" in narrow.stdout, narrow.stdout
