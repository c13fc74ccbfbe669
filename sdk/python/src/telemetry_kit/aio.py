"""The asyncio face of the client: the same sender thread, with waits that never block the loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from telemetry_kit.client import Client, Dropped, Stats
from telemetry_kit.config import Config


class AsyncClient:
    """``track()`` is already non-blocking and may be called from coroutines as it is; ``flush()`` and
    ``aclose()`` wait in a worker thread. Use ``async with AsyncClient(...) as telemetry:`` in an
    application's lifespan to close it with the loop."""

    def __init__(
        self, config: Config | None = None, *, on_drop: Callable[[list[Dropped]], None] | None = None, **settings
    ):
        self.client = Client(config, on_drop=on_drop, **settings)

    @property
    def enabled(self) -> bool:
        return self.client.enabled

    def track(self, event_type: str, data=None, category: str | None = None) -> str | None:
        return self.client.track(event_type, data, category)

    async def flush(self, timeout: float | None = None) -> bool:
        return await asyncio.to_thread(self.client.flush, timeout)

    async def aclose(self, timeout: float | None = None) -> None:
        await asyncio.to_thread(self.client.close, timeout)

    def stats(self) -> Stats:
        return self.client.stats()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()
