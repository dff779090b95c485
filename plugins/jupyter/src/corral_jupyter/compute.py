"""A Jupyter session on a compute node (``placement="compute"``): a batch job of the cluster's
scheduler runs the server on the node it lands on, for as long as the job runs.

Through the session's runner (the login host) Corral makes ``~/.corral/sessions/<id>/`` (0700)
and a token in it (0600), then submits the job through the cluster's
:class:`~corral_sdk.providers.scheduler.Scheduler` (partition, time limit, CPUs, memory, GPUs,
account, QoS and extra options from the session's options); the job's output is the
directory's ``log``. The job script, on the node, reads the token from the directory (the
user's home, shared with the nodes), picks a free port, writes ``port`` and ``node`` (the
node's name, then its addresses) and ``exec``\\ s Jupyter listening on all the node's
addresses, so the job is the server: when the scheduler ends or cancels it, the server and its
kernels go with it.

The server is reachable from the cluster's network, not only from the node: the token (never
on a command line, in the job script or in the scheduler's records) is what keeps other users
out, as on the login host. While the job waits the session is ``starting`` with the job's state
and the scheduler's reason (``PENDING (Resources)``); once the job runs, the login host probes
the node's name, then its addresses, with the token, and the first that answers is the
endpoint's host (Corral's forward reaches it through the login host). A job that ends is
``failed`` with its state and the end of its log; stop cancels the job, waits until it is gone
and removes the directory.
"""

from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import Mapping

from corral_jupyter.options import (
    JupyterOptions,
    parse_memory_mb,
    parse_scheduler_options,
    parse_time_limit,
)
from corral_sdk.errors import CorralError, Invalid, ProviderError
from corral_sdk.providers import ProgressLog
from corral_sdk.providers.scheduler import JobSpec, JobState, JobStatus, Scheduler
from corral_sdk.providers.session import (
    SessionEndpoint,
    SessionSpec,
    SessionState,
    SessionStatus,
    run_report,
)
from corral_sdk.transport import CommandRunner

__all__ = ["STOP_WAIT_SECONDS", "job_spec", "start", "status", "stop"]

STOP_WAIT_SECONDS = 45.0
"""How long stop waits for the cancelled job to end (the scheduler signals the server, which
shuts its kernels down, then kills what is left)."""
_STOP_POLL_SECONDS = 1.0
_WAITING = frozenset({JobState.PENDING, JobState.HELD, JobState.SUSPENDED})

_COMMON = r"""
d="$HOME/.corral/sessions/$SESSION"
probe() {  # $1: a host; the server's status API answers there with the token
  url="http://$1:$(cat "$d/port")${BASE}api/status"
  if command -v curl >/dev/null 2>&1; then
    curl --noproxy '*' -fsS --connect-timeout 2 -m 4 -o /dev/null \
      -H "Authorization: token $(cat "$d/token")" "$url"
  else
    python3 - "$url" "$(cat "$d/token")" <<'PY'
import sys, urllib.request
request = urllib.request.Request(sys.argv[1], headers={"Authorization": "token " + sys.argv[2]})
urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=4)
PY
  fi
}
"""

_PREPARE = r"""
umask 077
mkdir -p "$d"
[ -s "$d/job" ] && echo "job=$(cat "$d/job")"
exit 0
"""

_FRESH = r"""
umask 077
mkdir -p "$d"
rm -rf "$d/job" "$d/node" "$d/host" "$d/port" "$d/log" "$d/runtime"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$d/token"
chmod 0600 "$d/token"
echo "directory=$d"
"""

_RECORD = r"""
printf '%s\n' "$JOB" > "$d/job"
"""

_READ_JOB = r"""
[ -d "$d" ] || { echo "state=gone"; exit 0; }
[ -s "$d/job" ] && echo "job=$(cat "$d/job")"
exit 0
"""

_RUNNING = r"""
[ -d "$d" ] || { echo "state=gone"; exit 0; }
[ -s "$d/port" ] && [ -s "$d/node" ] || { echo "state=starting"; exit 0; }
echo "port=$(cat "$d/port")"
echo "node=$(head -n 1 "$d/node")"
found=
if [ -s "$d/host" ] && probe "$(cat "$d/host")" >/dev/null 2>&1; then
  found=$(cat "$d/host")
else
  for host in $(cat "$d/node"); do
    if probe "$host" >/dev/null 2>&1; then found=$host; echo "$host" > "$d/host"; break; fi
  done
fi
if [ -n "$found" ]; then
  echo "state=running"; echo "host=$found"; echo "token=$(cat "$d/token")"
else
  echo "state=starting"
fi
"""

_ENDED = r"""
[ -d "$d" ] || { echo "state=gone"; exit 0; }
echo "state=ended"
[ -s "$d/node" ] && echo "node=$(head -n 1 "$d/node")"
[ -e "$d/log" ] || exit 0
echo "log:"; tail -n 15 "$d/log"
"""

_REMOVE = r"""
rm -rf "$d"
"""

