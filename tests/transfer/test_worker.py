"""The worker's pipe protocol survives short writes and reads: a signal (Ctrl-Z and fg, a
profiler's pause) cuts a large write to a pipe short, and a buffered writer then reports what it
took instead of keeping the rest. Found when an export stopped and continued waited forever."""

from __future__ import annotations

import io
import os
import pickle
import threading
from pathlib import Path

import pytest

from memoria_stream.transfer import worker


class _Trickle(io.RawIOBase):
    """A pipe end that takes or gives at most ``step`` bytes a call, as an interrupted one does."""

    def __init__(self, data: bytes = b"", step: int = 4093) -> None:
        self.taken = bytearray()
        self.data, self.step = data, step

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        part = bytes(b[:self.step])
        self.taken += part
        return len(part)

    def read(self, size: int = -1) -> bytes:
        part, self.data = self.data[:min(size, self.step)], self.data[min(size, self.step):]
        return part


def test_a_large_answer_is_written_whole_through_short_writes() -> None:
    value = {"slice": bytes(range(256)) * 4000, "rows": 1000}  # about 1 MB, like an encoded slice
    pipe = _Trickle()
    with worker._Answers(pipe) as answers:  # type: ignore[arg-type]
        answers.put("done", value)
    length = int.from_bytes(pipe.taken[:8], "big")
    assert length == len(pipe.taken) - 8
    assert pickle.loads(bytes(pipe.taken[8:])) == ("done", value)


def test_a_request_is_read_whole_through_short_reads() -> None:
    request = pickle.dumps(("encode", "x" * 100_000))
    pipe = _Trickle(len(request).to_bytes(8, "big") + request, step=1000)
    assert worker._request(pipe, "encode") == ("encode", "x" * 100_000)  # type: ignore[arg-type]


class _Slow(_Trickle):
    """A parent that reads its answers only when told to (while it encodes a slice itself)."""

    def __init__(self) -> None:
        super().__init__()
        self.go_on = threading.Event()

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.go_on.wait(5)
        return super().write(b)


def test_answers_are_written_in_order_while_the_worker_goes_on() -> None:
    pipe = _Slow()
    with worker._Answers(pipe) as answers:  # type: ignore[arg-type]
        for number in range(2):  # put while the first is stuck in the pipe: the worker is not held
            answers.put("done", number)
        assert not pipe.taken  # both put, none written yet
        pipe.go_on.set()
        for number in range(2, 6):
            answers.put("done", number)
    frames, data = [], bytes(pipe.taken)
    while data:
        length = int.from_bytes(data[:8], "big")
        frames.append(pickle.loads(data[8:8 + length]))
        data = data[8 + length:]
    assert frames == [("done", number) for number in range(6)]


class _Closed(_Trickle):
    def write(self, b: bytes) -> int:  # type: ignore[override]
        raise BrokenPipeError


def test_a_parent_gone_ends_the_worker_rather_than_blocking_it() -> None:
    with pytest.raises(SystemExit), worker._Answers(_Closed()) as answers:  # type: ignore[arg-type]
        for number in range(10):
            answers.put("done", number)


@pytest.mark.skipif(worker.fcntl is None or not hasattr(worker.fcntl, "F_GETPIPE_SZ"), reason="Linux only")
def test_the_answer_pipe_is_made_1_mb() -> None:
    # The parent drains an answer (1–2 MB) a pipe's worth per turn of its event loop (``_PIPE_BYTES``).
    assert worker.fcntl is not None
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb"), os.fdopen(write_end, "wb") as out:
        before = worker.fcntl.fcntl(out.fileno(), worker.fcntl.F_GETPIPE_SZ)
        worker._roomier_pipe(out)
        assert before < 1 << 20 <= worker.fcntl.fcntl(out.fileno(), worker.fcntl.F_GETPIPE_SZ)


@pytest.mark.skipif(worker.fcntl is None or not Path("/proc/self/fd").is_dir(), reason="Linux only")
async def test_a_started_worker_answers_through_the_larger_pipe(tmp_path: Path) -> None:
    assert worker.fcntl is not None
    async with worker.Worker(f"sqlite:///{tmp_path / 'any.db'}") as started:
        assert started._process is not None
        answers = os.open(f"/proc/{started._process.pid}/fd/1", os.O_RDONLY | os.O_NONBLOCK)
        try:
            assert worker.fcntl.fcntl(answers, worker.fcntl.F_GETPIPE_SZ) >= 1 << 20
        finally:
            os.close(answers)
