"""``corral auth``: sign in, store credentials in contexts, who am I, API keys.

``auth logout`` forgets the context's credential locally; when it is a token that ``auth login``
issued (its id is stored with it), it is also revoked on the server first, on a best-effort
basis (an unreachable server or an already expired token does not stop the logout). API keys
are only forgotten locally: they are long-lived and may be used elsewhere; revoke one with
``corral auth apikeys delete ID``.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from datetime import datetime

import msgspec

from corral_sdk.cli.client import (
    DEFAULT_SERVER,
    ApiClient,
    client_for,
    normalize_server,
    resolve,
    resolve_context,
)
from corral_sdk.cli.credentials import (
    Context,
    CredentialsFile,
    default_context_name,
    read_secret,
)
from corral_sdk.cli.output import print_json, print_table
from corral_sdk.errors import CorralError, Invalid, NotAuthenticated, NotFound, TransportError
from corral_sdk.wire import ApiKeyCreate, CredentialInfo, IssuedCredential, TokenCreate, Whoami

__all__ = [
    "apikey",
    "apikeys_create",
    "apikeys_delete",
    "apikeys_ls",
    "identify_platform",
    "login",
    "logout",
    "token",
    "whoami",
]

log = logging.getLogger("corral")
LOGIN_TOKEN_HOURS = 24


def _when(value: datetime | None, empty: str = "-") -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else empty


def _iso(value: datetime | None) -> str | None:
    return value.replace(microsecond=0).isoformat().replace("+00:00", "Z") if value else None


def read_password_stdin() -> str:
    """The whole of stdin, less its final line break (``--password-stdin``)."""
    value = sys.stdin.read() if sys.stdin is not None else ""
    if value.endswith("\n"):
        value = value[:-1]
    if value.endswith("\r"):
        value = value[:-1]
    if not value:
        raise Invalid("--password-stdin: stdin is empty")
    return value


def _save(
    args: argparse.Namespace,
    server: str,
    who: Whoami,
    kind: str,
    credential: str,
    *,
    credential_id: int | None = None,
    expires_at: str | None = None,
) -> str:
    store = CredentialsFile.load()
    name = args.context_name or default_context_name(who.username, server)
    store.put(
        Context(
            name=name,
            server=server,
            username=who.username,
            org=who.org,
            kind=kind,
            credential=credential,
            credential_id=credential_id,
            expires_at=expires_at,
        )
    )
    store.save()
    return name


def _login_target(args: argparse.Namespace) -> tuple[str, Context | None]:
    """The server to sign in to, and the context that will be overwritten or is selected.

    ``--platform-host`` or ``PW_PLATFORM_HOST`` first; then the server of the context named by
    ``--context-name`` when it exists; then the usual resolution (``--context``, ``PW_CONTEXT``,
    the current context, the default server).
    """
    host = args.platform_host or os.environ.get("PW_PLATFORM_HOST")
    existing = CredentialsFile.load().contexts.get(args.context_name or "")
    if existing is None:
        existing = resolve_context(args.context)
    if host:
        server = normalize_server(host)
        if existing is not None and normalize_server(existing.server) != server:
            existing = None
    else:
        server = normalize_server(existing.server) if existing else DEFAULT_SERVER
    return server, existing


def login(args: argparse.Namespace) -> int:
    """Sign in with a password, then keep a 24-hour token (not the password) in a context."""
    server, existing = _login_target(args)
    interactive = sys.stdin is not None and sys.stdin.isatty()
    username = args.username or (existing.username if existing else "")
    if not username:
        if not interactive:
            raise Invalid("--username is required when stdin is not a terminal")
        sys.stderr.write("Username: ")
        sys.stderr.flush()
        username = sys.stdin.readline().strip()
        if not username:
            raise Invalid("no username given")
    if args.password_stdin:
        password = read_password_stdin()
    elif interactive:
        password = getpass.getpass(f"Password for {username}: ")
    else:
        raise Invalid("stdin is not a terminal: pass the password with --password-stdin")
    with ApiClient(server) as client:
        client.sign_in(username, password)
        try:
            issued = client.post(
                "/api/auth/tokens",
                IssuedCredential,
                TokenCreate(expiration_hours=LOGIN_TOKEN_HOURS),
            )
        finally:
            try:  # the browser session is not needed any more: end it
                client.post("/api/auth/logout")
            except CorralError:
                log.debug("could not end the sign-in session", exc_info=True)
        client.set_credential(issued.secret)
        who = client.get("/api/auth/whoami", Whoami)
    name = _save(
        args,
        server,
        who,
        "token",
        issued.secret,
        credential_id=issued.id,
        expires_at=_iso(issued.expires_at),
    )
    log.info("Authenticated as %s (context %s)", who.username, name)
    return 0


def _store_credential(args: argparse.Namespace, kind: str, label: str) -> int:
    server, _ = _login_target(args)
    secret = read_secret(f"Paste your {label} on a new line: ", label)
    with ApiClient(server, credential=secret) as client:
        client.login_hint = False
        try:
            who = client.get("/api/auth/whoami", Whoami)
        except NotAuthenticated as exc:
            raise NotAuthenticated(f"{server} refused the {label}: {exc.message}") from None
    if who.credential in ("apikey", "token") and who.credential != kind:
        log.warning("this is a %s, not an %s: saved as a %s", who.credential, label, who.credential)
        kind = who.credential
    name = _save(args, server, who, kind, secret)
    log.info("Authenticated as %s (context %s)", who.username, name)
    return 0


def apikey(args: argparse.Namespace) -> int:
    return _store_credential(args, "apikey", "API key")


def token(args: argparse.Namespace) -> int:
    return _store_credential(args, "token", "token")


def whoami(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        raw = client.get("/api/auth/whoami", msgspec.Raw)
    if args.output == "json":
        print_json(raw)
        return 0
    who = msgspec.json.decode(raw, type=Whoami)
    print_table(
        ["USERNAME", "ORG", "ROLES", "GROUPS", "CREDENTIAL"],
        [
            [
                who.username,
                who.org,
                ",".join(who.roles) or "-",
                ",".join(who.groups) or "-",
                who.credential,
            ]
        ],
    )
    return 0


def identify_platform(args: argparse.Namespace) -> int:
    """The server commands talk to (local only: no request)."""
    print(resolve(args.platform_host, args.context).server)
    return 0


def logout(args: argparse.Namespace) -> int:
    store = CredentialsFile.load()
    name = args.context or os.environ.get("PW_CONTEXT") or store.current
    if not name:
        raise CorralError("no context selected: nothing to log out of (see `corral context ls`)")
    context = store.get(name)
    if not context.credential:
        log.info("context %s holds no credential", context.name)
        return 0
    if context.kind == "token" and context.credential_id is not None:
        try:
            with ApiClient(context.server, credential=context.credential) as client:
                client.delete(f"/api/auth/tokens/{context.credential_id}")
            log.info("revoked the token on %s", context.server)
        except (NotAuthenticated, NotFound):
            log.debug("the token was already expired or revoked", exc_info=True)
        except TransportError as exc:
            log.warning("could not revoke the token on the server (%s): forgetting it", exc)
    store.put(context.without_credential(), make_current=False)
    store.save()
    log.info("Logged out of context %s", context.name)
    return 0


def apikeys_ls(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        raw = client.get("/api/auth/apikeys", msgspec.Raw)
    if args.output == "json":
        print_json(raw)
        return 0
    keys = msgspec.json.decode(raw, type=list[CredentialInfo])
    print_table(
        ["ID", "NAME", "CREATED", "EXPIRES", "LAST USED"],
        [
            [k.id, k.name, _when(k.created_at), _when(k.expires_at, "never"), _when(k.last_used_at)]
            for k in keys
        ],
    )
    return 0


def apikeys_create(args: argparse.Namespace) -> int:
    """Prints the new key's secret, the only time it is shown (``-o json``: the API's answer)."""
    with client_for(args) as client:
        raw = client.post(
            "/api/auth/apikeys",
            msgspec.Raw,
            ApiKeyCreate(name=args.name, expiration_days=args.expires_days),
        )
    issued = msgspec.json.decode(raw, type=IssuedCredential)
    if args.output == "json":
        print_json(raw)
    else:
        print(issued.secret)
    log.info(
        "created API key %s (%s, expires %s): its secret is shown this once",
        issued.id,
        issued.name,
        _when(issued.expires_at, "never"),
    )
    return 0


def apikeys_delete(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        client.delete(f"/api/auth/apikeys/{args.id}")
    log.info("deleted API key %s", args.id)
    return 0
