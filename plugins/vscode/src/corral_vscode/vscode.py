"""The ``vscode`` session type: VS Code in the browser, served by Corral's proxy under the
session's base path.

The target's own server runs it: ``openvscode-server`` (started with a connection token kept on
the target, 0600; the proxy sends it as the ``vscode-tkn`` cookie), else ``code-server``
(started with ``--auth none``: it has no token Corral can hand over, so it is protected by
listening on 127.0.0.1 only, which keeps it from other machines but not from other users of a
shared login host: prefer openvscode-server there). A target with neither fails at once, saying
what to install. Files live in ``~/.corral/sessions/<session id>/`` on the target (0700).
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
from corral_vscode.options import VSCodeOptions

__all__ = ["VSCode"]

STOP_GRACE_SECONDS = 5
SEARCHED = (
    "code-server",
    "openvscode-server",
    "$HOME/.local/bin/code-server",
    "/usr/lib/code-server/bin/code-server",
    "/opt/openvscode-server/bin/openvscode-server",
)

_COMMON = r"""
d="$HOME/.corral/sessions/$SESSION"
alive() { [ -s "$d/pid" ] && kill -0 "$(cat "$d/pid")" 2>/dev/null; }
probe() {
  url="http://127.0.0.1:$(cat "$d/port")/"
  if command -v curl >/dev/null 2>&1; then
    curl --noproxy '*' -s -o /dev/null -m 3 "$url"
  else
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=3)' "$url"
  fi
}
report() {
  if ! alive; then
    echo "state=failed"; echo "log:"; tail -n 15 "$d/log" 2>/dev/null
  elif probe >/dev/null 2>&1; then
    echo "state=running"; echo "port=$(cat "$d/port")"; echo "server=$(cat "$d/server")"
    if [ -s "$d/token" ]; then echo "token=$(cat "$d/token")"; fi
  else
    echo "state=starting"; echo "port=$(cat "$d/port")"; echo "server=$(cat "$d/server")"
  fi
}
"""

_START = r"""
umask 077
mkdir -p "$d"
if alive; then report; exit 0; fi
server=
for candidate in $CANDIDATES; do
  candidate=$(eval "echo $candidate")
  if command -v "$candidate" >/dev/null 2>&1; then server=$(command -v "$candidate"); break; fi
done
[ -n "$server" ] || { echo "state=missing"; exit 0; }
workdir=$DIRECTORY
case $workdir in "~") workdir=$HOME ;; "~/"*) workdir="$HOME/${workdir#"~/"}" ;; esac
[ -d "$workdir" ] || mkdir -p "$workdir" || { echo "state=nodir"; exit 0; }
if command -v python3 >/dev/null 2>&1; then
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
else
  port=$(( $(od -An -N2 -tu2 /dev/urandom) % 30000 + 20000 ))
fi
echo "$port" > "$d/port"
echo "$workdir" > "$d/workdir"
case $(basename "$server") in
  openvscode-server*)
    echo openvscode-server > "$d/server"
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$d/token"
    chmod 0600 "$d/token"
    setsid nohup "$server" --host 127.0.0.1 --port "$port" \
      --connection-token-file "$d/token" --server-data-dir "$d/data" \
      --telemetry-level off </dev/null >"$d/log" 2>&1 & ;;
  *)
    echo code-server > "$d/server"
    setsid nohup "$server" --bind-addr "127.0.0.1:$port" --auth none --disable-telemetry \
      --disable-update-check --user-data-dir "$d/data" "$workdir" </dev/null >"$d/log" 2>&1 & ;;
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
echo "workdir=$(cat "$d/workdir" 2>/dev/null)"
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
    lines = "".join(
        f"{name}={shlex.quote(value)}\n"
        for name, value in {"SESSION": spec.session_id, **values}.items()
    )
    return lines + _COMMON + body


def _runner(spec: SessionSpec, runner: CommandRunner | None) -> CommandRunner:
    if runner is None:
        raise Invalid("a VS Code session runs on a cluster or in the workspace", field="target")
    if not spec.session_id.replace("-", "").replace("_", "").isalnum():
        raise Invalid(f"session id {spec.session_id!r} is not a plain name", field="session_id")
    return runner


def _options(spec: SessionSpec) -> VSCodeOptions:
    options = spec.options if spec.options is not None else VSCodeOptions()
    if not isinstance(options, VSCodeOptions):
        raise Invalid("options are not the vscode type's", field="options")
    return options


class VSCode:
    """``vscode``: see the module docstring."""

    def _status(self, found: Mapping[str, str], target: str, directory: str) -> SessionStatus:
        state, port = found.get("state", ""), found.get("port", "")
        data = {"port": port, "server": found.get("server", "")} if port.isdigit() else {}
        if state == "running" and port.isdigit():
            token = found.get("token", "")
            return SessionStatus(
                state=SessionState.RUNNING,
                endpoint=SessionEndpoint(
                    host="127.0.0.1",
                    port=int(port),
                    path="/",
                    websocket=True,
                    headers={"Cookie": f"vscode-tkn={token}"} if token else {},
                ),
                open_path=f"?folder={quote(directory, safe='/')}" if directory else "",
                data=data,
            )
        if state == "starting":
            return SessionStatus(
                state=SessionState.STARTING, message="VS Code is starting", data=data
            )
        if state == "gone":
            return SessionStatus(state=SessionState.STOPPED, message="the VS Code server is gone")
        log = found.get("log", "")
        return SessionStatus(
            state=SessionState.FAILED,
            message=f"the VS Code server on {target} exited" + (f": {log}" if log else ""),
            data=data,
        )

    async def start(
        self, spec: SessionSpec, *, runner: CommandRunner | None, log: ProgressLog
    ) -> SessionStatus:
        target = _runner(spec, runner)
        options = _options(spec)
        candidates = [options.command] if options.command else list(SEARCHED)
        found = await run_report(
            target,
            _script(spec, _START, CANDIDATES=" ".join(candidates), DIRECTORY=options.directory),
            "start VS Code",
        )
        if found.get("state") == "missing":
            wanted = (
                f"{options.command!r} is not"
                if options.command
                else "neither code-server nor openvscode-server is"
            )
            raise ProviderError(
                f"{wanted} installed on {target.target}: install one there (code-server "
                "from its release or `npm install -g code-server`, or an openvscode-server "
                "release in /opt/openvscode-server), or give the `command` option its path",
                reason="vscode-not-installed",
            )
        if found.get("state") == "nodir":
            raise Invalid(f"cannot make the directory {options.directory!r}", field="directory")
        await log.log(f"{found.get('server', 'VS Code')} {found.get('state', '?')}")
        status = await self.status(spec, {}, runner=target)
        return status

    async def status(
        self, spec: SessionSpec, data: Mapping[str, str], *, runner: CommandRunner | None
    ) -> SessionStatus:
        target = _runner(spec, runner)
        found = await run_report(target, _script(spec, _STATUS), "check VS Code")
        return self._status(found, target.target, found.get("workdir", ""))

    async def stop(
        self, spec: SessionSpec, data: Mapping[str, str], *, runner: CommandRunner | None
    ) -> None:
        target = _runner(spec, runner)
        await run_report(
            target, _script(spec, _STOP, GRACE=str(STOP_GRACE_SECONDS)), "stop VS Code"
        )
