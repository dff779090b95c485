"""Entry point of the ``corral`` / ``pw`` command.

Start-up must stay fast: this module imports only the standard library's argparse; each command's
implementation is a ``"module:function"`` string imported when that command runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from importlib import import_module
from typing import Any, NoReturn

from corral_sdk.errors import CorralError, Invalid

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main", "run"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

OUTPUT_TABLE_JSON = ("table", "json")
GLOBAL_DEFAULTS: dict[str, Any] = {"context": None, "platform_host": None, "verbose": False}


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        return f"{stamp} [{record.levelname}] {record.getMessage()}" + (
            "\n" + self.formatException(record.exc_info) if record.exc_info else ""
        )


def configure_logging(verbose: bool) -> None:
    """Logs to stderr as ``<RFC3339 UTC> [LEVEL] message``; data goes to stdout."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("httpx", "httpcore", "alembic", "dramatiq", "asyncio", "asyncssh", "websockets"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)


def _global_flags() -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument(
        "--context", default=argparse.SUPPRESS, help="the context to use (overrides PW_CONTEXT)"
    )
    flags.add_argument(
        "--platform-host",
        default=argparse.SUPPRESS,
        help="the Corral server, e.g. http://127.0.0.1:8080 (overrides PW_PLATFORM_HOST)",
    )
    flags.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging"
    )
    return flags


def _server_flags(parser: argparse.ArgumentParser, *, listen: bool) -> None:
    parser.add_argument("--config", help="settings file (default: $CORRAL_CONFIG or ./corral.toml)")
    if listen:
        parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
        parser.add_argument("--port", type=int, help="port to listen on (default 8080)")


def _output_flag(parser: argparse.ArgumentParser, choices: Sequence[str], default: str) -> None:
    parser.add_argument(
        "-o",
        "--output",
        choices=choices,
        default=default,
        help=f"output format (default {default})",
    )


def build_parser() -> argparse.ArgumentParser:
    """The command tree. Each leaf sets ``handler`` to a ``"module:function"`` string."""
    flags = _global_flags()
    parser = argparse.ArgumentParser(
        prog="corral",
        description="Corral: an open control plane for HPC and AI compute.",
        parents=[flags],
    )
    # The global flags default to SUPPRESS so a subcommand never overwrites one given before it;
    # run() fills in the real defaults (set_defaults here would change the shared actions).
    parser.set_defaults(handler=None)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def leaf(
        group: Any, name: str, handler: str, help: str, aliases: Sequence[str] = ()
    ) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = group.add_parser(
            name, help=help, description=help, parents=[flags], aliases=list(aliases)
        )
        sub.set_defaults(handler=handler)
        return sub

    def branch(name: str, help: str, aliases: Sequence[str] = (), group: Any = None) -> Any:
        sub = (group or commands).add_parser(
            name, help=help, description=help, parents=[flags], aliases=list(aliases)
        )
        sub.set_defaults(handler=None, help_parser=sub)
        return sub.add_subparsers(title="commands", metavar="COMMAND")

    up = leaf(
        commands,
        "up",
        "corral_api.server:up",
        "run Corral in one process (API, workers, embedded database by default)",
    )
    _server_flags(up, listen=True)
    up.add_argument("--data-dir", help="where Corral keeps its data")

    serve = leaf(commands, "serve", "corral_api.server:serve", "run the API (distributed mode)")
    _server_flags(serve, listen=True)

    worker = leaf(
        commands, "worker", "corral_api.server:worker", "run background workers (distributed mode)"
    )
    _server_flags(worker, listen=False)
    worker.add_argument(
        "--threads", type=int, help="worker threads (default [broker] worker_threads)"
    )

    migrate = leaf(
        commands, "migrate", "corral_api.server:migrate", "bring the database schema up to date"
    )
    _server_flags(migrate, listen=False)
    migrate.add_argument(
        "--check", action="store_true", help="exit 1 when the database needs migrating"
    )

    plugins = branch("plugins", "list installed plugins")
    plugins_ls = leaf(
        plugins,
        "ls",
        "corral_sdk.cli.commands.plugins:ls",
        "list plugins, what they register and their status",
        aliases=["list"],
    )
    _output_flag(plugins_ls, OUTPUT_TABLE_JSON, "table")

    _identity_commands(branch, leaf)
    _cluster_commands(branch, leaf)
    _cloud_commands(branch, leaf)
    _network_commands(branch, leaf)
    _cloud_resource_commands(branch, leaf)
    _storage_commands(branch, leaf)
    _workflow_commands(branch, leaf)
    _marketplace_commands(branch, leaf)
    _session_commands(branch, leaf)

    ssh = leaf(
        commands,
        "ssh",
        "corral_sdk.cli.commands.ssh:ssh",
        "a shell or a command on a cluster through Corral, or a ProxyCommand for OpenSSH "
        "(exit status: the remote command's; 255 when the connection fails)",
    )
    ssh.add_argument("target", metavar="CLUSTER", help="pw://owner/name, owner/name or name")
    ssh.add_argument("command", nargs=argparse.REMAINDER, help="command to run (default: a shell)")
    ssh.add_argument(
        "--proxy-command",
        action="store_true",
        help="relay stdin/stdout to the cluster's sshd (ProxyCommand='corral ssh "
        "--proxy-command %%h')",
    )
    ssh.add_argument(
        "--keepalive", type=int, default=30, help="seconds between keepalives; 0 disables them"
    )

    forward = leaf(
        commands,
        "forward",
        "corral_sdk.cli.commands.forward:forward",
        "local ports that reach a host and port as the cluster sees them, through Corral; "
        "they stay open when the cluster's sshd restarts (Ctrl+C ends it)",
    )
    forward.add_argument("target", metavar="CLUSTER", help="pw://owner/name, owner/name or name")
    forward.add_argument(
        "-L", "--local", action="append", required=True,
        metavar="[BIND:]PORT:HOST:HOSTPORT", help="a local forward, as ssh -L (repeat for more)",
    )  # fmt: skip
    forward.add_argument(
        "--keepalive", type=int, default=30, help="seconds between keepalives; 0 disables them"
    )

    keys = leaf(
        commands,
        "ssh-public-keys",
        "corral_sdk.cli.commands.ssh_public_keys:ssh_public_keys",
        "print a user's SSH public keys (for sshd's AuthorizedKeysCommand; needs no sign-in)",
    )
    keys.add_argument("username")

    version = leaf(
        commands, "version", "corral_sdk.cli.commands.version:version", "print Corral's version"
    )
    _output_flag(version, ("text", "json"), "text")
    return parser


