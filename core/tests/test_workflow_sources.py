"""``uses:`` workflow sources (spec 20 §4.6, §13.6): the ``github`` source against real git
repositories served from a local directory (``[workflows] github_url = "file://..."``), the
recursion and depth checks across sources, and the seam a plugin's source plugs into."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select
from workflow_lab import Lab

from corral_core.identity.names import ResourceRef
from corral_core.plugins import load_kernel
from corral_core.plugins.manager import PluginSource, builtin_sources
from corral_core.settings import WorkflowSettings, load_settings
from corral_core.testing import git_repository
from corral_core.workflows.github import GitHubWorkflows
from corral_core.workflows.models import WorkflowRun
from corral_core.workflows.runs import RunService
from corral_core.workflows.sources import WorkflowSources
from corral_sdk.errors import Invalid, PluginError, ProviderError, SettingsError
from corral_sdk.plugin import hookimpl
from corral_sdk.providers.workflow_source import ResolvedWorkflow
from corral_sdk.records import WorkflowSourceRecord

pytestmark = pytest.mark.anyio

GREETER = """on:
  execute:
    inputs:
      greeting:
        type: string
jobs:
  greet:
    steps:
      - run: |
          echo "{version} says ${{{{ inputs.greeting }}}}"
          echo "said={version}-${{{{ inputs.greeting }}}}" >> $OUTPUTS
"""


def _git(cwd: Path, *args: str) -> str:
    env = {
        "PATH": os.environ.get("PATH", os.defpath), "HOME": str(cwd),
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x",
    }  # fmt: skip
    done = subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)
    return done.stdout.decode().strip()


@dataclass
class GitHub:
    """A directory served as ``[workflows] github_url``: ``<owner>/<repo>.git`` in it."""

    root: Path

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def publish(self, name: str, files: dict[str, str]) -> Path:
        """A repository ``name`` (``owner/repo``) with one commit of ``files``; returns the
        working copy (commit more there, then :meth:`push`)."""
        work = git_repository(self.root.parent / "work" / name, files)
        self.push(name)
        return work

    def commit(self, name: str, files: dict[str, str], *, tag: str = "") -> str:
        work = self.root.parent / "work" / name
        for path, text in files.items():
            (work / path).parent.mkdir(parents=True, exist_ok=True)
            (work / path).write_text(text)
        _git(work, "add", ".")
        _git(work, "commit", "-qm", "next")
        if tag:  # annotated: fetching it gives the tag object, which points at the commit
            _git(work, "tag", "-a", "-m", tag, tag)
        self.push(name)
        return _git(work, "rev-parse", "HEAD")

    def push(self, name: str) -> None:
        work = self.root.parent / "work" / name
        bare = self.root / f"{name}.git"
        if not bare.exists():
            bare.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
        _git(work, "push", "-q", "--tags", str(bare), "main")


@pytest.fixture
def github(lab: Lab, tmp_path: Path) -> GitHub:
    """Local repositories served as GitHub; the lab's runs resolve ``github/`` against them."""
    served = GitHub(tmp_path / "github")
    served.root.mkdir()
    kernel = load_kernel()
    lab.runs = RunService(
        lab.runtime.db,
        lab.runtime.workflows,
        lab.runtime.secrets,
        lab._enqueue,
        sources=WorkflowSources(kernel.workflow_sources(), WorkflowSettings(github_url=served.url)),
    )
    return served


async def _child(lab: Lab, parent_id: int, uses: str) -> WorkflowRun:
    async with lab.runtime.db.session() as session:
        rows = await session.exec(
            select(WorkflowRun).where(col(WorkflowRun.parent_run_id) == parent_id)
        )
        return next(run for run in rows if run.plan.get("uses") == uses)


