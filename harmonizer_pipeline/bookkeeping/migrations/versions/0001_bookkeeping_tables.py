"""The bookkeeping tables as the releases before migrations left them.

Revision ID: 0001
Revises:
Create Date: 2026-12-06

Those releases created and altered the tables at run time. Every statement here holds whether a
table is missing or already there, so a database they filled is adopted in place, rows kept, and
ends up with the same schema as a new one: tables and indexes IF NOT EXISTS, the columns later
releases added IF NOT EXISTS (with the values they gave existing rows), the registry's status
check replaced by the current one.
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_FILE_REGISTRY = [
    """CREATE TABLE IF NOT EXISTS ops.file_registry (
        id bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        source text NOT NULL,
        object_key text NOT NULL,
        object_version text NOT NULL,
        size bigint,
        content_id text NOT NULL,
        sha256 text,
        status text NOT NULL CONSTRAINT file_registry_status CHECK (status IN ('pending', 'loaded', 'blocked', 'failed', 'duplicate')),
        error text,
        rows bigint,
        partition_key text NOT NULL,
        run_id text,
        first_seen timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        columns text[],
        attempts integer NOT NULL DEFAULT 0,
        retry_at timestamptz,
        heartbeat_at timestamptz,
        PRIMARY KEY (source, object_key, object_version)
    )""",
    "ALTER TABLE ops.file_registry ADD COLUMN IF NOT EXISTS columns text[]",
    "ALTER TABLE ops.file_registry ADD COLUMN IF NOT EXISTS id bigint GENERATED ALWAYS AS IDENTITY UNIQUE",
    # A registry from before attempts were counted: each file that was requested had one.
    """DO $$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'ops.file_registry'::regclass AND attname = 'attempts' AND NOT attisdropped) THEN
            ALTER TABLE ops.file_registry ADD COLUMN attempts integer NOT NULL DEFAULT 0;
            UPDATE ops.file_registry SET attempts = 1 WHERE status <> 'duplicate';
        END IF;
    END $$""",
    "ALTER TABLE ops.file_registry ADD COLUMN IF NOT EXISTS retry_at timestamptz",
    "ALTER TABLE ops.file_registry ADD COLUMN IF NOT EXISTS heartbeat_at timestamptz",
    # The first release's unnamed check did not allow `blocked`.
    "ALTER TABLE ops.file_registry DROP CONSTRAINT IF EXISTS file_registry_status_check",
    "ALTER TABLE ops.file_registry DROP CONSTRAINT IF EXISTS file_registry_status",
    "ALTER TABLE ops.file_registry ADD CONSTRAINT file_registry_status CHECK (status IN ('pending', 'loaded', 'blocked', 'failed', 'duplicate'))",
    "CREATE INDEX IF NOT EXISTS file_registry_content ON ops.file_registry (source, content_id)",
    "CREATE INDEX IF NOT EXISTS file_registry_partition ON ops.file_registry (source, partition_key)",
]

_AUDIT_AND_METRICS = [
    """CREATE TABLE IF NOT EXISTS ops.audit_log (
        id bigserial PRIMARY KEY,
        at timestamptz NOT NULL DEFAULT clock_timestamp(),
        action text NOT NULL,
        status text NOT NULL,
        run_id text NOT NULL,
        launched_by text NOT NULL,
        asset text NOT NULL,
        partition_key text,
        file text,
        sha256 text,
        rows_in bigint,
        rows_out bigint,
        detail text
    )""",
    "CREATE INDEX IF NOT EXISTS audit_log_at ON ops.audit_log (at)",
    "CREATE INDEX IF NOT EXISTS audit_log_file ON ops.audit_log (file)",
    """CREATE TABLE IF NOT EXISTS ops.run_metrics (
        id bigserial PRIMARY KEY,
        recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        run_id text NOT NULL,
        subject text NOT NULL,
        partition_key text,
        asset text NOT NULL,
        metric text NOT NULL,
        value double precision NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS run_metrics_subject ON ops.run_metrics (subject, recorded_at)",
]

