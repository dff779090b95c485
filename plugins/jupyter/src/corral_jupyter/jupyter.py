"""The ``jupyter`` session type: a Jupyter server for one user, on the target their runner
reaches (``placement="login"``, the default, described here) or on a compute node through the
cluster's scheduler (``placement="compute"``: :mod:`corral_jupyter.compute`), served by Corral's
proxy under the session's base path.

Everything lives in ``~/.corral/sessions/<session id>/`` on the target (mode 0700): the token
(0600; it never leaves the target but in the proxy's request headers), the port, the pid, the
log. The server listens on 127.0.0.1 only and demands the token, so other users of a shared
login host cannot use it; ``base_url`` is the session's base path, so its pages and WebSockets
work through the proxy unchanged.

Through the proxy, requests reach the server with the platform's public ``Host`` (and the
browser's ``Origin``): the server takes any (``allow_remote_access``, ``allow_origin='*'``),
since the token, not the host name, is what keeps others out. Token-authenticated requests skip
Jupyter's XSRF check, so the browser's cookies need no rewriting.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from corral_jupyter import compute
from corral_jupyter.options import JupyterOptions
from corral_sdk.errors import Invalid, ProviderError
from corral_sdk.providers import ProgressLog
from corral_sdk.providers.scheduler import Scheduler
from corral_sdk.providers.session import (
    SessionEndpoint,
    SessionSpec,
    SessionState,
    SessionStatus,
    run_report,
)
from corral_sdk.transport import CommandRunner

__all__ = ["Jupyter"]

STOP_GRACE_SECONDS = 10
"""How long the server has to shut its kernels down before it is killed."""

_COMMON = r"""
d="$HOME/.corral/sessions/$SESSION"
alive() { [ -s "$d/pid" ] && kill -0 "$(cat "$d/pid")" 2>/dev/null; }
probe() {  # the server's status API answers with the token
  url="http://127.0.0.1:$(cat "$d/port")${BASE}api/status"
  if command -v curl >/dev/null 2>&1; then
    curl --noproxy '*' -fsS -m 3 -o /dev/null -H "Authorization: token $(cat "$d/token")" "$url"
  else
    python3 - "$url" "$(cat "$d/token")" <<'PY'
import sys, urllib.request
request = urllib.request.Request(sys.argv[1], headers={"Authorization": "token " + sys.argv[2]})
urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=3)
PY
  fi
}
report() {
  echo "port=$(cat "$d/port" 2>/dev/null)"; echo "pid=$(cat "$d/pid" 2>/dev/null)"
  if ! alive; then
    echo "state=failed"; echo "log:"; tail -n 15 "$d/log" 2>/dev/null
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
if alive; then report; exit 0; fi
jupyter=$COMMAND
case $jupyter in
  */*) [ -x "$jupyter" ] || { echo "state=missing"; exit 0; } ;;
  *) command -v "$jupyter" >/dev/null 2>&1 || { echo "state=missing"; exit 0; } ;;
esac
workdir=$DIRECTORY
case $workdir in "~") workdir=$HOME ;; "~/"*) workdir="$HOME/${workdir#"~/"}" ;; esac
[ -d "$workdir" ] || mkdir -p "$workdir" || { echo "state=nodir"; exit 0; }
if command -v python3 >/dev/null 2>&1; then
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
else
  port=$(( $(od -An -N2 -tu2 /dev/urandom) % 30000 + 20000 ))
fi
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$d/token"
chmod 0600 "$d/token"
echo "$port" > "$d/port"
JUPYTER_TOKEN=$(cat "$d/token")
export JUPYTER_TOKEN
root=
[ "$(id -u)" = 0 ] && root=--allow-root  # a workspace of a Corral running as root
session=
command -v setsid >/dev/null 2>&1 && session=setsid  # its own process group, to stop it whole
# the token goes in the environment, not the command line other users of the host can read
$session nohup "$jupyter" $APP $root --no-browser --ServerApp.ip=127.0.0.1 \
  --ServerApp.port="$port" --ServerApp.port_retries=0 --ServerApp.base_url="$BASE" \
  --ServerApp.allow_origin='*' --ServerApp.allow_remote_access=True \
  --ServerApp.root_dir="$workdir" </dev/null >"$d/log" 2>&1 &
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
    head = {"SESSION": spec.session_id, "BASE": spec.base_path, **values}
    lines = "".join(f"{name}={shlex.quote(value)}\n" for name, value in head.items())
    return lines + _COMMON + body


def _runner(spec: SessionSpec, runner: CommandRunner | None) -> CommandRunner:
    if runner is None:
        raise Invalid("a Jupyter session runs on a cluster or in the workspace", field="target")
    if not spec.session_id.replace("-", "").replace("_", "").isalnum():
        raise Invalid(f"session id {spec.session_id!r} is not a plain name", field="session_id")
    return runner


def _scheduler(spec: SessionSpec, scheduler: Scheduler | None) -> Scheduler:
    if scheduler is None:
        raise Invalid(
            "placement 'compute' starts Jupyter through a cluster's scheduler: choose a cluster "
            f"as the target (not {spec.target.kind.value}), or placement 'login'",
            field="placement",
        )
    return scheduler


def _options(spec: SessionSpec) -> JupyterOptions:
    options = spec.options if spec.options is not None else JupyterOptions()
    if not isinstance(options, JupyterOptions):
        raise Invalid("options are not the jupyter type's", field="options")
    return options


class Jupyter:
    """``jupyter``: see the module docstring. A
    :class:`~corral_sdk.providers.session.ScheduledSessionType`: the kernel passes the
    cluster's scheduler, which ``placement="compute"`` submits the server's job to."""

    def _status(self, spec: SessionSpec, found: Mapping[str, str], target: str) -> SessionStatus:
        state = found.get("state", "")
        data = {key: found[key] for key in ("port", "pid") if found.get(key, "").isdigit()}
        port = data.get("port", "")
        if state == "running" and port.isdigit() and found.get("token"):
            interface = _options(spec).interface
            return SessionStatus(
                state=SessionState.RUNNING,
                endpoint=SessionEndpoint(
                    host="127.0.0.1",
                    port=int(port),
                    path=spec.base_path,
                    websocket=True,
                    headers={"Authorization": f"token {found['token']}"},
                ),
                open_path="lab" if interface == "lab" else "tree",
                data=data,
            )
        if state == "starting":
            return SessionStatus(
                state=SessionState.STARTING, message="Jupyter is starting", data=data
            )
        if state == "gone":
            return SessionStatus(state=SessionState.STOPPED, message="the Jupyter server is gone")
        log = found.get("log", "")
        return SessionStatus(
            state=SessionState.FAILED,
            message=f"the Jupyter server on {target} exited" + (f": {log}" if log else ""),
            data=data,
        )

    async def start(
        self,
        spec: SessionSpec,
        *,
        runner: CommandRunner | None,
        log: ProgressLog,
        scheduler: Scheduler | None = None,
    ) -> SessionStatus:
        target = _runner(spec, runner)
        options = _options(spec)
        if options.placement == "compute":
            return await compute.start(spec, options, target, _scheduler(spec, scheduler), log)
        found = await run_report(
            target,
            _script(
                spec,
                _START,
                COMMAND=options.command,
                DIRECTORY=options.directory,
                APP="lab" if options.interface == "lab" else "notebook",
            ),
            "start Jupyter",
        )
        if found.get("state") == "missing":
            raise ProviderError(
                f"there is no {options.command!r} on {target.target}: install JupyterLab there "
                "(pip install jupyterlab, or a conda environment) or give the `command` option "
                "the path of its jupyter",
                reason="jupyter-not-installed",
            )
        if found.get("state") == "nodir":
            raise Invalid(f"cannot make the directory {options.directory!r}", field="directory")
        app = "jupyter-lab" if options.interface == "lab" else "jupyter-notebook"
        if found.get("state") == "failed" and f"`{app}` not found" in found.get("log", ""):
            package = "jupyterlab" if options.interface == "lab" else "notebook (7 or later)"
            raise ProviderError(
                f"{options.command!r} on {target.target} has no {app}: install {package} in "
                "the same environment, or give the `command` option a jupyter that has it",
                reason="jupyter-not-installed",
            )
        await log.log(f"Jupyter {found.get('state', '?')} on port {found.get('port', '?')}")
        return self._status(spec, found, target.target)

    async def status(
        self,
        spec: SessionSpec,
        data: Mapping[str, str],
        *,
        runner: CommandRunner | None,
        scheduler: Scheduler | None = None,
    ) -> SessionStatus:
        target = _runner(spec, runner)
        options = _options(spec)
        if options.placement == "compute":
            return await compute.status(spec, options, data, target, _scheduler(spec, scheduler))
        found = await run_report(target, _script(spec, _STATUS), "check Jupyter")
        return self._status(spec, found, target.target)

    async def stop(
        self,
        spec: SessionSpec,
        data: Mapping[str, str],
        *,
        runner: CommandRunner | None,
        scheduler: Scheduler | None = None,
    ) -> None:
        target = _runner(spec, runner)
        if _options(spec).placement == "compute":
            await compute.stop(spec, data, target, _scheduler(spec, scheduler))
            return
        await run_report(
            target, _script(spec, _STOP, GRACE=str(STOP_GRACE_SECONDS)), "stop Jupyter"
        )
