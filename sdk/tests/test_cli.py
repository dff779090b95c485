"""The CLI shell: help, exit codes, output formats, and lazy imports (it must start fast)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from corral_sdk.cli.main import EXIT_ERROR, EXIT_OK, EXIT_USAGE, run


def test_no_arguments_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert run([]) == EXIT_OK
    out = capsys.readouterr().out
    for command in ("up", "serve", "worker", "migrate", "plugins", "version"):
        assert command in out


def test_a_group_without_subcommand_prints_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["plugins"]) == EXIT_OK
    assert "ls (list)" in capsys.readouterr().out


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["bogus"]) == EXIT_USAGE
    assert run(["plugins", "ls", "-o", "yaml"]) == EXIT_USAGE
    assert "invalid choice: 'yaml'" in capsys.readouterr().err


def test_version_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["version"]) == EXIT_OK
    assert capsys.readouterr().out.startswith("corral 0.1.0\n")
    assert run(["version", "-o", "json"]) == EXIT_OK
    info = json.loads(capsys.readouterr().out)
    assert info["version"] == "0.1.0"
    assert info["components"]["corral-sdk"] == "0.1.0"


def test_unreachable_server_is_a_clear_error_with_exit_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        monkeypatch.setenv("PW_PLATFORM_HOST", f"http://127.0.0.1:{port}")
        assert run(["plugins", "ls"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith(f"[ERROR] cannot reach Corral at http://127.0.0.1:{port}")
    assert "Traceback" not in err


def test_global_flags_work_before_and_after_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from corral_sdk.cli.main import build_parser

    parser = build_parser()
    assert parser.parse_args(["--platform-host", "a", "plugins", "ls"]).platform_host == "a"
    assert parser.parse_args(["plugins", "ls", "--platform-host", "b"]).platform_host == "b"


def test_help_imports_no_heavy_module() -> None:
    code = (
        "import sys\n"
        "from corral_sdk.cli.main import run\n"
        "run(['--help'])\n"
        "heavy = {'msgspec', 'httpx', 'pluggy', 'corral_core', 'corral_api', 'litestar'}\n"
        "print(sorted(heavy & set(sys.modules)), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stderr.strip() == "[]"
