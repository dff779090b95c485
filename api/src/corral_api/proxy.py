"""The sessions' reverse proxy: ``/sessions/<owner>/<name>/...`` served from the session's
service, over HTTP and WebSocket, behind the platform's sign-in.

- Who: the platform's session cookie or a bearer credential; none gets a redirect to the
  sign-in page (a browser) or 401. A caller who neither owns the session nor is in a group it
  is shared with gets 404, as for any resource; a run's narrow token (no ``permissions:
  ['*']``) gets 403.
- What reaches the service: the request as sent, less the platform's credentials (its cookie is
  cut out of ``Cookie``, ``Authorization`` is dropped) and hop-by-hop headers, plus the headers
  the session's type asks for (a Jupyter token), and ``X-Forwarded-*``. What comes back: the
  answer as sent, streamed, with redirects and cookie paths of a service served at its root
  moved under the session's path, and never a cookie named like the platform's.
- Where: the session's endpoint through :class:`~corral_core.sessions.live.SessionConnector`
  (an SSH forward to a cluster, or loopback in the workspace). A session that is not running
  answers 503 (a page that refreshes itself, for a browser); a link redirects to its URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any
from urllib.parse import quote

import msgspec
import websockets
from litestar import Litestar
from litestar.types import Receive, Scope, Send

from corral_api.http1 import ConnectionPool, UpstreamError
from corral_api.security import SESSION_COOKIE
from corral_core.identity.names import ResourceRef
from corral_core.identity.roles import Principal
from corral_core.resources.models import Resource
from corral_core.runtime import Runtime
from corral_core.sessions.live import Backend, base_path
from corral_core.sessions.spec import SESSION_KIND
from corral_sdk.errors import CorralError, NotAuthenticated, NotFound

__all__ = ["PREFIX", "SessionFront"]

log = logging.getLogger("corral.proxy")

PREFIX = "/sessions"
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "authorization",
        "cookie",
        "content-length",
    }
)
"""Request headers not passed as they are (``cookie`` is filtered, ``content-length`` and
``host`` are set again)."""
RESPONSE_DROPPED = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "trailer", "upgrade", "proxy-authenticate"}
)
WS_DROPPED = frozenset(
    {
        "host",
        "connection",
        "upgrade",
        "authorization",
        "cookie",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "content-length",
    }
)
ACCESS_SECONDS = 2.0
"""How long a process trusts that a caller may open a running session before asking the database
again: a page's many requests (or a download's) do not each query it, and a grant withdrawn or a
session stopped takes effect within this."""
ACCESS_CACHE_SIZE = 10_000
_COOKIE_PATH = re.compile(r"(;\s*path=)([^;]*)", re.IGNORECASE)


def _headers(scope: Scope) -> list[tuple[str, str]]:
    return [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]


def _without_platform_cookie(value: str) -> str:
    kept = [
        part
        for part in (p.strip() for p in value.split(";"))
        if part and part.split("=", 1)[0].strip() != SESSION_COOKIE
    ]
    return "; ".join(kept)


class _Proxy:
    """One per process (per app): its HTTP client keeps connections to services alive."""

    def __init__(self) -> None:
        self.pool = ConnectionPool()
        # (caller, owner, name) -> (the running session, monotonic time it was read)
        self._allowed: dict[tuple[Principal, str, str], tuple[Resource, float]] = {}

    # --- who and what ---------------------------------------------------------------------------

    async def _caller(self, runtime: Runtime, headers: list[tuple[str, str]]) -> Principal | None:
        found = dict(headers)
        authorization = found.get("authorization", "")
        value = ""
        if authorization[:7].lower() == "bearer ":
            value = authorization[7:].strip()
        else:
            for part in found.get("cookie", "").split(";"):
                name, _, cookie = part.strip().partition("=")
                if name == SESSION_COOKIE:
                    value = cookie
        if not value:
            return None
        try:
            return await runtime.authn.authenticate(value)
        except NotAuthenticated:
            return None

    async def _session(self, runtime: Runtime, principal: Principal, ref: ResourceRef) -> Resource:
        """The session if the caller may open it (``NotFound``, ``PermissionDenied`` if not). A
        running one is remembered for :data:`ACCESS_SECONDS`; any other state is read again."""
        key = (principal, ref.owner, ref.name)
        remembered = self._allowed.get(key)
        if remembered is not None:
            if time.monotonic() - remembered[1] < ACCESS_SECONDS:
                return remembered[0]
            del self._allowed[key]
        resource = await runtime.access.require(principal, ref, "open")
        if resource.kind != SESSION_KIND:
            raise NotFound(f"no session {ref.uri}")
        if resource.observed_state == "running":
            if len(self._allowed) >= ACCESS_CACHE_SIZE:
                self._allowed.clear()
            self._allowed[key] = (resource, time.monotonic())
        return resource

    def _forget(self, resource: Resource) -> None:
        """Read the session again on its next request (its service failed or is gone)."""
        for key in [k for k, (r, _) in self._allowed.items() if r.id == resource.id]:
            del self._allowed[key]

    # --- HTTP -----------------------------------------------------------------------------------

    async def http(self, runtime: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
        path = _full_path(scope)
        parts = path[len(PREFIX) :].split("/", 3)  # "", owner, name, rest
        if len(parts) < 3 or not parts[1] or not parts[2]:
            await _plain(send, 404, "no such session")
            return
        owner, name = parts[1], parts[2]
        base = base_path(owner, name)
        if len(parts) == 3:  # /sessions/owner/name: the app's relative links need the slash
            query = scope.get("query_string", b"").decode("latin-1")
            await _redirect(send, base + (f"?{query}" if query else ""))
            return
        rest = parts[3]
        headers = _headers(scope)
        principal = await self._caller(runtime, headers)
        if principal is None:
            if "text/html" in dict(headers).get("accept", ""):
                await _redirect(send, f"/login?next={quote(path)}")
            else:
                await _plain(send, 401, "sign in to open this session")
            return
        if principal.scope:
            await _plain(send, 403, "a workflow run's token cannot open sessions")
            return
        try:
            resource = await self._session(runtime, principal, ResourceRef(owner, name))
        except CorralError:
            await _plain(send, 404, f"no session {owner}/{name}")
            return
        if resource.observed_state != "running":
            await _not_running(send, resource, headers)
            return
        url = resource.status.get("url")
        if url:
            await _redirect(send, str(url))
            return
        runtime.sessions.touch(resource.id or 0)
        for attempt in (1, 2):
            try:
                backend = await runtime.sessions.backend(resource, fresh=attempt == 2)
            except CorralError as exc:
                self._forget(resource)
                await _plain(send, 503, f"the session is not reachable: {exc.message}")
                return
            try:
                await self._forward(scope, receive, send, backend, base, rest, headers)
                return
            except UpstreamError as exc:
                self._forget(resource)
                self.pool.drop(backend.host, backend.port)
                await runtime.sessions.close(resource.id or 0)
                if attempt == 2:
                    await _plain(send, 502, f"the session's service does not answer: {exc}")

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        backend: Backend,
        base: str,
        rest: str,
        headers: list[tuple[str, str]],
    ) -> None:
        endpoint = backend.endpoint
        prefix = endpoint.path if endpoint.path.endswith("/") else endpoint.path + "/"
        query = scope.get("query_string", b"").decode("latin-1")
        outgoing = _outgoing(headers, endpoint.headers, scope, base)
        found = dict(headers)
        length_text = found.get("content-length", "")
        length = int(length_text) if length_text.isdigit() else None
        has_body = length is not None or "chunked" in found.get("transfer-encoding", "")
        answer = await self.pool.request(
            endpoint.scheme,
            backend.host,
            backend.port,
            scope["method"],
            f"{prefix}{rest}" + (f"?{query}" if query else ""),
            outgoing,
            _body(receive) if has_body and length != 0 else None,
            length,
        )
        out: list[tuple[bytes, bytes]] = []
        for lower, raw in answer.headers:
            value = raw
            if lower in RESPONSE_DROPPED:
                continue
            if lower == "location":
                value = _location(raw, prefix, base, backend)
            elif lower == "set-cookie":
                if raw.split("=", 1)[0].strip() == SESSION_COOKIE:
                    continue
                if prefix == "/":
                    value = _COOKIE_PATH.sub(
                        lambda m: m.group(1) + base.rstrip("/") + m.group(2), raw
                    )
            out.append((lower.encode("latin-1"), value.encode("latin-1")))
        body = answer.body()
        await send({"type": "http.response.start", "status": answer.status, "headers": out})
        try:
            async for chunk in body:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except (UpstreamError, OSError) as exc:  # the answer started: it can only stop short
            log.info("session proxy: the service's answer broke off: %s", exc)
        finally:
            await body.aclose()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    # --- WebSocket ------------------------------------------------------------------------------

    async def websocket(self, runtime: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
        path = _full_path(scope)
        parts = path[len(PREFIX) :].split("/", 3)
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        headers = _headers(scope)
        principal = await self._caller(runtime, headers)
        if len(parts) < 4 or principal is None or principal.scope:
            await send({"type": "websocket.close", "code": 4401 if principal is None else 4403})
            return
        owner, name, rest = parts[1], parts[2], parts[3]
        try:
            resource = await self._session(runtime, principal, ResourceRef(owner, name))
            if resource.observed_state != "running":
                raise NotFound("not running")
            backend = await runtime.sessions.backend(resource)
        except CorralError:
            await send({"type": "websocket.close", "code": 4404})
            return
        endpoint = backend.endpoint
        prefix = endpoint.path if endpoint.path.endswith("/") else endpoint.path + "/"
        query = scope.get("query_string", b"").decode("latin-1")
        scheme = "wss" if endpoint.scheme == "https" else "ws"
        target = f"{scheme}://{backend.host}:{backend.port}{prefix}{rest}"
        if query:
            target += f"?{query}"
        base = base_path(owner, name)
        extra = [
            (k, v) for k, v in _outgoing(headers, {}, scope, base) if k.lower() not in WS_DROPPED
        ] + list(endpoint.headers.items())  # the service's own credentials (a Jupyter token)
        subprotocols = [
            p.strip()
            for p in dict(headers).get("sec-websocket-protocol", "").split(",")
            if p.strip()
        ]
        ssl_context = None
        if scheme == "wss":
            import ssl

            ssl_context = ssl.create_default_context()
            ssl_context.check_hostname = False
            ssl_context.verify_mode = ssl.CERT_NONE
        try:
            upstream = await websockets.connect(
                target,
                additional_headers=extra,
                subprotocols=subprotocols or None,  # type: ignore[arg-type]
                max_size=None,
                compression=None,
                open_timeout=10,
                ping_interval=None,
                ssl=ssl_context,
                proxy=None,
            )
        except (OSError, websockets.WebSocketException, TimeoutError) as exc:
            log.info("session %s: websocket to %s refused: %s", resource.id, target, exc)
            await send({"type": "websocket.close", "code": 1011})
            return
        accept: dict[str, Any] = {"type": "websocket.accept"}
        if upstream.subprotocol:
            accept["subprotocol"] = upstream.subprotocol
        await send(accept)
        session_id = resource.id or 0
        runtime.sessions.touch(session_id)

        async def downstream() -> None:
            async for data in upstream:
                runtime.sessions.touch(session_id)
                if isinstance(data, bytes):
                    await send({"type": "websocket.send", "bytes": data})
                else:
                    await send({"type": "websocket.send", "text": data})

        async def upstream_pump() -> None:
            while True:
                event = await receive()
                if event["type"] == "websocket.disconnect":
                    return
                runtime.sessions.touch(session_id)
                if event.get("bytes") is not None:
                    await upstream.send(event["bytes"])
                elif event.get("text") is not None:
                    await upstream.send(event["text"])

        tasks = [asyncio.create_task(downstream()), asyncio.create_task(upstream_pump())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                with contextlib.suppress(Exception):
                    task.result()
        finally:
            for task in tasks:
                task.cancel()
            await upstream.close()
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": upstream.close_code or 1000})


def _full_path(scope: Scope) -> str:
    raw = scope.get("raw_path")
    if raw:
        return bytes(raw).decode("latin-1").split("?", 1)[0]
    return str(scope.get("root_path", "")) + str(scope["path"])


def _outgoing(
    headers: Iterable[tuple[str, str]], added: dict[str, str], scope: Scope, base: str
) -> list[tuple[str, str]]:
    out = [(k, v) for k, v in headers if k not in HOP_BY_HOP and not k.startswith("x-forwarded-")]
    found = dict(headers)
    cookie = _without_platform_cookie(found.get("cookie", ""))
    if cookie:
        out.append(("cookie", cookie))
    client = scope.get("client")
    out += [
        ("host", found.get("host", "localhost")),
        ("x-forwarded-for", client[0] if client else ""),
        ("x-forwarded-proto", "https" if scope.get("scheme") in ("https", "wss") else "http"),
        ("x-forwarded-host", found.get("host", "")),
        ("x-forwarded-prefix", base.rstrip("/")),
    ]
    out += list(added.items())
    return out


def _location(value: str, prefix: str, base: str, backend: Backend) -> str:
    """A redirect of the service, as the browser must follow it through the proxy."""
    for origin in (
        f"http://{backend.host}:{backend.port}",
        f"https://{backend.host}:{backend.port}",
        f"http://{backend.endpoint.host}:{backend.endpoint.port}",
    ):
        if value.startswith(origin):
            value = value[len(origin) :] or "/"
    if prefix != base and value.startswith(prefix):
        return base + value[len(prefix) :]
    return value


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def _plain(send: Send, status: int, text: str) -> None:
    body = (text + "\n").encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, location: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 302,
            "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b""})


async def _not_running(send: Send, resource: Resource, headers: list[tuple[str, str]]) -> None:
    state, reason = resource.observed_state, resource.reason
    text = f"the session {resource.name} is {state}" + (f": {reason}" if reason else "")
    if "text/html" not in dict(headers).get("accept", "") or state in ("failed", "stopped"):
        await _plain(send, 503, text)
        return
    escaped = text.replace("&", "&amp;").replace("<", "&lt;")
    body = (
        "<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=3>"
        f"<title>{resource.name}</title><p>{escaped}</p>"
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"3"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


_PROXY = _Proxy()


async def _serve(scope: Scope, receive: Receive, send: Send, runtime: Runtime) -> None:
    try:
        if scope["type"] == "websocket":
            await _PROXY.websocket(runtime, scope, receive, send)
        else:
            await _PROXY.http(runtime, scope, receive, send)
    except (UpstreamError, OSError, msgspec.ValidationError) as exc:
        log.info("session proxy: %s %s failed: %s", scope.get("method"), scope["path"], exc)
        with contextlib.suppress(Exception):
            await _plain(send, 502, "the session's service failed to answer")


class SessionFront:
    """The server's ASGI app: ``/sessions/...`` straight to the proxy (none of the API's
    routing and middleware on a session's every request), everything else to the API. The
    proxy does its own sign-in check (a browser is sent to sign in, not given a 401)."""

    def __init__(self, app: Litestar) -> None:
        self.app = app
        self.state = app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] in ("http", "websocket") and (
            path.startswith(PREFIX + "/") or path == PREFIX
        ):
            await _serve({**scope, "app": self.app}, receive, send, self.app.state.runtime)
        else:
            await self.app(scope, receive, send)
