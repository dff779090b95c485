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
    for noisy in ("httpx", "httpcore", "alembic", "dramatiq", "asyncio"):
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

    def branch(name: str, help: str, aliases: Sequence[str] = ()) -> Any:
        sub = commands.add_parser(
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

    version = leaf(
        commands, "version", "corral_sdk.cli.commands.version:version", "print Corral's version"
    )
    _output_flag(version, ("text", "json"), "text")
    return parser


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
