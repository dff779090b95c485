"""Step executors: run a workflow step's shell text on its target, detached, so that a Corral
process can die at any moment and the run still completes, with every step run exactly once.

A step runs either in the user's *workspace* (:class:`WorkspaceExecutor`: a directory on the
Corral host whose root is the step's ``~`` and ``$HOME``; files are read directly, no process
per poll) or on a cluster through a :class:`~corral_sdk.transport.CommandRunner`
(:class:`RunnerExecutor`: only ``runner.run``, one round trip per call, whatever the number of
steps asked about). Both drive the same wrapper script, :data:`WRAPPER`.

On-target layout: everything about a step lives in its own directory (``StepLaunch.directory``)::

    script        the step's shell text, run with bash (sh when the target has no bash)
    env           ``export NAME='value'`` lines (shlex-quoted) sourced just before the script
    wrapper.sh    a copy of WRAPPER, which runs the step and writes everything below
    lock/         made with an atomic ``mkdir`` by the one launch that starts the step (the
                  wrapper's ``start`` mode over a runner; the executor itself, in-process, in
                  the workspace, which saves a process per step)
    pid           "<wrapper pid> <its start time> <boot id>" (``-`` where /proc is missing)
    pgid          "<kill target> <its start time>": ``-<pgid>`` when the step has its own
                  process group (GNU timeout or setsid), else the bare pid
    output        stdout and stderr together, appended as the step writes them
    outputs       ``$OUTPUTS``: ``key=value`` lines the step appends
    exit_status   the exit status, written last (``exit_status.tmp`` then ``mv``): the single
                  source of truth for "finished"; every marker below is final once it exists
    timed_out     marker: the step outlived ``timeout_seconds`` (its status is then 124)
    canceled      marker: :meth:`~StepExecutor.kill` stopped it (its status is non-zero)
    lost          marker: the wrapper died without writing ``exit_status`` (a SIGKILL, a
                  reboot); whoever noticed (a ``status`` call) wrote 137 for it

Guarantees:

- *Exactly once*: the step runs only after the ``mkdir lock`` that succeeded, so
  ``launch`` may be called any number of times, concurrently, or again after a crash (the
  normal way to resume a run whose launch may or may not have happened). A launch finding the
  lock writes nothing, and files are replaced by rename, so a running step never sees them
  change under it.
- *Detached*: the wrapper runs in its own session, started through a launcher that forks it
  and exits (``setsid -f``, or ``sh -c '... &'`` in a new session, in the workspace; ``nohup
  setsid ... &`` over a runner), with standard input from /dev/null and its output in files, so
  it is nobody's child to wait for and outlives the Corral process and the SSH channel that
  started it; ``launch`` returns as soon as the lock is taken, without waiting for the step.
- *Reattach*: all state is in the step directory, so a new executor (a restarted Corral) reads
  the same status and output, and ``read_output`` offsets stay valid.
- *No step runs forever unnoticed*: while ``exit_status`` is missing, ``status`` checks the
  recorded wrapper (its pid and start time from /proc, or ``kill -0`` where there is no /proc,
  and the boot id); when the wrapper is gone it reports the step finished with status 137 and
  the ``lost`` marker, and kills what is left of the step's process group. A ``lock`` with no
  ``pid`` (the wrapper died in the instant between the two) counts as lost once it is a minute
  old.

Timeouts use GNU ``timeout --kill-after`` (TERM to the step's process group, KILL after the
grace period) when the target has it; a watchdog in the wrapper writes the ``timed_out`` marker
and, without GNU timeout, does the signalling itself. A step exiting with 124 by itself within
its timeout is reported as timed out, as with GNU timeout. The step gets its own process group
from GNU timeout or setsid; on a target with neither, only the step's shell is signalled.

Where nothing reaps orphans (a container whose PID 1 is not an init), finished wrappers stay
zombies; liveness checks count a zombie as dead, but such a workspace should run an init.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import math
import os
import re
import secrets
import shlex
import shutil
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import msgspec

from corral_core.workflows.local_runner import LocalRunner
from corral_sdk.errors import Invalid, ProviderError
from corral_sdk.providers.scheduler import Scheduler
from corral_sdk.transport import CommandResult, CommandRunner

__all__ = [
    "KILL_SCRIPT",
    "WRAPPER",
    "RunnerExecutor",
    "StepExecutor",
    "StepLaunch",
    "StepStatus",
    "WorkspaceExecutor",
    "parse_outputs",
    "shell_path",
]

LOST_EXIT_STATUS = 137
"""The exit status recorded for a step whose wrapper died without writing one."""
STALE_LOCK_SECONDS = 60.0
"""A lock without a pid file this old means the wrapper died right after taking it."""
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED_PREFIX = "__corral_"
_MARKERS = ("timed_out", "canceled", "lost")
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
# What the workspace passes on from the Corral process's own environment (never its secrets).
_DEVNULL_STDIO = [
    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
    (os.POSIX_SPAWN_DUP2, 1, 2),
]
_INHERITED = ("PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL", "TERM")


class StepLaunch(msgspec.Struct, frozen=True, kw_only=True):
    """One step to start on a target."""

    directory: str
    """The step's own directory on the target (absolute, or ``~/...``), made if missing."""
    script: str
    """The step's shell text, already rendered; run with bash (sh without bash)."""
    cwd: str
    """The working directory (absolute, or ``~/...``), created when missing."""
    env: dict[str, str] = {}
    """Extra environment; ``OUTPUTS`` is set by the executor to ``<directory>/outputs``."""
    timeout_seconds: float | None = None
    """Kill the step's whole process group after this; it then ends with 124 and ``timed_out``."""


