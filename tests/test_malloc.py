"""``one_arena``: after it, threads that allocate share glibc's one arena (peak RSS stays flat)."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc arenas are glibc's")

# Threads allocating at once, then glibc's own report of its heaps (``malloc_info``: one
# ``<heap nr=…>`` per arena) read back from a file.
_PROBE = textwrap.dedent("""
    import ctypes, sys, tempfile, threading
    from memoria_stream.malloc import one_arena
    if sys.argv[1] == "one":
        one_arena()
    start = threading.Barrier(4)
    def churn():
        start.wait()
        for _ in range(2000):
            kept = [bytearray(4096) for _ in range(16)]
    threads = [threading.Thread(target=churn) for _ in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
    libc = ctypes.CDLL(None)
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    with tempfile.NamedTemporaryFile(suffix=".xml") as out:
        handle = libc.fopen(out.name.encode(), b"w")
        libc.malloc_info(0, handle)
        libc.fclose(handle)
        print(open(out.name).read().count("<heap nr="))
""")


def _arenas(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_one_arena_keeps_threads_in_one_heap() -> None:
    assert _arenas("default") > 1  # the probe does make glibc open arenas per thread
    assert _arenas("one") == 1
