"""PostgreSQL and MySQL/MariaDB backup and restore with the servers' own dump tools.

Why the native tools and not a streaming copy of every table through our drivers: a dump carries the
whole schema (indexes, foreign keys, sequences with their positions, AUTO_INCREMENT counters, views,
routines, triggers, tables Memoria knows nothing about), streams to disk at the tools' native speed,
and ``pg_restore --clean --if-exists --single-transaction`` replaces it atomically. See the README (Backups)
for the measurements.

Credentials travel in the child's environment (``PGPASSWORD``, ``MYSQL_PWD``), never on its command
line where ``ps`` would show them; the ``+driver`` part of a SQLAlchemy URL never reaches a tool,
because the tools get host, port, user and database as separate values.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import IO, Any, Sequence

import anyio

from memoria_stream.errors import ConfigurationError, DatabaseError, InputError
from memoria_stream.private import PRIVATE_FILE, create_private_file
from memoria_stream.drivers.urls import DatabaseURL

_STDERR_TAIL = 4000  # characters of a failing tool's stderr kept for the error message
_CHILD_UMASK = 0o077  # whatever file a tool creates itself is owner-only too
# MySQL/MariaDB database names we hand to the tools: no leading '-' (an option to them), nothing a
# shell, a file name or the tools' own parsing could read differently.
_SAFE_MYSQL_NAME = re.compile(r"[A-Za-z0-9_$][A-Za-z0-9_$-]{0,63}")


async def backup(url: DatabaseURL, destination: Path) -> None:
    """Dump the whole database of ``url`` into the new file ``destination``."""
    _require_database(url)
    partial = destination.with_name(destination.name + ".partial")
    try:
        os.close(create_private_file(partial))  # the tools truncate and fill it, keeping its mode
        if url.backend == "postgresql":
            await _run(["pg_dump", "--format=custom", "--no-password", f"--file={partial}", _pg_dbname(url)],
                       _pg_env(url))
        else:
            argv = [_binary("mariadb-dump", "mysqldump"), *_mysql_args(url), "--single-transaction",
                    "--routines", "--triggers", "--hex-blob", "--no-tablespaces", f"--result-file={partial}",
                    "--", str(url.database)]
            await _run(argv, _mysql_env(url))
        _require_content(partial, url)
        os.chmod(partial, PRIVATE_FILE)  # in case a tool replaced the file instead of writing into it
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)


async def restore(url: DatabaseURL, backup_file: Path) -> None:
    """Replace every object the dump holds in the database of ``url`` with its dumped state."""
    _require_database(url)
    if not backup_file.is_file():
        raise InputError(f"backup file not found: {backup_file}")
    if url.backend == "postgresql":
        # An absolute path: a relative file name starting with '-' would be read as an option.
        argv = ["pg_restore", "--clean", "--if-exists", "--single-transaction", "--exit-on-error",
                "--no-password", f"--dbname={_pg_dbname(url)}", str(backup_file.resolve())]
        await _run(argv, _pg_env(url))
        return
    with open(backup_file, "rb") as dump:
        await _run([_binary("mariadb", "mysql"), *_mysql_args(url), "--", str(url.database)], _mysql_env(url),
                   stdin=dump)


async def _run(argv: Sequence[str], env: dict[str, str], *, stdin: IO[Any] | None = None) -> None:
    try:
        process = await anyio.open_process(
            list(argv), stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, umask=_CHILD_UMASK)
    except FileNotFoundError as exc:
        raise ConfigurationError(f"{argv[0]} not found on PATH: install the database client tools") from exc
    async with process:  # on cancellation anyio kills the child
        errors = await _tail(process.stderr)
        code = await process.wait()
    if code != 0:
        last = errors.strip().splitlines()[-1] if errors.strip() else "no message"
        raise DatabaseError(f"{Path(argv[0]).name} failed (exit {code}): {last}")


async def _tail(stream: Any) -> str:
    text = ""
    if stream is None:
        return text
    async for chunk in stream:
        text = (text + chunk.decode("utf-8", "replace"))[-_STDERR_TAIL:]
    return text


def _require_database(url: DatabaseURL) -> None:
    if not url.database:
        raise ConfigurationError(f"{url.masked()}: the URL names no database to back up or restore")
    if url.backend == "mysql" and not _SAFE_MYSQL_NAME.fullmatch(url.database):
        # PostgreSQL needs no such rule: its name travels inside a quoted conninfo value.
        raise ConfigurationError(f"{url.masked()}: refusing database name {url.database!r:.80} for the dump tools "
                                 "(allowed: letters, digits, _ $ -, not starting with '-', at most 64)")


def _require_content(dump: Path, url: DatabaseURL) -> None:
    """A tool that exits 0 without writing anything has not backed anything up."""
    if dump.stat().st_size == 0:
        raise DatabaseError(f"the dump tool wrote nothing for {url.masked()}: no backup was made")


def _binary(*names: str) -> str:
    found = next((path for path in map(shutil.which, names) if path), None)
    if found is None:
        raise ConfigurationError(f"none of {', '.join(names)} found on PATH: install the MySQL/MariaDB client")
    return found


def _pg_dbname(url: DatabaseURL) -> str:
    # A conninfo string, so a database name containing '=' or starting with 'postgres://' stays a name.
    escaped = str(url.database).replace("\\", "\\\\").replace("'", "\\'")
    return f"dbname='{escaped}'"


def _pg_env(url: DatabaseURL) -> dict[str, str]:
    env = dict(os.environ)
    values = {
        "PGHOST": url.host or url.query.get("host"), "PGPORT": str(url.port) if url.port else None,
        "PGUSER": url.username, "PGPASSWORD": url.password,
        "PGSSLMODE": url.query.get("sslmode"), "PGAPPNAME": "memoria-stream-backup",
    }
    schema = url.query.get("schema")
    if schema:  # the same search_path our driver sets, so unqualified names resolve alike
        env["PGOPTIONS"] = f"-c search_path={schema}"
    env.update({k: v for k, v in values.items() if v is not None})
    return env


def _mysql_args(url: DatabaseURL) -> list[str]:
    # Our driver always speaks TCP (localhost included), so the tools do as well.
    args = [f"--host={url.host or '127.0.0.1'}", "--protocol=TCP", "--default-character-set=utf8mb4"]
    if url.port:
        args.append(f"--port={url.port}")
    args.append(f"--user={url.username or 'root'}")
    return args


def _mysql_env(url: DatabaseURL) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MYSQL_PWD", None)
    if url.password:
        env["MYSQL_PWD"] = url.password
    return env