class StepStatus(msgspec.Struct, frozen=True, kw_only=True):
    """What a step's directory says about it."""

    launched: bool
    """The step's lock exists: it was started, by some launch."""
    finished: bool
    exit_status: int | None = None
    timed_out: bool = False
    canceled: bool = False
    """``kill`` stopped it (only with a non-zero exit status: a cancel that lost the race
    against the step's own end is not one)."""
    lost: bool = False
    """The wrapper died without recording an exit status; ``exit_status`` is 137."""
    output_size: int = 0
    """Bytes of combined stdout and stderr so far."""


class StepExecutor(Protocol):
    """Runs steps on one target (the workspace, or one cluster login node)."""

    runner: CommandRunner
    """Runs commands on the target directly (workflow actions use it)."""
    scheduler: Scheduler | None
    """The target cluster's scheduler, over :attr:`runner` (``None`` in the workspace)."""
    platform_url: str
    """The URL through which the target reaches Corral (steps get it as ``PW_PLATFORM_HOST``)."""

    async def launch(self, step: StepLaunch) -> None:
        """Start the step unless it was started already; return once it is (the lock exists),
        without waiting for it to finish."""
        ...

    async def status(self, directories: Sequence[str]) -> dict[str, StepStatus]:
        """The status of many steps at once (one round trip); an unknown directory is
        ``launched=False``."""
        ...

    async def read_output(
        self, directory: str, offset: int = 0, limit: int = 1 << 20
    ) -> tuple[bytes, int]:
        """Up to ``limit`` bytes of the combined output from ``offset``, and the next offset."""
        ...

    async def read_outputs(self, directory: str) -> dict[str, str]:
        """The step's ``$OUTPUTS`` file, parsed with :func:`parse_outputs`."""
        ...

    async def kill(self, directory: str) -> None:
        """TERM the step's process group, KILL it after the grace period; the step then finishes
        non-zero with the ``canceled`` marker. A no-op for a finished or never-launched step,
        and for a step already being killed. Returns without waiting for the step to end."""
        ...

    async def remove(self, directory: str) -> None:
        """Delete the step's directory (kill the step first if it may still run)."""
        ...


def parse_outputs(text: str) -> dict[str, str]:
    """``key=value`` lines, split on the first ``=``; later keys win; lines without ``=``, with
    an empty key or a key holding whitespace are ignored."""
    outputs: dict[str, str] = {}
    for line in text.split("\n"):
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key or any(c.isspace() for c in key):
            continue
        outputs[key] = value.removesuffix("\r")
    return outputs