async def test_a_github_workflow_runs_at_a_branch_a_tag_and_a_commit_with_its_inputs(
    lab: Lab, github: GitHub
) -> None:
    github.publish("acme/flows", {"workflow.yaml": GREETER.format(version="first")})
    first = _git(github.root.parent / "work" / "acme/flows", "rev-parse", "HEAD")
    github.commit("acme/flows", {"workflow.yaml": GREETER.format(version="tagged")}, tag="v1")
    tagged = _git(github.root.parent / "work" / "acme/flows", "rev-parse", "HEAD")
    github.commit(
        "acme/flows",
        {"workflow.yaml": GREETER.format(version="main"),
         "flows/other.yaml": GREETER.format(version="other")},
    )  # fmt: skip
    done = await lab.run(
        f"""
jobs:
  main:
    steps:
      - uses: github/acme/flows@main
        with:
          greeting: hello
      - uses: github/acme/flows@v1
        with:
          greeting: bonjour
      - id: pinned
        uses: github/acme/flows@{first}
        with:
          greeting: hallo
      - uses: github/acme/flows/flows/other.yaml@main
        with:
          greeting: ciao
  after:
    needs: [main]
    steps:
      - run: echo "got ${{{{ needs.main.steps.pinned.outputs.said }}}}"
"""
    )
    assert done.run.status == "completed", done.lines
    lines = done.job_lines("main")
    for uses, said in (
        ("github/acme/flows@main", "main says hello"),
        ("github/acme/flows@v1", "tagged says bonjour"),
        (f"github/acme/flows@{first}", "first says hallo"),
        ("github/acme/flows/flows/other.yaml@main", "other says ciao"),
    ):
        assert f"[{uses}/greet] {said}" in lines, lines
    assert done.printed("after") == ["got first-hallo"]
    # the run of the tag: numbered among the caller's runs, the tag's commit in its chain
    child = await _child(lab, done.run.id or 0, "github/acme/flows@v1")
    assert child.status == "completed" and child.resource_id == done.run.resource_id
    assert child.plan["commit"] == tagged and child.inputs == {"greeting": "bonjour"}
    assert child.plan["chain"] == [
        done.run.plan["workflow"], f"github/acme/flows/workflow.yaml@{tagged}"
    ]  # fmt: skip
    assert any(f"fetched at {tagged}" in line for line in lines)


async def test_a_bad_reference_is_refused_naming_it(lab: Lab, github: GitHub) -> None:
    github.publish("acme/flows", {"workflow.yaml": GREETER.format(version="main")})

    def calling(uses: str) -> str:
        return f"jobs:\n  main:\n    steps:\n      - uses: {uses}\n        with:\n          greeting: x\n"  # noqa: E501

    for uses, why in (
        ("github/acme/flows@nope", "couldn't find remote ref nope"),
        ("github/acme/gone@main", "gone.git"),
        ("github/acme/flows/missing.yaml@main", "missing.yaml is not in"),
        ("github/acme/flows@abc1234", "full 40-character SHA"),
        ("github/acme/flows/../x.yaml@main", "must stay inside the repository"),
    ):
        with pytest.raises(Invalid, match=rf"^uses: {uses.replace('.', '[.]')}: .*{why}"):
            await lab.start(calling(uses))
    # a reference made by an expression is known only when the step starts: the step fails
    done = await lab.run(
        "on:\n  execute:\n    inputs:\n      ref:\n        type: string\n"
        + calling("github/acme/flows@${{ inputs.ref }}"),
        {"ref": "nope"},
    )
    step = done.steps["main"][0]
    assert done.run.status == "error" and step.status == "error"
    assert step.reason.startswith("uses github/acme/flows@nope: cannot fetch nope")
    # a repository without any of the default files
    github.publish("acme/empty", {"README": "nothing here\n"})
    with pytest.raises(Invalid, match=r"none of workflow\.yaml, workflow\.yml, \.corral/workflow"):
        await lab.start(calling("github/acme/empty@main"))


