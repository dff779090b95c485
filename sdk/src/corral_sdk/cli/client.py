"""The HTTP client the CLI uses: the public API, never the database."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import httpx
import msgspec

from corral_sdk.cli.credentials import Context, CredentialsFile
from corral_sdk.errors import (
    Conflict,
    CorralError,
    Invalid,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    TransportError,
    Unavailable,
)
from corral_sdk.wire import LoginRequest, Problem, Whoami

__all__ = [
    "DEFAULT_SERVER",
    "SESSION_COOKIE",
    "ApiClient",
    "ServerEvent",
    "Target",
    "client_for",
    "normalize_server",
    "resolve",
    "resolve_context",
    "resolve_credential",
    "resolve_server",
]

T = TypeVar("T")

log = logging.getLogger("corral.cli")

DEFAULT_SERVER = "http://127.0.0.1:8080"
SESSION_COOKIE = "corral_session"
"""The cookie ``POST /api/auth/login`` sets; its value also works as a Bearer credential."""
_ERRORS: dict[int, type[CorralError]] = {
    401: NotAuthenticated,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    422: Invalid,
    503: Unavailable,
}


def normalize_server(server: str) -> str:
    if "://" not in server:
        server = f"https://{server}"
    return server.rstrip("/")


def resolve_context(name: str | None = None) -> Context | None:
    """``--context``, then ``PW_CONTEXT``, then the credentials file's current context.

    A context named by the flag or the variable must exist; no current context gives None.
    """
    store = CredentialsFile.load()
    explicit = name or os.environ.get("PW_CONTEXT") or None
    return store.get(explicit) if explicit else store.current_context()


@dataclass(frozen=True)
class Target:
    """Where a command talks to, with which credential, and the context they came from."""

    server: str
    credential: str | None
    context: Context | None


def resolve(platform_host: str | None = None, context: str | None = None) -> Target:
    """The server and the credential of a command.

    Server: ``--platform-host``, ``PW_PLATFORM_HOST``, the context's server, the local default.
    Credential: ``PW_API_KEY`` or ``PW_TOKEN`` (scripts, workspaces, workflow steps), then the
    context's. A context's credential is only ever sent to that context's own server.
    """
    host = platform_host or os.environ.get("PW_PLATFORM_HOST") or None
    env_credential = os.environ.get("PW_API_KEY") or os.environ.get("PW_TOKEN") or None
    selected = None
    if context or os.environ.get("PW_CONTEXT") or not (host and env_credential):
        selected = resolve_context(context)
    server = normalize_server(host or (selected.server if selected else DEFAULT_SERVER))
    credential = env_credential
    if credential is None and selected is not None and selected.credential:
        if normalize_server(selected.server) == server:
            credential = selected.credential
        else:
            log.warning(
                "not sending the credential of context %s to %s: it belongs to %s",
                selected.name,
                server,
                selected.server,
            )
    return Target(server, credential, selected)


def resolve_server(platform_host: str | None, context: str | None = None) -> str:
    """``--platform-host``, ``PW_PLATFORM_HOST``, the selected context's server, the default."""
    return resolve(platform_host, context).server


def resolve_credential(platform_host: str | None = None, context: str | None = None) -> str | None:
    """``PW_API_KEY`` or ``PW_TOKEN``, else the selected context's credential (for its server)."""
    return resolve(platform_host, context).credential


def client_for(args: argparse.Namespace) -> ApiClient:
    """A client for a command's global flags (``--platform-host``, ``--context``)."""
    target = resolve(args.platform_host, args.context)
    return ApiClient(target.server, credential=target.credential)


