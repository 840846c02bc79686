"""Structured concurrency for pipelines: stages in one task group, joined by bounded streams.

A failure in any stage cancels the others; the caller sees the first real error, not an
exception group and not the ``BrokenResourceError`` its neighbours got as a consequence.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from typing import Any, Callable, Coroutine, Iterator

import anyio

if sys.version_info < (3, 11):  # a builtin from 3.11; anyio brings the backport before
    from exceptiongroup import BaseExceptionGroup

# The queue between two stages holds this many batches; with batches bounded by rows and bytes,
# memory stays flat however large the input is. Two absorb the stages' jitter as well as four did
# (same wall time at 100k rows on every path); four let a slow writer hold ~10 MB more, at random.
QUEUE_BATCHES = 2

_CONSEQUENCES = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream)


def channel(size: int = QUEUE_BATCHES) -> tuple[anyio.abc.ObjectSendStream[Any], anyio.abc.ObjectReceiveStream[Any]]:
    return anyio.create_memory_object_stream[Any](max_buffer_size=size)


async def run_stages(*stages: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run every stage concurrently; re-raise the first error that was a cause, not a consequence."""
    try:
        async with anyio.create_task_group() as group:
            for stage in stages:
                group.start_soon(stage)
    except BaseExceptionGroup as failure:
        raise root_cause(failure) from None


def root_cause(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first leaf of ``group`` that caused the failure rather than suffered it."""
    leaves: list[BaseException] = list(_leaves(group))
    cancelled = anyio.get_cancelled_exc_class()
    for leaf in leaves:
        if not isinstance(leaf, (*_CONSEQUENCES, cancelled)):
            return leaf
    return leaves[0]


def _leaves(error: BaseException) -> Iterator[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _leaves(inner)
    else:
        yield error


_gc_settings: list[tuple[int, int, int]] = []  # the thresholds to restore, one entry per pass running here


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """For the length of a pass over a whole input: the cyclic GC runs less often and skips the
    long-lived heap.

    A scan, a sync or a dry run allocates a few containers per row (the decoded JSON, the digest's
    dict) and keeps none, so the frequent collections that allocation triggers find nothing and cost
    10–15 % of the CPU. Passes may overlap (two in one process): the last one out restores the settings."""
    _gc_settings.append(_gc_settings[0] if _gc_settings else gc.get_threshold())
    if len(_gc_settings) == 1:
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)
    try:
        yield
    finally:
        threshold = _gc_settings.pop()
        if not _gc_settings:
            gc.set_threshold(*threshold)
            gc.unfreeze()