def _session_commands(branch: Callable[..., Any], leaf: Callable[..., Any]) -> None:
    sessions = branch(
        "sessions", "interactive sessions served through the platform", aliases=["session"]
    )
    module = "corral_sdk.cli.commands.sessions"
    ls = leaf(sessions, "ls", f"{module}:ls", "list your sessions and those shared with you")
    ls.add_argument("-t", "--type", help="only sessions of this type (tunnel, jupyter...)")
    _output_flag(ls, OUTPUT_TABLE_JSON, "table")
    create = leaf(
        sessions,
        "create",
        f"{module}:create",
        "start a session on a cluster or in your workspace (exit 1 if it fails)",
    )
    create.add_argument(
        "target", nargs="?", default="user-workspace",
        help="a cluster (pw://owner/name or name), or user-workspace (default)",
    )  # fmt: skip
    create.add_argument(
        "--type", required=True, help="tunnel, or an installed type: jupyter, desktop..."
    )
    create.add_argument("--name", help="lowercase letters and digits (default <type><time>)")
    create.add_argument("--remote-port", type=int, help="the app's port (tunnel)")
    create.add_argument("--remote-host", default="localhost", help="the app's host (tunnel)")
    create.add_argument("--slug", help="appended to the session's URL")
    create.add_argument("--directory", help="where the app starts (jupyter, vscode)")
    create.add_argument(
        "--option", action="append", metavar="KEY=VALUE", help="an option of the session's type"
    )
    create.add_argument("--wait", action="store_true", help="wait until it runs or fails")
    create.add_argument("--open", action="store_true", help="open it in a browser (implies --wait)")
    _output_flag(create, OUTPUT_TABLE_JSON, "table")
    opened = leaf(sessions, "open", f"{module}:open_session", "open a running session")
    opened.add_argument("name", help="pw://owner/name, owner/name or name")
    opened.add_argument("--print", action="store_true", help="print its URL instead")
    connect = leaf(
        sessions,
        "connect",
        f"{module}:connect",
        "a local port onto a running desktop (for a VNC client) or cluster tunnel; Ctrl+C "
        "disconnects, the session goes on",
    )
    connect.add_argument("name", help="pw://owner/name, owner/name or name")
    connect.add_argument("--port", type=int, default=0, help="the local port (0: any free one)")
    connect.add_argument(
        "--keepalive", type=int, default=30, help="seconds between keepalives; 0 disables them"
    )
    stop = leaf(sessions, "stop", f"{module}:stop", "stop a session and delete it")
    stop.add_argument("name", help="pw://owner/name, owner/name or name")


def _workflow_commands(branch: Callable[..., Any], leaf: Callable[..., Any]) -> None:
    workflows = branch("workflows", "workflows: add, list, show, change, check", ["workflow"])
    module = "corral_sdk.cli.commands.workflows"

    ls = leaf(workflows, "ls", f"{module}:ls", "list the workflows you can see", aliases=["list"])
    ls.add_argument("--favorite", action="store_true", help="only your favourites")
    which = ls.add_mutually_exclusive_group()
    which.add_argument(
        "--marketplace", action="store_true", help="only the marketplace workflows you use"
    )
    which.add_argument("--mine", action="store_true", help="only the others (My Workflows)")
    _output_flag(ls, ("table", "json", "list"), "table")

    get = leaf(workflows, "get", f"{module}:get", "show a workflow (-o yaml: its YAML)")
    get.add_argument("name", help="pw://owner/name, owner/name or name")
    _output_flag(get, ("table", "json", "yaml"), "table")

    create = leaf(workflows, "create", f"{module}:create", "add a workflow")
    create.add_argument("name", help="2-255 characters: lowercase letters, digits and '_'")
    create.add_argument("--yaml", help="its YAML file (- for stdin; a starter one by default)")
    create.add_argument("--remote", metavar="URL", help="fetch the YAML from this git repository")
    create.add_argument("--ref", help="the branch, tag or commit of --remote")
    create.add_argument("--path", help="the YAML's path in --remote (default workflow.yaml)")
    create.add_argument("--description", help="100 characters or fewer")
    create.add_argument("--tag", action="append", help="a tag (repeat for more)")
    create.add_argument("--app", action="store_true", help="list it among the Apps")
    _output_flag(create, OUTPUT_TABLE_JSON, "table")

    update = leaf(workflows, "update", f"{module}:update", "change a workflow")
    update.add_argument("name")
    update.add_argument("--yaml", help="a new YAML (a new version; - for stdin)")
    update.add_argument("--remote", metavar="URL", help="a remote workflow's repository")
    update.add_argument("--ref", help="a remote workflow's branch, tag or commit")
    update.add_argument("--description")
    update.add_argument("--tag", action="append", help="the tags (replacing them)")
    _output_flag(update, OUTPUT_TABLE_JSON, "table")

    delete = leaf(workflows, "delete", f"{module}:delete", "delete a workflow", aliases=["rm"])
    delete.add_argument("name")

    run = leaf(workflows, "run", f"{module}:run", "run a workflow")
    run.add_argument("name")
    run.add_argument(
        "-i", "--input", action="append", help="an input: key=value, or a JSON object (repeat)"
    )
    run.add_argument("--configuration", help="start from one of the workflow's configurations")
    run.add_argument(
        "--wait", action="store_true", help="follow the log; exit 0 if the run completes, 1 if not"
    )
    _output_flag(run, ("text", "json"), "text")

    runs_commands = branch("runs", "workflow runs", group=workflows)
    runs_list = leaf(runs_commands, "list", f"{module}:runs_list", "your runs, newest first",
                     aliases=["ls"])  # fmt: skip
    runs_list.add_argument("name", nargs="?", help="only this workflow's runs")
    runs_list.add_argument("--workflow", help="only this workflow's runs (its name)")
    runs_list.add_argument("--status", choices=("queued", "running", "completed", "error",
                                                "canceled"))  # fmt: skip
    runs_list.add_argument("--search", help="a part of the workflow's name or the run's slug")
    runs_list.add_argument("--limit", type=int, default=50)
    runs_list.add_argument("--offset", type=int, default=0)
    _output_flag(runs_list, OUTPUT_TABLE_JSON, "table")
    run_ref = "the run's slug (alice.my_flow.00003) or id"
    view = leaf(runs_commands, "view", f"{module}:runs_view", "a run's jobs and steps")
    view.add_argument("run", help=run_ref)
    _output_flag(view, ("text", "json"), "text")
    logs = leaf(runs_commands, "logs", f"{module}:runs_logs", "a run's log")
    logs.add_argument("run", help=run_ref)
    logs.add_argument("-f", "--follow", action="store_true",
                      help="follow as lines are written; exit 0 if the run completed")  # fmt: skip
    logs.add_argument("--failed", action="store_true", help="only the lines of failed steps")
    logs.add_argument("--job", help="only this job's lines")
    logs.add_argument("--step", help="only this step's lines (its name or index; needs --job)")
    logs.add_argument("--tail", type=int, help="only the last N lines of each step")
    _output_flag(logs, ("text", "json"), "text")
    errors = leaf(runs_commands, "errors", f"{module}:runs_errors",
                  "a run's failed steps with the end of their logs")  # fmt: skip
    errors.add_argument("run", help=run_ref)
    errors.add_argument("--tail", type=int, default=50, help="log lines per failed step")
    _output_flag(errors, ("json", "text"), "json")
    cancel = leaf(runs_commands, "cancel", f"{module}:runs_cancel", "cancel a run")
    cancel.add_argument("run", help=run_ref)
    clean = leaf(runs_commands, "clean", f"{module}:runs_clean",
                 "delete your finished runs matching every filter given")  # fmt: skip
    clean.add_argument("--older-than-days", type=int)
    clean.add_argument("--slugs", help="comma-separated run slugs")
    clean.add_argument("--status", choices=("completed", "error", "canceled"))
    _output_flag(clean, ("text", "json"), "text")
    rerun = leaf(runs_commands, "rerun", f"{module}:runs_rerun",
                 "run a run's workflow again with the same YAML and inputs")  # fmt: skip
    rerun.add_argument("run", help=run_ref)
    rerun.add_argument("--wait", action="store_true",
                       help="follow the log; exit 0 if the run completes, 1 if not")  # fmt: skip
    _output_flag(rerun, ("text", "json"), "text")

    lint = leaf(workflows, "lint", f"{module}:lint", "check a workflow's YAML file")
    lint.add_argument("file", help="the YAML file (- for stdin)")
    lint.add_argument("--name", help="the workflow's name (to catch a step that uses itself)")
    _output_flag(lint, OUTPUT_TABLE_JSON, "table")


