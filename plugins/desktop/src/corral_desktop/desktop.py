"""The ``desktop`` session type: a VNC desktop (TigerVNC's ``Xvnc``) shown in the browser by
noVNC, which ``websockify`` serves together with the WebSocket-to-VNC bridge.

Everything runs on the session's target as the user, through its
:class:`~corral_sdk.transport.CommandRunner`, one POSIX ``sh`` script per call (``sh -s``, the
script on standard input). A session lives in ``~/.corral/sessions/<session_id>/`` (0700):

- ``Xvnc`` listens for VNC on a Unix socket in that directory (mode 0600; no TCP port at all),
  so only the user reaches it; its X display takes a random ``MIT-MAGIC-COOKIE-1`` from
  ``Xauthority`` there, so other users of the machine cannot open windows on it or read its
  keystrokes. The display number is the server's own choice (``-displayfd``): no race with
  other X servers.
- ``websockify`` serves noVNC's files and the WebSocket on ``127.0.0.1:<port>`` (a free port
  of the target) and requires the header :data:`TOKEN_HEADER` with a random token (from the
  directory's ``token`` file) on every request: on a login node other users share
  ``127.0.0.1``. The token travels only in :attr:`SessionEndpoint.headers`, which the kernel's
  proxy adds and never shows; it is not in ``data``.
- The desktop's program (``command``, by default ``xterm``) runs in the foreground of
  ``session.sh``; when it ends, the desktop ends with it (as ``vncserver``'s does) and the
  session is ``stopped``.

Each process is started with ``nohup setsid`` (its own process group, surviving the runner's
connection) and writes its pid to a file; a pid counts as the desktop's only while its command
line names the session's directory, so a reused pid is never signalled.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from urllib.parse import quote

from corral_desktop.options import DesktopOptions, desktop_options
from corral_sdk.errors import Invalid, ProviderError
from corral_sdk.providers import ProgressLog
from corral_sdk.providers.session import (
    SessionEndpoint,
    SessionSpec,
    SessionState,
    SessionStatus,
    TargetKind,
)
from corral_sdk.transport import CommandRunner

__all__ = ["DATA_KEYS", "PACKAGES", "TOKEN_HEADER", "Desktop", "open_path"]

TOKEN_HEADER = "X-Corral-Desktop-Token"  # noqa: S105 - a header's name, not a secret
"""The header websockify requires (with the session's token) on every request."""
DATA_KEYS = (
    "directory",
    "display",
    "port",
    "socket",
    "xvnc_pid",
    "websockify_pid",
    "program_pid",
)
"""What :attr:`SessionStatus.data` holds (all strings; ``program_pid`` only with a program)."""
PACKAGES = {
    "Xvnc": "tigervnc-standalone-server",
    "websockify": "websockify",
    "novnc": "novnc",
    "xauth": "xauth",
    "setsid": "util-linux",
}
"""What the target needs: the command (or noVNC's files) and the Debian package that has it."""
START_TIMEOUT = 90.0
CALL_TIMEOUT = 30.0
MISSING = 3
"""The start script's exit status when something is not installed."""
_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

# --- the scripts --------------------------------------------------------------------------------

_COMMON = r"""
d="$HOME/.corral/sessions/$id"

value() { cat "$d/$1" 2>/dev/null; }

# alive PID: the process runs and is this desktop's (its command line names a file in $d)
alive() {
  [ -n "${1:-}" ] || return 1
  ps -ww -o args= -p "$1" 2>/dev/null | grep -F -q -e "$d/"
}

# answers PORT: something answers HTTP on 127.0.0.1:PORT (websockify says 403 without the token)
answers() {
  if command -v curl >/dev/null 2>&1; then
    code=$(curl --noproxy '*' -s -o /dev/null -m 3 -w '%{http_code}' \
      "http://127.0.0.1:$1/vnc.html" 2>/dev/null)
    [ -n "$code" ] && [ "$code" != 000 ]
  else
    python3 -c 'import sys, urllib.error, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    opener.open("http://127.0.0.1:%s/vnc.html" % sys.argv[1], timeout=3)
except urllib.error.HTTPError:
    pass' "$1" >/dev/null 2>&1
  fi
}

tail_of() { tail -n 15 "$1" 2>/dev/null | sed 's/^/log=/'; }

# report: the desktop's state and data, as key=value lines
report() {
  if [ ! -d "$d" ]; then echo "state=gone"; return 0; fi
  echo "directory=$d"
  for f in display port socket xvnc_pid websockify_pid program_pid; do
    v=$(value "$f")
    [ -z "$v" ] || echo "$f=$v"
  done
  if [ -f "$d/program.exit" ]; then
    echo "state=ended"
    echo "exit=$(value program.exit)"
    tail_of "$d/program.log"
  elif ! alive "$(value xvnc_pid)"; then
    echo "state=xvnc-ended"
    tail_of "$d/Xvnc.log"
  elif ! alive "$(value websockify_pid)"; then
    echo "state=websockify-ended"
    tail_of "$d/websockify.log"
  elif [ -z "$(value port)" ] || ! answers "$(value port)"; then
    echo "state=waiting"
  else
    echo "state=ready"
    echo "token=$(value token)"
  fi
}

# stop_all: end this desktop's processes (TERM, then KILL after 5 s) and remove what it made
stop_all() {
  xp=$(value xvnc_pid); xp=${xp:-${data_xvnc_pid:-}}
  n=$(value display); n=${n:-${data_display:-}}
  sd=$(value socketdir)
  pids=""
  for p in "$(value program_pid)" "$(value websockify_pid)" "$xp" \
      ${data_program_pid:-} ${data_websockify_pid:-}; do
    if alive "$p"; then
      pids="$pids $p"
      kill -s TERM -- "-$p" 2>/dev/null || kill -s TERM "$p" 2>/dev/null
    fi
  done
  i=0
  while [ -n "$pids" ] && [ "$i" -lt 50 ]; do
    left=""
    for p in $pids; do alive "$p" && left="$left $p"; done
    pids=$left
    [ -z "$pids" ] || sleep 0.1
    i=$((i + 1))
  done
  for p in $pids; do
    kill -s KILL -- "-$p" 2>/dev/null || kill -s KILL "$p" 2>/dev/null
  done
  # the X server's lock and socket, when they are still this server's (after a KILL)
  if [ -n "$n" ] && [ -n "$xp" ] && [ -f "/tmp/.X$n-lock" ] &&
      [ "$(tr -d ' \n' < "/tmp/.X$n-lock" 2>/dev/null)" = "$xp" ]; then
    rm -f "/tmp/.X$n-lock" "/tmp/.X11-unix/X$n"
  fi
  case "$sd" in
  */corral-desktop-*) rm -rf "$sd" ;;
  esac
  rm -rf "$d"
}
"""

_START = r"""
missing=""
command -v Xvnc >/dev/null 2>&1 || missing="$missing Xvnc"
command -v websockify >/dev/null 2>&1 || missing="$missing websockify"
novnc=""
for w in /usr/share/novnc /usr/share/webapps/novnc /usr/local/share/novnc /opt/novnc; do
  if [ -f "$w/vnc.html" ]; then novnc=$w; break; fi
done
[ -n "$novnc" ] || missing="$missing novnc"
command -v xauth >/dev/null 2>&1 || missing="$missing xauth"
command -v setsid >/dev/null 2>&1 || missing="$missing setsid"
if [ -n "$missing" ]; then
  echo "missing=${missing# }"
  exit 3
fi

# started already (the same session id): say how it is
if [ -d "$d" ] && alive "$(value xvnc_pid)" && alive "$(value websockify_pid)"; then
  report
  exit 0
fi
# a desktop of this id that ended or half started: clear it, start afresh
stop_all

fail() {
  echo "$1" >&2
  [ -z "${2:-}" ] || tail -n 15 "$2" >&2 2>/dev/null
  stop_all
  exit 1
}

umask 077
mkdir -p "$HOME/.corral/sessions" || fail "cannot create $HOME/.corral/sessions"
mkdir "$d" || fail "cannot create $d"
chmod 0700 "$d"
random_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
cookie=$(random_hex 16)
token=$(random_hex 24)
if [ ${#cookie} != 32 ] || [ ${#token} != 48 ]; then fail "cannot read /dev/urandom"; fi
printf '%s\n' "$token" > "$d/token"
: > "$d/Xauthority"
xauth -q -f "$d/Xauthority" add :0 MIT-MAGIC-COOKIE-1 "$cookie" 2>/dev/null ||
  fail "xauth could not write $d/Xauthority"
sock="$d/vnc.sock"
if [ ${#sock} -gt 100 ]; then  # a Unix socket's path holds at most 107 bytes
  sd=$(mktemp -d "${TMPDIR:-/tmp}/corral-desktop-XXXXXX") || fail "mktemp failed"
  printf '%s\n' "$sd" > "$d/socketdir"
  sock="$sd/vnc.sock"
fi
printf '%s\n' "$sock" > "$d/socket"

cat > "$d/corral_desktop_auth.py" <<'CORRAL_EOF'
# websockify's auth plugin for a Corral desktop: the request must carry the session's token.
import hmac

from websockify.auth_plugins import AuthenticationError

HEADER = "X-Corral-Desktop-Token"


class HeaderToken:
    def __init__(self, src=None):
        with open(src) as file:
            self.token = file.read().strip().encode()

    def authenticate(self, headers, target_host, target_port):
        if hasattr(headers, "get_all"):
            values = headers.get_all(HEADER) or []
        else:
            values = [headers.get(HEADER) or ""]
        for value in values:
            if self.token and hmac.compare_digest(value.strip().encode(), self.token):
                return
        raise AuthenticationError(response_code=403, response_msg="Forbidden")
CORRAL_EOF

cat > "$d/session.sh" <<'CORRAL_EOF'
# The desktop's program; when it ends, the desktop ends with it (written by Corral).
d=$1
cd "$HOME" 2>/dev/null || :
sh "$d/program.sh"
status=$?
alive() { [ -n "$1" ] && ps -ww -o args= -p "$1" 2>/dev/null | grep -F -q -e "$d/"; }
xp=$(cat "$d/xvnc_pid" 2>/dev/null)
wp=$(cat "$d/websockify_pid" 2>/dev/null)
if alive "$xp"; then
  echo "$status" > "$d/program.exit"
  kill -s TERM -- "-$xp" 2>/dev/null
fi
if alive "$wp"; then kill -s TERM -- "-$wp" 2>/dev/null; fi
CORRAL_EOF

if [ -z "$program" ] && command -v xterm >/dev/null 2>&1; then
  program="exec xterm"
fi
[ -z "$program" ] || printf '%s\n' "$program" > "$d/program.sh"

# detach PIDFILE COMMAND... &: COMMAND in its own session, its pid in PIDFILE. Always run in
# the background: it execs, so the subshell holds none of the shell's saved descriptors (the
# runner's pipes), and the runner's call ends when this script does.
detach() {
  # shellcheck disable=SC2016  # $$ and "$@" are the inner shell's
  exec nohup setsid sh -c 'echo $$ > "$1"; shift; exec "$@"' sh "$@" < /dev/null
}

detach "$d/xvnc_pid" Xvnc -displayfd 3 -auth "$d/Xauthority" -rfbunixpath "$sock" \
  -rfbport -1 -SecurityTypes None -nolisten tcp -geometry "$geometry" -depth "$depth" \
  -desktop "$title" > "$d/Xvnc.log" 2>&1 3> "$d/display.new" &
i=0
while [ ! -s "$d/display.new" ]; do
  i=$((i + 1))
  xp=$(value xvnc_pid)
  if [ "$i" -gt 150 ] || { [ -n "$xp" ] && [ "$i" -gt 5 ] && ! alive "$xp"; }; then
    fail "Xvnc did not start:" "$d/Xvnc.log"
  fi
  sleep 0.1
done
sleep 0.1
n=$(tr -dc '0-9' < "$d/display.new")
rm -f "$d/display.new"
[ -n "$n" ] || fail "Xvnc gave no display number:" "$d/Xvnc.log"
printf '%s\n' "$n" > "$d/display"
xauth -q -f "$d/Xauthority" add ":$n" MIT-MAGIC-COOKIE-1 "$cookie" 2>/dev/null ||
  fail "xauth could not write $d/Xauthority"

if [ -f "$d/program.sh" ]; then
  detach "$d/program_pid" env DISPLAY=":$n" XAUTHORITY="$d/Xauthority" \
    sh "$d/session.sh" "$d" > "$d/program.log" 2>&1 &
fi

free_port() {
  python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])' 2>/dev/null && return 0
  echo $(( $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 30000 + 20000 ))
}

attempt=0
while :; do
  attempt=$((attempt + 1))
  port=$(free_port)
  rm -f "$d/websockify_pid"
  detach "$d/websockify_pid" env PYTHONDONTWRITEBYTECODE=1 \
    "PYTHONPATH=$d${PYTHONPATH:+:$PYTHONPATH}" websockify \
    --web "$novnc" --web-auth --auth-plugin corral_desktop_auth.HeaderToken \
    --auth-source "$d/token" --unix-target "$sock" "127.0.0.1:$port" \
    > "$d/websockify.log" 2>&1 &
  i=0
  up=0
  while [ "$i" -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
    wp=$(value websockify_pid)
    if [ -n "$wp" ] && ! alive "$wp"; then up=0; break; fi
    if answers "$port"; then up=1; break; fi
    up=2  # still starting
  done
  [ "$up" = 0 ] || break
  if [ "$attempt" -lt 5 ] && grep -q -i "address already in use" "$d/websockify.log"; then
    continue
  fi
  fail "websockify did not start:" "$d/websockify.log"
done
printf '%s\n' "$port" > "$d/port"
report
"""


def _script(session_id: str, body: str, **values: str) -> str:
    assignments = "".join(f"{name}={shlex.quote(value)}\n" for name, value in values.items())
    # the whole script is one function, read before anything runs: no command it starts can
    # swallow the rest of it from standard input (``sh -s``)
    return (
        f"main() {{\nid={shlex.quote(session_id)}\n{assignments}{_COMMON}\n{body}\n}}\n"
        "main < /dev/null\n"
    )


def start_script(spec: SessionSpec, options: DesktopOptions) -> str:
    return _script(
        spec.session_id,
        _START,
        geometry=options.geometry,
        depth=str(options.depth),
        program=options.command,
        title=f"Corral {spec.name}",
    )


def status_script(spec: SessionSpec) -> str:
    return _script(spec.session_id, "report")


def stop_script(spec: SessionSpec, data: Mapping[str, str]) -> str:
    def pid(key: str) -> str:
        value = data.get(key, "")
        return value if value.isdigit() else ""

    display = data.get("display", "")
    return _script(
        spec.session_id,
        "stop_all",
        data_xvnc_pid=pid("xvnc_pid"),
        data_websockify_pid=pid("websockify_pid"),
        data_program_pid=pid("program_pid"),
        data_display=display if display.isdigit() else "",
    )


# --- the session type ---------------------------------------------------------------------------


def open_path(spec: SessionSpec) -> str:
    """What the browser opens under the session's base path: noVNC, connecting at once to the
    WebSocket at ``<base_path>websockify`` (noVNC's ``path`` is relative to the page's host)."""
    websocket = quote(spec.base_path.lstrip("/") + "websockify", safe="/")
    return f"vnc.html?autoconnect=1&resize=remote&path={websocket}"


def _runner(spec: SessionSpec, runner: CommandRunner | None) -> CommandRunner:
    if not _SESSION_ID.fullmatch(spec.session_id):
        raise Invalid(
            f"the session id {spec.session_id!r} cannot name a directory", field="session_id"
        )
    if spec.target.kind not in (TargetKind.WORKSPACE, TargetKind.CLUSTER):
        raise Invalid(
            "a desktop runs in the workspace or on a cluster, not on "
            f"a {spec.target.kind.value} target",
            field="target",
        )
    if runner is None:
        raise Invalid("a desktop needs a target to run on", field="target")
    return runner


def _parse(stdout: str) -> tuple[dict[str, str], list[str]]:
    values: dict[str, str] = {}
    log: list[str] = []
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key == "log":
            log.append(value)
        else:
            values.setdefault(key, value)
    return values, log


def _observed(spec: SessionSpec, stdout: str, target: str) -> SessionStatus:
    values, log = _parse(stdout)
    data = {key: values[key] for key in DATA_KEYS if values.get(key)}
    state = values.get("state", "")
    tail = "\n".join(line for line in log if line.strip())[-2000:]

    def with_log(message: str) -> str:
        return f"{message}:\n{tail}" if tail else message

    if state == "gone":
        return SessionStatus(
            state=SessionState.STOPPED,
            message=f"the desktop is gone from {target} (its directory was removed)",
        )
    if state == "ended":
        return SessionStatus(
            state=SessionState.STOPPED,
            message=with_log(
                f"the desktop's program ended (exit status {values.get('exit') or '?'})"
            ),
            data=data,
        )
    if state == "xvnc-ended":
        return SessionStatus(
            state=SessionState.FAILED, message=with_log("the VNC server (Xvnc) ended"), data=data
        )
    if state == "websockify-ended":
        return SessionStatus(
            state=SessionState.FAILED, message=with_log("websockify ended"), data=data
        )
    if state == "waiting":
        return SessionStatus(
            state=SessionState.STARTING,
            message=f"waiting for websockify on port {data.get('port', '?')}",
            data=data,
        )
    if state == "ready":
        token = values.get("token", "")
        port = data.get("port", "")
        if not token or not port.isdigit():
            return SessionStatus(
                state=SessionState.FAILED,
                message="the desktop's token or port file is missing: stop and start it again",
                data=data,
            )
        return SessionStatus(
            state=SessionState.RUNNING,
            endpoint=SessionEndpoint(
                host="127.0.0.1",
                port=int(port),
                scheme="http",
                path="/",
                websocket=True,
                headers={TOKEN_HEADER: token},
            ),
            open_path=open_path(spec),
            data=data,
        )
    raise ProviderError(
        f"the desktop on {target} answered something unexpected",
        log_message=f"desktop status output: {stdout[-2000:]!r}",
    )


def _failed(what: str, runner: CommandRunner, stderr: str, status: int) -> ProviderError:
    detail = stderr.strip()[-2000:] or f"exit status {status}"
    return ProviderError(f"could not {what} on {runner.target}: {detail}")


class Desktop:
    """The ``desktop`` session type (see the module docstring)."""

    async def start(
        self, spec: SessionSpec, *, runner: CommandRunner | None, log: ProgressLog
    ) -> SessionStatus:
        target = _runner(spec, runner)
        options = desktop_options(spec.options)
        await log.log(
            f"starting a {options.geometry} VNC desktop (depth {options.depth}) on {target.target}"
        )
        result = await target.run("sh -s", input=start_script(spec, options), timeout=START_TIMEOUT)
        if result.exit_status == MISSING:
            values, _ = _parse(result.stdout)
            missing = values.get("missing", "").split() or list(PACKAGES)
            packages = " ".join(dict.fromkeys(PACKAGES.get(m, m) for m in missing))
            raise ProviderError(
                f"the desktop needs {', '.join(missing)} on {target.target}, which "
                f"{'is' if len(missing) == 1 else 'are'} not installed: install the Debian "
                f"packages {packages} (apt-get install {packages}; on RHEL-like systems "
                "tigervnc-server, python3-websockify and novnc)",
                reason="desktop-not-installed",
            )
        if not result.ok:
            raise _failed("start the desktop", target, result.stderr, result.exit_status)
        status = _observed(spec, result.stdout, target.target)
        await log.log(
            f"desktop on display :{status.data.get('display', '?')}, websockify on "
            f"127.0.0.1:{status.data.get('port', '?')}: {status.state.value}"
        )
        return status

    async def status(
        self, spec: SessionSpec, data: Mapping[str, str], *, runner: CommandRunner | None
    ) -> SessionStatus:
        target = _runner(spec, runner)
        result = await target.run("sh -s", input=status_script(spec), timeout=CALL_TIMEOUT)
        if not result.ok:
            raise _failed("read the desktop's state", target, result.stderr, result.exit_status)
        return _observed(spec, result.stdout, target.target)

    async def stop(
        self, spec: SessionSpec, data: Mapping[str, str], *, runner: CommandRunner | None
    ) -> None:
        target = _runner(spec, runner)
        result = await target.run("sh -s", input=stop_script(spec, data), timeout=CALL_TIMEOUT)
        if not result.ok:
            raise _failed("stop the desktop", target, result.stderr, result.exit_status)
