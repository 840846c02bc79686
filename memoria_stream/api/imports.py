"""``POST /admin/migrations/import``: every request shape of Memoria's endpoint, read as a stream.

* multipart: the field ``file`` (spooled to disk by the form parser, never held in memory) with
  optional ``format``, ``truncate`` and repeated ``table`` fields;
* a JSON body ``{"format", "truncate", "tables", "data"}`` where ``data`` is the export document or
  a JSON/NDJSON string (parsed whole, so it has its own smaller size cap); a body that *is* an
  export document (it has ``metadata``) is imported as it is;
* anything else is the raw export (JSON or NDJSON, gzip allowed), streamed straight into the import.

``?dry_run=true`` reads the whole input through every check the import makes and answers the report
(what the import would do, every problem with where it is): 200 when the import would succeed, 422
when not; the database is only read.

The query's ``?format=``, ``?truncate=``, ``?table=``, ``?allow_lossy=`` and ``?accept_altered=`` apply to
every shape (``allow_lossy``: load values the target's columns would change, reported as warnings;
``accept_altered``: import a file whose rows do not match its header counts or trailer, with a
warning; see ``completeness.py``). A request that
carries no dataset is refused with 400 before the database is touched.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, AsyncIterator, Sequence

import orjson
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from memoria_stream.transfer.files import import_data
from memoria_stream.transfer.preflight import preflight_import
from memoria_stream.errors import InputError
from memoria_stream.codecs.streams import CHUNK, Source, format_from_name, prepend
from memoria_stream.api.inputs import (check_declared_size, format_param, limited_receive, off_unless_asked, query_tables, read_capped,
                     tables_param, truncate_param)
from memoria_stream.api.responses import failure, log, ok
from memoria_stream.api.settings import Settings

NO_DATASET = "No dataset provided"
# A raw body is buffered up to this size before the database is claimed: the metadata line and
# the first rows, so that a client that stalls right after its headers locks nothing.
FIRST_BATCH_BYTES = 64 * 1024
_FORM_LIMITS = {"max_files": 4, "max_fields": 32, "max_part_size": 1024 * 1024}


@dataclass
class ImportJob:
    """What to import and how, whatever shape the request had."""

    source: Source
    label: str
    format: str | None = None
    tables: Sequence[str] | None = None
    truncate: bool = True
    accept_altered: bool = False


async def import_endpoint(request: Request) -> JSONResponse:
    """Read the request into an :class:`ImportJob`, then claim the database and run it atomically."""
    settings: Settings = request.app.state.settings
    try:
        check_declared_size(request, settings.max_upload_bytes)
        allow_lossy = off_unless_asked(request.query_params.get("allow_lossy"), "allow_lossy")
        dry_run = off_unless_asked(request.query_params.get("dry_run"), "dry_run")
        limited = Request(request.scope, limited_receive(request.receive, settings.max_upload_bytes))
        async with import_job(limited, settings) as job:
            if dry_run:
                return await _dry_run(request, job, allow_lossy)
            # The database is claimed only now that the body has arrived (multipart, JSON) or its
            # first batch has (raw): a client that stalls before that holds no gate and no lock.
            async with request.app.state.binder.lease() as binding:
                with request.app.state.gate.claim(binding.url):
                    report = await import_data(
                        job.source, database_url=binding.url, format=job.format, tables=job.tables,
                        truncate=job.truncate, source_label=job.label, allow_lossy=allow_lossy,
                        accept_altered=job.accept_altered)
    except ClientDisconnect:
        log.info("import: the client went away mid-upload; nothing was changed")
        return failure(InputError("the upload was cut short; nothing was changed"), action="import")
    except Exception as exc:
        return failure(exc, action="import")
    return ok(report.as_dict())


async def _dry_run(request: Request, job: ImportJob, allow_lossy: bool) -> JSONResponse:
    """The preflight report; it only reads, so it does not take the import gate."""
    async with request.app.state.binder.lease() as binding:
        report = await preflight_import(job.source, database_url=binding.url, format=job.format, tables=job.tables,
                                        truncate=job.truncate, source_label=job.label, allow_lossy=allow_lossy,
                                        accept_altered=job.accept_altered)
    return JSONResponse({"status": "ok" if report.ok else "error", **report.as_dict()},
                        status_code=200 if report.ok else 422)


@contextlib.asynccontextmanager
async def import_job(request: Request, settings: Settings) -> AsyncIterator[ImportJob]:
    """The request as an :class:`ImportJob`; uploads stay open (and on disk) until the block ends."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind == "multipart/form-data":
        async with request.form(**_FORM_LIMITS) as form:
            yield _multipart_job(request, form)
    elif kind == "application/json" or kind.endswith("+json"):
        yield await _json_job(request, settings)
    else:
        yield await _raw_job(request)


