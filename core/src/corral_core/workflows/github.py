"""The ``github`` workflow source: ``uses: github/<owner>/<repo>[/<path>]@<ref>``.

The workflow is the file ``<path>`` of the repository ``<github_url>/<owner>/<repo>.git`` at
``<ref>`` (a branch, a tag, or a full 40-character commit SHA), fetched with the remote
workflows' fetch (:func:`~corral_core.workflows.remote.fetch_first`) when the calling run starts
(to check the chain) and again when the step starts. Without a path it is the first of
``workflow.yaml``, ``workflow.yml``, ``.corral/workflow.yaml`` and ``.corral/workflow.yml`` at
the repository's root. No credentials are sent: git runs with an empty home and configuration,
no prompt and no credential helper, so only repositories the server shows to anyone work.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from corral_core.workflows.remote import FETCH_TIMEOUT, fetch_first
from corral_sdk.errors import Invalid, ProviderError
from corral_sdk.providers.workflow_source import ResolvedWorkflow

__all__ = ["DEFAULT_GITHUB_URL", "DEFAULT_PATHS", "GitHubWorkflows"]

DEFAULT_GITHUB_URL = "https://github.com"
DEFAULT_PATHS = ("workflow.yaml", "workflow.yml", ".corral/workflow.yaml", ".corral/workflow.yml")
"""Where the workflow is in a repository when the reference names no path, in this order."""

_REFERENCE = re.compile(
    r"^github/(?P<owner>[A-Za-z0-9_.-]+)/(?P<repo>[A-Za-z0-9_.-]+)"
    r"(?:/(?P<path>[A-Za-z0-9_./-]+))?@(?P<ref>[A-Za-z0-9_./-]+)$"
)
_SHORT_SHA = re.compile(r"^[0-9a-f]{4,39}$")
_MISSING = ("couldn't find remote ref", "not found", "does not appear to be a git repository",
            "could not read username", "authentication failed")  # fmt: skip
"""What git says (in English) when the ref or the repository is not there for anyone: the
reference is wrong (422), not the server unreachable (502). A private repository asks for a
user name, which no one gives."""


def _parse(uses: str) -> tuple[str, str, str, str]:
    """``(owner, repo, path, ref)`` of a reference, or ``Invalid`` saying what is wrong."""
    match = _REFERENCE.match(uses)
    if match is None:
        raise Invalid(
            "expected github/<owner>/<repo>@<ref> or github/<owner>/<repo>/<path>@<ref>",
            field="uses",
        )
    owner, repo, path, ref = match.group("owner", "repo", "path", "ref")
    for label, value in (("owner", owner), ("repository", repo)):
        if value.startswith((".", "-")):
            raise Invalid(f"the {label} {value!r} cannot start with '.' or '-'", field="uses")
    if ref.startswith("-") or ".." in ref or ref.endswith(("/", ".lock")):
        raise Invalid(f"{ref!r} is not a branch, tag or commit SHA", field="uses")
    if path is not None and any(part in ("", ".", "..") for part in path.split("/")):
        raise Invalid(f"the path {path!r} must stay inside the repository", field="uses")
    return owner, repo.removesuffix(".git"), path or "", ref


class GitHubWorkflows:
    """Resolves ``github/...`` references against ``base_url`` (GitHub or GitHub Enterprise;
    tests use a local ``file://`` directory of ``<owner>/<repo>.git`` repositories)."""

    def __init__(self, base_url: str = DEFAULT_GITHUB_URL, *, timeout: float = FETCH_TIMEOUT):
        scheme = urlsplit(base_url).scheme
        if scheme not in ("https", "http", "file"):
            raise Invalid(
                f"workflows.github_url: {base_url!r} is not an https:// URL",
                field="workflows.github_url",
            )
        self.base_url = base_url.rstrip("/")
        self.protocol = scheme
        self.timeout = timeout

    async def resolve(self, uses: str, *, username: str, org: str) -> ResolvedWorkflow:
        owner, repo, path, ref = _parse(uses)
        url = f"{self.base_url}/{owner}/{repo}.git"
        try:
            fetched = await fetch_first(
                url,
                ref,
                [path] if path else DEFAULT_PATHS,
                timeout=self.timeout,
                protocols=(self.protocol,),
            )
        except ProviderError as exc:
            message = exc.message
            if _SHORT_SHA.match(ref):
                message += " (a commit is named by its full 40-character SHA)"
            if any(sign in message.lower() for sign in _MISSING):
                raise Invalid(
                    f"{message} (no credentials are sent: the repository must be public)"
                    if "username" in message.lower()
                    else message,
                    field="uses",
                    reason="workflow-not-found",
                ) from None
            raise ProviderError(message, reason="workflow-source-unreachable") from None
        except Invalid as exc:
            raise Invalid(exc.message.removeprefix("path: "), field="uses") from None
        # GitHub's owner and repository names are case-insensitive: one identity for both
        return ResolvedWorkflow(
            yaml=fetched.yaml,
            identity=f"github/{owner.lower()}/{repo.lower()}/{fetched.path}@{fetched.commit}",
            version=fetched.commit,
        )