async def test_recursion_through_github_is_refused_before_the_run_starts(
    lab: Lab, github: GitHub
) -> None:
    # ping (the user's) → github/acme/pong → workflow/ping
    github.publish("acme/pong", {"workflow.yaml": "jobs:\n  j:\n    steps:\n      - uses: workflow/ping\n"})  # fmt: skip  # noqa: E501
    pong = _git(github.root.parent / "work" / "acme/pong", "rev-parse", "HEAD")
    await lab.create("ping", "jobs:\n  main:\n    steps:\n      - uses: github/acme/pong@main\n")
    with pytest.raises(
        Invalid, match=f"ping → github/acme/pong/workflow.yaml@{pong} → ping calls ping again"
    ):
        await lab.runs.start(lab.principal, ResourceRef(lab.principal.username, "ping"), {})
    # a repository whose workflow calls itself through a tag at the same commit
    github.publish("acme/self", {"workflow.yaml": "jobs:\n  j:\n    steps:\n      - run: echo\n"})  # fmt: skip  # noqa: E501
    me = github.commit(
        "acme/self",
        {"workflow.yaml": "jobs:\n  j:\n    steps:\n      - uses: github/acme/self@v2\n"},
        tag="v2",
    )
    with pytest.raises(
        Invalid, match=f"calls github/acme/self@v2 \\(github/acme/self/workflow.yaml@{me}\\) again"
    ):
        await lab.start("jobs:\n  main:\n    steps:\n      - uses: github/acme/self@main\n")
    async with lab.runtime.db.session() as session:
        assert not list(await session.exec(select(WorkflowRun)))


async def test_five_layers_through_github_run_and_six_do_not(lab: Lab, github: GitHub) -> None:
    def calling(uses: str) -> str:
        return f"jobs:\n  main:\n    steps:\n      - uses: {uses}\n"

    # d1 → github d2 → workflow/d3 → workflow/d4 → github d5
    github.publish("acme/d5", {"workflow.yaml": "jobs:\n  j:\n    steps:\n      - run: echo deepest\n"})  # fmt: skip  # noqa: E501
    await lab.create("d4", calling("github/acme/d5@main"))
    await lab.create("d3", calling("workflow/d4"))
    github.publish("acme/d2", {"workflow.yaml": calling("workflow/d3")})
    await lab.create("d1", calling("github/acme/d2@main"))
    started = await lab.runs.start(lab.principal, ResourceRef(lab.principal.username, "d1"), {})
    done = await lab.finish(started.id or 0, timeout=120)
    assert done.run.status == "completed", done.lines
    assert any(line.endswith("] deepest") for line in done.lines), done.lines
    async with lab.runtime.db.session() as session:
        depths = sorted(run.depth for run in await session.exec(select(WorkflowRun)))
    assert depths == [1, 2, 3, 4, 5]
    await lab.create("d0", calling("workflow/d1"))
    with pytest.raises(Invalid, match="nest 6 deep"):
        await lab.runs.start(lab.principal, ResourceRef(lab.principal.username, "d0"), {})


# --- the seam: sources a plugin registers ------------------------------------------------------


CATALOG_YAML = """on:
  execute:
    inputs:
      resource:
        type: string
jobs:
  hello:
    steps:
      - run: echo "catalog {slug} on ${{{{ inputs.resource }}}}"
"""


class Catalog:
    """What a plugin could register: ``catalog/<slug>`` (Corral's own ``marketplace`` is
    registered the same way, see test_marketplace.py)."""

    async def resolve(self, uses: str, *, username: str, org: str) -> ResolvedWorkflow:
        slug = uses.removeprefix("catalog/").split("/")[0]
        if slug != "desktop":
            raise Invalid(f"the catalog has no {slug!r}", field="uses")
        return ResolvedWorkflow(
            yaml=CATALOG_YAML.format(slug=slug), identity=f"catalog/{slug}@1", version="1"
        )


