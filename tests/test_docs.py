"""The documentation tells the truth.

The hook reference is generated from the SDK and committed, so it must match; every hookspec
documents each parameter; every setting is in the settings reference; and the "write your first
plugin" tutorial runs as written: its files are extracted, built into a real distribution,
installed, loaded by a real ``corral up`` and called over HTTP, and the outputs the tutorial
shows are the outputs Corral gives.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import httpx
import msgspec
import pytest

from corral_core.settings import Settings
from corral_core.testing import CorralProcess, TestDeployment, api_key, free_port

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TUTORIAL = DOCS / "tutorials" / "first-plugin.md"
SETTINGS_PAGE = DOCS / "reference" / "settings.md"

FILE_BLOCK = re.compile(r"<!-- file: (?P<path>\S+) -->\n```[\w-]*\n(?P<body>.*?)^```", re.S | re.M)
OUTPUT_BLOCK = re.compile(
    r"<!-- output: (?P<what>.+?) -->\n```[\w-]*\n(?P<body>.*?)^```", re.S | re.M
)
TUTORIAL_FILES = {
    "corral-hello/pyproject.toml",
    "corral-hello/src/corral_hello/__init__.py",
    "corral-hello/src/corral_hello/plugin.py",
    "corral-hello/src/corral_hello/session.py",
}


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "corral_docs_gen_reference", DOCS / "gen_reference.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the generated hook reference ---------------------------------------------------------------


def test_hook_reference_is_up_to_date() -> None:
    problem = load_generator().check()
    assert problem is None, problem


def test_check_fails_with_a_message_when_the_reference_is_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    generator = load_generator()
    stale = tmp_path / "hooks.md"
    stale.write_text(generator.generate().replace("corral_api_routes", "corral_old_routes"))
    monkeypatch.setattr(generator, "OUTPUT", stale)
    assert generator.main(["--check"]) == 1
    assert "is out of date with corral_sdk; run `uv run python docs/gen_reference.py`" in (
        capsys.readouterr().err
    )
    assert generator.main([]) == 0
    assert generator.main(["--check"]) == 0


def test_reference_renders_every_hook_record_and_feature() -> None:
    from corral_sdk import features, hookspecs, records

    generator = load_generator()
    text = generator.generate()
    names = [f.__name__ for f in generator.hookspec_functions()]
    declared = [
        n for n, v in vars(hookspecs).items() if hasattr(v, f"{hookspecs.PROJECT_NAME}_spec")
    ]
    assert names
    assert sorted(names) == sorted(declared)
    for name in names:
        assert f"#### `{name}`" in text
    for name in records.__all__:
        if isinstance(getattr(records, name), type):
            assert f"### `{name}`" in text
    for name in features.__all__:
        for member in getattr(features, name):
            assert f"| `{member.name}` | `{member.value}` |" in text
    # Member docstrings are read from the source, not just the values.
    assert "| `SPOT` | `spot` | Offers spot / preemptible capacity. |" in text
    # reST examples become fenced code, parameters a list.
    assert "**Example**\n\n```python\n@hookimpl\ndef corral_register_clouds():" in text
    assert "**Parameters**\n\n- `process`: which process is starting" in text


def test_every_hookspec_documents_each_parameter_and_its_result() -> None:
    generator = load_generator()
    problems = []
    for function in generator.hookspec_functions():
        doc = inspect.getdoc(function) or ""
        name = function.__name__
        if not doc.strip():
            problems.append(f"{name} has no docstring")
            continue
        sig = inspect.signature(function, eval_str=False)
        for param in sig.parameters:
            if f":param {param}:" not in doc:
                problems.append(f"{name} does not document its parameter {param!r}")
        if sig.return_annotation not in ("None", None) and ":return:" not in doc:
            problems.append(f"{name} does not document what it returns")
    assert not problems, "\n".join(problems)


# --- the settings reference ---------------------------------------------------------------------


def test_every_setting_is_in_the_settings_reference() -> None:
    page = SETTINGS_PAGE.read_text()
    missing = []
    for field in msgspec.structs.fields(Settings):
        if field.name == "plugins":
            if "## `[plugins.<name>]`" not in page:
                missing.append("[plugins.<name>]")
            continue
        if isinstance(field.type, type) and issubclass(field.type, msgspec.Struct):
            section = page.partition(f"## `[{field.name}]`")[2].partition("\n## ")[0]
            for key in msgspec.structs.fields(field.type):
                row = f"| `{key.name}` | `CORRAL_{field.name.upper()}_{key.name.upper()}` |"
                if row not in section:
                    missing.append(f"{field.name}.{key.name}")
        elif f"| `{field.name}` | `CORRAL_{field.name.upper()}` |" not in page:
            missing.append(field.name)
    assert not missing, f"not in docs/reference/settings.md: {missing}"


# --- the tutorial, executed ---------------------------------------------------------------------


def tutorial_files() -> dict[str, str]:
    files = {m["path"]: m["body"] for m in FILE_BLOCK.finditer(TUTORIAL.read_text())}
    assert set(files) == TUTORIAL_FILES
    return files


def tutorial_outputs() -> dict[str, str]:
    return {m["what"]: m["body"] for m in OUTPUT_BLOCK.finditer(TUTORIAL.read_text())}


def build_and_install(project: Path, target: Path) -> None:
    """What ``uv pip install ./corral-hello`` does, into a directory of our own."""
    result = subprocess.run(
        [
            "uv",
            "pip",
            "install",
            "--no-deps",
            "--python",
            sys.executable,
            "--target",
            str(target),
            str(project),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, f"installing the tutorial's plugin failed:\n{result.stderr}"


def corral_cli(deployment: TestDeployment, site: Path, key: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "corral_sdk.cli.main", *args],
        env=deployment.process_env({"PYTHONPATH": str(site), "PW_API_KEY": key}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, f"corral {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


def assert_table_shows(expected: str, actual: str) -> None:
    """Every row the tutorial shows is printed; ``...`` stands for the rest of a row."""
    actual_rows = [line.split() for line in actual.splitlines()]
    for line in expected.splitlines():
        if not line.strip() or line.startswith("$"):
            continue
        shown, elided, _ = line.partition("...")
        want = shown.split()
        matches = [row for row in actual_rows if (row[: len(want)] if elided else row) == want]
        assert matches, f"the tutorial shows {line!r}, but `corral plugins ls` printed:\n{actual}"


SESSION_CHECK = """
import asyncio
from corral_hello.plugin import HelloOptions
from corral_hello.session import HelloSession
from corral_sdk.providers.session import (
    SessionSpec, SessionState, SessionTarget, SessionType, TargetKind,
)
session = HelloSession()
assert isinstance(session, SessionType)
spec = SessionSpec(name="hi", session_id="s-1", user="ada",
                   target=SessionTarget(kind=TargetKind.EXTERNAL),
                   options=HelloOptions(url="https://corral.example/"))
