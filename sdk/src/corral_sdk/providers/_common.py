"""Pieces shared by every provider kind: how "unsupported" is expressed, progress logs, and
introspection of the protocols that the kernel and the conformance suites rely on."""

from __future__ import annotations

import enum
import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol, TypeVar, runtime_checkable

import msgspec

from corral_sdk.errors import ProviderError

__all__ = [
    "UNSUPPORTED",
    "MethodKind",
    "ProgressLog",
    "StepState",
    "is_unsupported",
    "is_unsupported_default",
    "optional_methods",
    "protocol_methods",
    "required_methods",
    "unsupported",
    "unsupported_default",
    "unsupported_stream",
]

F = TypeVar("F", bound=Callable[..., Any])

UNSUPPORTED = "unsupported"
"""The ``reason`` of the :class:`~corral_sdk.errors.ProviderError` a provider raises for an
operation it does not offer (see :func:`unsupported`)."""

_UNSUPPORTED_MARK = "__corral_unsupported_default__"


def unsupported(provider: object, operation: str) -> ProviderError:
    """Build the error a provider raises for an operation it does not support.

    It is a :class:`~corral_sdk.errors.ProviderError` whose ``reason`` is ``"unsupported"``; the
    kernel checks declared features before calling, so users see it only through a bug or a
    feature declared without being implemented::

        raise unsupported(self, "create_network")
    """
    name = provider if isinstance(provider, str) else type(provider).__name__
    return ProviderError(
        f"{name} does not support {operation.replace('_', ' ')}",
        reason=UNSUPPORTED,
        log_message=f"{name}.{operation} called but not supported",
    )


def is_unsupported(error: BaseException) -> bool:
    """Whether ``error`` says that an operation is not supported (see :func:`unsupported`)."""
    return isinstance(error, ProviderError) and error.reason == UNSUPPORTED


class _FailingIterator(AsyncIterator[Any]):
    """An async iterator whose first ``__anext__`` raises a given error."""

    def __init__(self, error: BaseException) -> None:
        self._error = error

    async def __anext__(self) -> Any:
        raise self._error


def unsupported_stream(provider: object, operation: str) -> AsyncIterator[Any]:
    """What a default streaming method returns: an iterator raising :func:`unsupported` when
    iterated, as an async generator would."""
    return _FailingIterator(unsupported(provider, operation))


def unsupported_default(func: F) -> F:
    """Mark a method of a ``*Base`` mixin as the "not supported" default.

    The conformance suites treat a provider whose method for a declared feature is still such a
    default as not implementing that feature.
    """
    setattr(func, _UNSUPPORTED_MARK, True)
    return func


def is_unsupported_default(provider: object, method: str) -> bool:
    """Whether ``provider.<method>`` is a "not supported" default that was not overridden."""
    cls = provider if isinstance(provider, type) else type(provider)
    attr = inspect.getattr_static(cls, method, None)
    if isinstance(attr, staticmethod | classmethod):
        attr = attr.__func__
    return bool(getattr(attr, _UNSUPPORTED_MARK, False))


class MethodKind(enum.StrEnum):
    """How a protocol method is called."""

    COROUTINE = "coroutine"
    """``async def``: awaited once for a result."""
    STREAM = "stream"
    """A ``def`` returning an ``AsyncIterator``, normally written as an async generator."""


def protocol_methods(protocol: type) -> dict[str, MethodKind]:
    """The public methods a provider protocol declares, with how each is called.

    In the protocols every method is either ``async def`` (:attr:`MethodKind.COROUTINE`) or a
    plain ``def`` returning an ``AsyncIterator`` (:attr:`MethodKind.STREAM`).
    """
    methods: dict[str, MethodKind] = {}
    for klass in reversed(protocol.__mro__):
        if klass in (object, Protocol) or not getattr(klass, "_is_protocol", False):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") or not inspect.isfunction(value):
                continue
            kind = MethodKind.COROUTINE if inspect.iscoroutinefunction(value) else MethodKind.STREAM
            methods[name] = kind
    return methods


def optional_methods(feature_methods: Mapping[Any, tuple[str, ...]]) -> frozenset[str]:
    """Every method that some feature needs (the others are required of every provider)."""
    return frozenset(name for names in feature_methods.values() for name in names)


def required_methods(protocol: type, feature_methods: Mapping[Any, tuple[str, ...]]) -> list[str]:
    """The methods of ``protocol`` that every provider must implement, whatever its features."""
    optional = optional_methods(feature_methods)
    return [name for name in protocol_methods(protocol) if name not in optional]


class StepState(enum.StrEnum):
    """The state of one step of a long operation (a network's VPC, a disk's volume)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"


@runtime_checkable
class ProgressLog(Protocol):
    """Where a provider reports progress of a long operation (provisioning logs, step lists).

    The kernel appends what it receives to the resource's durable log, so users can follow it
    live; lines must not contain secrets.
    """

    async def log(self, message: str) -> None:
        """Append one line to the operation's log."""
        ...

    async def step(self, name: str, state: StepState, detail: str = "") -> None:
        """Report that step ``name`` (``"VPC us-east-1"``) reached ``state``; ``detail`` is a
        short user-safe note (a resource id, why it failed)."""
        ...


def redacted_repr(struct: msgspec.Struct, secret_fields: frozenset[str]) -> str:
    """A ``repr`` of ``struct`` that hides the values of ``secret_fields``."""
    parts = []
    for field in struct.__struct_fields__:
        value = getattr(struct, field)
        shown = "<redacted>" if field in secret_fields and value is not None else repr(value)
        parts.append(f"{field}={shown}")
    return f"{type(struct).__name__}({', '.join(parts)})"