async def test_a_source_fails_naming_its_prefix_until_a_plugin_registers_it(lab: Lab) -> None:
    step = "jobs:\n  main:\n    steps:\n      - uses: catalog/desktop\n        with:\n          resource: sample-cluster\n"  # noqa: E501
    with pytest.raises(Invalid, match="no workflow source 'catalog/' is installed"):
        await lab.start(step)

    class Plugin:
        @hookimpl
        def corral_register_workflow_sources(self) -> list[WorkflowSourceRecord]:
            return [WorkflowSourceRecord(name="catalog", factory=Catalog)]

    kernel = load_kernel(
        sources=[
            *builtin_sources(),
            PluginSource(name="catalog", distribution="corral-catalog", version="1", load=Plugin),
        ]
    )
    assert sorted(kernel.workflow_sources()) == ["catalog", "github", "marketplace"]
    lab.runs.sources = WorkflowSources(kernel.workflow_sources())
    done = await lab.run(step)
    assert done.run.status == "completed", done.lines
    assert "[catalog/desktop/hello] catalog desktop on sample-cluster" in done.job_lines("main")
    with pytest.raises(Invalid, match="uses: catalog/nothing: the catalog has no"):
        await lab.start(step.replace("desktop", "nothing"))
    # Corral's marketplace needs the runtime's database: without it, it fails saying so
    with pytest.raises(
        ProviderError, match="the workflow source 'marketplace/' could not be built"
    ):
        await lab.start(step.replace("catalog/", "marketplace/"))


def test_a_source_cannot_take_the_prefixes_of_workflows_and_actions() -> None:
    for name in ("workflow", "corral", "parallelworks"):
        with pytest.raises(PluginError, match=f"workflow source name '{name}' is taken"):
            WorkflowSourceRecord(name=name, factory=Catalog)


# --- the fetch: bounded in time, no credentials ------------------------------------------------


async def test_a_server_that_does_not_answer_fails_the_fetch_after_the_timeout() -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        source = GitHubWorkflows(f"http://127.0.0.1:{port}", timeout=1)
        with pytest.raises(ProviderError, match="took longer than 1 s"):
            await source.resolve("github/acme/flows@main", username="u", org="o")


@pytest.fixture
def asks_for_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An http git server that wants a password, and a HOME whose git configuration holds one
    for it (a credential helper with a stored password): what a careless fetch would send."""
    seen: list[dict[str, Any]] = []

    class Guarded(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(dict(self.headers))
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Guarded)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[credential]\n\thelper = store\n")
    (home / ".git-credentials").write_text(url.replace("://", "://alice:s3cret@") + "\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_ASKPASS", "echo")
    try:
        yield url, seen
    finally:
        server.shutdown()
        server.server_close()


async def test_no_credentials_are_sent(
    asks_for_credentials: tuple[str, list[dict[str, Any]]],
) -> None:
    url, seen = asks_for_credentials
    with pytest.raises(Invalid, match="no credentials are sent: the repository must be public"):
        await GitHubWorkflows(url).resolve("github/acme/private@main", username="u", org="o")
    assert seen, "git never asked the server"
    assert not any("authorization" in {k.lower() for k in headers} for headers in seen)


def test_the_github_url_is_a_setting_without_credentials() -> None:
    assert load_settings(env={}).workflows.github_url == "https://github.com"
    settings = load_settings(env={"CORRAL_WORKFLOWS_GITHUB_URL": "https://ghe.example.com"})
    assert settings.workflows.github_url == "https://ghe.example.com"
    with pytest.raises(SettingsError, match="github_url must not hold a user name or password"):
        load_settings(env={"CORRAL_WORKFLOWS_GITHUB_URL": "https://tok@github.com"})
    with pytest.raises(SettingsError, match="'ftp://x' is not an https://"):
        load_settings(env={"CORRAL_WORKFLOWS_GITHUB_URL": "ftp://x"})
