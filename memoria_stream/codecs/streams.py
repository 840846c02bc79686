"""Inputs and outputs normalised once at the edge: a path, ``-``, bytes or an async byte iterator
become one async byte stream; outputs go to stdout or to a file that gets its name only when complete.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import uuid
import zlib
from pathlib import Path
from typing import AsyncIterable, AsyncIterator, Awaitable, Callable, Union

import aiofiles
import orjson

from memoria_stream.errors import InputError, OutputError
from memoria_stream.model.types import ByteStream
from memoria_stream.private import create_private_file, make_private_dirs

CHUNK = 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_MAX_GUNZIP_RATIO = 1000  # refuse inputs that inflate more than this (gzip bombs)

Source = Union[str, Path, bytes, AsyncIterable[bytes]]
Sink = Callable[[bytes], Awaitable[None]]

def source_name(source: Source) -> str:
    if isinstance(source, Path):
        return str(source)
    if isinstance(source, str):
        return "<stdin>" if source == "-" else source
    return "<input>"


@contextlib.asynccontextmanager
async def open_source(source: Source, *, name: str | None = None) -> AsyncIterator[ByteStream]:
    """Yield the source's bytes as an async stream (gzip inflated when the content is gzip)."""
    label = name or source_name(source)
    async with _raw_source(source, label) as raw:
        yield _gunzip_if_needed(raw, label)


@contextlib.asynccontextmanager
async def _raw_source(source: Source, label: str) -> AsyncIterator[ByteStream]:
    if isinstance(source, bytes):
        yield _once(source)
    elif isinstance(source, (str, Path)) and str(source) == "-":
        async with aiofiles.open(sys.stdin.fileno(), "rb", closefd=False) as handle:
            yield _read_chunks(handle)
    elif isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise InputError("no such file" if not path.exists() else "not a regular file", source=label)
        async with aiofiles.open(path, "rb") as handle:
            yield _read_chunks(handle)
    else:
        yield _iterate(source)


async def _once(data: bytes) -> ByteStream:
    yield data


async def _iterate(source: AsyncIterable[bytes]) -> ByteStream:
    async for chunk in source:
        yield bytes(chunk)


async def _read_chunks(handle) -> ByteStream:  # type: ignore[no-untyped-def]
    while chunk := await handle.read(CHUNK):
        yield chunk


async def _gunzip_if_needed(stream: ByteStream, label: str) -> ByteStream:
    first = await anext(stream, b"")
    while len(first) < 2:
        more = await anext(stream, None)
        if more is None:
            break
        first += more
    stream = prepend(first, stream) if first else stream
    async for chunk in (_gunzip(stream, label) if first.startswith(GZIP_MAGIC) else stream):
        yield chunk


async def prepend(first: bytes, stream: AsyncIterator[bytes]) -> ByteStream:
    """``first``, then the rest of ``stream``: puts back what was read ahead."""
    yield first
    async for chunk in stream:
        yield chunk


async def _gunzip(stream: ByteStream, label: str) -> ByteStream:
    inflater = zlib.decompressobj(wbits=31)
    packed = unpacked = 0
    try:
        async for chunk in stream:
            while chunk:
                out = inflater.decompress(chunk, CHUNK)
                # Count the input this output came from, not the whole chunk read: a bomb is then
                # caught after ~10 MiB of output, whatever the size of the chunks read.
                packed += len(chunk) - len(inflater.unconsumed_tail)
                unpacked += len(out)
                if unpacked > 10 * CHUNK and unpacked > packed * DEFAULT_MAX_GUNZIP_RATIO:
                    raise InputError("gzip input inflates more than 1000:1; refusing it as a gzip bomb", source=label)
                if out:
                    yield out
                chunk = inflater.unconsumed_tail
                if inflater.eof:  # a multi-member file: start the next member
                    chunk = inflater.unused_data + chunk
                    inflater = zlib.decompressobj(wbits=31)
                    if not chunk:
                        break
        tail = inflater.flush()
        if tail:
            yield tail
    except zlib.error as exc:
        raise InputError(f"corrupt gzip data: {exc}", source=label) from None


async def sniff_format(stream: ByteStream, *, limit: int = 64 * 1024 * 1024) -> tuple[str, ByteStream]:
    """Tell NDJSON from JSON by the first non-blank line (compat §9.17); return the untouched stream."""
    seen: list[bytes] = []
    size = 0
    async for chunk in stream:
        seen.append(chunk)
        size += len(chunk)
        if b"\n" in chunk.lstrip() or size > limit:
            break
    head = b"".join(seen)
    replay = prepend(head, stream) if head else stream
    first = head.lstrip().split(b"\n", 1)[0]
    return _format_of_first_line(first), replay


_ONE_LINE_OBJECT = re.compile(rb'\s*\{\s*"table"\s*:\s*"')


def _format_of_first_line(line: bytes) -> str:
    if not line.strip():
        return "ndjson"  # empty input: nothing to parse, reported as holding no table
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        # An indented document starts with a bare "{". A first line that opens a row object
        # but does not parse (invalid UTF-8, too deep, cut short) is an NDJSON row, reported by
        # the NDJSON decoder with its line number.
        return "ndjson" if _ONE_LINE_OBJECT.match(line) else "json"
    if isinstance(obj, dict) and ("table" in obj and "data" in obj or set(obj) == {"metadata"}):
        return "ndjson"
    return "json"


def format_from_name(name: str) -> str | None:
    lowered = name.lower().removesuffix(".gz")
    if lowered.endswith((".ndjson", ".jsonl")):
        return "ndjson"
    if lowered.endswith(".json"):
        return "json"
    return None


@contextlib.asynccontextmanager
async def open_sink(destination: str | Path) -> AsyncIterator[Sink]:
    """Stdout for ``-``; otherwise a temporary file renamed onto ``destination`` only on success."""
    if str(destination) == "-":
        async with aiofiles.open(sys.stdout.fileno(), "wb", closefd=False) as out:
            yield out.write
            await out.flush()
        return
    final = Path(destination)
    partial = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        make_private_dirs(final.parent)
        async with aiofiles.open(create_private_file(partial), "wb") as out:
            yield out.write
            await out.flush()
            os.fsync(out.fileno())
        os.replace(partial, final)
    except OSError as exc:  # disk full, no permission, read-only file system: one line, no partial file
        raise OutputError(f"cannot write {final}: {exc.strerror or exc}; no file was left under that name") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
