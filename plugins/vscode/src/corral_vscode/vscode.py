"""The ``vscode`` session type: VS Code in the browser, served by Corral's proxy under the
session's base path, by the server the target has: ``code-server``, else ``openvscode-server``.
A target with neither fails at once, saying what to install.

Everything lives in ``~/.corral/sessions/<session id>/`` on the target (0700): a random token
made there (0600), the port, the pid, the server's data directory and its log. The server
listens on 127.0.0.1 only and demands the token, so other users of a shared login host cannot
use it:

- code-server runs with ``--auth password`` and a config file (0600) whose ``hashed-password``
  is the token. code-server takes a ``hashed-password`` that is not an argon2 hash for a legacy
  one and compares its session cookie with it as it is, so the proxy adds
  ``Cookie: code-server-session=<token>`` to every request and WebSocket and the browser never
  sees the token nor a login page. code-server serves at its root with relative links
  (endpoint path ``/``); it checks that a WebSocket's ``Origin`` names the host the request was
  sent to (``X-Forwarded-Host``, else ``Host``), which the proxy's forwarded public host matches.
- openvscode-server runs with ``--connection-token-file``. Its web client itself must present
  the token: it reads it from the ``vscode-tkn`` cookie in the browser and sends it inside its
  own WebSocket protocol, where a header added by the proxy cannot reach. So the browser gets
  it: the session opens ``?tkn=<token>&folder=<dir>``, which the server answers with that
  cookie (for the session's path) and a redirect to the folder. It runs with
  ``--server-base-path`` set to the session's base path (endpoint path = base path) so that its
  own redirects, which honour ``X-Forwarded-Prefix``, are not moved under the base path twice.
  Whoever may open the session can read the token, and with a shell on that host could use it
  there without Corral.

The token never goes in ``data`` nor on a command line; the log tail a failure reports has it
masked (openvscode-server prints its URL with the token).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from urllib.parse import quote

from corral_sdk.errors import Invalid, ProviderError
from corral_sdk.providers import ProgressLog
from corral_sdk.providers.session import (
    SessionEndpoint,
    SessionSpec,
    SessionState,
    SessionStatus,
    run_report,
)
from corral_sdk.transport import CommandRunner
from corral_vscode.options import VSCodeOptions, vscode_options

__all__ = ["SEARCHED", "VSCode"]

STOP_GRACE_SECONDS = 5
"""How long the server has to exit after TERM before it is killed."""
SEARCHED = (
    "code-server",
    "$HOME/.local/bin/code-server",
    "/usr/lib/code-server/bin/code-server",
    "openvscode-server",
    "/opt/openvscode-server/bin/openvscode-server",
)
"""Where a server is looked for when the ``command`` option is empty, in this order."""
CODE_SERVER_COOKIE = "code-server-session"
"""The cookie code-server takes its (hashed) password from; the proxy sends the token in it."""

_COMMON = r"""
d="$HOME/.corral/sessions/$SESSION"
alive() {  # a zombie (dead, not yet reaped by whoever inherited it) is not alive
  [ -s "$d/pid" ] && kill -0 "$(cat "$d/pid")" 2>/dev/null &&
    case $(ps -o stat= -p "$(cat "$d/pid")" 2>/dev/null) in Z*) false ;; *) true ;; esac
}
probe() {  # any HTTP answer will do (without the token it is a redirect or 403)
  url="http://127.0.0.1:$(cat "$d/port")/"
  if command -v curl >/dev/null 2>&1; then
    curl --noproxy '*' -s -o /dev/null -m 3 "$url"
  else
    python3 - "$url" <<'PY'
import sys, urllib.error, urllib.request
try:
    urllib.request.build_opener(urllib.request.ProxyHandler({})).open(sys.argv[1], timeout=3)
except urllib.error.HTTPError:
    pass
PY
  fi
}
masked_log() {
  if [ -s "$d/token" ]; then
    tail -n 15 "$d/log" 2>/dev/null | sed "s/$(cat "$d/token")/<token>/g"
  else
    tail -n 15 "$d/log" 2>/dev/null
  fi
}
report() {
  echo "port=$(cat "$d/port" 2>/dev/null)"; echo "pid=$(cat "$d/pid" 2>/dev/null)"
  echo "server=$(cat "$d/server" 2>/dev/null)"; echo "workdir=$(cat "$d/workdir" 2>/dev/null)"
  if ! alive; then
    echo "state=failed"; echo "log:"; masked_log
  elif probe >/dev/null 2>&1; then
    echo "state=running"; echo "token=$(cat "$d/token")"
  else
    echo "state=starting"
  fi
}
"""

_START = r"""
umask 077
mkdir -p "$d"
chmod 0700 "$d"
if alive; then report; exit 0; fi
server=
for candidate in $CANDIDATES; do
  candidate=$(eval "echo $candidate")
  case $candidate in
    */*) [ -f "$candidate" ] && [ -x "$candidate" ] && { server=$candidate; break; } ;;
    *) command -v "$candidate" >/dev/null 2>&1 && { server=$(command -v "$candidate"); break; } ;;
  esac
done
[ -n "$server" ] || { echo "state=missing"; exit 0; }
workdir=$DIRECTORY
case $workdir in "~") workdir=$HOME ;; "~/"*) workdir="$HOME/${workdir#"~/"}" ;; esac
[ -d "$workdir" ] || mkdir -p "$workdir" 2>/dev/null || { echo "state=nodir"; exit 0; }
workdir=$(cd "$workdir" && pwd) || { echo "state=nodir"; exit 0; }
if command -v python3 >/dev/null 2>&1; then
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
else  # a random port that nothing answers on (curl exits 7 when it cannot connect)
  i=0
  while :; do
    port=$(( $(od -An -N2 -tu2 /dev/urandom) % 30000 + 20000 ))
    command -v curl >/dev/null 2>&1 || break
    curl --noproxy '*' -s -o /dev/null -m 1 "http://127.0.0.1:$port/"
    [ $? -eq 7 ] || [ $i -ge 20 ] && break
    i=$((i + 1))
  done
fi
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$d/token"
chmod 0600 "$d/token"
echo "$port" > "$d/port"
echo "$workdir" > "$d/workdir"
rm -f "$d/pid"
session=
command -v setsid >/dev/null 2>&1 && session=setsid  # its own process group, to stop it whole
unset PASSWORD HASHED_PASSWORD PORT  # code-server would take them over its config and flags
case $(basename "$server") in
  openvscode-server*)
    echo openvscode-server > "$d/server"
    $session nohup "$server" --host 127.0.0.1 --port "$port" \
      --connection-token-file "$d/token" ${PREFIX:+--server-base-path "$PREFIX"} \
      --server-data-dir "$d/data" --telemetry-level off </dev/null >"$d/log" 2>&1 & ;;
  *)
    echo code-server > "$d/server"
    printf 'auth: password\nhashed-password: %s\n' "$(cat "$d/token")" > "$d/config.yaml"
    chmod 0600 "$d/config.yaml"
    $session nohup "$server" --config "$d/config.yaml" --bind-addr "127.0.0.1:$port" \
      --disable-telemetry --disable-update-check --user-data-dir "$d/data" \
      "$workdir" </dev/null >"$d/log" 2>&1 & ;;
esac
echo $! > "$d/pid"
i=0
while [ $i -lt 40 ]; do
  alive || break
  probe >/dev/null 2>&1 && break
  sleep 0.5; i=$((i + 1))
done
report
"""

_STATUS = r"""
[ -d "$d" ] || { echo "state=gone"; exit 0; }
report
"""

_STOP = r"""
[ -d "$d" ] || exit 0
if [ -s "$d/pid" ]; then
  pid=$(cat "$d/pid")
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt $((GRACE * 4)) ]; do sleep 0.25; i=$((i + 1)); done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
fi
rm -rf "$d"
"""


def _script(spec: SessionSpec, body: str, **values: str) -> str:
    head = {"SESSION": spec.session_id, "PREFIX": spec.base_path.rstrip("/"), **values}
    lines = "".join(f"{name}={shlex.quote(value)}\n" for name, value in head.items())
    return lines + _COMMON + body


def _runner(spec: SessionSpec, runner: CommandRunner | None) -> CommandRunner:
    if runner is None:
        raise Invalid("a VS Code session runs on a cluster or in the workspace", field="target")
    if not spec.session_id.replace("-", "").replace("_", "").isalnum():
        raise Invalid(f"session id {spec.session_id!r} is not a plain name", field="session_id")
    return runner


def _missing(options: VSCodeOptions, target: str) -> ProviderError:
    if options.command:
        what = f"there is no {options.command!r} on {target}: install code-server or "
        what += "openvscode-server there, or give the `command` option the path of one"
    else:
        what = (
            f"neither code-server nor openvscode-server is installed on {target}: install one "
            "(for example `npm install -g code-server`, or the openvscode-server release in "
            "/opt/openvscode-server) or give the `command` option the path of one"
        )
    return ProviderError(what, reason="vscode-not-installed")


class VSCode:
    """``vscode``: see the module docstring."""

    def _status(self, spec: SessionSpec, found: Mapping[str, str], target: str) -> SessionStatus:
        state, server = found.get("state", ""), found.get("server", "")
        data = {key: found[key] for key in ("port", "pid") if found.get(key, "").isdigit()}
        if server:
            data["server"] = server
        port, token, workdir = data.get("port", ""), found.get("token", ""), found.get("workdir")
        folder = f"folder={quote(workdir, safe='/')}" if workdir else ""
        if state == "running" and port and token:
            if server == "openvscode-server":
                endpoint = SessionEndpoint(
                    host="127.0.0.1", port=int(port), path=spec.base_path, websocket=True
                )
                open_path = f"?tkn={token}" + (f"&{folder}" if folder else "")
            else:
                endpoint = SessionEndpoint(
                    host="127.0.0.1",
                    port=int(port),
                    path="/",
                    websocket=True,
                    headers={"Cookie": f"{CODE_SERVER_COOKIE}={token}"},
                )
                open_path = f"?{folder}" if folder else ""
            return SessionStatus(
                state=SessionState.RUNNING, endpoint=endpoint, open_path=open_path, data=data
            )
        if state == "starting":
            return SessionStatus(
                state=SessionState.STARTING, message=f"{server or 'VS Code'} is starting", data=data
            )
        if state == "gone":
            return SessionStatus(state=SessionState.STOPPED, message="the VS Code server is gone")
        log = found.get("log", "")
        return SessionStatus(
            state=SessionState.FAILED,
            message=f"{server or 'the VS Code server'} on {target} exited"
            + (f": {log}" if log else ""),
            data=data,
        )

    async def start(
        self, spec: SessionSpec, *, runner: CommandRunner | None, log: ProgressLog
    ) -> SessionStatus:
        target = _runner(spec, runner)
        options = vscode_options(spec.options)
        candidates = [options.command] if options.command else list(SEARCHED)
        found = await run_report(
            target,
            _script(spec, _START, CANDIDATES=" ".join(candidates), DIRECTORY=options.directory),
            "start VS Code",
        )
        if found.get("state") == "missing":
            raise _missing(options, target.target)
        if found.get("state") == "nodir":
            raise Invalid(
                f"cannot make the directory {options.directory!r} on {target.target}",
                field="directory",
            )
        await log.log(f"{found.get('server') or 'VS Code'}: {found.get('state', '?')}")
        return self._status(spec, found, target.target)

    async def status(
        self, spec: SessionSpec, data: Mapping[str, str], *, runner: CommandRunner | None
    ) -> SessionStatus:
        target = _runner(spec, runner)
        found = await run_report(target, _script(spec, _STATUS), "check VS Code")
        return self._status(spec, found, target.target)

    async def stop(
        self, spec: SessionSpec, data: Mapping[str, str], *, runner: CommandRunner | None
    ) -> None:
        target = _runner(spec, runner)
        await run_report(
            target, _script(spec, _STOP, GRACE=str(STOP_GRACE_SECONDS)), "stop VS Code"
        )