class ApiClient:
    def __init__(
        self, server: str, *, credential: str | None = None, timeout: float = 30.0
    ) -> None:
        self.server = server
        self._http = httpx.Client(base_url=server, timeout=timeout)
        self._last_cookies: dict[str, str] = {}
        self.login_hint = True
        """Add "run `corral auth login`" to 401 errors (off while checking a new credential)."""
        self.set_credential(credential)

    def set_credential(self, credential: str | None) -> None:
        """Send ``Authorization: Bearer <credential>`` from now on (None: no credential)."""
        self._http.headers.pop("Authorization", None)
        if credential:
            self._http.headers["Authorization"] = f"Bearer {credential}"

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str, type: type[T], **params: Any) -> T:
        result: T = self._request("GET", path, type, params=params)
        return result

    @overload
    def post(self, path: str, type: type[T], body: Any = None, **params: Any) -> T: ...
    @overload
    def post(self, path: str, type: None = None, body: Any = None, **params: Any) -> None: ...
    def post(self, path: str, type: type[T] | None = None, body: Any = None, **params: Any) -> Any:
        return self._request("POST", path, type, body=body, params=params)

    def patch(self, path: str, type: type[T], body: Any) -> T:
        result: T = self._request("PATCH", path, type, body=body)
        return result

    @overload
    def put(self, path: str, type: type[T], body: Any = None) -> T: ...
    @overload
    def put(self, path: str, type: None = None, body: Any = None) -> None: ...
    def put(self, path: str, type: type[T] | None = None, body: Any = None) -> Any:
        return self._request("PUT", path, type, body=body)

    def delete(self, path: str, **params: Any) -> None:
        self._request("DELETE", path, None, params=params)

    def sign_in(self, username: str, password: str) -> tuple[Whoami, str]:
        """``POST /api/auth/login``: who signed in and the session's secret.

        The client then authenticates with the session until :meth:`set_credential` changes it.
        """
        self.set_credential(None)
        whoami = self._request(
            "POST",
            "/api/auth/login",
            Whoami,
            body=LoginRequest(username=username, password=password),
            hint=False,
        )
        session = self._last_cookies.get(SESSION_COOKIE)
        self._http.cookies.clear()  # from now on, credentials go in the Authorization header
        if not session:
            raise CorralError(f"{self.server} signed you in but set no session cookie")
        self.set_credential(session)
        return whoami, session

    def _request(
        self,
        method: str,
        path: str,
        type: type[T] | None,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        hint: bool = True,
    ) -> Any:
        kwargs: dict[str, Any] = {}
        if params:
            kwargs["params"] = {
                k: ("true" if v is True else "false" if v is False else v)
                for k, v in params.items()
                if v is not None
            }
        if body is not None:
            kwargs["content"] = msgspec.json.encode(body)
            kwargs["headers"] = {"Content-Type": "application/json"}
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise TransportError(
                f"cannot reach Corral at {self.server}: {exc} "
                "(is `corral up` running? set --platform-host or PW_PLATFORM_HOST)",
                reason="server-unreachable",
            ) from None
        except httpx.HTTPError as exc:
            raise TransportError(f"request to {self.server}{path} failed: {exc}") from None
        self._last_cookies = dict(response.cookies)
        if response.status_code >= 400:
            raise self._error(response, hint=hint)
        if type is None:
            return None
        if type is str:  # a plain-text answer
            return response.text
        try:
            return msgspec.json.decode(response.content, type=type)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise CorralError(
                f"unexpected answer from {self.server}{path} (HTTP {response.status_code}): {exc}"
            ) from None

    def _error(self, response: httpx.Response, *, hint: bool = True) -> CorralError:
        details: dict[str, Any] = {}
        try:
            problem = msgspec.json.decode(response.content, type=Problem)
            message = problem.detail or problem.title
            details = dict(problem.errors[0]) if problem.errors else {}
        except (msgspec.DecodeError, msgspec.ValidationError):
            message = f"HTTP {response.status_code}: {response.text[:200]}"
        if response.status_code == 401 and hint and self.login_hint:
            message = f"not authenticated: {message} (run `corral auth login`, or set PW_API_KEY)"
        error_type = _ERRORS.get(response.status_code, CorralError)
        return error_type(message, details=details)

    def events(
        self, path: str, *, read_timeout: float = 60.0, **params: Any
    ) -> Iterator[ServerEvent]:
        """The Server-Sent Events of ``path`` as they arrive. A dropped connection, or one
        silent for ``read_timeout`` seconds (Corral's streams send a comment every 15 s),
        raises ``TransportError`` after the events received so far."""
        query = {k: v for k, v in params.items() if v is not None}
        try:
            with self._http.stream(
                "GET", path, params=query, timeout=httpx.Timeout(30.0, read=read_timeout)
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self._error(response)
                event = ServerEvent()
                for raw in response.iter_lines():
                    if not raw:
                        if event.data is not None or event.event != "message":
                            yield event
                        event = ServerEvent()
                        continue
                    field, _, value = raw.partition(":")
                    value = value.removeprefix(" ")
                    if field == "data":
                        event.data = value if event.data is None else f"{event.data}\n{value}"
                    elif field == "event":
                        event.event = value
                    elif field == "id":
                        event.id = value
        except httpx.HTTPError as exc:
            raise TransportError(
                f"the stream {self.server}{path} broke: {exc}",
                reason="stream-broken",
                retryable=True,
            ) from None

    def close(self) -> None:
        self._http.close()


@dataclass
class ServerEvent:
    """One Server-Sent Event."""

    event: str = "message"
    id: str = ""
    data: str | None = None
