"""Create the policy_artifacts table with its unique identity and its indexes."""

from __future__ import annotations

from memoria_stream.model.catalog import Column, ForeignKey, Index, Table
from memoria_stream.migrations.helpers import create_table_if_missing, open_target, run_script, say
from memoria_stream.model.types import ColumnType as T

# Not one of the 14 exported tables, so it is described here (compat §1.4); its parents,
# teams and workspaces, are created from the catalogue first when they are missing.
POLICY_ARTIFACTS = Table(
    name="policy_artifacts",
    columns=(
        Column("id", T.INTEGER, nullable=False, primary_key=True, autoincrement=True),
        Column("name", T.TEXT, nullable=False, length=255),
        Column("artifact_type", T.TEXT, nullable=False, length=50),
        Column("namespace", T.TEXT, nullable=False, length=255, default="*"),
        Column("payload", T.JSON, nullable=False),
        Column("schema_version", T.TEXT, nullable=False, length=50, default="1.0"),
        Column("created_at", T.TIMESTAMP, nullable=False),
        Column("updated_at", T.TIMESTAMP, nullable=False),
        Column("created_by", T.TEXT, length=255),
        Column("workspace_id", T.TEXT, length=255),
        Column("team_id", T.TEXT, length=255),
    ),
    foreign_keys=(
        ForeignKey(("workspace_id",), "workspaces", ("workspace_id",)),
        ForeignKey(("team_id",), "teams", ("team_id",)),
    ),
    indexes=(
        Index("idx_policy_artifacts_type", ("artifact_type",)),
        Index("idx_policy_artifacts_namespace", ("namespace",)),
    ),
    unique_constraints=(Index("uq_policy_artifacts_identity", ("name", "namespace", "workspace_id"), True),),
)


async def main() -> None:
    async with open_target() as conn:
        if not await create_table_if_missing(conn, POLICY_ARTIFACTS):
            say("policy_artifacts: already present")


if __name__ == "__main__":
    run_script(main)
