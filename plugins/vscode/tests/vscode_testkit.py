"""What the vscode tests share: local shell runners whose ``PATH`` holds only the servers a
test gives them, and session specs."""

from __future__ import annotations

import uuid
from pathlib import Path

from corral_vscode.options import VSCodeOptions

from corral_sdk.providers.session import SessionSpec, SessionTarget, TargetKind
from corral_sdk.testing.shell import ShellRunner

INSTALL = Path(__file__).resolve().parents[3] / "contrib" / "lab" / "vscode.sh"
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
"""The runners' ``PATH`` after their own ``bin``: the system's programs (sh, curl, python3,
node), and no code-server nor openvscode-server unless the machine has one installed there."""
BASE = "/sessions/alice/code/"


def runner_with(tmp_path: Path, programs: dict[str, str]) -> ShellRunner:
    """A shell in ``tmp_path/home`` (its ``HOME``) with ``programs`` (name: script) in its own
    ``bin``, first on a ``PATH`` that is otherwise only :data:`SYSTEM_PATH`."""
    home, bin_dir = tmp_path / "home", tmp_path / "bin"
    home.mkdir()
    bin_dir.mkdir()
    for name, text in programs.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return ShellRunner("/bin/sh", home, bin_dir, path=SYSTEM_PATH)


def exec_script(program: Path | str, *args: str) -> str:
    """A program for a runner's ``bin``: runs ``program`` in its place (same pid)."""
    return "#!/bin/sh\nexec " + " ".join(f"'{a}'" for a in (str(program), *args)) + ' "$@"\n'


def new_spec(**options: str) -> SessionSpec:
    return SessionSpec(
        name="code",
        session_id=f"v-test-{uuid.uuid4().hex[:8]}",
        user="alice",
        target=SessionTarget(kind=TargetKind.WORKSPACE),
        options=VSCodeOptions(**options),  # type: ignore[arg-type]
        base_path=BASE,
    )