def _cluster_commands(branch: Callable[..., Any], leaf: Callable[..., Any]) -> None:
    cluster = branch("cluster", "clusters: register, list, start, stop; their jobs")
    module = "corral_sdk.cli.commands.cluster"

    ls = leaf(cluster, "ls", f"{module}:ls", "list clusters", aliases=["list"])
    ls.add_argument("uri", nargs="?", help="pw://user (their clusters) or pw://user/name (one)")
    ls.add_argument("--owned", action="store_true", help="only clusters you own")
    ls.add_argument(
        "--status", help="only clusters in these states (active, off, failed...; on = active)"
    )
    _output_flag(ls, OUTPUT_TABLE_JSON, "table")

    get = leaf(cluster, "get", f"{module}:get", "show a cluster with its partitions")
    get.add_argument("uri", help="pw://owner/name, owner/name or name")
    _output_flag(get, OUTPUT_TABLE_JSON, "table")

    create = leaf(
        cluster,
        "create",
        f"{module}:create",
        "register a cluster you already run (--host), or define an elastic cloud cluster "
        "(--cloud); off until started",
    )
    create.add_argument("name")
    create.add_argument("--host", help="an existing cluster's login node (name or address)")
    create.add_argument(
        "--cloud",
        metavar="FILE",
        help="a cloud cluster's definition, JSON (cloud_account, controller, partitions, "
        "advanced; - for stdin)",
    )
    create.add_argument("--port", type=int, default=22, help="its SSH port")
    create.add_argument(
        "--user", default="__USER__", help="remote username (__USER__: each user's own name)"
    )
    create.add_argument("--jump", help="a jump node: user@host[:port]")
    create.add_argument("--scheduler", default="slurm", help="slurm or pbs")
    create.add_argument("--display-name")
    create.add_argument("--description", help="100 characters or fewer")
    create.add_argument("--tag", action="append", help="a tag (repeat for more)")
    create.add_argument("--group", help="the group its use is accounted to")
    create.add_argument("--working-directory", help="where jobs run (default: the home directory)")
    create.add_argument("--start", action="store_true", help="start it once created")
    _output_flag(create, OUTPUT_TABLE_JSON, "table")

    for name, help in (
        ("start", "start (connect to, or provision) a cluster"),
        ("stop", "stop a cluster (a cloud cluster's controller, keeping its disk)"),
        ("destroy", "destroy a cloud cluster's hosts (jobs are lost; it turns off)"),
    ):
        power = leaf(cluster, name, f"{module}:{name}", help)
        power.add_argument("uri", help="pw://owner/name, owner/name or name")
        power.add_argument("--wait", action="store_true", help="wait until it settles")
        power.add_argument("--wait-timeout", type=float, default=300.0, help="seconds")
        _output_flag(power, OUTPUT_TABLE_JSON, "table")

    delete = leaf(cluster, "delete", f"{module}:delete", "delete a stopped cluster's configuration")
    delete.add_argument("uri")

    logs = leaf(cluster, "logs", f"{module}:logs", "a cloud cluster's provisioning log")
    logs.add_argument("uri", help="pw://owner/name, owner/name or name")
    logs.add_argument("--session", type=int, help="which start (default: the latest)")
    _output_flag(logs, OUTPUT_TABLE_JSON, "table")

    duplicate = leaf(cluster, "duplicate", f"{module}:duplicate", "copy a cluster's definition")
    duplicate.add_argument("uri", help="the cluster to copy")
    duplicate.add_argument("name", help="the copy's name")
    _output_flag(duplicate, OUTPUT_TABLE_JSON, "table")

    types = leaf(cluster, "types", f"{module}:types", "the cloud cluster types you may start")
    _output_flag(types, OUTPUT_TABLE_JSON, "table")

    estimate = leaf(cluster, "estimate", f"{module}:estimate", "a cloud cluster's hourly cost")
    estimate.add_argument("uri", help="pw://owner/name, owner/name or name")
    _output_flag(estimate, OUTPUT_TABLE_JSON, "table")

    submit = leaf(cluster, "submit", f"{module}:submit", "submit a batch job to a cluster")
    submit.add_argument("uri", help="pw://owner/name, owner/name or name")
    submit.add_argument("script", nargs="?", help="the job script (- for standard input)")
    submit.add_argument("--wrap", help="a command to run as the job's script")
    submit.add_argument("--name", help="the job's name")
    submit.add_argument("-p", "--partition")
    submit.add_argument("-N", "--nodes", type=int)
    submit.add_argument("-n", "--ntasks", type=int)
    submit.add_argument("-c", "--cpus-per-task", type=int)
    submit.add_argument("--mem", type=int, help="memory per node, in MB")
    submit.add_argument("-t", "--time", type=int, help="time limit, in seconds")
    submit.add_argument("-a", "--array", help="array indices, e.g. 0-9%%2")
    submit.add_argument("--hold", action="store_true", help="submit held")
    submit.add_argument("-e", "--env", action="append", help="NAME=VALUE (repeat for more)")
    submit.add_argument(
        "--wait", action="store_true", help="wait for the job to end; exit 0 only if it completed"
    )
    _output_flag(submit, OUTPUT_TABLE_JSON, "table")

    jobs = leaf(cluster, "jobs", f"{module}:jobs", "list jobs submitted through Corral")
    jobs.add_argument("uri")
    jobs.add_argument("--state", help="only jobs in these states (pending,running,...)")
    _output_flag(jobs, OUTPUT_TABLE_JSON, "table")

    for name, help in (("job", "show a job"), ("cancel", "cancel a job")):
        one = leaf(cluster, name, f"{module}:{name}", help)
        one.add_argument("uri")
        one.add_argument("id", type=int, help="Corral's job id (the ID column)")
        _output_flag(one, OUTPUT_TABLE_JSON, "table")

    out = leaf(cluster, "output", f"{module}:output", "print a job's output")
    out.add_argument("uri")
    out.add_argument("id", type=int, help="Corral's job id (the ID column)")
    out.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")


