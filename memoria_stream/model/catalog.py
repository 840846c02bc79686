"""The Memoria schema: the 14 exported tables, their columns, keys, indexes and FK order.

Values transcribed from Memoria's models (compat §1). Defaults are Python-side in Memoria; they are
kept here so that rows missing a column can be normalised to the full column set.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

from memoria_stream.model.types import ColumnType

T = ColumnType


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    nullable: bool = True
    primary_key: bool = False
    autoincrement: bool = False
    length: int | None = None  # VARCHAR(n); None means unbounded text
    default: Any = None  # a value, or a zero-argument callable (e.g. utcnow)


@dataclass(frozen=True)
class ForeignKey:
    columns: tuple[str, ...]
    parent: str
    parent_columns: tuple[str, ...]
    on_delete: str = "SET NULL"  # or "CASCADE"


@dataclass(frozen=True)
class Index:
    name: str
    columns: tuple[str, ...]
    unique: bool = False


@dataclass(frozen=True)
class Check:
    name: str
    expression: str  # portable SQL over unquoted column names
    column: str  # the one column it reads
    allows: Callable[[Any], bool]  # the same rule in Python, for a dry run (NULL passes, as in SQL)


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    foreign_keys: tuple[ForeignKey, ...] = ()
    indexes: tuple[Index, ...] = ()
    unique_constraints: tuple[Index, ...] = ()
    checks: tuple[Check, ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def primary_key(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.primary_key)

    def column(self, name: str) -> Column | None:
        return _columns_by_name(self).get(name)

    @property
    def parents(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(fk.parent for fk in self.foreign_keys if fk.parent != self.name))


def _columns_by_name(table: Table) -> Mapping[str, Column]:
    return {c.name: c for c in table.columns}


# ---------------------------------------------------------------------------
# Defaults and small builders
# ---------------------------------------------------------------------------


def utcnow() -> datetime:
    """Naive UTC "now", the equivalent of Memoria's ``datetime.utcnow`` default."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _pk_str(name: str) -> Column:
    return Column(name, T.TEXT, nullable=False, primary_key=True, length=255)


def _pk_int(name: str = "id") -> Column:
    return Column(name, T.INTEGER, nullable=False, primary_key=True, autoincrement=True)


def _varchar(name: str, length: int = 255, *, nullable: bool = True, default: Any = None) -> Column:
    return Column(name, T.TEXT, nullable=nullable, length=length, default=default)


def _text(name: str, *, nullable: bool = True, default: Any = None) -> Column:
    return Column(name, T.TEXT, nullable=nullable, default=default)


def _int(name: str, *, nullable: bool = True, default: Any = None) -> Column:
    return Column(name, T.INTEGER, nullable=nullable, default=default)


def _float(name: str, *, nullable: bool = True, default: Any = None) -> Column:
    return Column(name, T.FLOAT, nullable=nullable, default=default)


def _bool(name: str, *, nullable: bool = True, default: Any = None) -> Column:
    return Column(name, T.BOOLEAN, nullable=nullable, default=default)


def _ts(name: str, *, nullable: bool = True, default: Any = None) -> Column:
    return Column(name, T.TIMESTAMP, nullable=nullable, default=default)


def _json(name: str, *, nullable: bool = True, default: Any = None) -> Column:
    return Column(name, T.JSON, nullable=nullable, default=default)


def _fk(column: str, parent: str, parent_column: str, on_delete: str = "SET NULL") -> ForeignKey:
    return ForeignKey((column,), parent, (parent_column,), on_delete)


def _ix(name: str, *columns: str, unique: bool = False) -> Index:
    return Index(name, tuple(columns), unique)


def _range_check(name: str, column: str) -> Check:
    """The Y/Z axis bound: NULL or within [-15.0, 15.0]."""
    return Check(name, f"{column} IS NULL OR ({column} >= -15.0 AND {column} <= 15.0)", column,
                 lambda v: v is None or -15.0 <= v <= 15.0)


_TEAM_FK = _fk("team_id", "teams", "team_id")
_WORKSPACE_FK = _fk("workspace_id", "workspaces", "workspace_id")


# ---------------------------------------------------------------------------
# The 14 exported tables (compat §1.2, DDL as emitted by Memoria's create_all)
# ---------------------------------------------------------------------------

