"""``scheduler-agent`` and ``wait-for-agent`` (spec §8.4): an SSH server on a compute node,
got through the cluster's scheduler, that later steps reach with ``jumpNodeHost``.

``scheduler-agent`` runs on the cluster its step's ``ssh`` names. It writes the agent's
directory, ``~/.corral/agents/<agentId>/`` (the user's platform public key as its only
``authorized_keys``, the job script), submits the job through the cluster's scheduler plugin
(``scheduler-flags`` as options, ``script-headers`` after the ``#!`` line), and, unless ``wait:
false``, waits for it. On the node the job makes a host key, starts ``sshd`` as the user on a
free port and writes ``<address> <port>`` to ``ready``; the action reads it with the host key,
makes Corral trust that key for ``<address>:<port>`` behind this cluster (nothing is trusted on
first use), and outputs ``agentId``, ``schedulerJobId``, ``remoteHost`` and ``sshPort``.
``wait-for-agent`` does the waiting for an agent started with ``wait: false``. Both fail as
soon as the job ends (cancelled, failed, time limit) before the agent is ready, with the end of
its output.

The job lives as long as the run: when the run ends (or the step fails), Corral cancels it and
removes the directory (:class:`~corral_sdk.providers.action.ReleasingAction`). The home
directory is assumed shared between the login host and the nodes, as on every HPC cluster. A
Corral worker that dies while the action waits: the action runs again under the same
``agentId`` and finds the job it submitted.

``~/.corral/bin/pw`` (on ``PATH`` in every step) gives steps ``pw agent open-port``, which
prints a TCP port nothing listens on.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import time
from typing import Literal

import msgspec

from corral_core.workflows.executors import shell_path
from corral_sdk.errors import Invalid, ProviderError
from corral_sdk.providers.action import ActionContext, ActionResult
from corral_sdk.providers.scheduler import JobSpec, Scheduler
from corral_sdk.transport import CommandRunner

__all__ = ["SchedulerAgent", "SchedulerAgentInputs", "WaitForAgent", "WaitForAgentInputs"]

AGENTS = "~/.corral/agents"
AGENT_ID = re.compile(r"agent-[A-Za-z0-9-]{1,120}")
POLL_SECONDS = 1.0
STATUS_EVERY = 5.0
"""How often the scheduler is asked about the job while waiting (the ready file is read
every :data:`POLL_SECONDS`)."""

PW = r"""#!/bin/bash
# pw: the platform CLI's commands that workflow steps use on a cluster (written by Corral)
case "$1 $2" in
"agent open-port")
  if command -v python3 >/dev/null 2>&1; then
    exec python3 -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])'
  fi
  for _ in $(seq 1 100); do
    port=$(( $(od -An -N2 -tu2 /dev/urandom) % 30000 + 20000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; exit 0; fi
  done
  echo "pw: no free port found" >&2; exit 1;;
*)  # anything else is the platform's own CLI, when the cluster has it
  here=$(cd "$(dirname "$0")" && pwd)
  IFS=:
  for d in $PATH; do
    [ "$d" = "$here" ] || [ ! -x "$d/pw" ] || exec "$d/pw" "$@"
  done
  echo "pw: $*: only 'pw agent open-port' is available here" >&2
  exit 2;;
esac
"""

AGENT = r"""#!/bin/bash
# A Corral agent: an sshd for a workflow's steps on this node, for as long as this job runs.
dir=$1
cd "$dir" || exit 1
rm -f ready
[ -s host_key ] || ssh-keygen -q -t ed25519 -N '' -f host_key || exit 1
sshd=
for candidate in /usr/sbin/sshd /usr/local/sbin/sshd /sbin/sshd "$(command -v sshd)"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then sshd=$candidate; break; fi
done
[ -n "$sshd" ] || { echo "corral agent: no sshd on $(hostname)" >&2; exit 1; }
address=$(hostname -I 2>/dev/null | awk '{print $1}')
[ -n "$address" ] || address=$(hostname)
for _ in 1 2 3 4 5 6 7 8 9 10; do
  port=$("$HOME/.corral/bin/pw" agent open-port) || exit 1
  cat > sshd_config <<EOF
Port $port
ListenAddress 0.0.0.0
HostKey $dir/host_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
MaxSessions 64
MaxStartups 100:30:200
Subsystem sftp internal-sftp
EOF
  "$sshd" -D -e -f "$dir/sshd_config" &
  pid=$!
  sleep 1
  if kill -0 "$pid" 2>/dev/null; then
    trap 'kill "$pid" 2>/dev/null' TERM INT EXIT
    echo "corral agent: sshd on $address:$port"
    printf '%s %s\n' "$address" "$port" > ready.tmp && mv ready.tmp ready
    wait "$pid"
    exit $?
  fi
done
echo "corral agent: sshd did not start on $(hostname)" >&2
exit 1
"""


class SchedulerAgentInputs(
    msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="kebab"
):
    """``with:`` of ``parallelworks/scheduler-agent``."""

    wait: bool = True
    """Wait for the agent's sshd (``false``: return with ``agentId`` once the job is queued,
    and wait later with ``wait-for-agent``)."""
    scheduler_type: Literal["slurm", "pbs"] = "slurm"
    """The cluster's scheduler (the job goes through the scheduler plugin of the cluster the
    step runs on)."""
    scheduler_flags: dict[str, str | int | float | bool | None] = msgspec.field(
        default_factory=dict
    )
    """Scheduler options by long name (``partition: debug``, ``time: '01:00:00'``); ``true``
    or ``null`` is an option without a value, ``false`` leaves it out."""
    script_headers: str = ""
    """Lines put at the top of the submitted script (``#SBATCH ...``, ``#PBS ...``)."""


class WaitForAgentInputs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    """``with:`` of ``parallelworks/wait-for-agent``."""

    agent_id: str
    """``agentId`` from ``scheduler-agent``'s outputs."""
    scheduler_job_id: str = ""
    """The agent's job, to fail early when it ends first (by default the one it recorded)."""


def _agent_dir(agent_id: str) -> str:
    return shell_path(f"{AGENTS}/{agent_id}")


def _target(ctx: ActionContext, action: str) -> tuple[CommandRunner, Scheduler]:
    if ctx.runner is None or ctx.scheduler is None:
        raise Invalid(
            f"{action} runs on a cluster: give its step (or job) an `ssh` with the cluster's "
            "remoteHost",
            field="ssh",
        )
    return ctx.runner, ctx.scheduler


async def _run(runner: CommandRunner, script: str, what: str) -> str:
    result = await runner.run("sh -s", input=script)
    if result.exit_status != 0:
        raise ProviderError(
            f"could not {what} on {runner.target}: "
            f"{result.stderr.strip() or f'exit status {result.exit_status}'}"
        )
    return result.stdout


class SchedulerAgent:
    """``parallelworks/scheduler-agent``: see the module docstring."""

    async def validate(self, inputs: SchedulerAgentInputs) -> None:
        for name in inputs.scheduler_flags:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name):
                raise Invalid(
                    f"with.scheduler-flags: {name!r} is not an option name",
                    field="with.scheduler-flags",
                )
        if "\0" in inputs.script_headers:
            raise Invalid("with.script-headers: a NUL byte", field="with.script-headers")

    async def run(self, inputs: SchedulerAgentInputs, ctx: ActionContext) -> ActionResult:
        runner, scheduler = _target(ctx, "scheduler-agent")
        agent_id = f"agent-{ctx.attempt_key}"[:126]
        directory = _agent_dir(agent_id)
        key = ctx.ssh_public_key.strip()
        prepared = await _run(
            runner,
            f'set -e\numask 077\nd={directory}\nmkdir -p "$d" "$HOME/.corral/bin"\n'
            f"printf '%s\\n' {shlex.quote(key)} > \"$d/authorized_keys\"\n"
            f"cat > \"$d/agent.sh\" <<'CORRAL_AGENT'\n{AGENT}CORRAL_AGENT\n"
            f"cat > \"$HOME/.corral/bin/pw.tmp\" <<'CORRAL_PW'\n{PW}CORRAL_PW\n"
            'chmod 0755 "$HOME/.corral/bin/pw.tmp" "$d/agent.sh"\n'
            'mv -f "$HOME/.corral/bin/pw.tmp" "$HOME/.corral/bin/pw"\n'
            'cd "$d" && pwd && cat job 2>/dev/null || true\n',
            "prepare the agent's directory",
        )
        where, _, job_id = prepared.strip().partition("\n")
        job_id = job_id.strip()
        if job_id:
            state = (await scheduler.status([job_id]))[job_id].state
            if state.terminal:
                job_id = ""  # the first try's job ended: a new one
            else:
                await ctx.log(f"the agent's job {job_id} was submitted before; waiting for it")
        if not job_id:
            flags = {
                name: None if value is True or value is None else str(value)
                for name, value in inputs.scheduler_flags.items()
                if value is not False
            }
            submitted = await scheduler.submit(
                JobSpec(
                    script=f"#!/bin/bash\nexec bash {shlex.quote(where)}/agent.sh "
                    f"{shlex.quote(where)}\n",
                    name="corral-agent",
                    working_directory=where,
                    output_path=f"{where}/agent.out",
                    flags=flags,
                    script_headers=inputs.script_headers,
                )
            )
            job_id = submitted.job_id
            await _run(
                runner,
                f"d={directory}\nprintf '%s\\n' {shlex.quote(job_id)} > \"$d/job\"\n",
                "record the agent's job",
            )
            await ctx.log(f"submitted the agent's job {job_id}")
        await ctx.set_output("agentId", agent_id)
        await ctx.set_output("schedulerJobId", job_id)
        outputs = {"agentId": agent_id, "schedulerJobId": job_id}
        if inputs.wait:
            outputs.update(await wait_for_agent(ctx, runner, scheduler, agent_id, job_id))
        return ActionResult(outputs=outputs, summary=f"agent {agent_id} (job {job_id})")

    async def release(self, outputs: dict[str, str], ctx: ActionContext) -> None:
        """Cancel the agent's job and remove its directory."""
        runner, scheduler = _target(ctx, "scheduler-agent")
        job_id = outputs.get("schedulerJobId", "")
        if job_id:
            await scheduler.cancel([job_id])
        agent_id = outputs.get("agentId", "")
        if AGENT_ID.fullmatch(agent_id):
            await _run(runner, f"rm -rf {_agent_dir(agent_id)}\n", "remove the agent")
        await ctx.log(f"released the agent's job {job_id}")


