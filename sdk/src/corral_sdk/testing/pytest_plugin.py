"""Corral's pytest plugin, loaded automatically (entry point ``pytest11: corral``) wherever
``corral-sdk`` is installed.

Fixtures:

``corral_plugin_manager``
    A fresh ``pluggy.PluginManager("corral")`` with :mod:`corral_sdk.hookspecs` added; every plugin
    registered on it is unregistered after the test, so no test leaks plugins into another.
``transcript_runner``
    A factory of :class:`~corral_sdk.testing.TranscriptRunner`:
    ``transcript_runner(text=..., strict=True)``; with ``strict=True`` the test fails at teardown
    unless every expected command ran.
``no_real_cloud``
    Forbids connections to anything but loopback (and ``corral_allowed_hosts``) for the test.

The marker ``@pytest.mark.no_real_cloud`` does the same for a test, a class or a module
(``pytestmark``), and the ini option ``corral_forbid_network = true`` for the whole session. While
forbidden, connecting a socket to another address, or looking up a host name that is not local,
raises :class:`NetworkForbiddenError` naming the address, so a plugin's tests cannot call a real
cloud by accident. ``corral_allowed_hosts`` (ini, one per line) adds addresses, networks (CIDR)
or host names that stay reachable, such as test hosts in network namespaces.

This module is imported at every pytest start: it imports nothing but the standard library,
pytest and the cheap parts of :mod:`corral_sdk.testing`.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from corral_sdk.testing.transcript import TranscriptEntry, TranscriptRunner, parse_transcript

__all__ = [
    "NetworkForbiddenError",
    "NetworkGuard",
    "TranscriptRunnerFactory",
    "corral_plugin_manager",
    "forbid_network",
    "no_real_cloud",
    "transcript_runner",
]

FORBID_INI = "corral_forbid_network"
ALLOWED_INI = "corral_allowed_hosts"
MARKER = "no_real_cloud"


# --- the network switch -------------------------------------------------------------------------


class NetworkForbiddenError(RuntimeError):
    """A test tried to reach a host outside this machine while the network is forbidden.

    A ``RuntimeError`` rather than an ``OSError``, so that client libraries do not take it for a
    network hiccup and retry; the refused socket is closed.
    """


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class NetworkGuard:
    """What may be reached while the network is forbidden: loopback, plus ``allowed`` (IP
    addresses, CIDR networks or host names)."""

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self.networks: list[IPNetwork] = []
        self.names: set[str] = set()
        for raw in allowed:
            item = raw.strip()
            if not item:
                continue
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                self.names.add(item.lower().rstrip("."))
        self.blocked: list[str] = []
        """Every connection or lookup refused, for tests of the guard itself."""

    def ip_allowed(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip.is_loopback or ip.is_unspecified:
            return True
        return any(ip.version == net.version and ip in net for net in self.networks)

    def host_allowed(self, host: str) -> bool:
        """Whether ``host`` (an address or a name) may be reached."""
        host = host.strip("[]")
        try:
            ip = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            name = host.lower().rstrip(".")
            return (
                name in ("localhost", "localhost.localdomain")
                or name.endswith(".localhost")
                or name in self.names
                or name == socket.gethostname().lower()
            )
        return self.ip_allowed(ip)

    def refuse(self, what: str) -> NetworkForbiddenError:
        self.blocked.append(what)
        return NetworkForbiddenError(
            f"{what} blocked: tests must not reach real clouds or other hosts "
            f"(pytest marker '{MARKER}' or ini option '{FORBID_INI}'). Use a local emulator or "
            f"a transcript on 127.0.0.1, or add the host to the ini option '{ALLOWED_INI}'."
        )

    def check_connect(self, family: int, address: Any) -> None:
        if family not in (socket.AF_INET, socket.AF_INET6):
            return  # Unix sockets, netlink...: never leave the machine
        host, port = str(address[0]), address[1]
        if not self.host_allowed(host):
            raise self.refuse(f"connection to {host}:{port}")

    def check_lookup(self, host: Any) -> None:
        if host is None:
            return
        name = host.decode() if isinstance(host, bytes) else str(host)
        try:
            ipaddress.ip_address(name.strip("[]").split("%", 1)[0])
        except ValueError:
            if not self.host_allowed(name):
                raise self.refuse(f"name lookup of {name!r}") from None


_guards: list[NetworkGuard] = []
_originals: dict[str, Any] = {}


def _check_connect(sock: socket.socket, address: Any) -> None:
    try:
        _guards[-1].check_connect(sock.family, address)
    except NetworkForbiddenError:
        # callers close sockets on OSError only; close it here so it does not leak
        sock.close()
        raise


def _guarded_connect(sock: socket.socket, address: Any) -> Any:
    _check_connect(sock, address)
    return _originals["connect"](sock, address)


def _guarded_connect_ex(sock: socket.socket, address: Any) -> Any:
    _check_connect(sock, address)
    return _originals["connect_ex"](sock, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    _guards[-1].check_lookup(host)
    return _originals["getaddrinfo"](host, *args, **kwargs)


def _install(guard: NetworkGuard) -> None:
    if not _guards:
        _originals["connect"] = socket.socket.connect
        _originals["connect_ex"] = socket.socket.connect_ex
        _originals["getaddrinfo"] = socket.getaddrinfo
        socket.socket.connect = _guarded_connect  # type: ignore[method-assign,assignment]
        socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign,assignment]
        socket.getaddrinfo = _guarded_getaddrinfo
    _guards.append(guard)


def _uninstall(guard: NetworkGuard) -> None:
    _guards.remove(guard)
    if not _guards:
        socket.socket.connect = _originals.pop("connect")  # type: ignore[method-assign]
        socket.socket.connect_ex = _originals.pop("connect_ex")  # type: ignore[method-assign]
        socket.getaddrinfo = _originals.pop("getaddrinfo")


@contextmanager
def forbid_network(allowed: Iterable[str] = ()) -> Iterator[NetworkGuard]:
    """Within the block, only loopback and ``allowed`` can be connected to or looked up.

    Blocks nest; the innermost one's ``allowed`` applies.
    """
    guard = NetworkGuard(allowed)
    _install(guard)
    try:
        yield guard
    finally:
        _uninstall(guard)


def _allowed_hosts(config: pytest.Config) -> list[str]:
    return [str(item) for item in config.getini(ALLOWED_INI)]


# --- pytest hooks -------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        FORBID_INI,
        type="bool",
        default=False,
        help="forbid connections to anything but loopback for the whole session (corral)",
    )
    parser.addini(
        ALLOWED_INI,
        type="linelist",
        default=[],
        help="addresses, CIDR networks or host names reachable despite the network switch",
    )


_SESSION_GUARD = pytest.StashKey[NetworkGuard]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}: forbid connections to anything but loopback (and {ALLOWED_INI}) in this test",
    )
    if config.getini(FORBID_INI):
        guard = NetworkGuard(_allowed_hosts(config))
        _install(guard)
        config.stash[_SESSION_GUARD] = guard


def pytest_unconfigure(config: pytest.Config) -> None:
    guard = config.stash.get(_SESSION_GUARD, None)
    if guard is not None:
        _uninstall(guard)
        del config.stash[_SESSION_GUARD]


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def no_real_cloud(request: pytest.FixtureRequest) -> Iterator[NetworkGuard]:
    """Forbid connections to anything but loopback (and ``corral_allowed_hosts``) during the
    test; yields the :class:`NetworkGuard`, whose ``blocked`` lists what it refused."""
    with forbid_network(_allowed_hosts(request.config)) as guard:
        yield guard


@pytest.fixture(autouse=True)
def _corral_no_real_cloud_marker(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker(MARKER) is not None:
        request.getfixturevalue("no_real_cloud")


@pytest.fixture
def corral_plugin_manager() -> Iterator[Any]:
    """A fresh ``pluggy.PluginManager("corral")`` knowing Corral's hook specifications; plugins
    registered on it are unregistered after the test."""
    import pluggy

    from corral_sdk import hookspecs

    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    try:
        yield manager
    finally:
        for plugin in list(manager.get_plugins()):
            manager.unregister(plugin)


class TranscriptRunnerFactory:
    """Builds :class:`~corral_sdk.testing.TranscriptRunner` instances for one test."""

    def __init__(self) -> None:
        self.strict: list[TranscriptRunner] = []

    def __call__(
        self,
        entries: Iterable[TranscriptEntry | dict[str, Any]] = (),
        *,
        text: str | None = None,
        path: str | Path | None = None,
        strict: bool = False,
        **kwargs: Any,
    ) -> TranscriptRunner:
        """A runner answering ``entries``, then the entries of ``text`` (the text format) and of
        the file at ``path`` (``.json`` or text). ``kwargs`` go to :class:`TranscriptRunner`;
        ``strict=True`` checks at teardown that every expected command ran."""
        runner = TranscriptRunner(entries, **kwargs)
        if text is not None:
            for entry in parse_transcript(text):
                runner.add(entry)
        if path is not None:
            for entry in TranscriptRunner.from_file(path).entries:
                runner.add(entry)
        if strict:
            self.strict.append(runner)
        return runner


@pytest.fixture
def transcript_runner() -> Iterator[Callable[..., TranscriptRunner]]:
    """A factory of transcript runners; see :class:`TranscriptRunnerFactory`."""
    factory = TranscriptRunnerFactory()
    yield factory
    for runner in factory.strict:
        runner.assert_all_used()
