"""Settings: one TOML file (``corral.toml``) plus ``CORRAL_*`` environment overrides.

Decoded into frozen msgspec structs that reject unknown keys, naming the key's path. Environment
variables map onto keys by the structure: ``CORRAL_DATABASE_URL`` is ``[database] url``,
``CORRAL_STRICT_PLUGINS`` is the top-level ``strict_plugins``, and ``CORRAL_PLUGINS__<NAME>__<KEY>``
is ``[plugins.<name>] <key>``. ``CORRAL_CONFIG`` names the file (default ``./corral.toml`` when it
exists).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from corral_sdk.config import PluginConfig, decode_settings
from corral_sdk.errors import SettingsError

__all__ = [
    "AuthSettings",
    "BootstrapSettings",
    "BrokerSettings",
    "ClusterSettings",
    "DatabaseSettings",
    "LoggingSettings",
    "ReconcileSettings",
    "SSHSettings",
    "SecretsSettings",
    "ServerSettings",
    "Settings",
    "WorkflowSettings",
    "default_data_dir",
    "load_settings",
]

ENV_PREFIX = "CORRAL_"
CONFIG_ENV = "CORRAL_CONFIG"
DEFAULT_CONFIG_FILE = "corral.toml"


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class ServerSettings(_Section, frozen=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""
    """The URL users reach Corral at; defaults to ``http://<host>:<port>``."""


class DatabaseSettings(_Section, frozen=True, kw_only=True):
    url: str = ""
    """``sqlite:///path`` or ``postgresql://user@host/db``; default: SQLite in the data dir."""
    echo: bool = False
    pool_size: int = 5


class BrokerSettings(_Section, frozen=True, kw_only=True):
    url: str = ""
    """Empty (in-process broker, embedded mode) or ``redis://host:port/db`` (distributed mode)."""
    namespace: str = "corral"
    """Prefix of the broker's queue names, so several Corrals may share one Redis."""
    worker_threads: int = 4


class ReconcileSettings(_Section, frozen=True, kw_only=True):
    sweep_interval: float = 30.0
    """Seconds between sweeps that re-enqueue every resource that is due for a reconcile."""
    lease_seconds: float = 60.0
    """How long a worker owns a resource while reconciling it without a heartbeat."""
    retry_backoff: float = 10.0
    """Seconds before a resource that did not settle is reconciled again (doubled each time)."""
    max_backoff: float = 600.0


class SSHSettings(_Section, frozen=True, kw_only=True):
    """The SSH transport to clusters: one pooled connection per user and cluster."""

    connect_timeout: float = 15.0
    """Seconds to reach a host and sign in (each hop of a jump host chain) before giving up."""
    command_timeout: float = 300.0
    """Seconds a command may run when its caller sets no bound of its own."""
    keepalive_interval: float = 30.0
    """Seconds between keepalives on an idle connection; 0 disables them."""
    keepalive_count_max: int = 3
    """Unanswered keepalives after which a connection is declared dead and reopened."""
    max_channels: int = 10
    """Concurrent commands per connection; OpenSSH's sshd allows 10 (``MaxSessions``)."""
    idle_seconds: float = 600.0
    """A pooled connection unused this long is closed."""


class ClusterSettings(_Section, frozen=True, kw_only=True):
    """How Corral watches clusters and their jobs."""

    health_interval: float = 60.0
    """Seconds between checks that an active cluster answers (a failed one recovers then)."""
    job_poll_interval: float = 5.0
    """Seconds between polls of a cluster with unfinished jobs (one call for all of them)."""
    callback_url: str = ""
    """The URL a cloud cluster's hosts reach Corral at (bootstrap reports, the scheduler's
    resume and suspend programs, SSH keys); default: the public URL."""


class SessionSettings(_Section, frozen=True, kw_only=True):
    """Interactive sessions."""

    idle_minutes: float = 0.0
    """Stop a running session after this many minutes without traffic through the proxy
    (0: never)."""


class WorkflowSettings(_Section, frozen=True, kw_only=True):
    """Workflows."""

    github_url: str = "https://github.com"
    """Where ``uses: github/<owner>/<repo>@<ref>`` fetches ``<github_url>/<owner>/<repo>.git``
    from: a GitHub Enterprise server's URL works. No credentials are sent: public repositories
    (or ones the server shows without signing in) only."""

    def __post_init__(self) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(self.github_url)
        if parts.scheme not in ("https", "http", "file") or (
            parts.scheme != "file" and not parts.hostname
        ):
            raise ValueError(
                f"github_url {self.github_url!r} is not an https:// (or http://, file://) URL"
            )
        if parts.username is not None or parts.password is not None:
            raise ValueError("github_url must not hold a user name or password (none are sent)")


class SecretsSettings(_Section, frozen=True, kw_only=True):
    key: str = ""
    """A Fernet key (urlsafe base64, 32 bytes). Empty: a key file in the data directory."""


