"""The SDK's conformance suite for the vscode type, run against a real code-server in a local
shell (start, status, stop)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from corral_vscode import plugin
from corral_vscode.vscode import VSCode
from vscode_testkit import exec_script, new_spec, runner_with

from corral_sdk.providers.session import SessionSpec
from corral_sdk.records import SessionTypeRecord
from corral_sdk.testing.conformance import SessionTypeConformance
from corral_sdk.testing.shell import ShellRunner


class TestVSCodeConformance(SessionTypeConformance):
    @pytest.fixture
    def record(self) -> SessionTypeRecord:
        return plugin.RECORD

    @pytest.fixture
    def plugin(self) -> ModuleType:
        return plugin

    @pytest.fixture
    def provider(self, record: SessionTypeRecord) -> VSCode:
        provider = record.create()
        assert isinstance(provider, VSCode)
        return provider

    @pytest.fixture
    def session_spec(self) -> SessionSpec:
        return new_spec()

    @pytest.fixture
    def runner(self, tmp_path: Path, code_server: Path) -> ShellRunner:
        return runner_with(tmp_path, {"code-server": exec_script(code_server)})
