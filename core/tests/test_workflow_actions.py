"""The built-in actions pass the SDK's action conformance suite, as a third party's would:
``checkout`` against a real git repository in a real workspace, ``cancel-jobs`` with the
recording context."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from corral_core.plugins import builtin, load_kernel
from corral_core.testing import git_repository
from corral_core.workflows.actions import CancelJobsInputs, CheckoutInputs, UpdateSessionInputs
from corral_core.workflows.local_runner import LocalRunner
from corral_sdk.records import WorkflowActionRecord
from corral_sdk.testing.conformance import WorkflowActionConformance


def _record(name: str) -> WorkflowActionRecord:
    return load_kernel().workflow_actions()[name]


class _BuiltIn(WorkflowActionConformance):
    @pytest.fixture
    def plugin(self) -> object:
        return builtin

    @pytest.fixture
    def provider(self, record: WorkflowActionRecord) -> Any:
        return record.create()


class TestCheckout(_BuiltIn):
    @pytest.fixture
    def record(self) -> WorkflowActionRecord:
        return _record("checkout")

    @pytest.fixture
    def inputs(self, tmp_path: Path) -> CheckoutInputs:
        repo = git_repository(tmp_path / "repo", {"file.txt": "x\n"})
        return CheckoutInputs(repo=str(repo), branch="main", path="~/clone")

    @pytest.fixture
    def invalid_inputs(self) -> CheckoutInputs:
        return CheckoutInputs(repo="", branch="main")

    @pytest.fixture
    def runner(self, tmp_path: Path) -> LocalRunner:
        return LocalRunner(tmp_path / "home", {"PATH": "/usr/bin:/bin"})


class TestCancelJobs(_BuiltIn):
    @pytest.fixture
    def record(self) -> WorkflowActionRecord:
        return _record("cancel-jobs")

    @pytest.fixture
    def inputs(self) -> CancelJobsInputs:
        return CancelJobsInputs(jobs=["j1"])

    @pytest.fixture
    def invalid_inputs(self) -> CancelJobsInputs:
        return CancelJobsInputs(workflow="other")


class TestUpdateSession(_BuiltIn):
    @pytest.fixture
    def record(self) -> WorkflowActionRecord:
        return _record("update-session")

    @pytest.fixture
    def inputs(self) -> UpdateSessionInputs:
        return UpdateSessionInputs(name="mysession", remote_port=8888)

    @pytest.fixture
    def invalid_inputs(self) -> UpdateSessionInputs:
        return UpdateSessionInputs(name="mysession")  # a tunnel without its port