def _multipart_job(request: Request, form: Any) -> ImportJob:
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InputError(f"{NO_DATASET}: send the export in the multipart field 'file'")
    if not upload.size:
        raise InputError(f"{NO_DATASET}: the uploaded file is empty")
    query = request.query_params
    fmt = format_param(query.get("format"), form.get("format"))
    if fmt is None and format_from_name(upload.filename or "") == "ndjson":
        fmt = "ndjson"  # Memoria's filename hint; the engine would sniff it anyway
    return ImportJob(
        source=_upload_chunks(upload),
        label=upload.filename or "upload",
        format=fmt,
        tables=query_tables(request) or tables_param(form.getlist("table") or None),
        truncate=truncate_param(query.get("truncate", form.get("truncate"))),
        accept_altered=off_unless_asked(query.get("accept_altered", form.get("accept_altered")), "accept_altered"),
    )


async def _upload_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    await upload.seek(0)
    while chunk := await upload.read(CHUNK):
        yield chunk


async def _json_job(request: Request, settings: Settings) -> ImportJob:
    raw = await read_capped(request, settings.max_json_bytes, "JSON body")
    try:
        body = orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError:
        body = None  # not one JSON value: e.g. NDJSON sent as application/json; import it raw
    if isinstance(body, dict) and "metadata" not in body:
        return _wrapped_job(request, body)
    if not raw.strip():
        raise InputError(NO_DATASET)
    return _query_job(request, raw, "request body")


def _wrapped_job(request: Request, body: dict[str, Any]) -> ImportJob:
    """``{"format", "truncate", "tables", "data"}``: unlike Memoria, a body without ``data`` (or
    ``{}``) is refused instead of importing nothing over truncated tables."""
    fmt = format_param(body.get("format"), request.query_params.get("format"))
    source = _embedded(body.get("data"), fmt)
    if fmt is None and not isinstance(body.get("data"), str):
        fmt = "json"  # an embedded document was serialised by us: it is JSON
    tables = tables_param(body["tables"]) if body.get("tables") is not None else query_tables(request)
    flag = body["truncate"] if "truncate" in body else request.query_params.get("truncate")
    altered = body["accept_altered"] if "accept_altered" in body else request.query_params.get("accept_altered")
    return ImportJob(source=source, label="request data", format=fmt, tables=tables,
                     truncate=truncate_param(flag), accept_altered=off_unless_asked(altered, "accept_altered"))


def _embedded(data: Any, fmt: str | None) -> bytes:
    if data is None or data == "" or data == {} or (isinstance(data, str) and not data.strip()):
        raise InputError(f"{NO_DATASET}: the JSON body needs 'data' (the export document or its text)")
    if isinstance(data, str):
        return data.encode("utf-8")
    if not isinstance(data, dict):
        raise InputError("'data' must be the export document (an object) or a JSON/NDJSON string")
    if fmt == "ndjson":
        raise InputError("format ndjson needs 'data' as a string of NDJSON lines")
    if "data" not in data and "metadata" not in data:
        data = {"data": data}  # a bare {table: [rows]} mapping: Memoria imported nothing from it
    return orjson.dumps(data)


async def _raw_job(request: Request) -> ImportJob:
    """The raw body, once its first ``FIRST_BATCH_BYTES`` (or all of it, if smaller) have arrived."""
    stream = request.stream()
    first: list[bytes] = []
    size = 0
    async for chunk in stream:
        first.append(chunk)
        size += len(chunk)
        if size >= FIRST_BATCH_BYTES:
            break
    if not size:
        raise InputError(f"{NO_DATASET}: the request body is empty")
    return _query_job(request, prepend(b"".join(first), stream), "request body")


def _query_job(request: Request, source: Source, label: str) -> ImportJob:
    query = request.query_params
    return ImportJob(source=source, label=label, format=format_param(query.get("format")),
                     tables=query_tables(request), truncate=truncate_param(query.get("truncate")),
                     accept_altered=off_unless_asked(query.get("accept_altered"), "accept_altered"))

