"""keys.dependencies: the functional dependencies the keys stage found in each file (exact, or
approximate with their g3 error and the rows breaking them); keys.dependency_rows: those rows
(up to a limit per dependency; `position` orders them dependency by dependency, group by group)
with their LHS values, the value seen and the group's majority value; keys.foreign_keys: the
foreign-key candidates keys/relations found between the latest file of every source and every
harmonized target, replaced by each run.

Revision ID: 0007
Revises: 0006
Create Date: 2027-03-01
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_UPGRADE = [
    """CREATE TABLE IF NOT EXISTS keys.dependencies (
        source text NOT NULL,
        partition_key text NOT NULL,
        run_id text NOT NULL,
        rank integer NOT NULL,
        lhs text[] NOT NULL,
        rhs text NOT NULL,
        exact boolean NOT NULL,
        error double precision NOT NULL,
        violating_rows bigint NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS dependencies_partition ON keys.dependencies (source, partition_key)",
    """CREATE TABLE IF NOT EXISTS keys.dependency_rows (
        source text NOT NULL,
        partition_key text NOT NULL,
        run_id text NOT NULL,
        lhs text[] NOT NULL,
        rhs text NOT NULL,
        position integer NOT NULL,
        _row_number bigint NOT NULL,
        lhs_values jsonb NOT NULL,
        value text,
        majority_value text
    )""",
    "CREATE INDEX IF NOT EXISTS dependency_rows_partition ON keys.dependency_rows (source, partition_key, _row_number)",
    """CREATE TABLE IF NOT EXISTS keys.foreign_keys (
        run_id text NOT NULL,
        rank integer NOT NULL,
        from_table text NOT NULL,
        from_columns text[] NOT NULL,
        to_table text NOT NULL,
        to_columns text[] NOT NULL,
        distinct_missing bigint NOT NULL,
        rows_violating bigint NOT NULL,
        coverage double precision NOT NULL,
        score double precision NOT NULL,
        sample_missing text[] NOT NULL,
        relation_line text NOT NULL,
        found_at timestamptz NOT NULL DEFAULT now()
    )""",
]


def upgrade() -> None:
    for statement in _UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for table in ("foreign_keys", "dependency_rows", "dependencies"):
        op.execute(f"DROP TABLE IF EXISTS keys.{table}")
