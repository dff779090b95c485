"""A small HTTP proxy between boto3 and moto: the "HTTP boundary" of the AWS tests.

It passes every request on to moto and

- counts and records them per AWS action (``Action=`` of the query protocol EC2, STS and IAM use),
  so tests can see what the provider really sent (``RunInstances`` with ``MinCount=200``...);
- answers some with AWS errors instead (:meth:`FaultProxy.fail`): throttling (400
  ``RequestLimitExceeded``, 503 ``Throttling``) or a zone without capacity
  (``InsufficientInstanceCapacity``), as AWS does;
- answers, with a small in-memory fake, the EC2 actions moto does not implement (placement groups
  and capacity reservations; :class:`Ec2Extras`).

Used by the tests and by ``bench/bench_aws_scaleup.py``.
"""

from __future__ import annotations

import http.client
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

Params = dict[str, str]
"""A request's form parameters, one value each (``Placement.AvailabilityZone``)."""
Answer = tuple[int, str]

_EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


@dataclass
class Fault:
    action: str
    times: int
    status: int
    code: str
    message: str
    when: Callable[[Params], bool] | None = None
    served: int = 0


@dataclass
class Recorded:
    action: str
    params: Params
    service: str


def _error(service: str, code: str, message: str) -> str:
    request_id = uuid.uuid4()
    if service == "ec2":
        return (
            f"<Response><Errors><Error><Code>{escape(code)}</Code><Message>{escape(message)}"
            f"</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
        )
    return (
        f"<ErrorResponse><Error><Type>Sender</Type><Code>{escape(code)}</Code><Message>"
        f"{escape(message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )


def _service(headers: Any) -> str:
    auth = headers.get("Authorization", "")
    # AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/ec2/aws4_request, ...
    try:
        return str(auth.split("Credential=", 1)[1].split(",", 1)[0].split("/")[3])
    except IndexError:
        return ""


class FaultProxy:
    """The proxy, on a loopback port of its own (:attr:`url`)."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.calls: Counter[str] = Counter()
        self.recorded: list[Recorded] = []
        self.faults: list[Fault] = []
        self.handlers: dict[str, Callable[[Params], Answer]] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.recorded.clear()
            self.faults.clear()
            self.handlers.clear()

    def fail(
        self,
        action: str,
        *,
        times: int,
        status: int = 400,
        code: str = "RequestLimitExceeded",
        message: str = "Request limit exceeded.",
        when: Callable[[Params], bool] | None = None,
    ) -> Fault:
        """Answer the next ``times`` requests of ``action`` (those ``when`` accepts) with an
        AWS error instead of passing them on."""
        fault = Fault(action, times, status, code, message, when)
        with self._lock:
            self.faults.append(fault)
        return fault

    def sent(self, action: str) -> list[Params]:
        """The parameters of every ``action`` request seen, oldest first."""
        with self._lock:
            return [r.params for r in self.recorded if r.action == action]

    # --- serving

    def _answer(self, action: str, params: Params, service: str) -> Answer | None:
        with self._lock:
            self.calls[action] += 1
            self.recorded.append(Recorded(action, params, service))
            for fault in self.faults:
                if fault.action != action or fault.served >= fault.times:
                    continue
                if fault.when is not None and not fault.when(params):
                    continue
                fault.served += 1
                return fault.status, _error(service, fault.code, fault.message)
            handler = self.handlers.get(action)
        return handler(params) if handler is not None else None

    def _forward(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, Any, bytes]:
        connection = getattr(self._local, "connection", None)
        for attempt in (1, 2):
            if connection is None:
                connection = http.client.HTTPConnection(*self.upstream, timeout=120)
                self._local.connection = connection
            try:
                connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
                for key, value in headers.items():
                    if key.lower() not in _HOP:
                        connection.putheader(key, value)
                connection.putheader("Content-Length", str(len(body)))
                connection.endheaders(body)
                answer = connection.getresponse()
                return answer.status, answer.getheaders(), answer.read()
            except (ConnectionError, http.client.HTTPException):
                connection.close()
                connection = None
                self._local.connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in _HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                query = urlsplit(self.path).query
                form = parse_qs(query) | parse_qs(body.decode("utf-8", "replace"))
                params = {k: v[0] for k, v in form.items()}
                action = params.get("Action", "")
                service = _service(self.headers)
                canned = proxy._answer(action, params, service) if action else None
                if canned is not None:
                    status, text = canned
                    self._reply(status, [("Content-Type", "text/xml")], text.encode())
                    return
                status, headers, answer = proxy._forward(
                    self.command, self.path, self.headers, body
                )
                self._reply(status, headers, answer)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        return Handler


# --- what moto lacks -----------------------------------------------------------------------------


def _ec2_response(action: str, inner: str) -> Answer:
    return 200, (
        f'<{action}Response xmlns="{_EC2_NS}"><requestId>{uuid.uuid4()}</requestId>'
        f"{inner}</{action}Response>"
    )


def _list(params: Params, prefix: str) -> list[str]:
    found = [(k, v) for k, v in params.items() if k.startswith(prefix + ".")]
    return [v for _, v in sorted(found, key=lambda kv: int(kv[0].rsplit(".", 1)[1]))]


def _filter(params: Params, name: str) -> list[str] | None:
    for key, value in params.items():
        if key.startswith("Filter.") and key.endswith(".Name") and value == name:
            return _list(params, key.removesuffix(".Name") + ".Value")
    return None


@dataclass
class Reservation:
    id: str
    instance_type: str
    zone: str
    total: int
    available: int
    state: str = "active"


@dataclass
class Ec2Extras:
    """Placement groups and capacity reservations, which moto does not implement, answered as
    EC2 answers them (the shapes of the EC2 API reference)."""

    groups: dict[str, tuple[str, str]] = field(default_factory=dict)
    reservations: dict[str, Reservation] = field(default_factory=dict)

    def install(self, proxy: FaultProxy) -> Ec2Extras:
        proxy.handlers.update(
            {
                "CreatePlacementGroup": self.create_group,
                "DescribePlacementGroups": self.describe_groups,
                "DeletePlacementGroup": self.delete_group,
                "DescribeCapacityReservations": self.describe_reservations,
            }
        )
        return self

    @staticmethod
    def _group(name: str, strategy: str, group_id: str) -> str:
        return (
            f"<groupName>{escape(name)}</groupName><strategy>{strategy}</strategy>"
            f"<state>available</state><groupId>{group_id}</groupId>"
        )

    def create_group(self, params: Params) -> Answer:
        name = params["GroupName"]
        if name in self.groups:
            return 400, _error(
                "ec2", "InvalidPlacementGroup.Duplicate", f"The placement group '{name}' exists."
            )
        strategy = params.get("Strategy", "cluster")
        group_id = f"pg-{uuid.uuid4().hex[:17]}"
        self.groups[name] = (strategy, group_id)
        body = self._group(name, strategy, group_id)
        return _ec2_response(
            "CreatePlacementGroup", f"<return>true</return><placementGroup>{body}</placementGroup>"
        )

    def describe_groups(self, params: Params) -> Answer:
        names = _filter(params, "group-name") or _list(params, "GroupName") or list(self.groups)
        items = "".join(
            f"<item>{self._group(n, *self.groups[n])}</item>" for n in names if n in self.groups
        )
        return _ec2_response(
            "DescribePlacementGroups", f"<placementGroupSet>{items}</placementGroupSet>"
        )

    def delete_group(self, params: Params) -> Answer:
        name = params["GroupName"]
        if self.groups.pop(name, None) is None:
            return 400, _error(
                "ec2", "InvalidPlacementGroup.Unknown", f"The placement group '{name}' is unknown."
            )
        return _ec2_response("DeletePlacementGroup", "<return>true</return>")

    def describe_reservations(self, params: Params) -> Answer:
        wanted = _list(params, "CapacityReservationId")
        unknown = [r for r in wanted if r not in self.reservations]
        if unknown:
            return 400, _error(
                "ec2",
                "InvalidCapacityReservationId.NotFound",
                f"The capacity reservation ID '{unknown[0]}' does not exist",
            )
        items = "".join(
            f"<item><capacityReservationId>{r.id}</capacityReservationId>"
            f"<instanceType>{r.instance_type}</instanceType>"
            f"<availabilityZone>{r.zone}</availabilityZone>"
            f"<totalInstanceCount>{r.total}</totalInstanceCount>"
            f"<availableInstanceCount>{r.available}</availableInstanceCount>"
            f"<state>{r.state}</state></item>"
            for r in (self.reservations[i] for i in wanted or list(self.reservations))
        )
        return _ec2_response(
            "DescribeCapacityReservations",
            f"<capacityReservationSet>{items}</capacityReservationSet>",
        )