_MERGES = [
    """CREATE TABLE IF NOT EXISTS ops.staged_files (
        source text NOT NULL,
        partition_key text NOT NULL,
        target text NOT NULL,
        load_id text,
        run_id text NOT NULL,
        rows_in bigint NOT NULL,
        rows_staged bigint NOT NULL,
        rows_left_out bigint NOT NULL,
        rejected_values bigint NOT NULL,
        staged_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (source, partition_key)
    )""",
    """CREATE TABLE IF NOT EXISTS ops.merged_files (
        target text NOT NULL,
        source text NOT NULL,
        partition_key text NOT NULL,
        file_id bigint NOT NULL,
        load_id text,
        staged_run_id text NOT NULL,
        PRIMARY KEY (target, source, partition_key)
    )""",
    """CREATE TABLE IF NOT EXISTS ops.merges (
        merge_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        target text NOT NULL,
        run_id text NOT NULL,
        rebuild boolean NOT NULL,
        merged_at timestamptz NOT NULL DEFAULT now(),
        files_added integer NOT NULL,
        files_removed integer NOT NULL,
        keys_affected bigint NOT NULL,
        inserted bigint NOT NULL,
        updated bigint NOT NULL,
        deleted bigint NOT NULL,
        history_versions bigint NOT NULL,
        rows bigint,
        exported_at timestamptz,
        duplicate_keys bigint,
        merged_rows bigint
    )""",
    # Merges recorded before the target's duplicate totals were carried from merge to merge.
    "ALTER TABLE ops.merges ADD COLUMN IF NOT EXISTS duplicate_keys bigint, ADD COLUMN IF NOT EXISTS merged_rows bigint",
    "CREATE INDEX IF NOT EXISTS merges_target ON ops.merges (target, merge_id)",
]

_QUALITY = [
    """CREATE TABLE IF NOT EXISTS quality.rejected_rows (
        source text NOT NULL,
        partition_key text NOT NULL,
        run_id text NOT NULL,
        _row_number bigint,
        column_name text,
        check_name text NOT NULL,
        failure_case text,
        message text NOT NULL,
        rejected_at timestamptz NOT NULL DEFAULT now()
    )""",
    "CREATE INDEX IF NOT EXISTS rejected_rows_partition ON quality.rejected_rows (source, partition_key, _row_number)",
    """CREATE TABLE IF NOT EXISTS quality.gate_results (
        source text NOT NULL,
        partition_key text NOT NULL,
        run_id text NOT NULL,
        rows bigint NOT NULL,
        valid_rows bigint NOT NULL,
        rejected_rows bigint NOT NULL,
        reject_rate double precision NOT NULL,
        max_reject_rate double precision NOT NULL,
        severity text NOT NULL CHECK (severity IN ('ok', 'warn', 'error')),
        description text NOT NULL,
        failures jsonb NOT NULL,
        checked_at timestamptz NOT NULL DEFAULT now()
    )""",
    """CREATE TABLE IF NOT EXISTS quality.column_profiles (
        source text NOT NULL,
        partition_key text NOT NULL,
        run_id text NOT NULL,
        "position" integer NOT NULL,
        column_name text NOT NULL,
        semantic_type text NOT NULL,
        rows bigint NOT NULL,
        nulls bigint NOT NULL,
        empties bigint NOT NULL,
        distinct_values bigint NOT NULL,
        minimum text,
        maximum text,
        pattern text,
        pii text[] NOT NULL,
        quality_score double precision NOT NULL,
        file_quality_score double precision NOT NULL,
        profile jsonb NOT NULL,
        profiled_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (run_id, source, partition_key, "position")
    )""",
    "CREATE INDEX IF NOT EXISTS column_profiles_partition ON quality.column_profiles (source, partition_key, profiled_at)",
    """CREATE TABLE IF NOT EXISTS quality.recommendations (
        source text NOT NULL,
        partition_key text NOT NULL,
        run_id text NOT NULL,
        column_name text NOT NULL,
        issue text NOT NULL,
        detail text NOT NULL,
        rows bigint NOT NULL,
        pandas_fix text NOT NULL,
        sql_fix text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    )""",
    """CREATE TABLE IF NOT EXISTS quality.schema_history (
        source text NOT NULL,
        partition_key text NOT NULL,
        previous_partition_key text NOT NULL,
        run_id text NOT NULL,
        kind text NOT NULL,
        column_name text NOT NULL,
        detail text NOT NULL,
        previous_value text,
        current_value text,
        detected_at timestamptz NOT NULL DEFAULT now()
    )""",
]