# Memoria model `Agent`
AGENTS = Table(
    name="agents",
    columns=(
        _pk_str("agent_id"),
        _varchar("name", nullable=False),
        _varchar("role"),
        _varchar("preferred_model"),
        _bool("is_agent", nullable=False, default=True),
        _json("metadata", default=dict),
        _ts("created_at", nullable=False, default=utcnow),
        _ts("updated_at", nullable=False, default=utcnow),
    ),
    indexes=(
        _ix("idx_agent_preferred_model", "preferred_model"),
        _ix("idx_agent_role", "role"),
    ),
)

# Memoria model `Team`
TEAMS = Table(
    name="teams",
    columns=(
        _pk_str("team_id"),
        _varchar("name", nullable=False),
        _varchar("slug", nullable=False),
        _text("description"),
        _ts("created_at", nullable=False, default=utcnow),
        _ts("updated_at", nullable=False, default=utcnow),
    ),
    indexes=(
        _ix("idx_team_slug", "slug", unique=True),
        _ix("idx_team_created", "created_at"),
    ),
)

# Memoria model `Workspace`
WORKSPACES = Table(
    name="workspaces",
    columns=(
        _pk_str("workspace_id"),
        _varchar("name", nullable=False),
        _varchar("slug", nullable=False),
        _text("description"),
        _varchar("owner_id"),
        _varchar("team_id"),
        _ts("created_at", nullable=False, default=utcnow),
        _ts("updated_at", nullable=False, default=utcnow),
    ),
    foreign_keys=(_TEAM_FK,),
    indexes=(
        _ix("idx_workspace_slug", "slug", unique=True),
        _ix("idx_workspace_owner", "owner_id"),
        _ix("idx_workspace_team", "team_id"),
        _ix("idx_workspace_created", "created_at"),
    ),
)

# Memoria model `WorkspaceMember`
WORKSPACE_MEMBERS = Table(
    name="workspace_members",
    columns=(
        _pk_int("id"),
        _varchar("workspace_id", nullable=False),
        _varchar("user_id", nullable=False),
        _varchar("role", 50, nullable=False, default="member"),
        _bool("is_admin", nullable=False, default=False),
        _bool("is_agent", nullable=False, default=False),
        _ts("joined_at", nullable=False, default=utcnow),
        _ts("updated_at", nullable=False, default=utcnow),
    ),
    foreign_keys=(_fk("workspace_id", "workspaces", "workspace_id", "CASCADE"),),
    indexes=(
        _ix("idx_workspace_member_workspace", "workspace_id"),
        _ix("idx_workspace_member_user", "user_id"),
    ),
    unique_constraints=(_ix("uq_workspace_member", "workspace_id", "user_id", unique=True),),
)

# Memoria model `ChatHistory`
CHAT_HISTORY = Table(
    name="chat_history",
    columns=(
        _pk_str("chat_id"),
        _text("user_input", nullable=False),
        _text("ai_output", nullable=False),
        _varchar("model", nullable=False),
        _ts("timestamp", nullable=False, default=utcnow),
        _varchar("session_id", nullable=False),
        _varchar("namespace", nullable=False, default="default"),
        _int("tokens_used", default=0),
        _json("metadata"),
        _varchar("team_id"),
        _varchar("workspace_id"),
        _varchar("last_edited_by_model"),
    ),
    foreign_keys=(_TEAM_FK, _WORKSPACE_FK),
    indexes=(
        _ix("idx_chat_namespace_session", "namespace", "session_id"),
        _ix("idx_chat_team_namespace", "team_id", "namespace"),
        _ix("idx_chat_timestamp", "timestamp"),
        _ix("idx_chat_model", "model"),
        _ix("idx_chat_team", "team_id"),
        _ix("idx_chat_workspace", "workspace_id"),
        _ix("idx_chat_workspace_namespace", "workspace_id", "namespace"),
        _ix("idx_chat_last_editor", "last_edited_by_model"),
    ),
)

