"""Erasure (no dagster): `harmonizer erase` of one file from every layer, or of a data subject's
rows from every layer holding them, in one transaction with its audit row.

A file (`erase_file`): its partitions of raw, validated and staged, its rows of
quality.rejected_rows, its quality and keys results, then the merge of its target, which takes
the file's rows out as it does for any file removed since the last merge (other sources' rows of
the same keys survive, and the next change file records the deletes); its history versions and
pending deltas go too. Its registry entries become `erased` (SHA-256 kept, so the same content
landing again is a duplicate, not a new load).

A data subject (`erase_subject`): the rows of the target's sources whose mapped columns equal the
values given (in staged.<source>, standardized as the target holds them), the raw and validated
rows of the same file rows (and those whose source column holds the value as given, where the
target column is a plain rename of it), their rejected-row records, duplicate-group members
and records as rows breaking a functional dependency; the files that lost staged rows count as staged again, so the merge recomputes their
keys; the subject's history versions and pending deltas are deleted.

Values are bound as parameters, never written into the SQL. The audit row names who asked and
the rows removed per table, never the values.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from harmonizer_pipeline import naming
from harmonizer_pipeline.bookkeeping import audit, registry
from harmonizer_pipeline.harmonize import store
from harmonizer_pipeline.harmonize.harmonization import merge_and_match, summary
from harmonizer_pipeline.harmonize.merge import MergeResult
from harmonizer_pipeline.harmonize.settings import ColumnMapping
from harmonizer_pipeline.reports import pages
from harmonizer_pipeline.retention import layers
from harmonizer_pipeline.settings import Settings
from harmonizer_pipeline.storage.catalog import stored_columns, table_exists
from harmonizer_pipeline.storage.frame_codec import pg_type_sql, qualified, storage_name

# Per-file results besides the layers: (table, its column naming the file); comparisons also
# name the other file they compared against, and their difference rows hold values of both.
_RESULTS = [
    *(
        (f"quality.{t}", "partition_key")
        for t in ("gate_results", "column_profiles", "column_statistics", "missing_patterns", "column_associations", "recommendations", "schema_history")
    ),
    *(
        (f"keys.{t}", "partition_key")
        for t in ("key_summary", "unique_keys", "near_keys", "duplicate_groups", "dependencies", "dependency_rows", "comparisons")
    ),
    ("keys.comparisons", "previous_partition_key"),
    ("quality.schema_history", "previous_partition_key"),
    *((f"keys.{t}", f"partition_key_{side}") for t in ("file_comparisons", "comparison_rows") for side in ("a", "b")),
]


class ErasureError(ValueError):
    """What to erase is not known (source, file, target, column) or not erasable now: one line."""


@dataclass
class Erased:
    """What an erasure removed: rows per table (only tables that lost rows), the file pages
    deleted and the target's merge."""

    what: str
    tables: dict[str, int] = field(default_factory=dict)
    merge: MergeResult | None = None
    pages: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(self.tables.values())

    def count(self, table: str, rows: int) -> None:
        if rows:
            self.tables[table] = self.tables.get(table, 0) + rows

    def lines(self) -> list[str]:
        """What a person reads: each table and its rows, then the merge."""
        if not self.rows:
            return [f"nothing to erase: {self.what} (already erased, or never there)"]
        lines = [f"erased {self.what}:", *(f"  {table}: {rows} row(s)" for table, rows in self.tables.items())]
        lines += [f"  page {page}: deleted" for page in self.pages]
        if self.merge is not None and self.merge.merge_id is not None:
            lines.append(f"  merge {self.merge.merge_id}: {summary(self.merge)} (the next change file records it)")
        return lines


def _record(conn, erased: Erased, erasure_id: str, by: str, asset: naming.StageAsset, **fields) -> None:
    detail = {"erased": erased.what, "tables": erased.tables}
    if erased.merge is not None and erased.merge.merge_id is not None:
        detail["merge_id"] = erased.merge.merge_id
    status = "done" if erased.rows else "nothing"
    audit.record(conn, audit.AuditEntry("erase", status, erasure_id, by, str(asset), rows_in=erased.rows, rows_out=0, detail=json.dumps(detail), **fields))


def _merge(conn, settings: Settings, target: str, erasure_id: str, erased: Erased) -> None:
    erased.merge, _ = merge_and_match(conn, settings, target, erasure_id)
    for operation, rows in (("deleted", erased.merge.deleted), ("updated", erased.merge.updated)):
        erased.count(f"{naming.harmonized(target).qualified} ({operation})", rows)