status = asyncio.run(session.start(spec, runner=None, log=None))
assert status.state == SessionState.RUNNING and status.url == "https://corral.example/", status
assert asyncio.run(session.status(spec, status.data, runner=None)) == status
asyncio.run(session.stop(spec, status.data, runner=None))
print("session ok")
"""


def test_first_plugin_tutorial_runs_as_written(deployment: TestDeployment, tmp_path: Path) -> None:
    for relative, body in tutorial_files().items():
        path = tmp_path / "work" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    site = tmp_path / "site"
    build_and_install(tmp_path / "work" / "corral-hello", site)
    metadata = next(site.glob("corral_hello-0.1.0.dist-info"))
    assert "Requires-Dist: corral-sdk>=0.1" in (metadata / "METADATA").read_text()

    # The session type the tutorial writes is a working SessionType.
    checked = subprocess.run(
        [sys.executable, "-c", SESSION_CHECK],
        env=deployment.process_env({"PYTHONPATH": str(site)}),
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.stdout.strip() == "session ok", checked.stderr

    outputs = tutorial_outputs()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = CorralProcess(
        ["up", "--port", str(port)],
        deployment.process_env({"PYTHONPATH": str(site)}),
        deployment.tmp / "up.log",
    )
    try:
        proc.wait_http(f"{base}/api/health")
        key = api_key(base)
        auth = {"Authorization": f"Bearer {key}"}

        listed = json.loads(
            corral_cli(
                deployment, site, key, "plugins", "ls", "-o", "json", "--platform-host", base
            )
        )
        hello = {p["name"]: p for p in listed}["hello"]
        assert hello["status"] == "loaded", hello
        assert hello["distribution"] == "corral-hello"
        assert hello["version"] == "0.1.0"
        assert hello["registers"] == [{"kind": "session_type", "names": ["hello"]}]

        table = corral_cli(deployment, site, key, "plugins", "ls", "--platform-host", base)
        assert_table_shows(outputs["corral plugins ls"], table)

        command, _, printed = outputs["curl"].partition("\n")
        url = re.fullmatch(
            r"\$ curl -H \"Authorization: Bearer \$PW_API_KEY\" '(?P<url>http://127\.0\.0\.1:8080/\S+)'",
            command,
        )
        assert url, f"the tutorial's curl command is not of the expected form: {command!r}"
        response = httpx.get(url["url"].replace("http://127.0.0.1:8080", base), headers=auth)
        assert response.status_code == 200, response.text
        assert response.text == printed.strip()
        # "Without ?name=, the greeting is Hello, world!"
        assert httpx.get(f"{base}/api/plugins/hello/greeting", headers=auth).json() == {
            "greeting": "Hello, world!"
        }
        # "They show in the OpenAPI document at /api/schema"
        schema = httpx.get(f"{base}/api/schema").json()
        assert "/api/plugins/hello/greeting" in schema["paths"]
    finally:
        proc.stop()
    assert "failed to load" not in proc.output()
