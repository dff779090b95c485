"""The server commands: ``corral up``, ``serve``, ``worker`` and ``migrate``.

The CLI (in ``corral_sdk.cli``) parses arguments and calls these lazily, so ``corral --help``
never imports the server.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Mapping
from typing import Any

from corral_core.db import Database
from corral_core.migrations import current_revision, head_revision, upgrade
from corral_core.runtime import Runtime
from corral_core.settings import Settings, load_settings
from corral_sdk import __version__
from corral_sdk.errors import CorralError, SettingsError

__all__ = ["migrate", "serve", "up", "worker"]

log = logging.getLogger("corral")


def _settings(args: Any, overrides: Mapping[str, Any] | None = None) -> Settings:
    settings = load_settings(getattr(args, "config", None))
    changes: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        changes["data_dir"] = args.data_dir
    server: dict[str, Any] = {}
    if getattr(args, "host", None):
        server["host"] = args.host
    if getattr(args, "port", None) is not None:
        server["port"] = args.port
    if server:
        import msgspec

        changes["server"] = msgspec.structs.replace(settings.server, **server)
    if changes or overrides:
        import msgspec

        settings = msgspec.structs.replace(settings, **changes, **(overrides or {}))
    return settings


class _Shutdown:
    """SIGTERM/SIGINT handling for the whole life of a server process.

    Installed before anything starts, so a signal that arrives while the server is still booting
    is honoured too. uvicorn is served from a thread: it would otherwise re-raise a captured
    SIGTERM after shutting down, skipping our cleanup and exiting non-zero.
    """

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.server: Any = None
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: Any) -> None:
        log.info("received signal %d, stopping", signum)
        if self.requested.is_set() and signum == signal.SIGINT and self.server is not None:
            self.server.force_exit = True
        self.requested.set()
        if self.server is not None:
            # uvicorn waits for responses in progress: end the log streams, which never would
            self.server.config.app.state.closing.set()
            self.server.should_exit = True

    def serve_http(
        self, runtime: Runtime, settings: Settings, also_on: tuple[str, ...] = ()
    ) -> None:
        """Serve the API; ``also_on``: more IPv4 addresses to listen on (the local cloud's
        bridge, which may not exist yet: bound with IP_FREEBIND)."""
        import socket

        import uvicorn

        from corral_api.app import create_app
        from corral_api.proxy import SessionFront

        config = uvicorn.Config(
            SessionFront(create_app(runtime)),
            host=settings.server.host,
            port=settings.server.port,
            log_level=settings.logging.level,
            access_log=settings.logging.level == "debug",
            lifespan="on",
            log_config=None,
        )
        self.server = server = uvicorn.Server(config)
        if self.requested.is_set():
            return
        sockets: list[socket.socket] | None = None
        if also_on:
            sockets = []
            for address in (settings.server.host, *also_on):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if address in also_on:
                    sock.setsockopt(socket.IPPROTO_IP, 15, 1)  # IP_FREEBIND
                try:
                    sock.bind((address, settings.server.port))
                except OSError as exc:
                    raise CorralError(
                        f"could not listen on {address}:{settings.server.port}: {exc.strerror}",
                        reason="listen-failed",
                    ) from None
                sockets.append(sock)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": sockets}, name="corral-http"
        )
        thread.start()
        while thread.is_alive():
            thread.join(0.2)
        if not server.started and not self.requested.is_set():
            raise CorralError(
                f"could not listen on {settings.server.host}:{settings.server.port} "
                "(is the port in use? set [server] port or --port)",
                reason="listen-failed",
            )


def _bootstrap(runtime: Runtime) -> None:
    """First start on an empty database: the default org and its platform admin."""
    import asyncio

    boot = runtime.settings.bootstrap

    async def run() -> str | None:
        try:
            return await runtime.identity.bootstrap(
                boot.org, boot.admin_username, boot.admin_password or None
            )
        finally:
            await runtime.db.dispose()

    generated = asyncio.run(run())
    if generated:
        print(
            f"Created organization {boot.org!r} and its administrator {boot.admin_username!r} "
            f"with the password:\n\n    {generated}\n\n(shown once: sign in with "
            "`corral auth login` and change it)",
            file=sys.stderr,
            flush=True,
        )


LOCAL_ACCOUNT = "local"


def _local_cloud(runtime: Runtime, settings: Settings) -> tuple[str, ...]:
    """The embedded default's local cloud: where the ``local`` plugin is installed and hosts
    can be made (root), the bootstrap organization gets a ``local`` cloud account on first
    start, and Corral also listens on the local cloud's bridge address so that its hosts can
    call back (unless ``clusters.callback_url`` says where they reach it)."""
    import asyncio
    import ipaddress

    if "local" not in runtime.kernel.clouds() or not settings.embedded_broker:
        return ()
    from corral_core.identity.roles import Principal, Role
    from corral_sdk.errors import NotFound
    from corral_sdk.providers.cloud import CloudAccount
    from corral_sdk.wire import CloudAccountCreate

    org = settings.bootstrap.org
    admin = Principal(
        user_id=0, username="corral", org_id=0, org=org, roles=frozenset({Role.ORG_ADMIN})
    )

    async def account() -> dict[str, Any] | None:
        try:
            try:
                return dict((await runtime.cloud_accounts.get(org, LOCAL_ACCOUNT)).settings)
            except NotFound:
                pass
            check = await runtime.cloud_accounts.provider("local").validate_credentials(
                CloudAccount(name=LOCAL_ACCOUNT, credentials=None)
            )
            if not check.sufficient:
                log.info("no local cloud account: %s", check.message)
                return None
            made = await runtime.cloud_accounts.create(
                admin, CloudAccountCreate(name=LOCAL_ACCOUNT, provider="local")
            )
            print(
                f"Created the cloud account {LOCAL_ACCOUNT!r}: elastic clusters as hosts on "
                "this machine (see config/examples/local-cluster.json)",
                file=sys.stderr,
                flush=True,
            )
            return dict(made.settings)
        finally:
            await runtime.db.dispose()

    found = asyncio.run(account())
    if found is None or settings.clusters.callback_url:
        return ()
    subnet = ipaddress.ip_network(str(found.get("subnet", "10.79.0.0/16")))
    gateway = str(next(subnet.hosts()))
    runtime.cloud_clusters.callback_url = f"http://{gateway}:{settings.server.port}"
    return () if settings.server.host in ("0.0.0.0", gateway) else (gateway,)


def _require_shared_broker(settings: Settings, command: str) -> None:
    if settings.embedded_broker:
        raise SettingsError(
            f'corral {command} needs a shared broker (set [broker] url = "redis://..."); '
            "for one process use corral up",
            field="broker.url",
        )


def _describe_db(settings: Settings) -> str:
    url = Database(settings.database_url).url
    return url.render_as_string(hide_password=True)


def up(args: Any) -> int:
    """Everything in one process: migrate, API, workers, sweeper."""
    settings = _settings(args)
    shutdown = _Shutdown()
    db = Database(settings.database_url)
    upgrade(db)
    runtime = Runtime.build(settings, "all")
    _bootstrap(runtime)
    also_on = _local_cloud(runtime, settings)
    runtime.kernel.startup("all")
    runtime.start_background()
    mode = settings.mode
    print(
        f"Corral {__version__} ({mode} mode) listening on "
        f"http://{settings.server.host}:{settings.server.port}\n"
        f"  data:     {settings.data_path}\n"
        f"  database: {_describe_db(settings)}\n"
        f"  broker:   {settings.broker.url or 'in-process'}",
        file=sys.stderr,
        flush=True,
    )
    try:
        shutdown.serve_http(runtime, settings, also_on)
    finally:
        runtime.stop_background()
        runtime.kernel.shutdown("all")
    return 0


def serve(args: Any) -> int:
    """The API alone, against a migrated shared database and broker."""
    settings = _settings(args)
    _require_shared_broker(settings, "serve")
    shutdown = _Shutdown()
    runtime = Runtime.build(settings, "api")
    runtime.check_schema()
    runtime.kernel.startup("api")
    print(
        f"Corral {__version__} API listening on http://{settings.server.host}:{settings.server.port}",
        file=sys.stderr,
        flush=True,
    )
    try:
        shutdown.serve_http(runtime, settings)
    finally:
        runtime.ssh.close()
        runtime.kernel.shutdown("api")
    return 0


def worker(args: Any) -> int:
    """Background workers and the sweeper alone, against a shared database and broker."""
    settings = _settings(args)
    _require_shared_broker(settings, "worker")
    if getattr(args, "threads", None):
        import msgspec

        settings = msgspec.structs.replace(
            settings, broker=msgspec.structs.replace(settings.broker, worker_threads=args.threads)
        )
    shutdown = _Shutdown()
    runtime = Runtime.build(settings, "worker")
    runtime.check_schema()
    runtime.kernel.startup("worker")
    runtime.start_background()
    print(
        f"Corral {__version__} worker {runtime.process_id} started "
        f"({settings.broker.worker_threads} threads)",
        file=sys.stderr,
        flush=True,
    )
    try:
        while not shutdown.requested.wait(0.5):
            pass
    finally:
        runtime.stop_background()
        runtime.kernel.shutdown("worker")
    return 0


def migrate(args: Any) -> int:
    """Bring the database to the newest schema (or ``--check`` whether it is)."""
    settings = _settings(args)
    db = Database(settings.database_url)
    before = current_revision(db)
    head = head_revision()
    if getattr(args, "check", False):
        if before != head:
            print(f"database is at {before or 'none'}, newest is {head}", file=sys.stderr)
            return 1
        print(f"database is up to date ({head})")
        return 0
    upgrade(db)
    _bootstrap(Runtime.build(settings, "api"))
    if before == head:
        print(f"database already up to date ({head})")
    else:
        print(f"database migrated from {before or 'empty'} to {head}")
    return 0
