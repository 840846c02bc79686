"""Deterministic generator of Memoria-shaped SQLite databases for benchmarks.

``python benchmarks/generate.py --rows 500000 --out /tmp/memoria-500k.db`` writes all 14 tables with
the catalogue's DDL, filled the way Memoria's SQLAlchemy models store them on SQLite: timestamps as
``YYYY-MM-DD HH:MM:SS.ffffff`` text, booleans as 0/1, JSON as ``json.dumps`` text (ASCII-escaped),
SQL NULLs where columns are optional. Rows average about 1.3 KB, most of them in chat_history and
the two memory tables. The same ``--rows``/``--seed`` always give the same database.

Rows are produced lazily and inserted in chunks inside one transaction, so memory stays flat from
1k to 10M rows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import sys
import time
import uuid
from datetime import datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memoria_stream.model.catalog import EXPORT_ORDER, TABLES  # noqa: E402
from memoria_stream.drivers.sqlite import CAPABILITIES  # noqa: E402
from memoria_stream.transfer.schema import create_index_sql, create_table_sql  # noqa: E402

GENERATOR_VERSION = 1  # bump when the content changes, so cached databases are rebuilt
CHUNK = 5000

# Share of the total row count per table (chat_history takes what is left).
SHARES = {
    "agents": 0.0004, "teams": 0.0002, "workspaces": 0.0006, "workspace_members": 0.003,
    "long_term_memory": 0.20, "short_term_memory": 0.20, "spatial_metadata": 0.04,
    "memory_access_events": 0.06, "link_memory_threads": 0.03, "thread_events": 0.008,
    "thread_message_links": 0.03, "clusters": 0.004, "cluster_members": 0.02,
}

_WORDS = (
    "the memory of a conversation is kept as text and vectors so that an agent can recall what "
    "was said before and why it mattered to the user who asked about travel plans budgets code "
    "reviews recipes and the weather in spring summer autumn winter while the model answered with "
    "care detail and sometimes a question of its own about context preference skill project goal "
    "café naïve Zürich straße données señor façade smörgåsbord jalapeño résumé coöperate "
    "東京 記憶 会話 学習 北京 привет память разговор γνώση μνήμη שלום ذاكرة नमस्ते 🙂 🚀 ✨ 📚 🧠"
).split()
_MODELS = ("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "llama-3.1-70b", "mistral-large", None)
_CATEGORIES = ("fact", "preference", "skill", "context", "rule", "conversational", "project")
_ROLES = ("user", "assistant", "system", "tool")
_NAMESPACES = tuple(f"ns-{i}" for i in range(8)) + ("default",)
_EPOCH = datetime(2023, 1, 1)


class _Context:
    """Counts per table and the random source; ids are derived from (table, index) so any
    table can reference another without keeping its ids in memory."""

    def __init__(self, rows: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.counts = _counts(rows)
        self.paragraphs = [self._paragraph() for _ in range(1024)]

    def _paragraph(self) -> str:
        n = self.rng.randint(15, 55)
        words = self.rng.choices(_WORDS, k=n)
        return " ".join(words).capitalize() + "."

    def text(self, paragraphs: int, tag: int) -> str:
        rng, pool = self.rng, self.paragraphs
        parts = [pool[rng.randrange(1024)] for _ in range(paragraphs)]
        parts[0] = f"#{tag} " + parts[0]
        return "\n\n".join(parts)

    def sentence(self, low: int = 4, high: int = 14) -> str:
        return " ".join(self.rng.choices(_WORDS, k=self.rng.randint(low, high)))

    def ts(self, days: float = 700.0) -> str:
        moment = _EPOCH + timedelta(seconds=self.rng.random() * days * 86400)
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f")

    def maybe(self, value: Any, p: float = 0.7) -> Any:
        return value if self.rng.random() < p else None

    def ref(self, table: str) -> str | None:
        count = self.counts[table]
        return ident(table, self.rng.randrange(count)) if count else None

    def coord(self) -> float:
        return round(self.rng.uniform(-15.0, 15.0), 6)

    def vector(self, n: int) -> list[float]:
        return [round(self.rng.gauss(0, 0.3), 6) for _ in range(n)]


def _counts(rows: int) -> dict[str, int]:
    counts = {name: max(1, int(rows * share)) for name, share in SHARES.items()}
    counts["chat_history"] = max(1, rows - sum(counts.values()))
    return counts


def ident(table: str, index: int) -> str:
    """A UUID-looking, deterministic primary key for row ``index`` of ``table``."""
    mixed = (_table_salt(table) + (index + 1) * 0x9E3779B97F4A7C15F39CC0605CEDC835) % (1 << 128)
    return str(uuid.UUID(int=mixed))


def _table_salt(table: str) -> int:
    return sum((i + 1) * ord(c) for i, c in enumerate(table)) * 0x5851F42D4C957F2D14057B7EF767814F


def _dumps(value: Any) -> str:
    return json.dumps(value)  # Memoria's engine serialiser: plain json.dumps, ASCII-escaped


def _agents(c: _Context, i: int) -> tuple[Any, ...]:
    return (ident("agents", i), f"Agent {i} {c.sentence(1, 3)}", c.maybe(c.rng.choice(_ROLES)),
            c.rng.choice(_MODELS), c.rng.random() < 0.8, _dumps({"tier": i % 3, "tags": c.sentence(2, 5).split()}),
            c.ts(), c.ts())


def _teams(c: _Context, i: int) -> tuple[Any, ...]:
    return (ident("teams", i), f"Team {i}", f"team-{i}", c.maybe(c.text(1, i)), c.ts(), c.ts())


def _workspaces(c: _Context, i: int) -> tuple[Any, ...]:
    return (ident("workspaces", i), f"Workspace {i}", f"workspace-{i}", c.maybe(c.sentence()),
            c.maybe(f"user-{c.rng.randrange(1000)}"), c.maybe(c.ref("teams"), 0.8), c.ts(), c.ts())


def _workspace_members(c: _Context, i: int) -> tuple[Any, ...]:
    workspaces = c.counts["workspaces"]
    return (i + 1, ident("workspaces", i % workspaces), f"user-{i // workspaces}", c.rng.choice(("member", "owner")),
            c.rng.random() < 0.2, c.rng.random() < 0.3, c.ts(), c.ts())


def _chat_history(c: _Context, i: int) -> tuple[Any, ...]:
    rng = c.rng
    metadata = {"source": rng.choice(("api", "cli", "web")), "latency_ms": round(rng.uniform(50, 4000), 2),
                "client": {"name": "memoria-sdk", "version": f"2.{rng.randrange(9)}.{rng.randrange(20)}"},
                "tags": c.sentence(2, 5).split()}
    return (ident("chat_history", i), c.text(1, i), c.text(rng.randint(1, 2), i), rng.choice(_MODELS[:-1]),
            c.ts(), f"session-{i // 20}", rng.choice(_NAMESPACES), rng.randrange(20, 4000),
            c.maybe(_dumps(metadata), 0.85), c.maybe(c.ref("teams"), 0.5), c.maybe(c.ref("workspaces"), 0.5),
            c.maybe(rng.choice(_MODELS[:-1]), 0.3))


def _processed(c: _Context, i: int, size: int) -> str:
    return _dumps({"content": c.text(size, i), "category": c.rng.choice(_CATEGORIES),
                   "importance": round(c.rng.random(), 4), "entities": c.sentence(2, 6).split(),
                   "reasoning": c.sentence(8, 20)})


def _long_term_memory(c: _Context, i: int) -> tuple[Any, ...]:
    rng = c.rng
    return (ident("long_term_memory", i), c.maybe(c.ref("chat_history")), _processed(c, i, 1),
            round(rng.random(), 6), rng.choice(_CATEGORIES), "long_term", rng.choice(_NAMESPACES), c.ts(), c.ts(),
            rng.randrange(50), c.maybe(c.ts()), c.text(1, i), c.sentence(8, 30), round(rng.random(), 6),
            round(rng.random(), 6), round(rng.random(), 6), c.maybe(rng.uniform(-50, 50)), c.maybe(c.coord()),
            c.maybe(c.coord()), c.maybe(_dumps(c.sentence(1, 4).split())), c.maybe(_dumps(c.vector(16)), 0.6),
            c.maybe(_dumps([{"id": rng.randrange(10**6), "title": c.sentence(2, 5)}]), 0.2),
            c.maybe(c.ref("teams"), 0.5), c.maybe(c.ref("workspaces"), 0.5), c.maybe(rng.choice(_MODELS[:-1]), 0.3),
            rng.choice(("conversational", "essential", "contextual")), rng.choice(("low", "medium", "high")),
            c.maybe(c.sentence(1, 3)), c.maybe(_dumps(c.sentence(1, 5).split())),
            c.maybe(_dumps(c.sentence(2, 8).split())), rng.random() < 0.2, rng.random() < 0.2, rng.random() < 0.1,
            rng.random() < 0.1, rng.random() < 0.05, None, c.maybe(_dumps([]), 0.3), c.maybe(_dumps([]), 0.3),
            round(rng.random(), 6), c.ts(), c.maybe(c.sentence(), 0.4), rng.random() < 0.5, rng.random() < 0.5)


def _short_term_memory(c: _Context, i: int) -> tuple[Any, ...]:
    rng = c.rng
    return (ident("short_term_memory", i), c.maybe(c.ref("chat_history")), _processed(c, i, 1),
            round(rng.random(), 6), rng.choice(_CATEGORIES), "short_term", rng.choice(_NAMESPACES), c.ts(),
            c.maybe(c.ts(900)), rng.randrange(20), c.maybe(c.ts()), c.text(1, i), c.sentence(8, 30),
            rng.random() < 0.1, c.maybe(rng.uniform(-50, 50)), c.maybe(c.coord()), c.maybe(c.coord()),
            c.maybe(_dumps(c.sentence(1, 4).split())), c.maybe(_dumps(c.vector(16)), 0.5),
            c.maybe(c.ref("teams"), 0.5), c.maybe(c.ref("workspaces"), 0.5), c.maybe(rng.choice(_MODELS[:-1]), 0.3))


def _spatial_metadata(c: _Context, i: int) -> tuple[Any, ...]:
    rng = c.rng
    return (ident("long_term_memory", i), rng.choice(_NAMESPACES), c.maybe(c.ref("teams"), 0.4), c.ts(),
            rng.uniform(-50, 50), c.coord(), c.coord(), c.maybe(_dumps(c.sentence(1, 4).split())),
            c.maybe(c.ref("workspaces"), 0.4))


def _memory_access_events(c: _Context, i: int) -> tuple[Any, ...]:
    rng = c.rng
    return (i + 1, c.ref("long_term_memory"), rng.choice(_NAMESPACES), c.maybe(c.ref("teams"), 0.3), c.ts(),
            rng.choice(("retrieval", "update", "promotion")), c.maybe(rng.choice(("api", "agent", "job"))),
            c.maybe(_dumps({"query": c.sentence(3, 10), "rank": rng.randrange(10), "score": rng.random()})),
            c.maybe(c.ref("workspaces"), 0.3))


def _link_memory_threads(c: _Context, i: int) -> tuple[Any, ...]:
    return (i + 1, c.ref("long_term_memory"), c.ref("long_term_memory"),
            c.rng.choice(("related", "follows", "contradicts")), c.ts())


def _thread_events(c: _Context, i: int) -> tuple[Any, ...]:
    rng = c.rng
    return (ident("thread_events", i), rng.choice(_NAMESPACES), c.maybe(_dumps(c.sentence(1, 4).split())),
            c.maybe(c.sentence(1, 3)), c.maybe(rng.choice(("open", "close", "reflect"))),
            c.maybe(_dumps({"note": c.sentence(), "step": rng.randrange(5)})), c.maybe(rng.uniform(-50, 50)),
            c.maybe(c.coord()), c.maybe(c.coord()), c.ts(), c.ts())


def _thread_message_links(c: _Context, i: int) -> tuple[Any, ...]:
    rng = c.rng
    return (i + 1, c.ref("thread_events"), c.ref("long_term_memory"), rng.choice(_NAMESPACES), i % 50,
            c.maybe(rng.choice(_ROLES)), c.maybe(c.sentence(1, 3)), c.maybe(c.ts()))


def _clusters(c: _Context, i: int) -> tuple[Any, ...]:
    rng = c.rng
    return (i + 1, c.text(1, i), c.maybe(_dumps(c.vector(8))), c.maybe(c.coord()), c.maybe(c.coord()),
            c.maybe(rng.uniform(-1, 1)), c.maybe(rng.random()), rng.randrange(1, 200), c.maybe(rng.random()),
            rng.randrange(30), c.maybe(c.ts()), round(rng.random() * 10, 6), rng.randrange(10**5),
            rng.randrange(10**6))


def _cluster_members(c: _Context, i: int) -> tuple[Any, ...]:
    rng = c.rng
    return (i + 1, c.ref("long_term_memory"), c.maybe(c.sentence(1, 3)), c.sentence(6, 24), rng.randrange(500),
            rng.randrange(3000), rng.randrange(c.counts["clusters"]) + 1)


ROW_MAKERS: dict[str, Callable[[_Context, int], tuple[Any, ...]]] = {
    "agents": _agents, "teams": _teams, "workspaces": _workspaces, "workspace_members": _workspace_members,
    "chat_history": _chat_history, "long_term_memory": _long_term_memory,
    "short_term_memory": _short_term_memory, "spatial_metadata": _spatial_metadata,
    "memory_access_events": _memory_access_events, "link_memory_threads": _link_memory_threads,
    "thread_events": _thread_events, "thread_message_links": _thread_message_links,
    "clusters": _clusters, "cluster_members": _cluster_members,
}


def _rows(ctx: _Context, table: str) -> Iterator[tuple[Any, ...]]:
    make = ROW_MAKERS[table]
    for i in range(ctx.counts[table]):
        yield make(ctx, i)


def generate(path: Path, rows: int, *, seed: int = 42) -> dict[str, int]:
    """Write a fresh database of about ``rows`` rows to ``path``; returns the count per table."""
    ctx = _Context(rows, seed)
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = OFF")  # a scratch file: nothing to recover if this dies
        db.execute("PRAGMA synchronous = OFF")
        db.execute("BEGIN")
        for name in EXPORT_ORDER:
            db.execute(create_table_sql(CAPABILITIES, TABLES[name]))
            _fill(db, ctx, name)
        for name in EXPORT_ORDER:  # indexes after the load: the same end state, built faster
            for statement in create_index_sql(CAPABILITIES, TABLES[name]):
                db.execute(statement)
        db.execute("COMMIT")
        db.execute("PRAGMA journal_mode = DELETE")
    finally:
        db.close()
    return dict(ctx.counts)


def _fill(db: sqlite3.Connection, ctx: _Context, name: str) -> None:
    columns = TABLES[name].column_names
    sql = f"INSERT INTO {name} ({', '.join(CAPABILITIES.quote(c) for c in columns)}) VALUES ({', '.join('?' * len(columns))})"
    rows = _rows(ctx, name)
    while chunk := list(islice(rows, CHUNK)):
        db.executemany(sql, chunk)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, required=True, help="total rows over the 14 tables (1k … 10M)")
    parser.add_argument("--out", type=Path, required=True, help="the SQLite file to (over)write")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    counts = generate(args.out, args.rows, seed=args.seed)
    size = os.path.getsize(args.out)
    total = sum(counts.values())
    print(f"{args.out}: {total} rows, {size / 1e6:.1f} MB ({size / total:.0f} B/row) "
          f"in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