def _force_flag(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("-f", "--force", action="store_true", help=f"do not ask; {what}")


def _cloud_commands(branch: Callable[..., Any], leaf: Callable[..., Any]) -> None:
    module = "corral_sdk.cli.commands.cloud"
    cloud = branch("cloud", "cloud accounts, instance types, instance type policy, reservations")

    accounts = branch("accounts", "your organization's cloud accounts", group=cloud)
    ls = leaf(accounts, "ls", f"{module}:accounts_ls", "list cloud accounts", aliases=["list"])
    _output_flag(ls, OUTPUT_TABLE_JSON, "table")
    get = leaf(accounts, "get", f"{module}:account_get", "a cloud account and its validation")
    get.add_argument("name")
    _output_flag(get, OUTPUT_TABLE_JSON, "table")
    update = leaf(
        accounts,
        "update",
        f"{module}:account_update",
        "change a cloud account's credentials or settings (org:admin); it is validated again "
        "(exit 1 when the validation finds insufficient permissions or an error)",
    )
    update.add_argument("name")
    update.add_argument(
        "--credential", action="append", metavar="KEY=VALUE", help="a credential field (repeat)"
    )
    update.add_argument(
        "--setting", action="append", metavar="KEY=VALUE", help="a setting (repeat; replaces all)"
    )
    update.add_argument(
        "--govcloud", action=argparse.BooleanOptionalAction, default=None, help="GovCloud"
    )
    validate = leaf(
        accounts,
        "validate",
        f"{module}:account_validate",
        "check a cloud account's credentials and permissions again (org:admin)",
    )
    validate.add_argument("name")
    for command in (update, validate):
        command.add_argument("--wait", action="store_true", help="wait for the validation")
        command.add_argument("--wait-timeout", type=float, default=120.0, help="seconds")
        _output_flag(command, OUTPUT_TABLE_JSON, "table")

    types = leaf(
        cloud,
        "instance-types",
        f"{module}:instance_types",
        "instance types of a cloud account's region with vCPUs, memory, GPUs and hourly "
        "prices (those your organization allows, unless --all)",
    )
    types.add_argument("account", help="the cloud account")
    types.add_argument("--region", help="default: the account's first region")
    types.add_argument("--all", action="store_true", help="also types the policy disallows")
    _output_flag(types, OUTPUT_TABLE_JSON, "table")

    policy = branch("policy", "your organization's allowed instance types", group=cloud)
    policy_get = leaf(policy, "get", f"{module}:policy_get", "show the allowed instance types")
    policy_set = leaf(
        policy,
        "set",
        f"{module}:policy_set",
        "set the allowed instance types (org:admin or org:settings): --default allows every "
        "type; --allow PROVIDER=T1,T2 restricts that provider (empty: none of its types)",
    )
    policy_set.add_argument("--default", action="store_true", help="allow every instance type")
    policy_set.add_argument(
        "--allow", action="append", metavar="PROVIDER=TYPE,TYPE", help="repeat per provider"
    )
    for command in (policy_get, policy_set):
        command.add_argument("--org", help="default: your organization")
        _output_flag(command, OUTPUT_TABLE_JSON, "table")

    reservations = branch("reservations", "capacity reservations mapped to groups", group=cloud)
    res_ls = leaf(
        reservations, "ls", f"{module}:reservations_ls", "list reservations", aliases=["list"]
    )
    res_add = leaf(
        reservations,
        "add",
        f"{module}:reservation_add",
        "map a reservation made in the cloud's console to one group (org:admin or org:settings)",
    )
    res_add.add_argument("reservation_id")
    res_add.add_argument("--group", required=True, help="the group whose members may use it")
    res_add.add_argument("--description")
    res_rm = leaf(reservations, "rm", f"{module}:reservation_rm", "remove a reservation's mapping")
    res_rm.add_argument("reservation_id")
    for command in (res_ls, res_add, res_rm):
        command.add_argument("--org", help="default: your organization")
    for command in (res_ls, res_add):
        _output_flag(command, OUTPUT_TABLE_JSON, "table")


def _marketplace_commands(branch: Callable[..., Any], leaf: Callable[..., Any]) -> None:
    """marketplace: ls, get, publish, update, delete, versions (ls, publish, delete), use, fork."""
    module = "corral_sdk.cli.commands.marketplace"
    market = branch("marketplace", "published workflows and clusters: browse, publish, use, fork")
    ls = leaf(
        market,
        "ls",
        f"{module}:ls",
        "items you can see: the home page (10 of each type, featured first), or --type",
        ["list"],
    )
    ls.add_argument("-q", "--search", dest="q", help="a part of the name, type or publisher")
    ls.add_argument("--type", choices=("workflow", "storage", "compute"), help="all of one type")
    for name, what in (
        ("my-items", "only yours"),
        ("my-org", "only your organization's"),
        ("favorites", "only your favourites"),
        ("featured", "only featured items"),
        ("verified", "only verified items"),
        ("modifiable", "only items you may edit"),
    ):
        ls.add_argument(f"--{name}", action="store_true", help=what)
    get = leaf(market, "get", f"{module}:get", "an item: its versions and description")
    publish = leaf(
        market,
        "publish",
        f"{module}:publish",
        "publish a workflow or cluster of yours; its first version is v1.0.0",
    )
    publish.add_argument("source", help="the workflow or cluster (pw://owner/name or a name)")
    publish.add_argument("--name", required=True, help="unique in your organization")
    publish.add_argument("--slug", required=True, help="its URL and uses: marketplace/<slug>")
    update = leaf(market, "update", f"{module}:update", "edit an item (its publisher, org admins)")
    update.add_argument("--name")
    update.add_argument("--new-slug", help="a new slug (its URL changes)")
    privacy_help = "everyone, org_and_partners, org (the default) or groups (with --group)"
    for command in (publish, update):
        command.add_argument(
            "--privacy",
            choices=("everyone", "org_and_partners", "org", "groups"),
            default="org" if command is publish else None,
            help=privacy_help,
        )
        command.add_argument(
            "--group", action="append", help="a group of yours shown the item (repeat)"
        )
        command.add_argument("--summary", help="200 characters or fewer")
        command.add_argument("--description", help="markdown")
        command.add_argument("--description-file", help="markdown, from a file")
    for name, what in (
        ("verified", "verified by your organization"),
        ("featured", "at the top of the marketplace"),
        ("as-organization", "published as your organization"),
    ):
        publish.add_argument(f"--{name}", action="store_true", help=f"{what} (org admins)")
        update.add_argument(f"--{name}", choices=("on", "off"), help=f"{what} (org admins)")
    delete = leaf(
        market,
        "delete",
        f"{module}:delete",
        "delete an item; forks stay, marketplace workflows using it stay, broken",
        ["rm"],
    )
    versions = branch("versions", "an item's versions", group=market)
    versions_ls = leaf(versions, "ls", f"{module}:versions_ls", "list versions", ["list"])
    versions_publish = leaf(
        versions,
        "publish",
        f"{module}:versions_publish",
        "publish a new version: a snapshot of the item's resource (or --resource)",
    )
    versions_publish.add_argument("slug", help="the item's slug")
    versions_publish.add_argument("version", help="v followed by 2 or more characters: v1.0.0")
    versions_publish.add_argument("--resource", help="another resource of yours of its kind")
    versions_delete = leaf(
        versions,
        "delete",
        f"{module}:versions_delete",
        "delete a version (not the last); workflows pinned to it stay, broken",
        ["rm"],
    )
    versions_delete.add_argument("slug", help="the item's slug")
    versions_delete.add_argument("version")
    use = leaf(
        market,
        "use",
        f"{module}:use",
        "use a workflow item: a marketplace workflow of yours (latest follows the item)",
    )
    fork = leaf(
        market,
        "fork",
        f"{module}:fork",
        "fork an item into a new workflow or cluster of yours, tagged with the version",
    )
    fork.add_argument("--name", required=True, help="the new workflow's or cluster's name")
    fork.add_argument("--display-name")
    lasting = fork.add_mutually_exclusive_group()
    lasting.add_argument("--persistent", action="store_true", help="storage: a persistent one")
    lasting.add_argument(
        "--ephemeral", action="store_true", help="storage: an ephemeral one (Lustre)"
    )
    for command in (use, fork):
        command.add_argument("--version", default="latest", help="default latest")
    for command in (get, update, delete, versions_ls, use, fork):
        command.add_argument("slug", help="the item's slug")
    for command in (get, update, delete, versions_ls, versions_publish, versions_delete, use, fork):
        command.add_argument("--org", help="the publisher's organization (when several have it)")
    for command in (ls, get, publish, update, versions_ls, versions_publish, use, fork):
        _output_flag(command, OUTPUT_TABLE_JSON, "table")


def _network_commands(branch: Callable[..., Any], leaf: Callable[..., Any]) -> None:
    """networks: ls, create, get, update, delete."""
    module = "corral_sdk.cli.commands.networks"
    networks = branch("networks", "your organization's networks in its cloud accounts")
    ls = leaf(networks, "ls", f"{module}:ls", "list networks", ["list"])
    ls.add_argument("--cloud-account", help="only this cloud account's")
    region_help = "REGION=CIDR[@ZONE], e.g. us-east-1=10.0.0.0/16 (repeat; CIDRs may not overlap)"
    create = leaf(
        networks,
        "create",
        f"{module}:create",
        "create a network (org:admin or the account's network permission); it is provisioned "
        "at once",
    )
    create.add_argument("name", help="lowercase letters and digits")
    create.add_argument("--cloud-account", required=True)
    create.add_argument(
        "--region",
        action="append",
        dest="regions",
        required=True,
        metavar="REGION=CIDR",
        help=region_help,
    )
    update = leaf(
        networks,
        "update",
        f"{module}:update",
        "change a network's regions (--region replaces them all), mode or options: it is "
        "provisioned again",
    )
    update.add_argument("name")
    update.add_argument(
        "--region", action="append", dest="regions", metavar="REGION=CIDR", help=region_help
    )
    for command in (create, update):
        command.add_argument("--mode", help="the provider's networking mode (AWS: see the docs)")
        command.add_argument(
            "--option",
            action="append",
            dest="options",
            metavar="KEY=VALUE",
            help="a provider option, e.g. enable_nat_gateway=true (repeat; replaces all)",
        )
        command.add_argument("--description")
    get = leaf(networks, "get", f"{module}:get", "a network and the status of its resources")
    get.add_argument("name")
    delete = leaf(
        networks, "delete", f"{module}:delete", "deprovision a network (Deleting, then gone)"
    )
    delete.add_argument("name")
    for command in (create, update, delete):
        command.add_argument("--wait", action="store_true", help="wait until it settles")
        command.add_argument("--wait-timeout", type=float, default=1800.0, help="seconds")
    for command in (ls, create, update, get):
        _output_flag(command, OUTPUT_TABLE_JSON, "table")


def _cloud_resource_commands(branch: Callable[..., Any], leaf: Callable[..., Any]) -> None:
    """os-snapshots and static-ips: ls, create, get, delete."""
    module = "corral_sdk.cli.commands.cloud_resources"
    snapshots = branch("os-snapshots", "images of a running cloud cluster's controller root disk")
    snap_ls = leaf(snapshots, "ls", f"{module}:snapshot_ls", "list OS snapshots", ["list"])
    snap_create = leaf(
        snapshots,
        "create",
        f"{module}:snapshot_create",
        "take an OS snapshot of a running cloud cluster's controller (provisioning, then "
        "provisioned)",
    )
    snap_create.add_argument(
        "name", help="3-36 lowercase letters, digits and hyphens, starting with a letter"
    )
    snap_create.add_argument(
        "--cluster", required=True, help="the running cloud cluster (pw://owner/name or name)"
    )
    snap_get = leaf(snapshots, "get", f"{module}:snapshot_get", "an OS snapshot and its steps")
    snap_delete = leaf(
        snapshots,
        "delete",
        f"{module}:snapshot_delete",
        "delete an OS snapshot's image (listed as deleted for an hour)",
    )
    ips = branch("static-ips", "static public IP addresses for cloud clusters' controllers")
    ip_ls = leaf(ips, "ls", f"{module}:static_ip_ls", "list static IPs", ["list"])
    ip_create = leaf(
        ips, "create", f"{module}:static_ip_create", "allocate a static IP in a region"
    )
    ip_create.add_argument("name")
    ip_create.add_argument("--cloud-account", required=True)
    ip_create.add_argument("--region", required=True)
    ip_get = leaf(ips, "get", f"{module}:static_ip_get", "a static IP and its address")
    ip_delete = leaf(
        ips, "delete", f"{module}:static_ip_delete", "release a static IP (deleting, then gone)"
    )
    for command in (snap_create, ip_create):
        command.add_argument("--description")
    for command in (snap_get, snap_delete, ip_get, ip_delete):
        command.add_argument("name", help="pw://owner/name, owner/name or a name of yours")
    for command in (snap_create, snap_delete, ip_create, ip_delete):
        command.add_argument("--wait", action="store_true", help="wait until it settles")
        command.add_argument("--wait-timeout", type=float, default=1800.0, help="seconds")
    for command in (snap_ls, snap_create, snap_get, ip_ls, ip_create, ip_get):
        _output_flag(command, OUTPUT_TABLE_JSON, "table")


def _storage_commands(branch: Callable[..., Any], leaf: Callable[..., Any]) -> None:
    """storage (the kind) and buckets (objects and credentials of buckets)."""
    module = "corral_sdk.cli.commands.storage"
    storage = branch("storage", "buckets, disks, NFS and Lustre file systems")
    ls = leaf(storage, "ls", f"{module}:ls", "list storage yours and shared with you", ["list"])
    ls.add_argument("--category", choices=("bucket", "disk", "nfs", "lustre"))
    ls.add_argument("--owner", help="only this namespace's")
    types = leaf(storage, "types", f"{module}:types", "the storage types installed plugins offer")
    create = leaf(
        storage, "create", f"{module}:create", "create a storage (stopped unless --start)"
    )
    create.add_argument("name", help="2-255 lowercase letters and digits")
    create.add_argument("--type", required=True, help="a storage type (corral storage types)")
    create.add_argument("--ephemeral", action="store_true", help="Lustre only")
    create.add_argument("--start", action="store_true", help="start it at once")
    update = leaf(
        storage, "update", f"{module}:update", "change a storage (its definition while stopped)"
    )
    for command in (create, update):
        command.add_argument("--cloud-account", help="the cloud account it lives in")
        command.add_argument(
            "--option", action="append", metavar="KEY=VALUE",
            help="a storage option, e.g. region=us-east-1 (repeat)",
        )  # fmt: skip
        command.add_argument("--options-json", help="the storage options as a JSON object")
        command.add_argument("--group", help="the group its costs go to")
        command.add_argument("--description", help="at most 100 characters")
        command.add_argument("--tags", help="comma-separated")
    get = leaf(storage, "get", f"{module}:get", "a storage and its definition")
    delete = leaf(storage, "delete", f"{module}:delete", "delete a stopped storage")
    start = leaf(storage, "start", f"{module}:start", "provision a storage (starting, then active)")
    stop = leaf(
        storage,
        "stop",
        f"{module}:stop",
        "delete a storage at the cloud, data included (stopping, then stopped)",
    )
    logs = leaf(
        storage,
        "logs",
        f"{module}:logs",
        "a session's provision (or deletion) log: ISO time and message per line",
    )
    logs.add_argument("--session", type=int, help="the session's number (default the latest)")
    logs.add_argument("--deletion", action="store_true", help="the deletion log")
    logs.add_argument("-f", "--follow", action="store_true", help="until the log is finished")
    share = leaf(
        storage,
        "share",
        f"{module}:share",
        "who a storage is shared with; with GROUP, set that group's access (neither flag: "
        "no longer shared)",
    )
    share.add_argument("name", help="pw://owner/name, owner/name or a name of yours")
    share.add_argument("group", nargs="?", help="a group of your organization")
    share.add_argument(
        "--view-edit", action="store_true", help="see, change, start and stop it (and mount it)"
    )
    share.add_argument("--mount", action="store_true", help="mount it and use its credentials")
    for command in (update, get, delete, start, stop, logs):
        command.add_argument("name", help="pw://owner/name, owner/name or a name of yours")
    for command in (create, start, stop):
        command.add_argument("--wait", action="store_true", help="wait until it settles")
        command.add_argument("--wait-timeout", type=float, default=1800.0, help="seconds")
    for command in (ls, types, create, update, get, start, stop, logs, share):
        _output_flag(command, OUTPUT_TABLE_JSON, "table")

    module = "corral_sdk.cli.commands.buckets"
    uri_help = "pw://<namespace>/<bucket>[/<path>] or s3://<bucket>[/<path>]"
    buckets = branch("buckets", "list buckets and their files, copy files in and out")
    buckets_ls = leaf(
        buckets,
        "ls",
        f"{module}:ls",
        "no URI: your buckets and those shared with you; pw://ns: that namespace's; a bucket "
        "URI: its files",
        ["list"],
    )
    buckets_ls.add_argument("uri", nargs="?", help=uri_help)
    buckets_ls.add_argument(
        "--csp-uris", action="store_true", help="list provisioned buckets with their CSP URIs"
    )
    _output_flag(buckets_ls, ("list", "json", "table"), "table")
    cp = leaf(
        buckets,
        "cp",
        f"{module}:cp",
        "copy a file (or with -r a directory) into a bucket or out of one",
    )
    cp.add_argument("source", help=f"a local path or {uri_help}")
    cp.add_argument("destination", help=f"a local path or {uri_help}")
    cp.add_argument("-r", "--recursive", action="store_true", help="directories and prefixes")
    rm = leaf(buckets, "rm", f"{module}:rm", "delete one file of a bucket")
    rm.add_argument("uri", help="pw://<namespace>/<bucket>/<file> or s3://<bucket>/<file>")
    token = leaf(
        buckets,
        "get-token",
        f"{module}:get_token",
        "short-lived credentials of an active bucket, as shell export lines (or -o json)",
    )
    token.add_argument("uri", help=uri_help)
    _output_flag(token, ("text", "json"), "text")


def _identity_commands(branch: Callable[..., Any], leaf: Callable[..., Any]) -> None:
    """auth, context, users, groups, orgs, audit."""
    auth_cmd = "corral_sdk.cli.commands.auth:"
    auth = branch("auth", "sign in, store credentials in contexts, manage API keys")
    login = leaf(
        auth,
        "login",
        auth_cmd + "login",
        "sign in with a password; a 24-hour token is stored in a context (not the password)",
    )
    login.add_argument("--username", help="who signs in (default: the context's user, or asked)")
    login.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin (scripts)"
    )
    context_name_help = "the context to write (default <username>@<server host:port>)"
    login.add_argument("--context-name", help=context_name_help)
    for name, what in (("apikey", "an API key"), ("token", "a short-term token (1 to 24 h)")):
        store = leaf(
            auth,
            name,
            auth_cmd + name,
            f"store {what} in a context: pasted without echo, or one line from stdin",
        )
        store.add_argument("--context-name", help=context_name_help)
    whoami = leaf(auth, "whoami", auth_cmd + "whoami", "who the credential in use belongs to")
    _output_flag(whoami, OUTPUT_TABLE_JSON, "table")
    leaf(
        auth,
        "identify-platform",
        auth_cmd + "identify_platform",
        "print the server commands talk to (--platform-host, PW_PLATFORM_HOST, context)",
    )
    leaf(
        auth,
        "logout",
        auth_cmd + "logout",
        "forget the context's credential (a token from `auth login` is also revoked)",
    )
    apikeys = auth.add_parser(
        "apikeys", help="your API keys", description="your API keys", parents=[_global_flags()]
    )
    apikeys.set_defaults(handler=None, help_parser=apikeys)
    apikeys_commands = apikeys.add_subparsers(title="commands", metavar="COMMAND")
    apikeys_ls = leaf(
        apikeys_commands,
        "ls",
        auth_cmd + "apikeys_ls",
        "list your API keys (never their secrets)",
        aliases=["list"],
    )
    _output_flag(apikeys_ls, OUTPUT_TABLE_JSON, "table")
    apikeys_create = leaf(
        apikeys_commands,
        "create",
        auth_cmd + "apikeys_create",
        "create an API key and print its secret, the only time it is shown",
    )
    apikeys_create.add_argument("name", help="what the key is for")
    apikeys_create.add_argument(
        "--expires-days",
        type=int,
        help="7, 30, 60 or 90 days (default: never, or your organization's policy)",
    )
    _output_flag(apikeys_create, ("text", "json"), "text")
    apikeys_delete = leaf(
        apikeys_commands, "delete", auth_cmd + "apikeys_delete", "revoke an API key at once"
    )
    apikeys_delete.add_argument("id", type=int, help="the key's ID (see `auth apikeys ls`)")

    ctx_cmd = "corral_sdk.cli.commands.context:"
    context = branch(
        "context", "named contexts: a server and a credential for it (local only)", ["ctx"]
    )
    context_ls = leaf(
        context, "ls", ctx_cmd + "ls", "list contexts; * marks the current one", ["list"]
    )
    _output_flag(context_ls, ("table", "json", "list"), "table")
    leaf(context, "current", ctx_cmd + "current", "print the current context's name")
    use = leaf(context, "use", ctx_cmd + "use", "switch the current context")
    use.add_argument("name", help="the context to use")
    rename = leaf(context, "rename", ctx_cmd + "rename", "rename a context")
    rename.add_argument("old", help="its name")
    rename.add_argument("new", help="its new name")
    context_delete = leaf(
        context, "delete", ctx_cmd + "delete", "remove a context from the credentials file"
    )
    context_delete.add_argument("name", help="the context to delete")
    _force_flag(context_delete, "needed to delete the current context")

    users_cmd = "corral_sdk.cli.commands.users:"
    users = branch("users", "the users of an organization (org:users)")
    users_ls = leaf(users, "ls", users_cmd + "ls", "list users", ["list"])
    users_ls.add_argument("--search", help="part of a username or email")
    users_ls.add_argument(
        "--active", choices=("all", "true", "false"), default="all", help="default all"
    )
    users_ls.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    users_ls.add_argument("--offset", type=int, default=0, help="skip this many (default 0)")
    users_ls.add_argument(
        "--sort-by",
        choices=("username", "email", "created_at", "last_login_at"),
        help="default username",
    )
    users_ls.add_argument("--sort-dir", choices=("asc", "desc"), help="default asc")
    users_ls.add_argument("--org", help="another organization (default yours)")
    _output_flag(users_ls, ("table", "json", "list"), "table")
    users_create = leaf(users, "create", users_cmd + "create", "create a user (no email is sent)")
    users_create.add_argument("username")
    users_create.add_argument("--name", help="full name")
    users_create.add_argument("--email")
    users_create.add_argument(
        "--password-stdin", action="store_true", help="read an initial password from stdin"
    )
    users_create.add_argument(
        "--group", action="append", dest="groups", metavar="GROUP", help="add to GROUP (repeat)"
    )
    users_create.add_argument("--org", help="another organization (default yours)")
    _output_flag(users_create, OUTPUT_TABLE_JSON, "table")
    for name, help in (
        ("disable", "disable a user: their sign-ins and credentials stop working"),
        ("enable", "enable a disabled user"),
    ):
        toggle = leaf(users, name, users_cmd + name, help)
        toggle.add_argument("username")
        _output_flag(toggle, OUTPUT_TABLE_JSON, "table")
    users_delete = leaf(users, "delete", users_cmd + "delete", "delete a user (type the name)")
    users_delete.add_argument("username")
    _force_flag(users_delete, "needed when stdin is not a terminal")

    groups_cmd = "corral_sdk.cli.commands.groups:"
    groups = branch("groups", "an organization's groups, their members and roles")
    groups_ls = leaf(groups, "ls", groups_cmd + "ls", "list groups", ["list"])
    groups_ls.add_argument("--org", help="another organization (default yours)")
    _output_flag(groups_ls, OUTPUT_TABLE_JSON, "table")
    groups_create = leaf(groups, "create", groups_cmd + "create", "create a group (org:groups)")
    groups_create.add_argument("name")
    groups_create.add_argument("--description")
    _output_flag(groups_create, OUTPUT_TABLE_JSON, "table")
    groups_delete = leaf(groups, "delete", groups_cmd + "delete", "delete a group (org:groups)")
    groups_delete.add_argument("name")
    groups_members = leaf(groups, "members", groups_cmd + "members", "list a group's members")
    groups_members.add_argument("name")
    _output_flag(groups_members, OUTPUT_TABLE_JSON, "table")
    for name, handler, help in (
        ("add-member", "add_member", "add a user to a group"),
        ("remove-member", "remove_member", "remove a user from a group"),
    ):
        member = leaf(groups, name, groups_cmd + handler, help)
        member.add_argument("name", help="the group")
        member.add_argument("username")
    groups_roles = leaf(
        groups,
        "roles",
        groups_cmd + "roles",
        "print a group's roles, or set them (org:admin), e.g. org:users org:groups",
    )
    groups_roles.add_argument("name", help="the group")
    groups_roles.add_argument("roles", nargs="*", metavar="ROLE", help="the roles to set")
    groups_roles.add_argument("--clear", action="store_true", help="remove every role")
    _output_flag(groups_roles, ("text", "json"), "text")

    orgs_cmd = "corral_sdk.cli.commands.orgs:"
    orgs = branch("orgs", "organizations")
    orgs_ls = leaf(orgs, "ls", orgs_cmd + "ls", "list the organizations you can access", ["list"])
    _output_flag(orgs_ls, ("table", "json", "list"), "table")
    orgs_create = leaf(
        orgs, "create", orgs_cmd + "create", "create an organization (platform:admin)"
    )
    orgs_create.add_argument("name")
    orgs_create.add_argument("--display-name")
    orgs_create.add_argument("--seats", type=int, default=0, help="0 (default): unlimited")
    _output_flag(orgs_create, OUTPUT_TABLE_JSON, "table")
    orgs_delete = leaf(
        orgs,
        "delete",
        orgs_cmd + "delete",
        "delete an organization with its users and groups (platform:admin; type the name)",
    )
    orgs_delete.add_argument("name")
    _force_flag(orgs_delete, "needed when stdin is not a terminal")
    variables = branch(
        "variables",
        "an organization's workflow variables, org.<key> in workflows (org:admin or org:settings)",
        group=orgs,
    )
    variables_ls = leaf(
        variables, "ls", orgs_cmd + "variables_ls", "list the variables and their values", ["list"]
    )
    variables_set = leaf(
        variables, "set", orgs_cmd + "variables_set", "set a variable; the next run sees it"
    )
    variables_set.add_argument("key", help="letters, digits and _, not starting with a digit")
    variables_set.add_argument("value", nargs="?", help="the value (at most 64 KiB)")
    variables_set.add_argument(
        "--stdin", action="store_true", help="read the value from stdin (less a final newline)"
    )
    variables_unset = leaf(variables, "unset", orgs_cmd + "variables_unset", "delete a variable")
    variables_unset.add_argument("key")
    for command in (variables_ls, variables_set, variables_unset):
        command.add_argument("--org", help="another organization (default yours)")
    _output_flag(variables_ls, OUTPUT_TABLE_JSON, "table")
    _output_flag(variables_set, OUTPUT_TABLE_JSON, "table")

    audit = branch("audit", "the audit log of your organization (org:admin)")
    audit_ls = leaf(
        audit,
        "ls",
        "corral_sdk.cli.commands.audit:ls",
        "state-changing calls, newest first",
        ["list"],
    )
    audit_ls.add_argument("--actor", help="only this user's calls")
    audit_ls.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    audit_ls.add_argument("--offset", type=int, default=0, help="skip this many (default 0)")
    _output_flag(audit_ls, OUTPUT_TABLE_JSON, "table")


def _load(ref: str) -> Callable[[argparse.Namespace], int | None]:
    module, _, attr = ref.partition(":")
    function: Callable[[argparse.Namespace], int | None] = getattr(import_module(module), attr)
    return function


def run(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; returns the exit code (2 for usage errors)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    for name, default in GLOBAL_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    if args.handler is None:
        (getattr(args, "help_parser", None) or parser).print_help()
        return EXIT_OK
    configure_logging(args.verbose)
    log = logging.getLogger("corral")
    try:
        handler = _load(args.handler)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in {"corral_api", "corral_core"}:
            print(
                f"[ERROR] this command needs the Corral server, which is not installed "
                f"(missing {exc.name}): pip install corral",
                file=sys.stderr,
            )
            return EXIT_ERROR
        raise
    try:
        return handler(args) or EXIT_OK
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Invalid as exc:
        log.debug("usage or settings error", exc_info=True)
        print(f"[ERROR] {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except CorralError as exc:
        log.debug("command failed", exc_info=True)
        print(f"[ERROR] {exc.message}", file=sys.stderr)
        return EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> NoReturn:
    sys.exit(run(argv if argv is not None else sys.argv[1:]))


if __name__ == "__main__":  # pragma: no cover
    main()