# Memoria model `LongTermMemory` (43 columns)
LONG_TERM_MEMORY = Table(
    name="long_term_memory",
    columns=(
        _pk_str("memory_id"),
        _varchar("original_chat_id"),
        _json("processed_data", nullable=False),
        _float("importance_score", nullable=False, default=0.5),
        _varchar("category_primary", nullable=False),
        _varchar("retention_type", 50, nullable=False, default="long_term"),
        _varchar("namespace", nullable=False, default="default"),
        _ts("timestamp", nullable=False, default=utcnow),
        _ts("created_at", nullable=False, default=utcnow),
        _int("access_count", default=0),
        _ts("last_accessed"),
        _text("searchable_content", nullable=False),
        _text("summary", nullable=False),
        _float("novelty_score", default=0.5),
        _float("relevance_score", default=0.5),
        _float("actionability_score", default=0.5),
        _float("x_coord"),
        _float("y_coord"),
        _float("z_coord"),
        _json("symbolic_anchors"),
        _json("embedding"),
        _json("documents_json"),
        _varchar("team_id"),
        _varchar("workspace_id"),
        _varchar("last_edited_by_model"),
        _varchar("classification", 50, nullable=False, default="conversational"),
        _varchar("memory_importance", 20, nullable=False, default="medium"),
        _varchar("topic"),
        _json("entities_json"),
        _json("keywords_json"),
        _bool("is_user_context", default=False),
        _bool("is_preference", default=False),
        _bool("is_skill_knowledge", default=False),
        _bool("is_current_project", default=False),
        _bool("promotion_eligible", default=False),
        _varchar("duplicate_of"),
        _json("supersedes_json"),
        _json("related_memories_json"),
        _float("confidence_score", default=0.8),
        _ts("extraction_timestamp", nullable=False, default=utcnow),
        _text("classification_reason"),
        _bool("processed_for_duplicates", default=False),
        _bool("conscious_processed", default=False),
    ),
    foreign_keys=(_TEAM_FK, _WORKSPACE_FK),
    indexes=(
        _ix("idx_long_term_namespace", "namespace"),
        _ix("idx_long_term_team_namespace", "team_id", "namespace"),
        _ix("idx_long_term_category", "category_primary"),
        _ix("idx_long_term_importance", "importance_score"),
        _ix("idx_long_term_created", "created_at"),
        _ix("idx_long_term_timestamp", "timestamp"),
        _ix("idx_long_term_access", "access_count", "last_accessed"),
        _ix("idx_long_term_scores", "novelty_score", "relevance_score", "actionability_score"),
        _ix("idx_long_term_classification", "classification"),
        _ix("idx_long_term_memory_importance", "memory_importance"),
        _ix("idx_long_term_topic", "topic"),
        _ix(
            "idx_long_term_conscious_flags",
            "is_user_context", "is_preference", "is_skill_knowledge", "promotion_eligible",
        ),
        _ix("idx_long_term_conscious_processed", "conscious_processed"),
        _ix("idx_long_term_duplicates", "processed_for_duplicates"),
        _ix("idx_long_term_confidence", "confidence_score"),
        _ix("idx_long_term_namespace_category", "namespace", "category_primary", "importance_score"),
        _ix("idx_long_term_coords", "x_coord", "y_coord", "z_coord"),
        _ix("idx_long_term_team", "team_id"),
        _ix("idx_long_term_namespace_team", "namespace", "team_id"),
        _ix("idx_long_term_workspace", "workspace_id"),
        _ix("idx_long_term_namespace_workspace", "namespace", "workspace_id"),
        _ix("idx_long_term_last_editor", "last_edited_by_model"),
    ),
    checks=(
        _range_check("ck_long_term_y_coord_range", "y_coord"),
        _range_check("ck_long_term_z_coord_range", "z_coord"),
    ),
)