def erase_file(conn, settings: Settings, source: str, name: str, by: str, erasure_id: str) -> Erased:
    """Remove every version of the file `name` of `source` from every layer, in the caller's transaction."""
    if source not in settings.sources:
        raise ErasureError(f"no source {source!r} in harmonizer.yaml (sources: {', '.join(settings.sources) or 'none'})")
    entries = [e for e in registry.entries(conn, source) if e.object_key == name and e.status != "duplicate"]
    if not entries:
        raise ErasureError(f"{source} has no file {name!r} in ops.file_registry")
    pending = [e for e in entries if e.status == "pending"]
    if pending:
        raise ErasureError(f"{name} of {source} is being loaded (registry id {pending[0].id}, pending): erase it once its load has ended")
    erased = Erased(f"file {name} of {source}")
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"erase:{source}:{name}",))
    target = settings.sources[source].target
    load_ids = []  # the file's rows in the target carry its load's id
    for partition_key in dict.fromkeys(e.partition_key for e in entries):
        staged = conn.execute("SELECT load_id FROM ops.staged_files WHERE source = %s AND partition_key = %s", (source, partition_key)).fetchone()
        if staged is not None and staged[0] is not None:
            load_ids.append(staged[0])
        # Results first: leaving validated also takes the comparisons' difference rows, uncounted.
        for table, column in _RESULTS:
            rows = conn.execute(
                sql.SQL("DELETE FROM {} WHERE source = %s AND {} = %s").format(sql.Identifier(*table.split(".")), sql.Identifier(column)),
                (source, partition_key),
            )
            erased.count(table, rows.rowcount)
        for layer in ("raw", "validated", "staged", "rejected_rows"):
            erased.count(layers.asset(layer, source).qualified, layers.remove(conn, layer, source, partition_key))
        if pages.remove_file_page(settings, source, partition_key):
            erased.pages.append(str(pages.file_page_path(settings, source, partition_key)))
    conn.execute("UPDATE ops.file_registry SET status = 'erased', updated_at = now() WHERE id = ANY(%s) AND status <> 'erased'", ([e.id for e in entries],))
    if target is not None:
        lineage = (sql.SQL("_source = %s AND _load_id = ANY(%s)"), (source, load_ids))
        # Deltas not exported yet that hold the file's rows go; the merge records the deletes anew.
        erased.count(store.changes(target).qualified, _delete(conn, store.changes_table(target), *lineage))
        _merge(conn, settings, target, erasure_id, erased)
        erased.count(_history(target).qualified, _delete(conn, store.history_table(target), *lineage))
    _record(conn, erased, erasure_id, by, naming.raw(source), partition_key=entries[-1].partition_key, file=name, sha256=entries[-1].sha256)
    return erased


def _history(target: str) -> naming.StageAsset:
    return naming.StageAsset(store.SCHEMA, store.history_table(target))


def _delete(conn, table: str, where: sql.Composable, params, schema: str = store.SCHEMA) -> int:
    """DELETE from a table that may not exist (a target never merged, no history); rows deleted."""
    if not table_exists(conn, schema, table):
        return 0
    return conn.execute(sql.SQL("DELETE FROM {} WHERE {}").format(qualified(schema, table), where), params).rowcount


def parse_where(text: str) -> tuple[str, str]:
    """COLUMN=VALUE (the value may hold '=' itself)."""
    column, equals, value = text.partition("=")
    if not equals or not column:
        raise ErasureError(f"--where {text!r}: give COLUMN=VALUE")
    return column, value


def erase_subject(conn, settings: Settings, target_name: str, where: list[tuple[str, str]], by: str, erasure_id: str) -> Erased:
    """Remove the rows whose target columns equal the values (all of them) from every layer, in the caller's transaction."""
    if target_name not in settings.targets:
        raise ErasureError(f"no target {target_name!r} in harmonizer.yaml (targets: {', '.join(settings.targets) or 'none'})")
    target = settings.targets[target_name]
    for column, _ in where:
        if column not in target.columns:
            raise ErasureError(f"--where {column}=...: {target_name} has no column {column!r} (columns: {', '.join(target.columns)})")
    if not where:
        raise ErasureError("give at least one --where COLUMN=VALUE")
    types = {spec.name: spec.pg_type for spec in store.value_specs(target)}
    for column, value in where:
        try:
            conn.execute("SAVEPOINT erase_value")
            conn.execute(sql.SQL("SELECT CAST(%s AS {})").format(pg_type_sql(types[column])), (value,))
            conn.execute("RELEASE SAVEPOINT erase_value")
        except psycopg.DataError:
            conn.execute("ROLLBACK TO SAVEPOINT erase_value")
            raise ErasureError(f"--where {column}=...: the value is not a {target.columns[column].type} (the type of {target_name}.{column})") from None
    matches = sql.SQL(" AND ").join(sql.SQL("{} = CAST(%s AS {})").format(sql.Identifier(storage_name(c)), pg_type_sql(types[c])) for c, _ in where)
    values = [value for _, value in where]
    erased = Erased(f"the rows of {target_name} where {', '.join(c for c, _ in where)} match")
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"erase:{target_name}",))
    for source in settings.sources_of(target_name):
        _erase_from_source(conn, settings, source, where, matches, values, erasure_id, erased)
    # Deltas not exported yet: the merge records the deletes anew.
    erased.count(store.changes(target_name).qualified, _delete(conn, store.changes_table(target_name), matches, values))
    _merge(conn, settings, target_name, erasure_id, erased)
    erased.count(_history(target_name).qualified, _delete(conn, store.history_table(target_name), matches, values))
    for table in (target_name, store.duplicate_rows_table(target_name)):
        left = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE {}").format(qualified(store.SCHEMA, table), matches), values).fetchone()[0]
        if left:
            # Rows no current staged file holds (a restore, a merge that never ran): the erasure is not done.
            raise ErasureError(
                f"{store.SCHEMA}.{table} still holds {left} matching row(s) from no staged file: run `harmonizer rebuild {target_name}`, then erase again"
            )
    _record(conn, erased, erasure_id, by, naming.harmonized(target_name))
    return erased