_KEYS = [
    """CREATE TABLE IF NOT EXISTS keys.key_summary (
        source text NOT NULL,
        partition_key text NOT NULL,
        run_id text NOT NULL,
        rows bigint NOT NULL,
        columns integer NOT NULL,
        minimal_keys integer NOT NULL,
        suggested_key text[],
        suggestion_reason text NOT NULL,
        suggested_key_unique boolean NOT NULL,
        duplicate_rows bigint NOT NULL,
        key_duplicate_groups bigint NOT NULL,
        null_equals_null boolean NOT NULL,
        max_size integer,
        seconds double precision NOT NULL,
        analysed_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (source, partition_key)
    )""",
    """CREATE TABLE IF NOT EXISTS keys.unique_keys (
        source text NOT NULL,
        partition_key text NOT NULL,
        run_id text NOT NULL,
        columns text[] NOT NULL,
        size integer NOT NULL,
        has_nulls boolean NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS unique_keys_partition ON keys.unique_keys (source, partition_key)",
    """CREATE TABLE IF NOT EXISTS keys.near_keys (
        source text NOT NULL,
        partition_key text NOT NULL,
        run_id text NOT NULL,
        rank integer NOT NULL,
        columns text[] NOT NULL,
        uniqueness double precision NOT NULL,
        duplicate_groups bigint NOT NULL,
        excess_rows bigint NOT NULL,
        has_nulls boolean NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS near_keys_partition ON keys.near_keys (source, partition_key)",
    """CREATE TABLE IF NOT EXISTS keys.duplicate_groups (
        source text NOT NULL,
        partition_key text NOT NULL,
        run_id text NOT NULL,
        kind text NOT NULL CHECK (kind IN ('row', 'key')),
        key_columns text[] NOT NULL,
        group_id bigint NOT NULL,
        key_values jsonb NOT NULL,
        _row_number bigint,
        _source_file text,
        _load_id text
    )""",
    "CREATE INDEX IF NOT EXISTS duplicate_groups_partition ON keys.duplicate_groups (source, partition_key, kind, group_id)",
    """CREATE TABLE IF NOT EXISTS keys.comparisons (
        source text NOT NULL,
        partition_key text NOT NULL,
        previous_partition_key text NOT NULL,
        run_id text NOT NULL,
        key_columns text[] NOT NULL,
        added_columns text[] NOT NULL,
        removed_columns text[] NOT NULL,
        type_changes jsonb NOT NULL,
        key_holds_previous boolean NOT NULL,
        key_holds_current boolean NOT NULL,
        only_in_previous bigint NOT NULL,
        only_in_current bigint NOT NULL,
        in_both bigint NOT NULL,
        changed bigint NOT NULL,
        changed_columns jsonb NOT NULL,
        samples jsonb NOT NULL,
        compared_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (source, partition_key)
    )""",
]


def upgrade() -> None:
    for schema in ("ops", "quality", "keys"):
        op.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    for statement in [*_FILE_REGISTRY, *_AUDIT_AND_METRICS, *_MERGES, *_QUALITY, *_KEYS]:
        op.execute(statement)


def downgrade() -> None:
    # Dropping the tables would drop a deployment's registry, audit log and history with them.
    raise NotImplementedError("the first bookkeeping revision has no downgrade: it adopts tables that hold a deployment's data")