# Memoria model `ShortTermMemory` (22 columns)
SHORT_TERM_MEMORY = Table(
    name="short_term_memory",
    columns=(
        _pk_str("memory_id"),
        _varchar("chat_id"),
        _json("processed_data", nullable=False),
        _float("importance_score", nullable=False, default=0.5),
        _varchar("category_primary", nullable=False),
        _varchar("retention_type", 50, nullable=False, default="short_term"),
        _varchar("namespace", nullable=False, default="default"),
        _ts("created_at", nullable=False, default=utcnow),
        _ts("expires_at"),
        _int("access_count", default=0),
        _ts("last_accessed"),
        _text("searchable_content", nullable=False),
        _text("summary", nullable=False),
        _bool("is_permanent_context", default=False),
        _float("x_coord"),
        _float("y_coord"),
        _float("z_coord"),
        _json("symbolic_anchors"),
        _json("embedding"),
        _varchar("team_id"),
        _varchar("workspace_id"),
        _varchar("last_edited_by_model"),
    ),
    foreign_keys=(_fk("chat_id", "chat_history", "chat_id"), _TEAM_FK, _WORKSPACE_FK),
    indexes=(
        _ix("idx_short_term_namespace", "namespace"),
        _ix("idx_short_term_team_namespace", "team_id", "namespace"),
        _ix("idx_short_term_category", "category_primary"),
        _ix("idx_short_term_importance", "importance_score"),
        _ix("idx_short_term_expires", "expires_at"),
        _ix("idx_short_term_created", "created_at"),
        _ix("idx_short_term_access", "access_count", "last_accessed"),
        _ix("idx_short_term_permanent", "is_permanent_context"),
        _ix("idx_short_term_namespace_category", "namespace", "category_primary", "importance_score"),
        _ix("idx_short_term_coords", "x_coord", "y_coord", "z_coord"),
        _ix("idx_short_term_team", "team_id"),
        _ix("idx_short_term_namespace_team", "namespace", "team_id"),
        _ix("idx_short_term_workspace", "workspace_id"),
        _ix("idx_short_term_namespace_workspace", "namespace", "workspace_id"),
        _ix("idx_short_term_last_editor", "last_edited_by_model"),
    ),
    checks=(
        _range_check("ck_short_term_y_coord_range", "y_coord"),
        _range_check("ck_short_term_z_coord_range", "z_coord"),
    ),
)

# Memoria model `SpatialMetadata`
SPATIAL_METADATA = Table(
    name="spatial_metadata",
    columns=(
        _pk_str("memory_id"),
        _varchar("namespace", nullable=False, default="default"),
        _varchar("team_id"),
        _ts("timestamp", nullable=False, default=utcnow),
        _float("x"),
        _float("y"),
        _float("z"),
        _json("symbolic_anchors"),
        _varchar("workspace_id"),
    ),
    foreign_keys=(_TEAM_FK, _WORKSPACE_FK),
    indexes=(
        _ix("idx_spatial_namespace", "namespace"),
        _ix("idx_spatial_team_namespace", "team_id", "namespace"),
        _ix("idx_spatial_workspace_namespace", "workspace_id", "namespace"),
    ),
    checks=(
        Check("ck_spatial_metadata_namespace_nonempty", "namespace <> ''", "namespace", lambda v: v != ""),
        _range_check("ck_spatial_metadata_y_range", "y"),
        _range_check("ck_spatial_metadata_z_range", "z"),
    ),
)

# Memoria model `MemoryAccessEvent` (team_id has no FK)
MEMORY_ACCESS_EVENTS = Table(
    name="memory_access_events",
    columns=(
        _pk_int("id"),
        _varchar("memory_id", nullable=False),
        _varchar("namespace", nullable=False, default="default"),
        _varchar("team_id"),
        _ts("accessed_at", nullable=False, default=utcnow),
        _varchar("access_type", 50, nullable=False, default="retrieval"),
        _varchar("source", 50),
        _json("metadata_json"),
        _varchar("workspace_id"),
    ),
    foreign_keys=(_WORKSPACE_FK,),
    indexes=(
        _ix("idx_access_events_memory", "memory_id"),
        _ix("idx_access_events_namespace", "namespace", "accessed_at"),
        _ix("idx_access_events_team_namespace", "team_id", "namespace", "accessed_at"),
        _ix("idx_access_events_workspace_namespace", "workspace_id", "namespace", "accessed_at"),
    ),
)

# Memoria model `LinkMemoryThread`
LINK_MEMORY_THREADS = Table(
    name="link_memory_threads",
    columns=(
        _pk_int("id"),
        _varchar("source_memory_id", nullable=False),
        _varchar("target_memory_id", nullable=False),
        _varchar("relation", 50, nullable=False, default="related"),
        _ts("created_at", nullable=False, default=utcnow),
    ),
    indexes=(
        _ix("idx_threads_source", "source_memory_id"),
        _ix("idx_threads_target", "target_memory_id"),
    ),
)

