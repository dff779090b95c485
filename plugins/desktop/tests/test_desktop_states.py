"""What the desktop makes of its target's answers: states, messages, data, the endpoint, and
the errors of start (nothing installed, a failing script)."""

from __future__ import annotations

import pytest
from corral_desktop.desktop import TOKEN_HEADER, Desktop, open_path, stop_script

from corral_sdk.errors import Invalid, ProviderError
from corral_sdk.providers.session import (
    SessionSpec,
    SessionState,
    SessionTarget,
    TargetKind,
)
from corral_sdk.testing import RecordingLog, TranscriptRunner

DATA = """\
directory=/home/alice/.corral/sessions/s7
display=12
socket=/home/alice/.corral/sessions/s7/vnc.sock
port=40001
xvnc_pid=900
websockify_pid=901
program_pid=902
"""


def spec(**changes: object) -> SessionSpec:
    values: dict[str, object] = {
        "name": "desk",
        "session_id": "s7",
        "user": "alice",
        "target": SessionTarget(kind=TargetKind.WORKSPACE),
        "base_path": "/sessions/alice/desk/",
    }
    values.update(changes)
    return SessionSpec(**values)  # type: ignore[arg-type]


def answering(stdout: str, *, exit_status: int = 0, stderr: str = "") -> TranscriptRunner:
    runner = TranscriptRunner(target="alice@login1")
    runner.expect("sh -s", stdout=stdout, exit_status=exit_status, stderr=stderr)
    return runner


@pytest.mark.anyio
async def test_ready_is_running_with_the_endpoint_and_open_path() -> None:
    status = await Desktop().status(
        spec(), {}, runner=answering(DATA + "state=ready\ntoken=t0k3n\n")
    )
    assert status.state is SessionState.RUNNING
    assert status.endpoint is not None
    assert (status.endpoint.host, status.endpoint.port) == ("127.0.0.1", 40001)
    assert (status.endpoint.scheme, status.endpoint.path) == ("http", "/")
    assert status.endpoint.websocket
    assert status.endpoint.headers == {TOKEN_HEADER: "t0k3n"}
    assert "t0k3n" not in repr(status.endpoint)
    assert status.open_path == (
        "vnc.html?autoconnect=1&resize=remote&path=sessions/alice/desk/websockify"
    )
    assert status.data == {
        "directory": "/home/alice/.corral/sessions/s7",
        "display": "12",
        "socket": "/home/alice/.corral/sessions/s7/vnc.sock",
        "port": "40001",
        "xvnc_pid": "900",
        "websockify_pid": "901",
        "program_pid": "902",
    }
    assert "t0k3n" not in status.data.values()


@pytest.mark.anyio
async def test_waiting_is_starting() -> None:
    status = await Desktop().status(spec(), {}, runner=answering(DATA + "state=waiting\n"))
    assert status.state is SessionState.STARTING
    assert status.endpoint is None
    assert "40001" in status.message


@pytest.mark.anyio
async def test_program_that_ended_stops_the_session() -> None:
    status = await Desktop().status(
        spec(),
        {},
        runner=answering(DATA + "state=ended\nexit=0\nlog=bye from xterm\n"),
    )
    assert status.state is SessionState.STOPPED
    assert "program ended (exit status 0)" in status.message
    assert "bye from xterm" in status.message


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("state", "who"), [("xvnc-ended", "Xvnc"), ("websockify-ended", "websockify")]
)
async def test_a_dead_process_fails_with_its_log(state: str, who: str) -> None:
    status = await Desktop().status(
        spec(),
        {},
        runner=answering(DATA + f"state={state}\nlog=Fatal server error:\nlog=  it broke\n"),
    )
    assert status.state is SessionState.FAILED
    assert who in status.message
    assert "Fatal server error:\n  it broke" in status.message


@pytest.mark.anyio
async def test_removed_directory_is_stopped() -> None:
    status = await Desktop().status(spec(), {}, runner=answering("state=gone\n"))
    assert status.state is SessionState.STOPPED
    assert "gone" in status.message


@pytest.mark.anyio
async def test_garbage_is_a_provider_error() -> None:
    with pytest.raises(ProviderError, match="unexpected"):
        await Desktop().status(spec(), {}, runner=answering("Welcome to the cluster!\n"))


@pytest.mark.anyio
async def test_missing_programs_name_the_debian_packages() -> None:
    runner = answering("missing=Xvnc websockify novnc\n", exit_status=3)
    with pytest.raises(ProviderError) as caught:
        await Desktop().start(spec(), runner=runner, log=RecordingLog())
    message = caught.value.message
    assert "tigervnc-standalone-server websockify novnc" in message
    assert "alice@login1" in message
    assert caught.value.reason == "desktop-not-installed"


@pytest.mark.anyio
async def test_failing_start_says_why() -> None:
    runner = answering("", exit_status=1, stderr="Xvnc did not start:\nno screens found\n")
    with pytest.raises(ProviderError, match="no screens found"):
        await Desktop().start(spec(), runner=runner, log=RecordingLog())


@pytest.mark.anyio
async def test_start_sends_the_options_quoted() -> None:
    runner = answering(DATA + "state=waiting\n")
    log = RecordingLog()
    status = await Desktop().start(
        spec(
            options={"geometry": "1024x768", "depth": 16, "command": "xterm -T 'a b'; echo $HOME"}
        ),
        runner=runner,
        log=log,
    )
    assert status.state is SessionState.STARTING
    script = runner.calls[0].input or ""
    assert "geometry=1024x768\n" in script
    assert "depth=16\n" in script
    assert "program='xterm -T '\"'\"'a b'\"'\"'; echo $HOME'\n" in script
    assert "id=s7\n" in script
    assert script.endswith("main < /dev/null\n")
    assert any("1024x768" in line for line in log.lines)


@pytest.mark.anyio
async def test_targets_and_ids_that_cannot_work_are_invalid() -> None:
    desktop = Desktop()
    with pytest.raises(Invalid) as no_runner:
        await desktop.status(spec(), {}, runner=None)
    assert no_runner.value.field == "target"
    with pytest.raises(Invalid) as external:
        await desktop.status(
            spec(target=SessionTarget(kind=TargetKind.EXTERNAL)), {}, runner=answering("")
        )
    assert external.value.field == "target"
    with pytest.raises(Invalid) as bad_id:
        await desktop.stop(spec(session_id="../../etc"), {}, runner=answering(""))
    assert bad_id.value.field == "session_id"


def test_stop_takes_only_numbers_from_data() -> None:
    script = stop_script(
        spec(), {"xvnc_pid": "900", "websockify_pid": "1; rm -rf /", "display": "$(id)"}
    )
    assert "data_xvnc_pid=900\n" in script
    assert "data_websockify_pid=''\n" in script
    assert "data_display=''\n" in script
    assert "rm -rf /\n" not in script


def test_open_path_puts_the_base_path_in_novnc_path() -> None:
    assert open_path(spec(base_path="/sessions/bob/my-desk/")) == (
        "vnc.html?autoconnect=1&resize=remote&path=sessions/bob/my-desk/websockify"
    )
    assert open_path(spec(base_path="/")) == "vnc.html?autoconnect=1&resize=remote&path=websockify"
