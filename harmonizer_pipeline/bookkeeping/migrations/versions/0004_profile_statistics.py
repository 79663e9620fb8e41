"""The statistics stored with each profile: quality.column_statistics (one row per column per
profiling run: numbers, dates or text lengths, with histograms), quality.missing_patterns (the most
common combinations of columns missing together) and quality.column_associations (Pearson and
Spearman correlations, Cramér's V, per pair of columns).

Revision ID: 0004
Revises: 0003
Create Date: 2027-01-25
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TABLES = [
    """CREATE TABLE IF NOT EXISTS quality.column_statistics (
        source text NOT NULL,
        partition_key text NOT NULL,
        run_id text NOT NULL,
        "position" integer NOT NULL,
        column_name text NOT NULL,
        semantic_type text NOT NULL,
        file_rows bigint NOT NULL,
        sampled_rows bigint NOT NULL,
        kind text NOT NULL CHECK (kind IN ('numbers', 'dates', 'text', 'none')),
        count bigint,
        invalid bigint,
        mean double precision,
        std double precision,
        minimum double precision,
        p5 double precision,
        p25 double precision,
        p50 double precision,
        p75 double precision,
        p95 double precision,
        maximum double precision,
        zeros bigint,
        negatives bigint,
        first_date date,
        last_date date,
        period text CHECK (period IN ('day', 'month', 'year')),
        length_min integer,
        length_mean double precision,
        length_max integer,
        histogram jsonb,
        top_values jsonb,
        profiled_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (run_id, source, partition_key, "position")
    )""",
    "CREATE INDEX IF NOT EXISTS column_statistics_partition ON quality.column_statistics (source, partition_key, profiled_at)",
    """CREATE TABLE IF NOT EXISTS quality.missing_patterns (
        source text NOT NULL,
        partition_key text NOT NULL,
        run_id text NOT NULL,
        rank integer NOT NULL,
        columns text[] NOT NULL,
        rows bigint NOT NULL,
        PRIMARY KEY (run_id, source, partition_key, rank)
    )""",
    """CREATE TABLE IF NOT EXISTS quality.column_associations (
        source text NOT NULL,
        partition_key text NOT NULL,
        run_id text NOT NULL,
        "position" integer NOT NULL,
        column_a text NOT NULL,
        column_b text NOT NULL,
        measure text NOT NULL CHECK (measure IN ('pearson', 'spearman', 'cramers_v')),
        value double precision,
        rows bigint NOT NULL,
        PRIMARY KEY (run_id, source, partition_key, "position")
    )""",
]


def upgrade() -> None:
    for statement in _TABLES:
        op.execute(statement)


def downgrade() -> None:
    for table in ("column_associations", "missing_patterns", "column_statistics"):
        op.execute(f"DROP TABLE IF EXISTS quality.{table}")
