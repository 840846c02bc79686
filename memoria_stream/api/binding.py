"""The database the API is bound to, swapped atomically by a settings refresh.

The engine opens a connection per operation, so a binding is a URL plus a count of the requests
using it. A request takes a lease on the *current* binding when it starts and keeps it until its
response is finished, so a refresh never moves work that is in flight: it finishes on the old
binding, and the old binding is retired once its last lease ends.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import AsyncIterator, Iterator

import anyio

from memoria_stream.errors import MemoriaStreamError
from memoria_stream.drivers.urls import mask_url, parse_url

log = logging.getLogger(__name__)


class ImportInProgress(MemoriaStreamError):
    """Raised when an import is requested for a database that is already importing (HTTP 409)."""


@dataclass(eq=False)
class Binding:
    """One database target and the number of requests currently using it."""

    url: str
    in_flight: int = 0
    retired: bool = False
    drained: anyio.Event = field(default_factory=anyio.Event)

    @property
    def masked(self) -> str:
        return mask_url(self.url)

    def describe(self) -> dict[str, object]:
        return {"database_url": self.masked, "backend": parse_url(self.url).backend, "in_flight": self.in_flight}

    def _release(self) -> None:
        self.in_flight -= 1
        if self.retired and self.in_flight == 0:
            self.drained.set()
            log.info("binding %s drained", self.masked)


class Binder:
    """Holds the current binding; ``lease()`` pins it for a request, ``swap()`` replaces it."""

    def __init__(self, url: str) -> None:
        self._current = Binding(url)

    @property
    def current(self) -> Binding:
        return self._current

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[Binding]:
        """The current binding, held until the block ends (a refresh meanwhile does not move it)."""
        binding = self._current
        binding.in_flight += 1
        try:
            yield binding
        finally:
            binding._release()

    def swap(self, url: str) -> tuple[Binding, Binding]:
        """Make ``url`` the binding for new requests; returns ``(old, new)``. No await: atomic."""
        old, new = self._current, Binding(url)
        self._current = new
        old.retired = True
        if old.in_flight == 0:
            old.drained.set()
        return old, new


class ImportGate:
    """One import at a time per database: a second one is refused, not queued."""

    def __init__(self) -> None:
        self._busy: set[str] = set()

    @contextlib.contextmanager
    def claim(self, url: str) -> Iterator[None]:
        key = _identity(url)
        if key in self._busy:
            raise ImportInProgress(f"an import into {mask_url(url)} is already running; try again when it ends")
        self._busy.add(key)
        try:
            yield
        finally:
            self._busy.discard(key)


def _identity(url: str) -> str:
    """Two spellings of one database (``postgres://`` vs ``postgresql+asyncpg://``) share a gate."""
    return parse_url(url).identity()