# Memoria model `ThreadEvent`
THREAD_EVENTS = Table(
    name="thread_events",
    columns=(
        _pk_str("thread_id"),
        _varchar("namespace", nullable=False, default="default"),
        _json("symbolic_anchors"),
        _varchar("ritual_name"),
        _varchar("ritual_phase"),
        _json("ritual_metadata"),
        _float("centroid_x"),
        _float("centroid_y"),
        _float("centroid_z"),
        _ts("created_at", nullable=False, default=utcnow),
        _ts("updated_at", nullable=False, default=utcnow),
    ),
    indexes=(_ix("idx_thread_events_namespace", "namespace"),),
)

# Memoria model `ThreadMessageLink` (sequence_index and timestamp have no default)
THREAD_MESSAGE_LINKS = Table(
    name="thread_message_links",
    columns=(
        _pk_int("id"),
        _varchar("thread_id", nullable=False),
        _varchar("memory_id", nullable=False),
        _varchar("namespace", nullable=False, default="default"),
        _int("sequence_index", nullable=False),
        _varchar("role", 50),
        _varchar("anchor"),
        _ts("timestamp"),
    ),
    indexes=(
        _ix("idx_thread_message_thread", "thread_id"),
        _ix("idx_thread_message_memory", "memory_id"),
    ),
)

# Memoria model `Cluster`
CLUSTERS = Table(
    name="clusters",
    columns=(
        _pk_int("id"),
        _text("summary", nullable=False),
        _json("centroid"),
        _float("y_centroid"),
        _float("z_centroid"),
        _float("polarity"),
        _float("subjectivity"),
        _int("size"),
        _float("avg_importance"),
        _int("update_count", default=0),
        _ts("last_updated"),
        _float("weight", default=0.0),
        _int("total_tokens", default=0),
        _int("total_chars", default=0),
    ),
    indexes=(
        _ix("idx_clusters_weight", "weight"),
        _ix("idx_clusters_last_updated", "last_updated"),
    ),
    checks=(
        _range_check("ck_clusters_y_centroid_range", "y_centroid"),
        _range_check("ck_clusters_z_centroid_range", "z_centroid"),
    ),
)

# Memoria model `ClusterMember`
CLUSTER_MEMBERS = Table(
    name="cluster_members",
    columns=(
        _pk_int("id"),
        _varchar("memory_id", nullable=False),
        _varchar("anchor"),
        _text("summary", nullable=False),
        _int("tokens", default=0),
        _int("chars", default=0),
        _int("cluster_id", nullable=False),
    ),
    foreign_keys=(_fk("cluster_id", "clusters", "id", "CASCADE"),),
    indexes=(_ix("idx_cluster_members_cluster", "cluster_id"),),
)


# ---------------------------------------------------------------------------
# Lookup and ordering
# ---------------------------------------------------------------------------

#: Memoria's EXPORT_TABLES order, which is also a valid FK insert order (parents first).
TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        AGENTS,
        TEAMS,
        WORKSPACES,
        WORKSPACE_MEMBERS,
        CHAT_HISTORY,
        LONG_TERM_MEMORY,
        SHORT_TERM_MEMORY,
        SPATIAL_METADATA,
        MEMORY_ACCESS_EVENTS,
        LINK_MEMORY_THREADS,
        THREAD_EVENTS,
        THREAD_MESSAGE_LINKS,
        CLUSTERS,
        CLUSTER_MEMBERS,
    )
}

EXPORT_ORDER: tuple[str, ...] = tuple(TABLES)


def get_table(name: str) -> Table | None:
    """The catalogue entry for ``name``, or None for a table Memoria does not export."""
    return TABLES.get(name)


def insert_order(names: Iterable[str]) -> list[str]:
    """``names`` with parents before children: catalogue tables in EXPORT_ORDER, then unknown
    names in the order given. Duplicates are dropped."""
    given = list(dict.fromkeys(names))
    wanted = set(given)
    known = [n for n in EXPORT_ORDER if n in wanted]
    unknown = [n for n in given if n not in TABLES]
    return known + unknown


def delete_order(names: Iterable[str]) -> list[str]:
    """The reverse of :func:`insert_order` (children before parents)."""
    return insert_order(names)[::-1]


def default_for(column: Column) -> Any:
    """The Python-side default of ``column``: called when callable, None when it has none."""
    default = column.default
    if callable(default):
        return default()
    return default
