"""The HTTP client the CLI uses: the public API, never the database."""

from __future__ import annotations

import os
from typing import Any, TypeVar

import httpx
import msgspec

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
from corral_sdk.wire import Problem

__all__ = ["DEFAULT_SERVER", "ApiClient", "resolve_credential", "resolve_server"]

T = TypeVar("T")

DEFAULT_SERVER = "http://127.0.0.1:8080"
_ERRORS: dict[int, type[CorralError]] = {
    401: NotAuthenticated,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    422: Invalid,
    503: Unavailable,
}


def resolve_server(platform_host: str | None) -> str:
    """``--platform-host``, then ``PW_PLATFORM_HOST``, then the local default server.

    Contexts in the credentials file come with authentication (the identity issue).
    """
    server = platform_host or os.environ.get("PW_PLATFORM_HOST") or DEFAULT_SERVER
    if "://" not in server:
        server = f"https://{server}"
    return server.rstrip("/")


def resolve_credential() -> str | None:
    """``PW_API_KEY`` or ``PW_TOKEN`` (for scripts, workspaces and workflow steps)."""
    return os.environ.get("PW_API_KEY") or os.environ.get("PW_TOKEN") or None


class ApiClient:
    def __init__(self, server: str, *, credential: str | None = None, timeout: float = 30.0) -> None:
        self.server = server
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        self._http = httpx.Client(base_url=server, timeout=timeout, headers=headers)

    def get(self, path: str, type: type[T], **params: Any) -> T:
        return self._request("GET", path, type, params=params)

    def _request(self, method: str, path: str, type: type[T], **kwargs: Any) -> T:
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
        if response.status_code >= 400:
            raise self._error(response)
        return msgspec.json.decode(response.content, type=type)

    def _error(self, response: httpx.Response) -> CorralError:
        try:
            problem = msgspec.json.decode(response.content, type=Problem)
            message = problem.detail or problem.title
        except msgspec.DecodeError:
            message = f"HTTP {response.status_code}: {response.text[:200]}"
        if response.status_code == 401:
            message = f"not authenticated: {message} (run `corral auth login`, or set PW_API_KEY)"
        error_type = _ERRORS.get(response.status_code, CorralError)
        return error_type(message)

    def close(self) -> None:
        self._http.close()
