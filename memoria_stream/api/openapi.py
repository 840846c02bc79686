"""The OpenAPI 3.1 description served at ``/openapi.json`` (hand-written: the routes are few)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from memoria_stream import __version__

_ERROR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_FORMAT = {"type": "string", "enum": ["json", "ndjson"]}
_TABLES = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
_TRUNCATE = {"oneOf": [{"type": "boolean"}, {"type": "string", "enum": ["true", "false", "1", "0", "yes", "no"]}]}


def _query(name: str, schema: dict[str, Any], text: str, *, repeated: bool = False) -> dict[str, Any]:
    item = {"type": "array", "items": schema} if repeated else schema
    return {"name": name, "in": "query", "required": False, "schema": item, "description": text,
            **({"explode": True} if repeated else {})}


_COMMON_QUERY = [
    _query("format", _FORMAT, "json or ndjson (import: sniffed from the content when absent)"),
    _query("table", {"type": "string"}, "limit to this table (repeatable)", repeated=True),
]

_EXPORT = {
    "summary": "Export the database, streamed while it is read (one consistent snapshot)",
    "parameters": _COMMON_QUERY,
    "requestBody": {"required": False, "content": {"application/json": {"schema": {
        "type": "object", "properties": {"format": _FORMAT, "tables": _TABLES}}}}},
    "responses": {
        "200": {"description": "the export (chunked)", "headers": {
            "Content-Disposition": {"schema": {"type": "string"}},
            "X-Memoria-Exported-At": {"schema": {"type": "string"}, "description": "metadata.exported_at"}},
            "content": {"application/json": {}, "application/x-ndjson": {}}},
        "400": _ERROR, "401": _ERROR, "503": _ERROR},
}

_IMPORT = {
    "summary": "Import an export atomically (truncating only the imported tables unless truncate=false)",
    "parameters": [*_COMMON_QUERY, _query("truncate", _TRUNCATE, "empty the imported tables first (default true)"),
                   _query("allow_lossy", _TRUNCATE, "load values the target's columns would change, "
                          "reported as warnings (default false: refused, nothing changed)"),
                   _query("accept_altered", _TRUNCATE, "import even when the rows do not match the file's header "
                          "counts or trailer (default false; a warning says so)"),
                   _query("dry_run", _TRUNCATE, "check everything and change nothing: the report of what the "
                          "import would do and every problem (200 when it would succeed, 422 when not)")],
    "requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary"}, "format": _FORMAT, "truncate": _TRUNCATE,
            "accept_altered": _TRUNCATE, "table": {"type": "array", "items": {"type": "string"}}}}},
        "application/json": {"schema": {"type": "object", "required": ["data"], "properties": {
            "format": _FORMAT, "truncate": _TRUNCATE, "accept_altered": _TRUNCATE, "tables": _TABLES,
            "data": {"oneOf": [{"type": "object"}, {"type": "string"}],
                     "description": "the export document, or its JSON/NDJSON text"}}}},
        "application/x-ndjson": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
    "responses": {
        "200": {"description": "rows written per table", "content": {"application/json": {"schema": {
            "$ref": "#/components/schemas/ImportReport"}}}},
        "400": _ERROR, "401": _ERROR, "409": _ERROR, "413": _ERROR, "422": _ERROR, "503": _ERROR},
}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "memoria-stream admin API", "version": __version__},
    "components": {
        "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        "schemas": {
            "Error": {"type": "object", "required": ["status", "message"], "properties": {
                "status": {"const": "error"}, "message": {"type": "string"}}},
            "ImportReport": {"type": "object", "properties": {
                "status": {"const": "ok"}, "format": {"type": "string"}, "total_rows": {"type": "integer"},
                "seconds": {"type": "number"}, "warnings": {"type": "array", "items": {"type": "string"}},
                "created_tables": {"type": "array", "items": {"type": "string"}},
                "metadata": {"type": "object"},
                "tables": {"type": "array", "items": {"type": "object", "properties": {
                    "name": {"type": "string"}, "rows": {"type": "integer"}, "seconds": {"type": "number"},
                    "truncated": {"type": "boolean"}}}}}},
        },
    },
    "security": [{"apiKey": []}],
    "paths": {
        "/health": {"get": {"summary": "The bound database (masked) and whether it answers", "security": [],
                            "responses": {"200": {"description": "answers"}, "503": {"description": "down"}}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI"}}}},
        "/admin/migrations/export": {"post": _EXPORT},
        "/admin/migrations/import": {"post": _IMPORT},
        "/admin/settings/refresh": {"post": {
            "summary": "Re-read the configuration and swap the database binding; work in flight finishes on the old one",
            "responses": {"200": {"description": "old and new targets (masked)"}, "401": _ERROR, "503": _ERROR}}},
    },
}


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(SPEC)
