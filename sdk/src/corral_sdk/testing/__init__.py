"""The plugin-author test kit.

- :class:`TranscriptRunner`: a :class:`~corral_sdk.transport.CommandRunner` replaying recorded
  command transcripts (:mod:`corral_sdk.testing.transcript`).
- :class:`ShellRunner` (:func:`shell_runner`): a runner using a real local shell with stand-in
  programs, for the shell semantics of a provider's commands.
- :class:`RecordingLog`, :class:`RecordingActionContext`: stand-ins for what the kernel lends
  providers.
- Conformance suites, one per provider kind, to subclass in your tests
  (:mod:`corral_sdk.testing.conformance`; they need pytest): :class:`CloudConformance`,
  :class:`SchedulerConformance`, :class:`StorageTypeConformance`,
  :class:`AuthMethodConformance`, :class:`AIProviderConformance`,
  :class:`SessionTypeConformance`, :class:`WorkflowActionConformance`.
- The pytest plugin (:mod:`corral_sdk.testing.pytest_plugin`, loaded automatically when
  ``corral-sdk`` is installed): the ``corral_plugin_manager`` and ``transcript_runner`` fixtures
  and the ``no_real_cloud`` switch.

Importing this package stays cheap (pytest's startup imports it through the plugin): the suites
are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from corral_sdk.testing.recording import RecordingActionContext, RecordingLog
from corral_sdk.testing.shell import ShellRunner, shell_runner
from corral_sdk.testing.transcript import (
    RecordedCall,
    TranscriptEntry,
    TranscriptForward,
    TranscriptRunner,
)

if TYPE_CHECKING:
    from corral_sdk.testing.conformance import (
        AIProviderConformance,
        AuthMethodConformance,
        CloudConformance,
        ProviderConformance,
        SchedulerConformance,
        SessionTypeConformance,
        StorageTypeConformance,
        WorkflowActionConformance,
    )

__all__ = [
    "AIProviderConformance",
    "AuthMethodConformance",
    "CloudConformance",
    "ProviderConformance",
    "RecordedCall",
    "RecordingActionContext",
    "RecordingLog",
    "SchedulerConformance",
    "SessionTypeConformance",
    "ShellRunner",
    "StorageTypeConformance",
    "TranscriptEntry",
    "TranscriptForward",
    "TranscriptRunner",
    "WorkflowActionConformance",
    "shell_runner",
]

_SUITES = frozenset(
    {
        "AIProviderConformance",
        "AuthMethodConformance",
        "CloudConformance",
        "ProviderConformance",
        "SchedulerConformance",
        "SessionTypeConformance",
        "StorageTypeConformance",
        "WorkflowActionConformance",
    }
)


def __getattr__(name: str) -> Any:
    if name in _SUITES:
        from corral_sdk.testing import conformance

        return getattr(conformance, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