class WaitForAgent:
    """``parallelworks/wait-for-agent``: wait for an agent ``scheduler-agent`` started."""

    async def validate(self, inputs: WaitForAgentInputs) -> None:
        if not AGENT_ID.fullmatch(inputs.agent_id):
            raise Invalid(
                f"with.agentId: {inputs.agent_id!r} is not an agent id (scheduler-agent's "
                "agentId output)",
                field="with.agentId",
            )

    async def run(self, inputs: WaitForAgentInputs, ctx: ActionContext) -> ActionResult:
        runner, scheduler = _target(ctx, "wait-for-agent")
        job_id = inputs.scheduler_job_id
        if not job_id:
            job_id = (
                await _run(
                    runner,
                    f"cat {_agent_dir(inputs.agent_id)}/job 2>/dev/null || true\n",
                    "read the agent's job",
                )
            ).strip()
        outputs = await wait_for_agent(ctx, runner, scheduler, inputs.agent_id, job_id)
        return ActionResult(outputs=outputs, summary=f"agent {inputs.agent_id} is ready")


async def wait_for_agent(
    ctx: ActionContext, runner: CommandRunner, scheduler: Scheduler, agent_id: str, job_id: str
) -> dict[str, str]:
    """Wait until the agent's sshd is up, trust its host key, and return ``remoteHost`` and
    ``sshPort``; fail once its job ended without it (or when no job is known and no agent
    directory exists)."""
    directory = _agent_dir(agent_id)
    read = (
        f"d={directory}\n"
        '[ -d "$d" ] || { echo missing; exit 0; }\n'
        '[ -s "$d/ready" ] && [ -s "$d/host_key.pub" ] || { echo waiting; exit 0; }\n'
        'echo ready; cat "$d/ready" "$d/host_key.pub"\n'
    )
    checked = 0.0
    reported = ""
    while True:
        lines = (await _run(runner, read, "read the agent's state")).splitlines()
        if lines[:1] == ["missing"]:
            raise ProviderError(f"there is no agent {agent_id} on {runner.target}")
        if lines[:1] == ["ready"] and len(lines) >= 3:
            host, _, port = lines[1].partition(" ")
            if not port.strip().isdigit():
                raise ProviderError(f"the agent {agent_id} wrote {lines[1]!r}, not 'host port'")
            await ctx.trust_host_key(host, int(port), lines[2])
            await ctx.log(f"the agent {agent_id} serves ssh on {host}:{port.strip()}")
            await ctx.set_output("remoteHost", host)
            await ctx.set_output("sshPort", port.strip())
            return {"remoteHost": host, "sshPort": port.strip()}
        if job_id and time.monotonic() - checked >= STATUS_EVERY:
            checked = time.monotonic()
            status = (await scheduler.status([job_id]))[job_id]
            if status.state.terminal:
                tail = await _run(
                    runner,
                    f"tail -n 20 {directory}/agent.out 2>/dev/null || true\n",
                    "read the agent's output",
                )
                raise ProviderError(
                    f"the agent's job {job_id} ended ({status.state.value}"
                    + (f": {status.reason}" if status.reason else "")
                    + ") before its sshd was ready"
                    + (f"; its output ends with:\n{tail.strip()}" if tail.strip() else "")
                )
            now = f"{status.native_state or status.state.value} {status.reason}".strip()
            if now != reported:
                reported = now
                await ctx.log(f"waiting for the agent's job {job_id}: {now}")
        await asyncio.sleep(POLL_SECONDS)
