"""The API's configuration: where the database is, the API key and the request limits.

Read from the environment and, when ``serve`` was given one, a JSON or TOML config file. The
database URL is read again on ``POST /admin/settings/refresh``; the key and the limits are fixed
when the app is created (a refresh must not be able to switch authentication off).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from memoria_stream.errors import ConfigurationError
from memoria_stream.drivers.urls import ENV_VARIABLES, parse_url, resolve_url

API_KEY_VARIABLE = "MEMORIA_API_KEY"
MAX_UPLOAD_VARIABLE = "MEMORIA_MAX_UPLOAD_BYTES"
MAX_JSON_VARIABLE = "MEMORIA_MAX_JSON_BYTES"
BODY_IDLE_VARIABLE = "MEMORIA_BODY_IDLE_TIMEOUT"
DEFAULT_BODY_IDLE_TIMEOUT = 60.0  # seconds a request body may send nothing before it is refused
DEFAULT_MAX_UPLOAD_BYTES = 1024**3  # 1 GiB
DEFAULT_MAX_JSON_BYTES = 64 * 1024**2  # JSON bodies are parsed whole, so they get a smaller cap

_URL_KEYS = ("database_url", "database.url", "database.connection_string")


@dataclass(frozen=True)
class Settings:
    """Everything the app needs; ``database_url`` is the only field a refresh changes."""

    database_url: str
    api_key: str | None = None
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_json_bytes: int = DEFAULT_MAX_JSON_BYTES
    config_file: Path | None = None
    explicit_url: str | None = None
    body_idle_timeout: float = DEFAULT_BODY_IDLE_TIMEOUT

    def reload(self, environ: Mapping[str, str] | None = None) -> "Settings":
        """The same settings with the database URL read again from the flag, file or environment."""
        return replace(self, database_url=_database_url(self.explicit_url, self.config_file, environ))


def load_settings(
    *, database_url: str | None = None, config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None, body_idle_timeout: float | None = None,
) -> Settings:
    """Resolve the settings: ``--database-url``, then the config file, then the environment.

    The URL order is ``database_url`` argument, the file's ``database_url`` (or
    ``[database] url``/``connection_string``), ``MEMORIA_DATABASE_URL``, ``DATABASE_URL``, and
    ``sqlite:///memoria.db``. The key and limits come from the file, then the environment."""
    env = os.environ if environ is None else environ
    path = Path(config_file) if config_file else None
    document = _read_config(path) if path else {}
    return Settings(
        database_url=_database_url(database_url, path, env),
        api_key=_text(document.get("api_key")) or env.get(API_KEY_VARIABLE) or None,
        max_upload_bytes=_size(document.get("max_upload_bytes"), env.get(MAX_UPLOAD_VARIABLE),
                               DEFAULT_MAX_UPLOAD_BYTES, "max_upload_bytes"),
        max_json_bytes=_size(document.get("max_json_bytes"), env.get(MAX_JSON_VARIABLE),
                             DEFAULT_MAX_JSON_BYTES, "max_json_bytes"),
        config_file=path,
        explicit_url=database_url,
        body_idle_timeout=_seconds(body_idle_timeout if body_idle_timeout is not None
                                   else document.get("body_idle_timeout"),
                                   env.get(BODY_IDLE_VARIABLE), DEFAULT_BODY_IDLE_TIMEOUT, "body_idle_timeout"),
    )


def _database_url(explicit: str | None, path: Path | None, environ: Mapping[str, str] | None) -> str:
    from_file = _url_from(_read_config(path)) if path and not explicit else None
    url = resolve_url(explicit or from_file, environ)
    parse_url(url)  # a malformed URL is refused here, not on the first request
    return url


def _url_from(document: Mapping[str, Any]) -> str | None:
    for key in _URL_KEYS:
        value: Any = document
        for part in key.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if value:
            return _text(value)
    return None


def _read_config(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the config file {path}: {exc.strerror or exc}") from None
    try:
        document = _parse_toml(raw) if path.suffix.lower() == ".toml" else json.loads(raw)
    except ValueError as exc:
        raise ConfigurationError(f"the config file {path} is not valid {_kind(path)}: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigurationError(f"the config file {path} must hold an object/table at the top level")
    return document


def _parse_toml(raw: bytes) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise ConfigurationError("reading a TOML config file on Python 3.10 needs: pip install tomli") from None
    return tomllib.loads(raw.decode("utf-8"))


def _kind(path: Path) -> str:
    return "TOML" if path.suffix.lower() == ".toml" else "JSON"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"expected a string in the config file, got {type(value).__name__}")
    return value.strip() or None


def _size(from_file: Any, from_env: str | None, default: int, name: str) -> int:
    value = from_file if from_file is not None else from_env
    if value is None or value == "":
        return default
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name} must be a number of bytes, got {value!r}") from None
    if size <= 0:
        raise ConfigurationError(f"{name} must be positive, got {size}")
    return size


def _seconds(from_flag_or_file: Any, from_env: str | None, default: float, name: str) -> float:
    value = from_flag_or_file if from_flag_or_file is not None else from_env
    if value is None or value == "":
        return default
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name} must be a number of seconds, got {value!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")
    return seconds


__all__ = ["ENV_VARIABLES", "Settings", "load_settings"]
