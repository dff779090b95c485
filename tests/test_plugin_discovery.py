"""Plugins installed as real distributions, found through their entry points."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from corral_core.testing import (
    CorralProcess,
    TestDeployment,
    api_key,
    free_port,
    install_distribution,
)
from tests.distributions import scheduler_plugin

GOOD = {
    "corral_hello/__init__.py": "",
    "corral_hello/plugin.py": (
        "from corral_sdk.plugin import SessionTypeRecord, WorkflowActionRecord, hookimpl\n\n"
        "@hookimpl\n"
        "def corral_register_session_types():\n"
        "    return [SessionTypeRecord(name='hello', factory='corral_hello.plugin:Hello')]\n\n"
        "@hookimpl\n"
        "def corral_register_workflow_actions():\n"
        "    return [WorkflowActionRecord(name='wave', factory='corral_hello.plugin:Hello')]\n\n"
        "class Hello:\n    pass\n"
    ),
}
BROKEN = {
    "corral_broken/__init__.py": "",
    "corral_broken/plugin.py": "raise RuntimeError('the broken plugin cannot start')\n",
}


def start(deployment: TestDeployment, plugins: Path, **env: str) -> tuple[CorralProcess, int]:
    port = free_port()
    proc = CorralProcess(
        ["up", "--port", str(port)],
        deployment.process_env({"PYTHONPATH": str(plugins), **env}),
        deployment.tmp / f"up-{port}.log",
    )
    return proc, port


def plugins_ls(deployment: TestDeployment, port: int, plugins: Path) -> list[dict[str, object]]:
    key = api_key(f"http://127.0.0.1:{port}")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "corral_sdk.cli.main",
            "plugins",
            "ls",
            "-o",
            "json",
            "--platform-host",
            f"http://127.0.0.1:{port}",
        ],
        env=deployment.process_env({"PYTHONPATH": str(plugins), "PW_API_KEY": key}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    listed: list[dict[str, object]] = json.loads(result.stdout)
    return listed


def test_installed_plugin_is_listed_and_a_broken_one_shows_failed(
    deployment: TestDeployment, tmp_path: Path
) -> None:
    target = tmp_path / "site"
    install_distribution(
        target,
        "corral-hello",
        "2.3.4",
        GOOD,
        entry_points="[corral.plugins]\nhello = corral_hello.plugin\n",
    )
    install_distribution(
        target,
        "corral-broken",
        "0.0.1",
        BROKEN,
        entry_points="[corral.plugins]\nbroken = corral_broken.plugin\n",
    )
    proc, port = start(deployment, target, CORRAL_STRICT_PLUGINS="0")
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/api/health")
        listed = {p["name"]: p for p in plugins_ls(deployment, port, target)}
        assert listed["builtin"]["status"] == "loaded"
        assert listed["hello"] == {
            "name": "hello",
            "distribution": "corral-hello",
            "version": "2.3.4",
            "status": "loaded",
            "reason": "",
            "builtin": False,
            "registers": [
                {"kind": "session_type", "names": ["hello"]},
                {"kind": "workflow_action", "names": ["wave"]},
            ],
        }
        assert listed["broken"]["status"] == "failed"
        assert listed["broken"]["reason"] == "RuntimeError: the broken plugin cannot start"
        assert "plugin broken (corral-broken 0.0.1) failed to load" in proc.output()
    finally:
        proc.stop()


def test_strict_mode_refuses_to_start_naming_the_distribution(
    deployment: TestDeployment, tmp_path: Path
) -> None:
    target = tmp_path / "site"
    install_distribution(
        target,
        "corral-broken",
        "0.0.1",
        BROKEN,
        entry_points="[corral.plugins]\nbroken = corral_broken.plugin\n",
    )
    proc, _ = start(deployment, target, CORRAL_STRICT_PLUGINS="1")
    assert proc.wait(timeout=60) == 1
    output = proc.output()
    assert "strict_plugins is set and plugins failed to load: corral-broken" in output
    assert "Traceback" not in output


def test_denied_plugin_is_never_imported(deployment: TestDeployment, tmp_path: Path) -> None:
    target = tmp_path / "site"
    install_distribution(
        target,
        "corral-broken",
        "0.0.1",
        BROKEN,
        entry_points="[corral.plugins]\nbroken = corral_broken.plugin\n",
    )
    proc, port = start(
        deployment, target, CORRAL_STRICT_PLUGINS="1", CORRAL_DENY_PLUGINS="corral-broken"
    )
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/api/health")
        listed = {p["name"]: p for p in plugins_ls(deployment, port, target)}
        assert listed["broken"]["status"] == "denied"
        assert "cannot start" not in proc.output()
    finally:
        proc.stop()


def test_two_plugins_registering_one_scheduler_name_are_refused(
    deployment: TestDeployment, tmp_path: Path
) -> None:
    target = tmp_path / "site"
    install_distribution(
        target,
        "corral-lsf-one",
        "1.0",
        scheduler_plugin("one"),
        entry_points="[corral.plugins]\none = corral_one.plugin\n",
    )
    install_distribution(
        target,
        "corral-lsf-two",
        "1.0",
        scheduler_plugin("two"),
        entry_points="[corral.plugins]\ntwo = corral_two.plugin\n",
    )
    proc, _ = start(deployment, target)
    assert proc.wait(timeout=60) == 1
    output = proc.output()
    assert (
        "scheduler 'lsf' is registered twice: by corral-lsf-one (plugin one) "
        "and by corral-lsf-two (plugin two)"
    ) in output


def test_plugin_needing_another_sdk_is_skipped_with_the_reason(
    deployment: TestDeployment, tmp_path: Path
) -> None:
    target = tmp_path / "site"
    install_distribution(
        target,
        "corral-future",
        "9.0",
        scheduler_plugin("future"),
        entry_points="[corral.plugins]\nfuture = corral_future.plugin\n",
        requires=("corral-sdk>=99",),
    )
    proc, port = start(deployment, target, CORRAL_STRICT_PLUGINS="0")
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/api/health")
        listed = {p["name"]: p for p in plugins_ls(deployment, port, target)}
        assert listed["future"]["status"] == "failed"
        assert listed["future"]["reason"].startswith("requires corral-sdk>=99, but corral-sdk ")
    finally:
        proc.stop()
