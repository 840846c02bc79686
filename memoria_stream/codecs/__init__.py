"""Codecs are chosen by name (``json``, ``ndjson``) or by a file's extension."""

from __future__ import annotations

from memoria_stream.errors import InputError
from memoria_stream.codecs.base import Decoder, Encoder
from memoria_stream.codecs.json import JSONDecoder, JSONEncoder
from memoria_stream.codecs.ndjson import DEFAULT_MAX_LINE, NDJSONDecoder, NDJSONEncoder

FORMATS = ("json", "ndjson")


def normalise_format(name: str | None) -> str | None:
    if name is None:
        return None
    lowered = str(name).strip().lower()
    if lowered == "jsonl":
        return "ndjson"
    if lowered not in FORMATS:
        raise InputError(f"unknown format {name!r}: use json or ndjson")
    return lowered


def encoder_for(name: str) -> Encoder:
    return NDJSONEncoder() if normalise_format(name) == "ndjson" else JSONEncoder()


def decoder_for(name: str, *, max_line: int = DEFAULT_MAX_LINE) -> Decoder:
    """The decoder for a format; ``max_line`` bounds one NDJSON line in bytes (a longer one is an error)."""
    return NDJSONDecoder(max_line=max_line) if normalise_format(name) == "ndjson" else JSONDecoder()


__all__ = ["DEFAULT_MAX_LINE", "FORMATS", "Decoder", "Encoder", "decoder_for", "encoder_for", "normalise_format"]