JOB_SCRIPT = r"""#!/bin/sh
# Corral: the Jupyter server of a session, on this node, for as long as this job runs.
d="$HOME/.corral/sessions/$SESSION"
say() { echo "corral: $*" >&2; }
[ -s "$d/token" ] || {
  say "no $d/token on $(hostname): the session's directory is not on this node (compute"
  say "placement needs the home directory shared between the login host and the nodes)"
  exit 1
}
jupyter=$COMMAND
case $jupyter in
  */*) [ -x "$jupyter" ] || { say "there is no $jupyter on $(hostname)"; exit 1; } ;;
  *) command -v "$jupyter" >/dev/null 2>&1 || {
       say "there is no $jupyter on the PATH of $(hostname): install JupyterLab there or give"
       say "the command option the path of its jupyter"; exit 1; } ;;
esac
workdir=$DIRECTORY
case $workdir in "~") workdir=$HOME ;; "~/"*) workdir="$HOME/${workdir#"~/"}" ;; esac
[ -d "$workdir" ] || mkdir -p "$workdir" || { say "cannot make the directory $workdir"; exit 1; }
if command -v python3 >/dev/null 2>&1; then
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("", 0))
print(s.getsockname()[1])')
else
  port=$(( $(od -An -N2 -tu2 /dev/urandom) % 30000 + 20000 ))
fi
echo "$port" > "$d/port"
{ hostname; hostname -I 2>/dev/null || hostname -i 2>/dev/null; } | tr ' ' '\n' \
  | grep -v -e '^$' -e '^127\.' -e ':' > "$d/node.tmp"
mv -f "$d/node.tmp" "$d/node"
JUPYTER_TOKEN=$(cat "$d/token")
JUPYTER_RUNTIME_DIR="$d/runtime"
export JUPYTER_TOKEN JUPYTER_RUNTIME_DIR
root=
[ "$(id -u)" = 0 ] && root=--allow-root
say "Jupyter on $(hostname), port $port"
# the job is the server: when the scheduler ends the job, the server and its kernels end too
exec "$jupyter" $APP $root --no-browser --ServerApp.ip=0.0.0.0 \
  --ServerApp.port="$port" --ServerApp.port_retries=0 --ServerApp.base_url="$BASE" \
  --ServerApp.allow_origin='*' --ServerApp.allow_remote_access=True \
  --ServerApp.root_dir="$workdir" </dev/null
"""

_FIELDS = {
    "partition": "partition",
    "account": "account",
    "qos": "qos",
    "cpus_per_task": "cpus",
    "gpus_per_node": "gpus",
    "memory_mb": "memory",
    "time_limit_seconds": "time_limit",
    "flags": "scheduler_options",
}
"""A job field the scheduler refuses → the session option it came from."""


def _head(spec: SessionSpec, **values: str) -> str:
    head = {"SESSION": spec.session_id, "BASE": spec.base_path, **values}
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in head.items())


def _script(spec: SessionSpec, body: str, **values: str) -> str:
    return _head(spec, **values) + _COMMON + body


def job_spec(spec: SessionSpec, options: JupyterOptions, directory: str) -> JobSpec:
    """The batch job that runs the session's server; ``directory`` is the session's directory
    as an absolute path (its ``log`` is the job's output)."""
    values = _head(
        spec,
        COMMAND=options.command,
        DIRECTORY=options.directory,
        APP="lab" if options.interface == "lab" else "notebook",
    )
    first, _, rest = JOB_SCRIPT.partition("\n")
    return JobSpec(
        script=f"{first}\n{values}{rest}",
        name=f"corral-jupyter-{spec.name}"[:120],
        partition=options.partition or None,
        account=options.account or None,
        qos=options.qos or None,
        nodes=1,
        ntasks=1,
        cpus_per_task=options.cpus,
        gpus_per_node=options.gpus or None,
        memory_mb=parse_memory_mb(options.memory) if options.memory else None,
        time_limit_seconds=parse_time_limit(options.time_limit) if options.time_limit else None,
        working_directory=directory,
        output_path=f"{directory}/log",
        flags=parse_scheduler_options(options.scheduler_options),
    )


def _job_words(job: JobStatus) -> str:
    words = job.native_state or job.state.value
    return f"{words} ({job.reason})" if job.reason and job.reason != "None" else words