# The wrapper. Run as:  sh wrapper.sh MODE DIR CWD LIMIT GRACE TIMEOUT SETSID SHELL
#   MODE  "start": take DIR/lock (exit 0 at once when it is taken), start MODE "run" in the
#         background through nohup and setsid (leaving the SSH session) and exit;
#         "run": run the step; only ever started by whoever took the lock ("start", or the
#         workspace executor, which takes it in-process and starts "run" in a new session).
#   DIR, CWD absolute; LIMIT the timeout in seconds or empty; GRACE whole seconds between TERM
#   and KILL; TIMEOUT the path of GNU timeout or empty; SETSID the path of setsid or empty;
#   SHELL the absolute path of the shell for the script.
# Names used after the step's env file is sourced start with __corral_ (env may not use them).
WRAPPER = r"""# Corral step wrapper (corral_core.workflows.executors); see that module.
mode=$1 __corral_d=$2 cwd=$3 limit=$4 grace=$5 tmo=$6 ssid=$7 __corral_sh=$8
cd "$__corral_d" || exit 1
case $mode in
start)
  if ! mkdir lock 2>/dev/null; then
    [ -d lock ] && exit 0
    echo "corral: cannot create $__corral_d/lock" >&2
    exit 1
  fi
  shift
  if [ -n "$ssid" ]; then
    nohup "$ssid" sh "$__corral_d/wrapper.sh" run "$@" </dev/null >/dev/null 2>&1 &
  else
    nohup sh "$__corral_d/wrapper.sh" run "$@" </dev/null >/dev/null 2>&1 &
  fi
  exit 0;;
run) ;;
*) echo "corral: unknown wrapper mode $mode" >&2; exit 2;;
esac

stat_start() {  # st := the start time of process $1 (field 22 of /proc/PID/stat), or -
  st=-
  x=
  read -r x 2>/dev/null < "/proc/$1/stat" || [ -n "$x" ] || return 0
  x=${x##*) }
  set -- $x
  st=${20:--}
}
boot=
read -r boot 2>/dev/null < /proc/sys/kernel/random/boot_id
[ -n "$boot" ] || boot=-
stat_start $$
echo "$$ $st $boot" > pid

finish() {
  echo "$1" > exit_status.tmp && mv -f exit_status.tmp exit_status
  exit 0
}
[ -f canceled ] && finish 143

if [ -n "$limit" ] && [ -n "$tmo" ]; then
  set -- "$tmo" -k "$grace" "$limit"; grp=1
elif [ -n "$ssid" ]; then
  set -- "$ssid"; grp=1
elif [ -n "$tmo" ]; then
  set -- "$tmo" -k "$grace" 0; grp=1
else
  set --; grp=
fi
(
  { [ -d "$cwd" ] || mkdir -p -- "$cwd"; } && cd -- "$cwd" || {
    echo "corral: cannot use the working directory $cwd" >&2; exit 1; }
  [ -d "$HOME/.corral/bin" ] && PATH="$HOME/.corral/bin:$PATH" && export PATH
  . "$__corral_d/env" || exit 1
  export OUTPUTS="$__corral_d/outputs"
  exec "$@" "$__corral_sh" "$__corral_d/script"
) </dev/null >>output 2>&1 &
pg=$!
if [ -n "$grp" ]; then t=-$pg; else t=$pg; fi
stat_start $pg
echo "$t $st" > pgid
stop() {  # TERM the step's group and, in case it has not made its group yet, its leader
  kill -TERM $t 2>/dev/null
  kill -TERM $pg 2>/dev/null
}
if [ -f canceled ]; then
  stop
  ( sleep "$grace"; [ -f exit_status ] || { kill -KILL $t; kill -KILL $pg; } 2>/dev/null ) &
fi

wd=
if [ -n "$limit" ]; then
  secs=${limit%%.*}
  [ "$secs" = "$limit" ] || secs=$((${secs:-0} + 1))
  (
    trap 'kill $s 2>/dev/null; exit 0' TERM
    sleep "$secs" & s=$!
    wait $s
    printf '' > timed_out
    stop
    sleep "$grace" & s=$!
    wait $s
    kill -KILL $t 2>/dev/null
    kill -KILL $pg 2>/dev/null
  ) </dev/null &
  wd=$!
fi

wait $pg
rc=$?
if [ -n "$wd" ]; then
  kill $wd 2>/dev/null
  wait $wd
fi
to=
if [ -n "$limit" ]; then
  if [ "$rc" -eq 124 ] || { [ "$rc" -ne 0 ] && [ -f timed_out ]; }; then
    to=1
    rc=124
  fi
fi
if [ -n "$to" ]; then
  [ -f timed_out ] || printf '' > timed_out
elif [ -f timed_out ]; then
  rm -f timed_out
fi
if [ "$rc" -eq 0 ] && [ -f canceled ]; then rc=143; fi
finish "$rc"
"""

