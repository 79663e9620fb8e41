"""Comparisons keep their difference rows: keys.comparison_rows (every row added, removed or
changed, per changed column with its value before and after) instead of ten sample keys per kind
in keys.comparisons.samples; keys.file_comparisons for comparisons of two chosen files (the job
compare_files); keys.duplicate_groups also holds the groups breaking each near-key (kind
`near_key`).

Revision ID: 0003
Revises: 0002
Create Date: 2027-02-01
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_UPGRADE = [
    # One numbering for both kinds of comparison, so a difference row names its comparison alone.
    "CREATE SEQUENCE keys.comparison_ids",
    "ALTER TABLE keys.comparisons ADD COLUMN comparison_id bigint NOT NULL DEFAULT nextval('keys.comparison_ids') UNIQUE",
    "ALTER TABLE keys.comparisons DROP COLUMN samples",
    """CREATE TABLE keys.file_comparisons (
        comparison_id bigint PRIMARY KEY DEFAULT nextval('keys.comparison_ids'),
        source text NOT NULL,
        partition_key_a text NOT NULL,
        partition_key_b text NOT NULL,
        run_id text NOT NULL,
        key_columns text[] NOT NULL,
        added_columns text[] NOT NULL,
        removed_columns text[] NOT NULL,
        retyped_columns jsonb NOT NULL,
        rows_a bigint NOT NULL,
        rows_b bigint NOT NULL,
        added bigint NOT NULL,
        removed bigint NOT NULL,
        changed bigint NOT NULL,
        unchanged bigint NOT NULL,
        changed_columns jsonb NOT NULL,
        compared_at timestamptz NOT NULL DEFAULT now()
    )""",
    "CREATE INDEX file_comparisons_files ON keys.file_comparisons (source, partition_key_a, partition_key_b)",
    """CREATE TABLE keys.comparison_rows (
        comparison_id bigint NOT NULL,
        source text NOT NULL,
        partition_key_a text NOT NULL,
        partition_key_b text NOT NULL,
        kind text NOT NULL CHECK (kind IN ('added', 'removed', 'changed')),
        key_values jsonb NOT NULL,
        column_name text,
        before text,
        after text,
        _row_number_a bigint,
        _row_number_b bigint
    )""",
    "CREATE INDEX comparison_rows_comparison ON keys.comparison_rows (comparison_id, kind)",
    "CREATE INDEX comparison_rows_file_a ON keys.comparison_rows (source, partition_key_a)",
    "CREATE INDEX comparison_rows_file_b ON keys.comparison_rows (source, partition_key_b)",
    "ALTER TABLE keys.duplicate_groups DROP CONSTRAINT duplicate_groups_kind_check",
    "ALTER TABLE keys.duplicate_groups ADD CONSTRAINT duplicate_groups_kind_check CHECK (kind IN ('row', 'key', 'near_key'))",
]


def upgrade() -> None:
    for statement in _UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    # The difference rows and near-key groups go; samples come back empty (the keys they held are gone).
    op.execute("DELETE FROM keys.duplicate_groups WHERE kind = 'near_key'")
    op.execute("ALTER TABLE keys.duplicate_groups DROP CONSTRAINT duplicate_groups_kind_check")
    op.execute("ALTER TABLE keys.duplicate_groups ADD CONSTRAINT duplicate_groups_kind_check CHECK (kind IN ('row', 'key'))")
    op.execute("DROP TABLE keys.comparison_rows")
    op.execute("DROP TABLE keys.file_comparisons")
    op.execute("ALTER TABLE keys.comparisons ADD COLUMN samples jsonb NOT NULL DEFAULT '{}'")
    op.execute("ALTER TABLE keys.comparisons DROP COLUMN comparison_id")
    op.execute("DROP SEQUENCE keys.comparison_ids")
