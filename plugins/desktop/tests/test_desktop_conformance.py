"""The SDK's session type conformance suite, against a transcript of the target's answers."""

from __future__ import annotations

from types import ModuleType

import pytest
from corral_desktop import plugin
from corral_desktop.desktop import Desktop
from corral_desktop.options import DesktopOptions

from corral_sdk.providers.session import SessionSpec, SessionTarget, TargetKind
from corral_sdk.records import SessionTypeRecord
from corral_sdk.testing import RecordingLog, TranscriptRunner
from corral_sdk.testing.conformance import SessionTypeConformance

READY = """\
> directory=/home/alice/.corral/sessions/s42
> display=3
> socket=/home/alice/.corral/sessions/s42/vnc.sock
> port=41234
> xvnc_pid=4100
> websockify_pid=4101
> program_pid=4102
> state=ready
> token=0123456789abcdef0123456789abcdef0123456789abcdef
"""

TRANSCRIPT = f"""
# start: Xvnc, the program, websockify; it answers already
$ sh -s
< detach "\\$d/xvnc_pid" Xvnc -displayfd 3
{READY}
# status
$ sh -s
< report\\n\\}}\\nmain < /dev/null
{READY}
# stop
$ sh -s
< stop_all\\n\\}}\\nmain < /dev/null
"""


class TestDesktopConformance(SessionTypeConformance):
    @pytest.fixture
    def record(self) -> SessionTypeRecord:
        return plugin.RECORD

    @pytest.fixture
    def plugin(self) -> ModuleType:
        return plugin

    @pytest.fixture
    def runner(self) -> TranscriptRunner:
        return TranscriptRunner.from_text(TRANSCRIPT, ordered=True, target="alice@login1")

    @pytest.fixture
    def provider(self, record: SessionTypeRecord) -> Desktop:
        provider = record.create()
        assert isinstance(provider, Desktop)
        return provider

    @pytest.fixture
    def session_spec(self) -> SessionSpec:
        return SessionSpec(
            name="desk",
            session_id="s42",
            user="alice",
            target=SessionTarget(kind=TargetKind.CLUSTER, name="hpc"),
            options=DesktopOptions(),
            base_path="/sessions/alice/desk/",
        )

    @pytest.mark.anyio
    async def test_transcript_is_used(
        self, provider: Desktop, session_spec: SessionSpec, runner: TranscriptRunner
    ) -> None:
        started = await provider.start(session_spec, runner=runner, log=RecordingLog())
        observed = await provider.status(session_spec, started.data, runner=runner)
        await provider.stop(session_spec, observed.data, runner=runner)
        runner.assert_all_used()
