"""``POST /admin/migrations/export``: the export streamed as it is read, from one snapshot."""

from __future__ import annotations

import re
from typing import Any, AsyncIterator, Sequence

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from memoria_stream.codecs import encoder_for
from memoria_stream.transfer.files import open_export_stream
from memoria_stream.model.values import utc_now_iso
from memoria_stream.api.binding import Binder
from memoria_stream.api.inputs import format_param, query_tables, tables_param
from memoria_stream.api.responses import error, failure, log

MAX_OPTIONS_BYTES = 64 * 1024
_EXPORTED_AT = re.compile(rb'"exported_at"\s*:\s*"([^"]+)"')


async def export_endpoint(request: Request) -> "ExportResponse":
    """Options from a JSON body (``format``, ``tables``) or the query (``?format=``, ``?table=``)."""
    body = await _options(request)
    fmt = format_param(body.get("format"), request.query_params.get("format")) or "json"
    tables = tables_param(body["tables"]) if body.get("tables") is not None else query_tables(request)
    return ExportResponse(request.app.state.binder, fmt, tables)


async def _options(request: Request) -> dict[str, Any]:
    """Like Memoria's ``get_json(silent=True)``: a body that is not a JSON object counts as ``{}``."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_OPTIONS_BYTES:
            return {}
    try:
        body = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


class ExportResponse:
    """An ASGI response that opens the export before promising anything: table names are checked
    and the header (with ``exported_at``) is read first, so bad input still gets a 400. Once the
    200 is sent, a failure can only cut the chunked body short, which clients see as an error."""

    def __init__(self, binder: Binder, fmt: str, tables: Sequence[str] | None) -> None:
        self._binder, self._format, self._tables = binder, fmt, tables

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._stream(scope, receive, tracked)
        except ClientDisconnect:
            log.info("export: the client went away; the read was cancelled")
        except Exception as exc:
            if started:
                log.error("export failed after the response started: %s", exc)
                raise
            await failure(exc, action="export")(scope, receive, send)

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with self._binder.lease() as binding, open_export_stream(
            database_url=binding.url, format=self._format, tables=self._tables,
        ) as chunks:
            header = await anext(chunks, b"")
            if header:
                await self._response(header, chunks)(scope, receive, send)
                return
        await error("export failed: the export produced no data", 500)(scope, receive, send)

    def _response(self, header: bytes, rest: AsyncIterator[bytes]) -> StreamingResponse:
        encoder = encoder_for(self._format)
        found = _EXPORTED_AT.search(header)
        headers = {
            "Content-Disposition": f"attachment; filename=memoria-export{encoder.extension}",
            "X-Memoria-Exported-At": found.group(1).decode() if found else utc_now_iso(),
            "Cache-Control": "no-store",
        }
        return StreamingResponse(_chain(header, rest), headers=headers, media_type=encoder.media_type)


async def _chain(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk
