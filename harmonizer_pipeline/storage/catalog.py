"""Tables and their columns as PostgreSQL's catalog has them, the DDL that makes and widens them,
and the advisory locks that serialise their writers (no dagster)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from psycopg import sql

from harmonizer_pipeline.storage.frame_codec import (
    ColumnSpec,
    TableStoreError,
    pg_type_sql,
    qualified,
)


def scalar(conn, query: sql.Composable):
    with conn.cursor() as cur:
        cur.execute(query.as_string(None))
        row = cur.fetchone()
    return row[0] if row else None


def execute(conn, query: sql.Composable) -> None:
    with conn.cursor() as cur:
        cur.execute(query.as_string(None))


def table_exists(conn, schema: str, table: str) -> bool:
    name = qualified(schema, table).as_string(None)
    return scalar(conn, sql.SQL("SELECT to_regclass({}) IS NOT NULL").format(sql.Literal(name))) is True


def stored_columns(conn, schema: str, table: str) -> dict[str, ColumnSpec]:
    """Specs of the table's columns, by stored name, in table order."""
    query = sql.SQL(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), col_description(a.attrelid, a.attnum) "
        "FROM pg_attribute a WHERE a.attrelid = to_regclass({}) AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum"
    ).format(sql.Literal(qualified(schema, table).as_string(None)))
    with conn.cursor() as cur:
        cur.execute(query.as_string(None))
        rows = cur.fetchall()
    return {stored_name: ColumnSpec.from_catalog(stored_name, pg_type, comment) for stored_name, pg_type, comment in rows}


def restorable(specs: Mapping[str, ColumnSpec]) -> dict[str, ColumnSpec]:
    # Columns without our comment (made by someone else) come back with Arrow's own mapping.
    return {k: v for k, v in specs.items() if v.pandas_dtype}


def _advisory_lock(conn, key: str) -> None:
    # Fetched, not just executed: ADBC reads a SELECT's outcome with its rows, so an error taking
    # the lock (a lock_timeout) would otherwise surface only as the next statement's "transaction is aborted".
    scalar(conn, sql.SQL("SELECT pg_advisory_xact_lock(hashtextextended({}, 0))").format(sql.Literal(key)))


def lock_table(conn, schema: str, table: str) -> None:
    """Serialise writers of one table until the transaction ends."""
    _advisory_lock(conn, f"table:{schema}.{table}")


def ensure_schema(conn, schema: str) -> None:
    """Create the schema if missing; commit it on its own (parallel writers need to see it),
    concurrent creators wait for each other instead of colliding."""
    _advisory_lock(conn, f"schema:{schema}")
    execute(conn, sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))


def drop_table(conn, schema: str, table: str) -> None:
    execute(conn, sql.SQL("DROP TABLE IF EXISTS {}").format(qualified(schema, table)))


def delete_rows(conn, schema: str, table: str, where: sql.Composable) -> None:
    if table_exists(conn, schema, table):
        execute(conn, sql.SQL("DELETE FROM {} WHERE {}").format(qualified(schema, table), where))


def comment_columns(conn, schema: str, table: str, specs: Iterable[ColumnSpec]) -> None:
    for spec in specs:
        execute(
            conn,
            sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(qualified(schema, table), sql.Identifier(spec.stored_name), sql.Literal(spec.comment())),
        )


def _create_table(conn, schema: str, table: str, specs: Sequence[ColumnSpec]) -> None:
    columns = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(s.stored_name), pg_type_sql(s.pg_type)) for s in specs)
    execute(conn, sql.SQL("CREATE TABLE {} ({})").format(qualified(schema, table), columns))
    comment_columns(conn, schema, table, specs)


def _add_columns(conn, schema: str, table: str, specs: Sequence[ColumnSpec]) -> None:
    for spec in specs:
        execute(
            conn,
            sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(qualified(schema, table), sql.Identifier(spec.stored_name), pg_type_sql(spec.pg_type)),
        )
    comment_columns(conn, schema, table, specs)


def prepare_table(conn, schema: str, table: str, specs: Sequence[ColumnSpec]) -> dict[str, str]:
    """Create the table, or add the columns it lacks; return its column types by stored name."""
    existing = stored_columns(conn, schema, table) if table_exists(conn, schema, table) else None
    if existing is None:
        _create_table(conn, schema, table, specs)
        return {s.stored_name: s.pg_type for s in specs}
    table_types = {name: spec.pg_type for name, spec in existing.items()}
    check_compatible(f"{schema}.{table}", specs, table_types)
    new = [s for s in specs if s.stored_name not in existing]
    if new:
        _add_columns(conn, schema, table, new)
        table_types.update({s.stored_name: s.pg_type for s in new})
    return table_types


def columns_sql(specs: Sequence[ColumnSpec]) -> sql.Composable:
    return sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(s.stored_name), pg_type_sql(s.pg_type)) for s in specs)


def check_compatible(label: str, specs: Sequence[ColumnSpec], table_types: Mapping[str, str]) -> None:
    for spec in specs:
        old = table_types.get(spec.stored_name)
        if old is None or spec.only_nulls or old == spec.pg_type or _widens(old, spec.pg_type):
            continue
        raise TableStoreError(
            f"{label}: column {spec.name!r} is {old} in the table but the new rows "
            f"hold {spec.pg_type} ({spec.pandas_dtype}); convert the column, or re-materialize "
            "everything in the table if its type really changed"
        )


_WIDER = {"smallint": 0, "integer": 1, "bigint": 2}


def _widens(old: str, new: str) -> bool:
    # Smaller integers go into a wider integer column, single precision into double.
    if old in _WIDER and new in _WIDER:
        return _WIDER[new] <= _WIDER[old]
    return (old, new) in {("double precision", "real")}
