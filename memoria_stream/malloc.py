"""One malloc arena for the whole process, where the C library is glibc.

Why: glibc gives each thread that allocates its own arena, and the threads here (aiosqlite's,
aiofiles', the event loop's helpers) allocate and free large strings by the million. Freed memory in
those arenas stays mapped, so peak RSS crept up with the size of the run (copy → MariaDB: 65 MB at
20k rows, 75 MB at 100k); with one arena it stays flat (62 → 66 MB), at no measured cost in speed.
The same as ``MALLOC_ARENA_MAX=1``, which must be set before a process starts; ``mallopt`` works
any time before the threads start.
"""

from __future__ import annotations

import ctypes

_M_ARENA_MAX = -8  # glibc's malloc.h


def one_arena() -> None:
    """Ask glibc for one arena; elsewhere (musl, macOS) nothing happens."""
    # The symbols the process already has, the C library's among them: ``ctypes.util.find_library``
    # would cost every command's start a search of the linker's cache (and an import).
    try:
        mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    except (OSError, TypeError):  # TypeError: Windows has no "whole process" handle
        return
    if mallopt is not None:
        mallopt(_M_ARENA_MAX, 1)