async def start(
    spec: SessionSpec,
    options: JupyterOptions,
    runner: CommandRunner,
    scheduler: Scheduler,
    log: ProgressLog,
) -> SessionStatus:
    prepared = await run_report(runner, _script(spec, _PREPARE), "prepare Jupyter's job")
    job_id = prepared.get("job", "")
    if job_id:
        job = (await scheduler.status([job_id]))[job_id]
        if not job.state.terminal and job.state is not JobState.UNKNOWN:
            await log.log(f"Jupyter's job {job_id} was submitted before: {_job_words(job)}")
            return await status(spec, options, {"job": job_id}, runner, scheduler)
    fresh = await run_report(runner, _script(spec, _FRESH), "prepare Jupyter's job")
    directory = fresh.get("directory", "")
    if not directory.startswith("/"):
        raise ProviderError(f"could not make the session's directory on {runner.target}")
    try:
        submitted = await scheduler.submit(job_spec(spec, options, directory))
    except Invalid as exc:  # name the session's option, not the job's field
        field = _FIELDS.get(exc.field or "", "options")
        raise Invalid(f"{field}: {exc.message}", field=field) from None
    await run_report(runner, _script(spec, _RECORD, JOB=submitted.job_id), "record Jupyter's job")
    await log.log(f"submitted Jupyter's job {submitted.job_id} on {runner.target}")
    try:
        return await status(spec, options, {"job": submitted.job_id}, runner, scheduler)
    except CorralError as exc:  # the job is submitted: keep its id, look again later
        return SessionStatus(
            state=SessionState.STARTING,
            message=f"submitted job {submitted.job_id} ({exc.message})",
            data={"placement": "compute", "job": submitted.job_id},
        )


async def _job_id(spec: SessionSpec, data: Mapping[str, str], runner: CommandRunner) -> str | None:
    """The session's job: from ``data``, else from its directory (a start interrupted after
    the submission); ``None`` when the directory is gone."""
    if data.get("job"):
        return data["job"]
    found = await run_report(runner, _script(spec, _READ_JOB), "find Jupyter's job")
    if found.get("state") == "gone":
        return None
    return found.get("job", "")


async def status(
    spec: SessionSpec,
    options: JupyterOptions,
    data: Mapping[str, str],
    runner: CommandRunner,
    scheduler: Scheduler,
) -> SessionStatus:
    job_id = await _job_id(spec, data, runner)
    if job_id is None:
        return SessionStatus(state=SessionState.STOPPED, message="the Jupyter session is gone")
    if not job_id:
        return SessionStatus(
            state=SessionState.FAILED, message="Jupyter's job was never submitted", data={}
        )
    job = (await scheduler.status([job_id]))[job_id]
    kept = {"placement": "compute", "job": job_id}
    if job.state in _WAITING:
        return SessionStatus(
            state=SessionState.STARTING,
            message=f"waiting for the scheduler: job {job_id} is {_job_words(job)}",
            data=kept,
        )
    if job.state is JobState.RUNNING:
        found = await run_report(runner, _script(spec, _RUNNING), "check Jupyter")
        if found.get("state") == "gone":
            return SessionStatus(state=SessionState.STOPPED, message="the Jupyter session is gone")
        node = found.get("node") or ",".join(job.nodes) or "its node"
        data_now = {**kept, **{k: found[k] for k in ("node", "port") if found.get(k)}}
        port = found.get("port", "")
        if found.get("state") == "running" and port.isdigit() and found.get("token"):
            return SessionStatus(
                state=SessionState.RUNNING,
                endpoint=SessionEndpoint(
                    host=found["host"],
                    port=int(port),
                    path=spec.base_path,
                    websocket=True,
                    headers={"Authorization": f"token {found['token']}"},
                ),
                open_path="lab" if options.interface == "lab" else "tree",
                data=data_now,
            )
        return SessionStatus(
            state=SessionState.STARTING,
            message=f"job {job_id} runs on {node}; Jupyter is starting",
            data=data_now,
        )
    # ended, ending (completing) or no longer known to the scheduler
    found = await run_report(runner, _script(spec, _ENDED), "read Jupyter's log")
    if found.get("state") == "gone":
        return SessionStatus(state=SessionState.STOPPED, message="the Jupyter session is gone")
    how = (
        "is no longer known to the scheduler"
        if job.state is JobState.UNKNOWN
        else f"ended: {_job_words(job)}"
        + (f", exit code {job.exit_code}" if job.exit_code not in (None, 0) else "")
    )
    tail = found.get("log", "")
    if tail:
        output = f"; its output ends with:\n{tail}"
    elif "log" in found:
        output = "; it wrote no output"
    elif job.state is JobState.FAILED:
        output = "; it left no log (is the home directory shared with the nodes?)"
    else:
        output = ""
    where = f" on {found['node']}" if found.get("node") else ""
    return SessionStatus(
        state=SessionState.FAILED, message=f"Jupyter's job {job_id}{where} {how}{output}", data=kept
    )


async def stop(
    spec: SessionSpec, data: Mapping[str, str], runner: CommandRunner, scheduler: Scheduler
) -> None:
    job_id = await _job_id(spec, data, runner)
    if job_id:
        await scheduler.cancel([job_id])
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while time.monotonic() < deadline:
            try:
                job = (await scheduler.status([job_id]))[job_id]
            except CorralError:
                break
            if job.state.terminal or job.state is JobState.UNKNOWN:
                break
            await asyncio.sleep(_STOP_POLL_SECONDS)
    await run_report(runner, _script(spec, _REMOVE), "remove Jupyter's directory")
