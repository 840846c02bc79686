"""A hard round-trip dataset over all 14 Memoria tables, as canonical Python values.

Unicode (emoji, CJK, right-to-left), quotes, backslashes, tabs, CRLF and lone CR, a 1 MiB text,
JSON of every shape (nested, arrays, strings, numbers, true, JSON null and SQL NULL), extreme
floats, booleans, datetimes with and without microseconds, integer ids.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from memoria_stream.model.catalog import TABLES, default_for
from memoria_stream.drivers.base import Connection
from memoria_stream.transfer.schema import ensure_tables
from memoria_stream.model.types import JSON_NULL

TRICKY_TEXT = [
    "plain ascii",
    "emoji 😀🧠✨ and flags 🇫🇷",
    "CJK 記憶と学習 한국어 中文",
    "right-to-left עברית العربية",
    "quotes ' \" `backticks` and \\backslashes\\ \\n literal",
    "tab\tseparated\tvalues",
    "windows\r\nline\r\nends",
    "lone\rcarriage\rreturns",
    "",
    "multi\nline\n\nparagraph",
]
BIG_TEXT = ("Memoria remembers. 記憶 🧠 " * 40000)[: 1024 * 1024]
JSON_VALUES: list[Any] = [
    {"nested": {"deep": {"list": [1, 2, {"x": "y"}]}}, "flag": True},
    [1, "two", 3.5, None, False, {"k": []}],
    "just a string with \"quotes\" and 😀",
    42,
    -7.25,
    True,
    JSON_NULL,
    None,
    {},
    [],
]
FLOATS = [0.1, -0.0, 1e-300, 1.7976931348623157e308, 0.5, 3.141592653589793, -2.5e-10, 123456.789]
DATES = [
    datetime(2024, 1, 2, 3, 4, 5, 123456),
    datetime(2024, 1, 2, 3, 4, 5),
    datetime(1999, 12, 31, 23, 59, 59, 999999),
    datetime(2038, 1, 19, 3, 14, 8, 1),
]


def _pick(values: list[Any], i: int) -> Any:
    return values[i % len(values)]


def build_dataset(rows_per_table: int = 10) -> dict[str, list[dict[str, Any]]]:
    data: dict[str, list[dict[str, Any]]] = {}
    n = rows_per_table
    data["teams"] = [dict(team_id=f"team-{i}", name=_pick(TRICKY_TEXT, i) or "t", slug=f"slug-{i}",
                          description=_pick(TRICKY_TEXT, i + 1) if i % 3 else None,
                          created_at=_pick(DATES, i), updated_at=_pick(DATES, i + 1)) for i in range(n)]
    data["agents"] = [dict(agent_id=f"agent-{i}", name=f"Agent {i} 🤖", role="planner" if i % 2 else None,
                           preferred_model="gpt-4o", is_agent=bool(i % 2), metadata=_pick(JSON_VALUES, i),
                           created_at=_pick(DATES, i), updated_at=_pick(DATES, i + 2)) for i in range(n)]
    data["workspaces"] = [dict(workspace_id=f"ws-{i}", name=f"Workspace {i}", slug=f"ws-slug-{i}",
                               description=_pick(TRICKY_TEXT, i), owner_id=f"user-{i}",
                               team_id=f"team-{i}" if i % 2 else None,
                               created_at=_pick(DATES, i), updated_at=_pick(DATES, i)) for i in range(n)]
    data["workspace_members"] = [dict(id=i + 1, workspace_id=f"ws-{i % n}", user_id=f"user-{i}",
                                      role="admin" if i % 4 == 0 else "member", is_admin=i % 4 == 0,
                                      is_agent=i % 3 == 0, joined_at=_pick(DATES, i), updated_at=_pick(DATES, i))
                                 for i in range(n * 2)]
    data["chat_history"] = [dict(chat_id=f"chat-{i}", user_input=BIG_TEXT if i == 0 else _pick(TRICKY_TEXT, i),
                                 ai_output=_pick(TRICKY_TEXT, i + 3), model="claude-3", timestamp=_pick(DATES, i),
                                 session_id=f"s-{i % 3}", namespace="default" if i % 2 else "ns-😀",
                                 tokens_used=None if i % 5 == 4 else i * 1000, metadata=_pick(JSON_VALUES, i),
                                 team_id=f"team-{i}" if i % 3 == 0 else None,
                                 workspace_id=f"ws-{i}" if i % 4 == 1 else None,
                                 last_edited_by_model=None) for i in range(n)]
    data["long_term_memory"] = [_long_term(i) for i in range(n)]
    data["short_term_memory"] = [_short_term(i, n) for i in range(n)]
    data["spatial_metadata"] = [dict(memory_id=f"ltm-{i}", namespace="default", team_id=None,
                                     timestamp=_pick(DATES, i), x=_pick(FLOATS, i), y=-15.0 + i, z=None if i % 2 else 14.999,
                                     symbolic_anchors=_pick(JSON_VALUES, i + 1),
                                     workspace_id=f"ws-{i}" if i % 2 else None) for i in range(n)]
    data["memory_access_events"] = [dict(id=100 + i, memory_id=f"ltm-{i}", namespace="default",
                                         team_id=f"team-x{i}", accessed_at=_pick(DATES, i),
                                         access_type="retrieval", source=None if i % 2 else "api",
                                         metadata_json=_pick(JSON_VALUES, i + 2),
                                         workspace_id=None) for i in range(n)]
    data["link_memory_threads"] = [dict(id=i + 1, source_memory_id=f"ltm-{i}", target_memory_id=f"ltm-{i + 1}",
                                        relation="related", created_at=_pick(DATES, i)) for i in range(n)]
    data["thread_events"] = [dict(thread_id=f"thread-{i}", namespace="default", symbolic_anchors=["a", "b"],
                                  ritual_name=_pick(TRICKY_TEXT, i), ritual_phase=None,
                                  ritual_metadata=_pick(JSON_VALUES, i + 3), centroid_x=_pick(FLOATS, i),
                                  centroid_y=1.5, centroid_z=None, created_at=_pick(DATES, i),
                                  updated_at=_pick(DATES, i + 1)) for i in range(n)]
    data["thread_message_links"] = [dict(id=i + 1, thread_id=f"thread-{i % 3}", memory_id=f"stm-{i}",
                                         namespace="default", sequence_index=i, role="user" if i % 2 else None,
                                         anchor=None, timestamp=None if i % 3 == 0 else _pick(DATES, i))
                                    for i in range(n)]
    data["clusters"] = [dict(id=i + 1, summary=_pick(TRICKY_TEXT, i), centroid=_pick(JSON_VALUES, i),
                             y_centroid=-12.5, z_centroid=None, polarity=_pick(FLOATS, i), subjectivity=0.0,
                             size=i, avg_importance=_pick(FLOATS, i + 1), update_count=0,
                             last_updated=_pick(DATES, i), weight=1.0 / (i + 1), total_tokens=i * 7,
                             total_chars=None) for i in range(n)]
    data["cluster_members"] = [dict(id=i + 1, memory_id=f"ltm-{i}", anchor=None, summary=_pick(TRICKY_TEXT, i + 5),
                                    tokens=i, chars=i * 10, cluster_id=(i % n) + 1) for i in range(n * 2)]
    return {name: data[name] for name in TABLES}


def _long_term(i: int) -> dict[str, Any]:
    row: dict[str, Any] = {c.name: default_for(c) for c in TABLES["long_term_memory"].columns}
    row.update(memory_id=f"ltm-{i}", original_chat_id=f"chat-{i}", processed_data=_pick(JSON_VALUES[:6], i),
               importance_score=_pick(FLOATS, i), category_primary="fact", namespace="default",
               timestamp=_pick(DATES, i), created_at=_pick(DATES, i + 1), last_accessed=None if i % 2 else _pick(DATES, i),
               searchable_content=_pick(TRICKY_TEXT, i), summary=_pick(TRICKY_TEXT, i + 1),
               novelty_score=_pick(FLOATS, i + 2), x_coord=_pick(FLOATS, i + 3), y_coord=-15.0, z_coord=15.0,
               symbolic_anchors=_pick(JSON_VALUES, i), embedding=[0.1, -0.0, 1e-300] if i % 2 else None,
               documents_json=_pick(JSON_VALUES, i + 4), entities_json=JSON_NULL if i % 3 == 0 else ["x"],
               is_user_context=bool(i % 2), is_preference=None if i % 4 == 3 else False,
               is_skill_knowledge=True, promotion_eligible=None, extraction_timestamp=_pick(DATES, i),
               classification_reason=None if i % 2 else "because\r\nreasons", confidence_score=1.7976931348623157e308)
    return row


def _short_term(i: int, n: int) -> dict[str, Any]:
    row: dict[str, Any] = {c.name: default_for(c) for c in TABLES["short_term_memory"].columns}
    row.update(memory_id=f"stm-{i}", chat_id=f"chat-{i % n}" if i % 2 else None,
               processed_data=_pick(JSON_VALUES[:6], i + 1), importance_score=_pick(FLOATS, i),
               category_primary="context", created_at=_pick(DATES, i), expires_at=None if i % 2 else _pick(DATES, i),
               searchable_content=_pick(TRICKY_TEXT, i + 2), summary=_pick(TRICKY_TEXT, i),
               is_permanent_context=bool(i % 3), x_coord=None, y_coord=0.1, z_coord=-0.0,
               symbolic_anchors=_pick(JSON_VALUES, i + 5), embedding=None, team_id=None)
    return row


async def load_dataset(conn: Connection, data: dict[str, list[dict[str, Any]]]) -> None:
    """Create the schema and insert ``data`` through the driver (encoded like any write)."""
    await ensure_tables(conn, list(data))
    caps = conn.capabilities
    async with conn.transaction():
        for name, rows in data.items():
            if not rows:
                continue
            table = TABLES[name]
            encoders = [caps.encoders.get(c.type) for c in table.columns]
            encoded = [tuple(None if row[c.name] is None else (enc(row[c.name]) if enc else row[c.name])
                             for c, enc in zip(table.columns, encoders)) for row in rows]
            await conn.write(name, table.column_names, encoded)
        for name in data:
            pk = TABLES[name].columns[0]
            if pk.autoincrement:
                await conn.reset_sequence(name, pk.name)