def _source_column(mapping: ColumnMapping | None, column: str) -> str | None:
    """The source column a target column is a plain rename of (unmapped: the same name)."""
    if mapping is None:
        return column
    return mapping.column if mapping.column is not None and not (mapping.nulls or mapping.values or mapping.unit or mapping.formats) else None


def _erase_from_source(conn, settings: Settings, source: str, where, matches: sql.Composable, values: list, erasure_id: str, erased: Erased) -> None:
    """The subject's rows of one source: the file rows whose staged values match, and those whose
    raw source columns hold the values as given (where the target columns rename them), leave
    raw, validated, staged, their rejected-row records, duplicate groups and dependency rows."""
    staged, raw, validated = naming.staged(source), naming.raw(source), naming.validated(source)
    if not table_exists(conn, staged.schema, staged.table):
        return
    partition = sql.Identifier(naming.PARTITION_COLUMN)
    found = conn.execute(
        sql.SQL("SELECT {}, _row_number FROM {} WHERE {}").format(partition, qualified(staged.schema, staged.table), matches), values
    ).fetchall()
    in_rows = sql.SQL("({}, _row_number) IN (SELECT * FROM unnest(%s::text[], %s::bigint[]))").format(partition)
    by_source_columns = _by_source_columns(conn, settings, source, where)
    if by_source_columns is not None:
        from_raw = conn.execute(
            sql.SQL("DELETE FROM {} WHERE {} OR {} RETURNING {}, _row_number").format(
                qualified(raw.schema, raw.table), in_rows, by_source_columns[0], partition
            ),
            [*_file_rows(found), *by_source_columns[1]],
        ).fetchall()
        erased.count(raw.qualified, len(from_raw))
        found += from_raw
    rows = _file_rows(found)
    erased.count(validated.qualified, _delete(conn, validated.table, in_rows, rows, validated.schema))
    lost = conn.execute(sql.SQL("DELETE FROM {} WHERE {} RETURNING {}").format(qualified(staged.schema, staged.table), in_rows, partition), rows).fetchall()
    erased.count(staged.qualified, len(lost))
    of_file_rows = sql.SQL("source = %s AND (partition_key, _row_number) IN (SELECT * FROM unnest(%s::text[], %s::bigint[]))")
    erased.count(layers.REJECTED_ROWS.qualified, _delete(conn, "rejected_rows", of_file_rows, [source, *rows], "quality"))
    erased.count("keys.duplicate_groups", _delete(conn, "duplicate_groups", of_file_rows, [source, *rows], "keys"))
    erased.count("keys.dependency_rows", _delete(conn, "dependency_rows", of_file_rows, [source, *rows], "keys"))
    # The files that lost staged rows count as staged again (a new staging run id), so the merge recomputes their keys.
    for partition_key, count in Counter(p for (p,) in lost).items():
        conn.execute(
            "UPDATE ops.staged_files SET run_id = %s, rows_staged = rows_staged - %s WHERE source = %s AND partition_key = %s",
            (erasure_id, count, source, partition_key),
        )


def _by_source_columns(conn, settings: Settings, source: str, where) -> tuple[sql.Composable, list] | None:
    """A condition on raw.<source> matching the values as given in the source columns the target
    columns rename (`false` when one is combined, split or read otherwise); None without raw.<source>."""
    raw = naming.raw(source)
    if not table_exists(conn, raw.schema, raw.table):
        return None
    mapping = settings.sources[source].mapping
    stored = {spec.name: spec.stored_name for spec in stored_columns(conn, raw.schema, raw.table).values()}
    names = [stored.get(_source_column(mapping.get(column), column) or "") for column, _ in where]
    if None in names:
        return sql.SQL("false"), []
    return sql.SQL(" AND ").join(sql.SQL("{}::text = %s").format(sql.Identifier(str(name))) for name in names), [v for _, v in where]


def _file_rows(found: list[tuple[str, int]]) -> list[list]:
    """(partition keys, row numbers) as two arrays, for unnest."""
    unique = sorted(set(found))
    return [[p for p, _ in unique], [n for _, n in unique]]
