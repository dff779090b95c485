"""Background work on dramatiq: an in-process broker (embedded mode) or Redis (distributed mode).

Messages carry only ids; every actor is idempotent, and the periodic sweep re-enqueues whatever
is due, so a message lost with a killed process (or never sent) only delays work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AsyncIO

from corral_core.settings import Settings

__all__ = ["TaskQueue"]

log = logging.getLogger("corral.tasks")

# Our reconcilers heartbeat their own leases; dramatiq must not cut them short or retry them.
ACTOR_OPTIONS: dict[str, Any] = {"max_retries": 0, "time_limit": 24 * 3600 * 1000}


class TaskQueue:
    """Owns the broker and the actors declared on it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        broker: dramatiq.Broker
        if settings.embedded_broker:
            broker = StubBroker()
        else:
            from dramatiq.brokers.redis import RedisBroker

            broker = RedisBroker(  # type: ignore[no-untyped-call]
                url=settings.broker.url, namespace=settings.broker.namespace
            )
        broker.add_middleware(AsyncIO())
        self.broker = broker
        self._actors: dict[str, dramatiq.Actor[Any, Any]] = {}
        self._worker: dramatiq.Worker | None = None

    def actor(self, name: str, fn: Callable[..., Awaitable[None]]) -> None:
        """Declare ``fn`` (an async function taking JSON-able arguments) as actor ``name``."""
        declare = dramatiq.actor(actor_name=name, broker=self.broker, **ACTOR_OPTIONS)
        self._actors[name] = declare(fn)

    async def send(self, name: str, *args: Any, delay: float | None = None) -> None:
        """Enqueue a message, without blocking the event loop on the broker."""
        actor = self._actors[name]
        delay_ms = int(delay * 1000) if delay else None
        await asyncio.to_thread(actor.send_with_options, args=args, delay=delay_ms)

    def start_worker(self, threads: int | None = None) -> None:
        self._worker = dramatiq.Worker(
            self.broker, worker_threads=threads or self.settings.broker.worker_threads
        )
        self._worker.start()

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        self.broker.close()