# kill: sh -c KILL_SCRIPT corral-kill DIR GRACE
KILL_SCRIPT = r"""d=$1 grace=$2
cd "$d" 2>/dev/null || exit 0
[ -d lock ] || exit 0
[ -f exit_status ] && exit 0
[ -f canceled ] && exit 0
printf '' > canceled
t= s=
read -r t s 2>/dev/null < pgid
# No pgid yet: the wrapper reads the marker after writing pgid and stops the step itself.
[ -n "$t" ] || exit 0
kill -TERM $t 2>/dev/null
kill -TERM ${t#-} 2>/dev/null
nohup sh -c 'sleep "$1"; cd "$2" && [ ! -f exit_status ] &&
  { kill -KILL $3; kill -KILL ${3#-}; } 2>/dev/null' corral-kill "$grace" "$d" "$t" \
  </dev/null >/dev/null 2>&1 &
exit 0
"""

# The status of many step directories: this, then one "one <index> <directory>" line each.
# Prints "@step <index> new", "@step <index> running <size>" or
# "@step <index> done <exit status> <markers> <size>" (markers: "-" then ",name" each).
_STATUS_FUNCTIONS = r"""boot=
read -r boot 2>/dev/null < /proc/sys/kernel/random/boot_id
[ -n "$boot" ] || boot=-
stat_start() {
  st=-
  x=
  read -r x 2>/dev/null < "/proc/$1/stat" || [ -n "$x" ] || return 0
  x=${x##*) }
  set -- $x
  st=${20:--}
}
alive() {
  p= s= b=
  read -r p s b 2>/dev/null < "$1/pid"
  if [ -z "$p" ]; then
    [ -z "$(find "$1/lock" -prune -mmin +1 2>/dev/null)" ]
    return
  fi
  [ "$b" = - ] || [ "$boot" = - ] || [ "$b" = "$boot" ] || return 1
  if [ "$s" != - ] && [ -r /proc/self/stat ]; then
    x=
    read -r x 2>/dev/null < "/proc/$p/stat" || [ -n "$x" ] || return 1
    x=${x##*) }
    set -- $x
    [ "$1" != Z ] && [ "$1" != X ] && [ "${20}" = "$s" ]
    return
  fi
  kill -0 "$p" 2>/dev/null
}
lose() {
  printf '' > "$1/lost"
  p= s= b= t= gs=
  read -r p s b 2>/dev/null < "$1/pid"
  read -r t gs 2>/dev/null < "$1/pgid"
  if [ -n "$t" ] && [ "$gs" != - ] && [ "$b" = "$boot" ]; then
    stat_start "${t#-}"
    if [ "$st" = "$gs" ]; then
      kill -KILL $t 2>/dev/null
      kill -KILL ${t#-} 2>/dev/null
    fi
  fi
  echo 137 > "$1/exit_status.$$" && mv -f "$1/exit_status.$$" "$1/exit_status"
}
size() {
  if [ -f "$1/output" ]; then wc -c < "$1/output"; else echo 0; fi
}
one() {
  d=$2
  if [ ! -d "$d/lock" ]; then echo "@step $1 new"; return; fi
  if [ ! -f "$d/exit_status" ]; then
    if alive "$d"; then printf '@step %s running ' "$1"; size "$d"; return; fi
    [ -f "$d/exit_status" ] || lose "$d"
  fi
  rc=
  read -r rc < "$d/exit_status"
  f=-
  for m in timed_out canceled lost; do [ -f "$d/$m" ] && f="$f,$m"; done
  printf '@step %s done %s %s ' "$1" "${rc:--}" "$f"
  size "$d"
}
"""