class AuthSettings(_Section, frozen=True, kw_only=True):
    """Platform-wide sign-in policy; organizations may narrow it further."""

    api_key_max_days: int = 0
    """The longest API key expiry anyone may choose; 0: no platform limit (keys may not expire)."""
    session_hours: int = 12
    """How long a browser session lasts."""


class BootstrapSettings(_Section, frozen=True, kw_only=True):
    """What the first start creates on an empty database."""

    org: str = "default"
    admin_username: str = "admin"
    admin_password: str = ""
    """Empty: a password is generated and printed once."""


class LoggingSettings(_Section, frozen=True, kw_only=True):
    level: Literal["debug", "info", "warning", "error"] = "info"


class Settings(_Section, frozen=True, kw_only=True):
    data_dir: str = ""
    """Where Corral keeps its data (database, secret key); default ``~/.local/share/corral``."""
    strict_plugins: bool = False
    """Fail startup when any plugin fails to load (set in CI)."""
    deny_plugins: list[str] = msgspec.field(default_factory=list)
    """Plugins (entry-point or distribution names) never imported."""
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    broker: BrokerSettings = msgspec.field(default_factory=BrokerSettings)
    reconcile: ReconcileSettings = msgspec.field(default_factory=ReconcileSettings)
    ssh: SSHSettings = msgspec.field(default_factory=SSHSettings)
    clusters: ClusterSettings = msgspec.field(default_factory=ClusterSettings)
    sessions: SessionSettings = msgspec.field(default_factory=SessionSettings)
    workflows: WorkflowSettings = msgspec.field(default_factory=WorkflowSettings)
    secrets: SecretsSettings = msgspec.field(default_factory=SecretsSettings)
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    bootstrap: BootstrapSettings = msgspec.field(default_factory=BootstrapSettings)
    logging: LoggingSettings = msgspec.field(default_factory=LoggingSettings)
    plugins: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    """``[plugins.<name>]`` tables, decoded by each plugin's own struct."""

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser()

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_path / 'corral.db'}"

    @property
    def public_url(self) -> str:
        return self.server.public_url or f"http://{self.server.host}:{self.server.port}"

    @property
    def embedded_broker(self) -> bool:
        return not self.broker.url

    @property
    def mode(self) -> str:
        """``embedded`` (SQLite and the in-process broker) or ``distributed``."""
        sqlite = self.database_url.startswith("sqlite")
        return "embedded" if sqlite and self.embedded_broker else "distributed"

    def plugin_config(self) -> PluginConfig:
        return PluginConfig(
            data_dir=str(self.data_path), public_url=self.public_url, plugins=self.plugins
        )


def default_data_dir(env: Mapping[str, str]) -> str:
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "corral")


def _sections() -> dict[str, type[msgspec.Struct]]:
    return {
        f.name: f.type
        for f in msgspec.structs.fields(Settings)
        if isinstance(f.type, type) and issubclass(f.type, _Section)
    }


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """Turn ``CORRAL_*`` variables into a nested table, by the settings' structure."""
    sections = _sections()
    top_level = {f.name for f in msgspec.structs.fields(Settings)} - set(sections) - {"plugins"}
    list_keys = {"deny_plugins"}
    table: dict[str, Any] = {}
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or var == CONFIG_ENV:
            continue
        value: Any = env[var]
        rest = var[len(ENV_PREFIX) :].lower()
        if rest.startswith("plugins__"):
            parts = rest.split("__")[1:]
            if len(parts) != 2 or not all(parts):
                raise SettingsError(
                    f"environment variable {var}: plugin settings are "
                    "CORRAL_PLUGINS__<NAME>__<KEY>",
                    field=var,
                )
            table.setdefault("plugins", {}).setdefault(parts[0], {})[parts[1]] = value
            continue
        if rest in top_level:
            if rest in list_keys:
                value = [item.strip() for item in value.split(",") if item.strip()]
            table[rest] = value
            continue
        for section, struct in sections.items():
            key = rest.removeprefix(f"{section}_")
            if key != rest and key in struct.__struct_fields__:
                table.setdefault(section, {})[key] = value
                break
        else:
            raise SettingsError(
                f"unknown environment variable {var}: it names no setting", field=var
            )
    return table


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError(f"settings file {path} does not exist", field=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: {exc}", field=str(path)) from None


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings file and the environment; raise :class:`SettingsError` naming the key.

    ``path`` overrides ``CORRAL_CONFIG``; without either, ``./corral.toml`` is read when present.
    """
    env = os.environ if env is None else env
    chosen = path or env.get(CONFIG_ENV)
    file: Path | None = Path(chosen) if chosen else None
    if file is None and Path(DEFAULT_CONFIG_FILE).is_file():
        file = Path(DEFAULT_CONFIG_FILE)
    table: dict[str, Any] = _read_toml(file) if file else {}
    source = str(file) if file else "settings"
    # Validate the file alone first, so an unknown key is blamed on the file.
    decode_settings(table, Settings, source=source)
    table = _merge(table, _env_overrides(env))
    table.setdefault("data_dir", default_data_dir(env))
    return decode_settings(table, Settings, source=source if file else "")
