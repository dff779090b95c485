"""The pytest plugin: a fresh plugin manager, the transcript factory and the network switch.

The network checks never send a packet off this machine: before the switch is turned on, the
socket layer underneath it is replaced by a stand-in that refuses every non-loopback address
itself, so a switch that failed to block would show as the stand-in's refusal, not as traffic.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from corral_sdk.plugin import CloudRecord, hookimpl
from corral_sdk.testing import TranscriptRunner
from corral_sdk.testing.pytest_plugin import NetworkForbiddenError, NetworkGuard, forbid_network

INI = """
[pytest]
addopts = --strict-markers -p no:cacheprovider
filterwarnings = error
xfail_strict = true
"""


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class ReachedTheSocketLayer(OSError):
    """The stand-in socket layer was asked for a non-loopback address."""


@pytest.fixture
def stand_in_socket_layer(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace connect and name lookups with versions that pass loopback through and refuse
    everything else themselves; yields what reached them."""
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo
    reached: list[str] = []

    def connect(sock: socket.socket, address: Any) -> Any:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in (
            "127.0.0.1",
            "::1",
        ):
            reached.append(f"{address[0]}:{address[1]}")
            raise ReachedTheSocketLayer(f"stand-in refused {address[0]}")
        return real_connect(sock, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in (None, "localhost") and not is_ip_literal(host):
            reached.append(f"lookup {host}")
            raise ReachedTheSocketLayer(f"stand-in refused to look up {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return reached


@pytest.fixture
def loopback_server() -> Iterator[int]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def test_forbid_network_blocks_other_hosts_and_allows_loopback(
    stand_in_socket_layer: list[str], loopback_server: int
) -> None:
    with forbid_network() as guard:
        with (
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock,
            pytest.raises(NetworkForbiddenError, match=re.escape("connection to 203.0.113.7:443")),
        ):
            sock.connect(("203.0.113.7", 443))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            assert sock.connect_ex(("127.0.0.1", loopback_server)) == 0
        with pytest.raises(
            NetworkForbiddenError, match=re.escape("name lookup of 'ec2.amazonaws.com'")
        ):
            socket.getaddrinfo("ec2.amazonaws.com", 443)
        assert socket.getaddrinfo("localhost", loopback_server)
        with socket.create_connection(("127.0.0.1", loopback_server), timeout=5):
            pass
    assert guard.blocked == ["connection to 203.0.113.7:443", "name lookup of 'ec2.amazonaws.com'"]
    assert stand_in_socket_layer == [], "nothing blocked reached the socket layer"


def test_forbid_network_blocks_asyncio_clients(stand_in_socket_layer: list[str]) -> None:
    async def connect() -> None:
        await asyncio.open_connection("198.51.100.20", 443)

    with (
        forbid_network(),
        pytest.raises(NetworkForbiddenError, match=re.escape("198.51.100.20:443")),
    ):
        asyncio.run(connect())
    assert stand_in_socket_layer == []


def test_allowed_hosts_pass_the_switch(stand_in_socket_layer: list[str]) -> None:
    with forbid_network(["192.0.2.0/24", "node1.cluster.test"]):
        with (
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock,
            pytest.raises(ReachedTheSocketLayer),
        ):
            sock.connect(("192.0.2.10", 22))
        with pytest.raises(ReachedTheSocketLayer):
            socket.getaddrinfo("node1.cluster.test", 22)
    assert stand_in_socket_layer == ["192.0.2.10:22", "lookup node1.cluster.test"]


def test_switch_is_restored_after_the_block() -> None:
    connect = socket.socket.connect
    with forbid_network(), forbid_network():
        assert socket.socket.connect is not connect
    assert socket.socket.connect is connect


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.10.0.3", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("api.localhost", True),
        ("10.0.0.5", False),
        ("192.168.1.1", False),
        ("8.8.8.8", False),
        ("compute.googleapis.com", False),
    ],
)
def test_guard_decides_by_address(host: str, allowed: bool) -> None:
    assert NetworkGuard().host_allowed(host) is allowed