_DETECT = r"""tmo= ssid= shell=
if command -v timeout >/dev/null 2>&1 && timeout --version 2>/dev/null | grep -q GNU; then
  tmo=$(command -v timeout)
fi
command -v setsid >/dev/null 2>&1 && ssid=$(command -v setsid)
shell=$(command -v bash 2>/dev/null) || shell=$(command -v sh)
"""


def _env_file(env: Mapping[str, str]) -> str:
    for name in env:
        if not _ENV_NAME.match(name) or name.startswith(_RESERVED_PREFIX):
            raise Invalid(f"environment variable name {name!r} is not valid", field="env")
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())


def _seconds(value: float | None) -> str:
    """A timeout for the wrapper: positive, at most three decimals; empty for none."""
    if value is None:
        return ""
    if not value > 0:
        raise Invalid("a step timeout must be positive", field="timeout")
    return f"{max(value, 0.001):.3f}".rstrip("0").rstrip(".")


def _grace(value: float) -> str:
    return str(max(1, math.ceil(value)))


def _exit_code(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        return 255


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """``(state, start time)`` of ``pid`` from /proc, or None when it has no entry."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text[text.rfind(")") + 2 :].split()
    return (fields[0], fields[19]) if len(fields) > 19 else None


def _read_words(path: Path) -> list[str]:
    """The words of a one-line file the wrapper writes with one ``echo``; [] until complete."""
    try:
        text = path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return []
    return text.split() if text.endswith("\n") else []


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    temporary.write_text(text)
    os.replace(temporary, path)


class WorkspaceExecutor:
    """Runs steps in the user's workspace, the local directory ``root`` (their ``~`` and
    ``$HOME``). Status and output are read from the files directly.

    The step's environment is ``environment`` (by default the Corral process's ``PATH``,
    locale, ``TZ``, ``TMPDIR``, ``USER``, ``LOGNAME``, ``SHELL`` and ``TERM``: never the rest of
    its environment, which holds its secrets), then ``HOME=root``, then the step's ``env`` and
    ``OUTPUTS``."""

    def __init__(
        self,
        root: Path,
        *,
        kill_grace: float = 5.0,
        environment: Mapping[str, str] | None = None,
        platform_url: str = "",
    ) -> None:
        self.root = Path(root)
        self.kill_grace = kill_grace
        if environment is None:
            environment = {
                name: value
                for name, value in os.environ.items()
                if name in _INHERITED or name.startswith("LC_")
            }
        self.environment = {**environment, "HOME": str(self.root)}
        search = self.environment.get("PATH", os.defpath)
        self._sh = shutil.which("sh", path=search) or "/bin/sh"
        self._shell = shutil.which("bash", path=search) or self._sh
        self.runner: CommandRunner = LocalRunner(self.root, self.environment, self._shell)
        self.scheduler: Scheduler | None = None
        self.platform_url = platform_url
        self._setsid = shutil.which("setsid", path=search) or ""
        self._timeout: str | None = None  # found on first use
        self._setsid_fork = False
        self._launchers: set[int] = set()
        try:
            self._boot = _BOOT_ID.read_text().strip() or "-"
        except OSError:
            self._boot = "-"
        self._proc = Path("/proc/self/stat").exists()

    def path(self, path: str) -> Path:
        """``path`` on this machine: ``~`` and relative paths are under the root."""
        if path == "~":
            return self.root
        if path.startswith("~/"):
            return self.root / path[2:]
        return Path(path) if os.path.isabs(path) else self.root / path

    async def _tools(self) -> tuple[str, bool]:
        """GNU timeout's path (or ""), and whether ``setsid -f`` works; found on first use."""
        if self._timeout is None:
            self._timeout = ""
            found = shutil.which("timeout", path=self.environment.get("PATH", os.defpath))
            if found:
                process = await asyncio.create_subprocess_exec(
                    found,
                    "--version",
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                out, _ = await process.communicate()
                if b"GNU" in out:
                    self._timeout = found
            if self._setsid:
                process = await asyncio.create_subprocess_exec(
                    self._setsid,
                    "-f",
                    "true",
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                self._setsid_fork = await process.wait() == 0
        return self._timeout, self._setsid_fork

    def _reap(self) -> None:
        """Collect the launchers that have exited (they exit at once, after one fork)."""
        for pid in list(self._launchers):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self._launchers.discard(pid)

    def _spawn(self, arguments: list[str], setsid_fork: bool) -> None:
        """Start ``sh wrapper.sh run ...`` detached: in a new session, through a launcher
        that forks it and exits (``setsid -f``, else ``sh -c '... &'``), so that the wrapper is
        never this process's child (no zombie, nothing to wait for) and outlives it."""
        if setsid_fork:
            argv = [self._setsid, "-f", self._sh, *arguments]
        else:
            argv = [self._sh, "-c", '"$0" "$@" &', self._sh, *arguments]
        pid = os.posix_spawn(
            argv[0], argv, self.environment, file_actions=_DEVNULL_STDIO, setsid=True
        )
        self._launchers.add(pid)

    async def launch(self, step: StepLaunch) -> None:
        self._reap()
        directory = self.path(step.directory)
        lock = directory / "lock"
        if lock.is_dir():
            return
        env = _env_file(step.env)
        limit = _seconds(step.timeout_seconds)
        timeout, setsid_fork = await self._tools()
        directory.mkdir(parents=True, exist_ok=True)
        _write_atomic(directory / "wrapper.sh", WRAPPER)
        _write_atomic(directory / "env", env)
        _write_atomic(directory / "script", step.script)
        # The same atomic mkdir the wrapper's "start" mode does, without a process for it.
        try:
            lock.mkdir()
        except FileExistsError:
            return
        arguments = [
            str(directory / "wrapper.sh"),
            "run",
            str(directory),
            str(self.path(step.cwd)),
            limit,
            _grace(self.kill_grace),
            timeout,
            self._setsid,
            self._shell,
        ]
        try:
            self._spawn(arguments, setsid_fork)
        except OSError as exc:
            with contextlib.suppress(OSError):
                lock.rmdir()
            raise ProviderError(f"could not start the step in {directory}: {exc}") from exc

    async def status(self, directories: Sequence[str]) -> dict[str, StepStatus]:
        self._reap()
        return {directory: self._status(self.path(directory)) for directory in directories}

    def _status(self, directory: Path) -> StepStatus:
        if not (directory / "lock").is_dir():
            return StepStatus(launched=False, finished=False)
        code = self._exit_status(directory)
        if code is None:
            if self._alive(directory):
                return StepStatus(launched=True, finished=False, output_size=self._size(directory))
            code = self._exit_status(directory)  # it may have ended since the first look
            if code is None:
                self._lose(directory)
                code = self._exit_status(directory)
        markers = {name for name in _MARKERS if (directory / name).exists()}
        return StepStatus(
            launched=True,
            finished=True,
            exit_status=code if code is not None else LOST_EXIT_STATUS,
            timed_out="timed_out" in markers,
            canceled="canceled" in markers and code != 0,
            lost="lost" in markers,
            output_size=self._size(directory),
        )

    @staticmethod
    def _exit_status(directory: Path) -> int | None:
        try:
            return _exit_code((directory / "exit_status").read_text())
        except FileNotFoundError:
            return None

    @staticmethod
    def _size(directory: Path) -> int:
        try:
            return (directory / "output").stat().st_size
        except FileNotFoundError:
            return 0

    def _alive(self, directory: Path) -> bool:
        """Whether the wrapper recorded in ``pid`` may still be running."""
        words = _read_words(directory / "pid")
        if len(words) < 3 or not words[0].isdigit():
            try:
                age = time.time() - (directory / "lock").stat().st_mtime
            except FileNotFoundError:
                return False
            return age < STALE_LOCK_SECONDS
        pid, start, boot = int(words[0]), words[1], words[2]
        if "-" not in (boot, self._boot) and boot != self._boot:
            return False
        if start != "-" and self._proc:
            found = _proc_stat(pid)
            return found is not None and found[0] not in "ZX" and found[1] == start
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _lose(self, directory: Path) -> None:
        """Record a step whose wrapper is gone, and kill what is left of it."""
        (directory / "lost").write_bytes(b"")
        pid = _read_words(directory / "pid")
        group = _read_words(directory / "pgid")
        if len(pid) == 3 and pid[2] == self._boot and len(group) == 2 and group[1] != "-":
            target = int(group[0])
            found = _proc_stat(abs(target))
            if found is not None and found[1] == group[1]:
                if target < 0:
                    with contextlib.suppress(OSError):
                        os.killpg(-target, signal.SIGKILL)
                with contextlib.suppress(OSError):
                    os.kill(abs(target), signal.SIGKILL)
        _write_atomic(directory / "exit_status", f"{LOST_EXIT_STATUS}\n")

    async def read_output(
        self, directory: str, offset: int = 0, limit: int = 1 << 20
    ) -> tuple[bytes, int]:
        try:
            with (self.path(directory) / "output").open("rb") as file:
                file.seek(offset)
                data = file.read(limit)
        except FileNotFoundError:
            return b"", offset
        return data, offset + len(data)

    async def read_outputs(self, directory: str) -> dict[str, str]:
        try:
            data = (self.path(directory) / "outputs").read_bytes()
        except FileNotFoundError:
            return {}
        return parse_outputs(data.decode(errors="replace"))

    async def kill(self, directory: str) -> None:
        path = self.path(directory)
        if not (path / "lock").is_dir() or (path / "exit_status").exists():
            return
        process = await asyncio.create_subprocess_exec(
            self._sh,
            "-c",
            KILL_SCRIPT,
            "corral-kill",
            str(path),
            _grace(self.kill_grace),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=self.environment,
            start_new_session=True,
        )
        _, stderr = await process.communicate()
        if process.returncode != 0:
            raise ProviderError(f"could not kill the step in {path}: {stderr.decode()}")

    async def remove(self, directory: str) -> None:
        path = self.path(directory)
        if path.resolve() in (self.root.resolve(), Path("/")):
            raise Invalid(f"will not remove {directory!r}", field="directory")
        if path.exists():
            await asyncio.to_thread(shutil.rmtree, path)


def shell_path(path: str) -> str:
    """``path`` as one word of a remote shell command: ``~/x`` and relative paths are taken
    from ``"$HOME"`` (expanded by the remote shell, never a quoted ``~``)."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        path = path[2:]
    elif path.startswith("/"):
        return shlex.quote(path)
    return '"$HOME"/' + shlex.quote(path)


def _marker(*texts: str) -> str:
    """A here-document delimiter no text can contain (it would have to hold its own digest)."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode() + b"\0")
    return f"CORRAL_EOF_{digest.hexdigest()[:32]}"


def _heredoc(command: str, text: str, marker: str) -> str:
    body = text if text.endswith("\n") else text + "\n"
    return f"{command} <<'{marker}'\n{body}{marker}\n"


class RunnerExecutor:
    """Runs steps on the machine behind ``runner`` (a cluster's login node), through
    ``runner.run`` only: each call is one ``sh -s`` script on standard input, so the remote
    login shell may be any shell. ``~`` is the remote user's home."""

    def __init__(
        self,
        runner: CommandRunner,
        *,
        scheduler: Scheduler | None = None,
        platform_url: str = "",
        kill_grace: float = 5.0,
    ) -> None:
        self.runner = runner
        self.scheduler = scheduler
        self.platform_url = platform_url
        self.kill_grace = kill_grace

    async def _run(self, script: str, what: str) -> CommandResult:
        result = await self.runner.run("sh -s", input=script)
        if result.exit_status != 0:
            raise ProviderError(
                f"could not {what} on {self.runner.target}: "
                f"{result.stderr.strip() or f'exit status {result.exit_status}'}"
            )
        return result

    async def launch(self, step: StepLaunch) -> None:
        env = _env_file(step.env)
        limit = _seconds(step.timeout_seconds)
        marker = _marker(WRAPPER, env, step.script)
        script = "".join(
            [
                f"d={shell_path(step.directory)}\n",
                '[ -d "$d/lock" ] && exit 0\n',
                'mkdir -p "$d" && cd "$d" || exit 1\n',
                _heredoc('cat > "wrapper.sh.$$"', WRAPPER, marker),
                _heredoc('cat > "env.$$"', env, marker),
                _heredoc('cat > "script.$$"', step.script, marker),
                'mv -f "wrapper.sh.$$" wrapper.sh && mv -f "env.$$" env'
                ' && mv -f "script.$$" script || exit 1\n',
                _DETECT,
                f'exec sh "$d/wrapper.sh" start "$d" {shell_path(step.cwd)} '
                f'{shlex.quote(limit)} {_grace(self.kill_grace)} "$tmo" "$ssid" "$shell"\n',
            ]
        )
        await self._run(script, f"start the step in {step.directory}")

    async def status(self, directories: Sequence[str]) -> dict[str, StepStatus]:
        if not directories:
            return {}
        lines = [_STATUS_FUNCTIONS]
        lines += [f"one {index} {shell_path(d)}\n" for index, d in enumerate(directories)]
        result = await self._run("".join(lines), "read the status of steps")
        found: dict[int, StepStatus] = {}
        for line in result.stdout.splitlines():
            words = line.split()
            if len(words) < 3 or words[0] != "@step" or not words[1].isdigit():
                continue
            index, state = int(words[1]), words[2]
            if state == "new":
                found[index] = StepStatus(launched=False, finished=False)
            elif state == "running" and len(words) == 4:
                found[index] = StepStatus(launched=True, finished=False, output_size=int(words[3]))
            elif state == "done" and len(words) == 6:
                code = _exit_code(words[3])
                markers = set(words[4].split(","))
                found[index] = StepStatus(
                    launched=True,
                    finished=True,
                    exit_status=code,
                    timed_out="timed_out" in markers,
                    canceled="canceled" in markers and code != 0,
                    lost="lost" in markers,
                    output_size=int(words[5]),
                )
        missing = [d for i, d in enumerate(directories) if i not in found]
        if missing:
            raise ProviderError(
                f"{self.runner.target} did not report the status of {missing[0]!r}"
                + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
            )
        return {directory: found[index] for index, directory in enumerate(directories)}

    async def _read(self, path: str, offset: int, limit: int) -> bytes:
        """Bytes of a remote file, through base64 (od where there is none): binary-safe."""
        script = (
            f"f={path}\n"
            '[ -f "$f" ] || { echo none; exit 0; }\n'
            "if command -v base64 >/dev/null 2>&1; then\n"
            f'  echo b64; tail -c +{offset + 1} "$f" | head -c {limit} | base64\n'
            "else\n"
            f'  echo hex; tail -c +{offset + 1} "$f" | head -c {limit} | od -An -v -tx1\n'
            "fi\n"
        )
        result = await self._run(script, f"read {path}")
        kind, _, text = result.stdout.partition("\n")
        if kind == "b64":
            return base64.b64decode("".join(text.split()))
        if kind == "hex":
            return bytes.fromhex("".join(text.split()))
        return b""

    async def read_output(
        self, directory: str, offset: int = 0, limit: int = 1 << 20
    ) -> tuple[bytes, int]:
        path = shell_path(directory.rstrip("/") + "/output")
        data = await self._read(path, offset, limit)
        return data, offset + len(data)

    async def read_outputs(self, directory: str) -> dict[str, str]:
        data = await self._read(shell_path(directory.rstrip("/") + "/outputs"), 0, 1 << 24)
        return parse_outputs(data.decode(errors="replace"))

    async def kill(self, directory: str) -> None:
        script = f"set -- {shell_path(directory)} {_grace(self.kill_grace)}\n{KILL_SCRIPT}"
        await self._run(script, f"kill the step in {directory}")

    async def remove(self, directory: str) -> None:
        if directory.strip("/ ") in ("", "~", ".") or directory in ("~/", "~/."):
            raise Invalid(f"will not remove {directory!r}", field="directory")
        await self._run(f"rm -rf -- {shell_path(directory)}\n", f"remove {directory}")
