"""Remote workflows: the YAML is fetched from a git repository (https) at every run, so a change
pushed there takes effect on the next run without any re-import.

The fetch is ``git fetch`` of one ref into a scratch repository (shallow where the server allows
it) and ``git show <commit>:<path>``, with no credential prompt, no configuration of the host's
users, and https as the only transport (the ``github`` workflow source allows the scheme of its
configured server instead: http, or a local ``file://`` mirror). git's own environment reaches
it, so a private CA (``GIT_SSL_CAINFO``) or a proxy (``HTTPS_PROXY``) set for Corral applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

from corral_sdk.errors import Invalid, ProviderError

__all__ = ["FETCH_TIMEOUT", "Fetched", "fetch_first", "fetch_workflow"]

FETCH_TIMEOUT = 60.0
MAX_BYTES = 1_000_000
_PASSED = ("GIT_SSL_CAINFO", "GIT_SSL_CAPATH", "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY",
           "https_proxy", "NO_PROXY", "no_proxy", "LANG", "LC_ALL")  # fmt: skip


@dataclass(frozen=True)
class Fetched:
    yaml: str
    commit: str
    path: str = ""
    """Which of the paths asked for it is."""


async def _git(directory: str, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        "git", *args, cwd=directory, env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, err = await process.communicate()
    except asyncio.CancelledError:
        # the whole group: git's helpers (git-remote-https) hold the pipes too
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await asyncio.shield(process.communicate())
        raise
    return process.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


async def fetch_workflow(
    url: str, ref: str, path: str, *, timeout: float = FETCH_TIMEOUT
) -> Fetched:
    """The YAML at ``path`` of ``ref`` (the default branch when empty) of the repository at
    ``url``. A repository that cannot be fetched is a ``ProviderError`` (502) with git's
    message; a missing file is ``Invalid`` naming ``path``."""
    return await fetch_first(url, ref, [path], timeout=timeout)


async def fetch_first(
    url: str,
    ref: str,
    paths: Sequence[str],
    *,
    timeout: float = FETCH_TIMEOUT,
    protocols: Sequence[str] = ("https",),
) -> Fetched:
    """The first of ``paths`` that ``ref`` (a branch, a tag or a full commit SHA; the default
    branch when empty) of the repository at ``url`` holds, fetched over one of ``protocols``.
    Errors as for :func:`fetch_workflow`; none of the paths there is ``Invalid`` naming them."""
    try:
        return await asyncio.wait_for(_fetch(url, ref, paths, protocols), timeout)
    except TimeoutError:
        raise ProviderError(
            f"fetching the workflow from {url} took longer than {timeout:.0f} s",
            reason="remote-workflow-unreachable",
        ) from None


async def _fetch(url: str, ref: str, paths: Sequence[str], protocols: Sequence[str]) -> Fetched:
    with tempfile.TemporaryDirectory(prefix="corral-remote-") as scratch:
        env = {name: os.environ[name] for name in _PASSED if name in os.environ}
        env.update(
            PATH=os.environ.get("PATH", os.defpath),
            HOME=scratch,
            GIT_TERMINAL_PROMPT="0",
            GIT_ALLOW_PROTOCOL=":".join(protocols),
            GIT_CONFIG_NOSYSTEM="1",
            GIT_ASKPASS="/bin/false",
        )
        await _git(scratch, env, "init", "-q", ".")
        wanted = ref or "HEAD"
        # `--` first: a ref or URL that starts with "-" is not an option (--upload-pack=...)
        code, _, err = await _git(scratch, env, "fetch", "-q", "--depth", "1", "--", url, wanted)
        if code != 0 and "shallow" in err:  # a "dumb" http server: no shallow fetches
            code, _, err = await _git(scratch, env, "fetch", "-q", "--", url, wanted)
        if code != 0:
            raise ProviderError(
                f"cannot fetch {wanted} from {url}: {err.strip()[-500:] or f'git exited {code}'}",
                reason="remote-workflow-unreachable",
            )
        # an annotated tag fetches the tag object: the commit is what it points at
        _, commit, _ = await _git(scratch, env, "rev-parse", "FETCH_HEAD^{commit}")
        for path in paths:
            code, text, err = await _git(scratch, env, "show", f"FETCH_HEAD:{path.lstrip('/')}")
            if code != 0:
                continue
            if len(text.encode()) > MAX_BYTES:
                raise Invalid(f"path: {path} is larger than {MAX_BYTES} bytes", field="path")
            return Fetched(yaml=text, commit=commit.strip(), path=path)
        where = f"{url} at {ref or 'its default branch'}"
        if len(paths) == 1:
            raise Invalid(f"path: {paths[0]} is not in {where}", field="path")
        raise Invalid(f"path: none of {', '.join(paths)} is in {where}", field="path")