def test_marker_and_ini_switch_in_a_plugin_test_session(
    pytester: pytest.Pytester, stand_in_socket_layer: list[str], loopback_server: int
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_net=f"""
        import socket
        import pytest
        from corral_sdk.testing.pytest_plugin import NetworkForbiddenError

        def connect(host):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.connect((host, {loopback_server}))

        @pytest.mark.no_real_cloud
        def test_marked_blocks():
            with pytest.raises(NetworkForbiddenError, match="tests must not reach real clouds"):
                connect("203.0.113.9")
            connect("127.0.0.1")

        def test_fixture_blocks(no_real_cloud):
            with pytest.raises(NetworkForbiddenError):
                connect("203.0.113.9")
            assert no_real_cloud.blocked == ["connection to 203.0.113.9:{loopback_server}"]

        def test_unmarked_is_left_alone():
            with pytest.raises(OSError, match="stand-in refused"):
                connect("203.0.113.9")
        """
    )
    pytester.runpytest_inprocess().assert_outcomes(passed=3)

    pytester.makeini(INI + "corral_forbid_network = true\n")
    pytester.makepyfile(
        test_net="""
        import socket
        import pytest
        from corral_sdk.testing.pytest_plugin import NetworkForbiddenError

        def test_session_wide():
            with pytest.raises(NetworkForbiddenError):
                socket.create_connection(("203.0.113.9", 443), timeout=1)
        """
    )
    pytester.runpytest_inprocess().assert_outcomes(passed=1)
    assert stand_in_socket_layer == ["203.0.113.9:" + str(loopback_server)], (
        "only the unmarked test reached the socket layer"
    )


def test_plugin_module_imports_only_the_sdk() -> None:
    code = (
        "import sys, pytest; import corral_sdk.testing.pytest_plugin; "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('corral'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded = out.split()
    assert "corral_sdk.testing.pytest_plugin" in loaded
    assert all(name.startswith("corral_sdk") for name in loaded), loaded
    assert "corral_sdk.providers" not in loaded, "the provider kinds load only when used"
    assert "corral_sdk.testing.conformance" not in loaded


# --- corral_plugin_manager ----------------------------------------------------------------------


class ExamplePlugin:
    @hookimpl
    def corral_register_clouds(self) -> list[CloudRecord]:
        return [CloudRecord(name="example", factory="example.cloud:Example")]


def test_plugin_manager_knows_the_hooks(corral_plugin_manager: Any) -> None:
    assert corral_plugin_manager.project_name == "corral"
    corral_plugin_manager.register(ExamplePlugin())
    results = corral_plugin_manager.hook.corral_register_clouds()
    assert [record.name for result in results for record in result] == ["example"]


def test_plugin_manager_is_fresh_and_cleaned_up(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_pm="""
        from corral_sdk.plugin import hookimpl

        SEEN = []

        class Plugin:
            @hookimpl
            def corral_startup(self, process):
                pass

        def test_registers(corral_plugin_manager):
            corral_plugin_manager.register(Plugin())
            SEEN.append(corral_plugin_manager)
            assert len(corral_plugin_manager.get_plugins()) == 1

        def test_after(corral_plugin_manager):
            assert SEEN[0].get_plugins() == set(), "the first test's plugin was unregistered"
            assert corral_plugin_manager is not SEEN[0]
            assert corral_plugin_manager.get_plugins() == set()
        """
    )
    pytester.runpytest_inprocess().assert_outcomes(passed=2)


# --- transcript_runner --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_transcript_factory(transcript_runner: Any) -> None:
    runner = transcript_runner(
        [{"command": "hostname", "stdout": "login1\n"}],
        text="$ whoami\n> alice\n",
        target="login1",
    )
    assert isinstance(runner, TranscriptRunner)
    assert (await runner.run("hostname")).stdout == "login1\n"
    assert (await runner.run("whoami")).stdout == "alice\n"
    assert runner.target == "login1"


def test_strict_transcript_fails_at_teardown(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_strict="""
        import pytest

        @pytest.mark.anyio
        async def test_forgets_a_command(transcript_runner):
            runner = transcript_runner(text="$ sinfo\\n$ squeue\\n", strict=True)
            await runner.run("sinfo")
        """
    )
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*expected commands that were not run:*", "*$ squeue*"])


def test_suites_import_lazily_from_the_package() -> None:
    import corral_sdk.testing as testing
    from corral_sdk.testing.conformance import CloudConformance

    assert testing.CloudConformance is CloudConformance
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = testing.Nope
