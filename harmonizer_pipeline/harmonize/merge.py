"""harmonized.<target> kept up to date by a merge in PostgreSQL whose cost follows the change (no dagster).

The target reflects a set of staged files (ops.merged_files). A merge compares it with the files
that should count now (`current_files`: the latest version of each name, staged, not blocked by
its gate; for a snapshot source only its latest file) and recomputes the business keys that the
difference touches:
- keys of the rows of files added (or staged again) since the last merge, read from their own
  partitions of staged.<source>;
- keys of rows that files gone since then (superseded, blocked, removed, replaced by a snapshot)
  contributed, found through the lineage index of the target and its duplicate rows.
Every other row of an affected key is already in harmonized.<target> or its duplicate rows, so
no other file is read. The affected keys' rows are ranked by the survivorship rule with a window
function, their old rows replaced, the delta kept for export/<target> and, with `history`, the
type-2 history updated: all in one transaction under an advisory lock of the target, so two
merges never interleave and a failure leaves every table as it was.

A rebuild is the same merge with every current file added and every key affected: the oracle
the incremental merge is tested against.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from psycopg import sql

from harmonizer_pipeline.bookkeeping import merges, registry, rejected
from harmonizer_pipeline.harmonize import store
from harmonizer_pipeline.harmonize.mapping import LINEAGE
from harmonizer_pipeline.harmonize.settings import Target
from harmonizer_pipeline.naming import PARTITION_COLUMN
from harmonizer_pipeline.settings import Settings
from harmonizer_pipeline.storage.frame_codec import qualified, storage_name


@dataclass(frozen=True)
class MergeFile:
    source: str
    partition_key: str
    file_id: int  # registry id: later files rank higher for latest_file
    load_id: str | None
    staged_run_id: str

    @property
    def state(self) -> tuple:
        return (self.source, self.partition_key, self.load_id, self.staged_run_id)


@dataclass
class MergeResult:
    merge_id: int | None = None  # None: nothing changed, nothing recorded
    files_added: int = 0
    files_removed: int = 0
    keys_affected: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    history_versions: int = 0
    rows: int = 0  # the target's rows after the merge
    duplicate_keys: int = 0
    merged_rows: int = 0
    per_source: list[dict] = field(default_factory=list)

    @property
    def only_new_rows(self) -> bool:
        """Every row of the target came with this merge and no row left it: the target was empty before."""
        return self.merge_id is not None and self.inserted == self.rows and not self.updated and not self.deleted


def current_files(conn, settings: Settings, target_name: str) -> list[MergeFile]:
    """The staged files harmonized.<target> should reflect now, by registry id."""
    staged = merges.staged_files(conn, target_name)
    files = [
        MergeFile(e.source, e.partition_key, e.id, *staged[(e.source, e.partition_key)])
        for e in registry.current_versions(conn, settings.sources_of(target_name))
        if e.status == "loaded" and (e.source, e.partition_key) in staged
    ]
    snapshot_latest = {f.source: f for f in files if settings.sources[f.source].mode == "snapshot"}
    return [f for f in files if settings.sources[f.source].mode == "append" or snapshot_latest[f.source] is f]


def merged_files(conn, target_name: str) -> list[MergeFile]:
    return [MergeFile(*row) for row in merges.merged_files(conn, target_name)]


def _ids(names: Sequence[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(storage_name(n)) for n in names)


def _prefixed(alias: str, names: Sequence[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(storage_name(n))) for n in names)


def key_match(left: str, right: str, key: Sequence[str]) -> sql.Composable:
    return sql.SQL(" AND ").join(
        sql.SQL("{}.{} = {}.{}").format(sql.Identifier(left), sql.Identifier(storage_name(k)), sql.Identifier(right), sql.Identifier(storage_name(k)))
        for k in key
    )


def preference(target: Target) -> tuple[sql.Composable, tuple]:
    """ORDER BY of a key's rows, the surviving row first, and its parameters."""
    later = sql.SQL("_file_rank DESC, _row_number DESC")
    if target.survivorship == "most_complete":
        return sql.SQL("num_nonnulls({}) DESC, {}").format(_ids(list(target.columns)), later), ()
    if target.survivorship == "source_priority":
        return sql.SQL("array_position(%s::text[], _source::text) ASC NULLS LAST, {}").format(later), (list(target.source_priority),)
    return later, ()


class _Statements:
    def __init__(self, conn, target_name: str, target: Target):
        self.conn, self.target = conn, target
        self.key = list(target.key)
        self.values = [*target.columns, *LINEAGE]
        self.table = qualified(store.SCHEMA, target_name)
        self.rows = qualified(store.SCHEMA, store.duplicate_rows_table(target_name))
        self.changes = qualified(store.SCHEMA, store.changes_table(target_name))
        self.history = qualified(store.SCHEMA, store.history_table(target_name))

    def run(self, statement: sql.Composable, params: Sequence = ()) -> int:
        return self.conn.execute(statement, params).rowcount

    def scalar(self, statement: sql.Composable, params: Sequence = ()):
        return self.conn.execute(statement, params).fetchone()[0]


def merge(conn, settings: Settings, target_name: str, run_id: str, *, rebuild: bool = False) -> MergeResult:
    """Bring harmonized.<target_name> up to date in the caller's transaction (a psycopg connection)."""
    target = settings.targets[target_name]
    recreated = store.ensure_target_tables(conn, target_name, target)
    for source in settings.sources_of(target_name):
        store.ensure_staged_table(conn, source, target, PARTITION_COLUMN)
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"merge:{store.SCHEMA}.{target_name}",))
    desired, merged = current_files(conn, settings, target_name), merged_files(conn, target_name)
    merged_states = {f.state for f in merged}
    desired_states = {f.state for f in desired}
    added = desired if rebuild else [f for f in desired if f.state not in merged_states]
    removed = merged if rebuild else [f for f in merged if f.state not in desired_states]
    kept = [] if rebuild else [f for f in desired if f.state in merged_states]
    result = MergeResult(files_added=len(added), files_removed=len(removed))
    q = _Statements(conn, target_name, target)
    if added or removed or rebuild:
        result.keys_affected = _recompute(q, settings, target_name, added, removed, kept, rebuild)
        result.merge_id = merges.start_merge(conn, target_name, run_id, rebuild, len(added), len(removed), result.keys_affected)
        counts = _record_changes(q, result.merge_id)
        result.inserted, result.updated, result.deleted = (counts.get(op, 0) for op in ("insert", "update", "delete"))
        changed = result.inserted + result.updated + result.deleted
        result.history_versions = _update_history(q, run_id, result.merge_id, changed) if target.history else 0
        # The totals follow from the last merge's and this delta; counted only when there are none to follow.
        before = None if recreated else merges.totals_after_last_merge(conn, target_name, result.merge_id)
        if before is None:
            result.rows, result.duplicate_keys, result.merged_rows = _counted_totals(q)
        else:
            duplicate_keys, merged_rows = conn.execute(
                "SELECT n.keys - o.keys, n.rows - o.rows FROM"
                " (SELECT count(*) FILTER (WHERE _position = 0) AS keys, count(*) FILTER (WHERE _position > 0) AS rows FROM _merge_ranked WHERE _others > 0) n,"
                " (SELECT count(*) FILTER (WHERE _position = 0) AS keys, count(*) FILTER (WHERE _position > 0) AS rows FROM _merge_old_rows) o"
            ).fetchone()
            result.rows = before[0] + result.inserted - result.deleted
            result.duplicate_keys, result.merged_rows = before[1] + duplicate_keys, before[2] + merged_rows
        merges.record_counts(conn, result.merge_id, {c: getattr(result, c) for c in merges.MERGE_COUNTS})
        merges.replace_merged_files(conn, target_name, [(f.source, f.partition_key, f.file_id, f.load_id, f.staged_run_id) for f in desired])
    # A file superseded before any merge took it in changes no key, but its rejections go all the same.
    _drop_gone_rejections(conn, settings.sources_of(target_name), desired)
    if result.merge_id is None:
        last = None if recreated else merges.totals_after_last_merge(conn, target_name, None)
        result.rows, result.duplicate_keys, result.merged_rows = _counted_totals(q) if last is None else last
    result.per_source = _per_source(conn, settings.sources_of(target_name), desired, merged, added, removed)
    return result


def _counted_totals(q: _Statements) -> tuple[int, int, int]:
    rows = q.scalar(sql.SQL("SELECT count(*) FROM {}").format(q.table))
    return rows, *q.conn.execute(
        sql.SQL("SELECT count(*) FILTER (WHERE _position = 0), count(*) FILTER (WHERE _position > 0) FROM {}").format(q.rows)
    ).fetchone()


def _files_table(q: _Statements, name: str, files: Sequence[MergeFile]) -> None:
    q.run(sql.SQL("CREATE TEMP TABLE {} (source text, load_id text, file_rank bigint) ON COMMIT DROP").format(sql.Identifier(name)))
    with q.conn.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(name))) as copy:
        for f in files:
            copy.write_row((f.source, f.load_id, f.file_id))
    q.run(sql.SQL("ANALYZE {}").format(sql.Identifier(name)))


def _recompute(q: _Statements, settings: Settings, target_name: str, added, removed, kept, rebuild: bool) -> int:
    """Replace the affected keys' rows; returns how many keys were affected."""
    key, values = _ids(q.key), _ids(q.values)
    _files_table(q, "_merge_kept", kept)
    _files_table(q, "_merge_removed", removed)
    added_rows, params = _added_rows(q, settings, target_name, added)
    for old, table in (("_merge_old", q.table), ("_merge_old_rows", q.rows)):
        q.run(sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT * FROM {} WHERE false").format(sql.Identifier(old), table))
    # Asked of the key indexes (ORDER BY the key), so that even this probe reads no table whole.
    holds_rows = q.scalar(
        sql.SQL("SELECT (SELECT 1 FROM {table} ORDER BY {key} LIMIT 1) IS NOT NULL OR (SELECT 1 FROM {rows} ORDER BY {key} LIMIT 1) IS NOT NULL").format(
            table=q.table, rows=q.rows, key=key)
    )  # fmt: skip
    if holds_rows:
        q.run(sql.SQL("CREATE TEMP TABLE _merge_rows ON COMMIT DROP AS {}").format(added_rows), params)
        keys_affected = _take_out_affected(q, rebuild)
        ranked, params = sql.SQL("_merge_rows"), ()
    else:
        # An empty target (a first merge): every key is new and nothing is taken out, so the added
        # rows are ranked straight from their partitions (1M rows: 1.7 s less than gathering them first).
        keys_affected, ranked = None, sql.SQL("({})").format(added_rows)
    # Only keys with more than one row need ranking: the rest (97% of a typical file) pass as
    # their own survivors without the sort (1M rows: 2.0 s less). Staged keys are never NULL.
    q.run(sql.SQL("CREATE TEMP TABLE _merge_repeated ON COMMIT DROP AS SELECT {key} FROM {ranked} GROUP BY {key} HAVING count(*) > 1").format(
        key=key, ranked=ranked), params)  # fmt: skip
    q.run(sql.SQL("ANALYZE _merge_repeated"))
    order, order_params = preference(q.target)
    repeated = sql.SQL("EXISTS (SELECT FROM _merge_repeated d WHERE {})").format(key_match("d", "r", q.key))
    q.run(
        sql.SQL("CREATE TEMP TABLE _merge_ranked ON COMMIT DROP AS SELECT {values}, 0::bigint AS _position, 0::bigint AS _others FROM {ranked} r"
                " WHERE NOT {repeated} UNION ALL SELECT {values}, row_number() OVER w - 1, count(*) OVER (PARTITION BY {key}) - 1"
                " FROM {ranked} r WHERE {repeated} WINDOW w AS (PARTITION BY {key} ORDER BY {order})").format(
            values=values, key=key, ranked=ranked, order=order, repeated=repeated),
        [*params, *params, *order_params],
    )  # fmt: skip
    # Into a table holding rows, in the order of its key index: each leaf page of the index is then
    # visited once, in order, not once per row at random (1M random text keys into a 6M-row
    # table: 6.3-6.4 s in key order, 11.6-16.3 s in no order).
    in_key_order = (
        sql.SQL("")
        if not holds_rows
        else sql.SQL(" ORDER BY {}").format(
            sql.SQL(", ").join(sql.SQL('{} COLLATE "C"' if q.target.columns[k].type == "text" else "{}").format(sql.Identifier(storage_name(k))) for k in q.key)
        )
    )
    with _indexes_built_after(q, [q.table, q.rows], not holds_rows):
        survivors = q.run(sql.SQL("INSERT INTO {} ({}, _duplicates) SELECT {}, _others FROM _merge_ranked WHERE _position = 0{}").format(
            q.table, values, values, in_key_order))  # fmt: skip
        q.run(
            sql.SQL("INSERT INTO {} ({}, _kept, _position) SELECT {}, _position = 0, _position FROM _merge_ranked WHERE _others > 0").format(
                q.rows, values, values
            )
        )
    return survivors if keys_affected is None else keys_affected


def _added_rows(q: _Statements, settings: Settings, target_name: str, added) -> tuple[sql.Composable, list]:
    """SELECT of the rows of the files added, read from their own partitions only, with each file's rank."""
    selects, params = [], []
    for source in settings.sources_of(target_name):
        partitions = [f for f in added if f.source == source]
        if partitions:
            selects.append(
                sql.SQL("SELECT {}, f.rank AS _file_rank FROM {} s JOIN unnest(%s::text[], %s::bigint[]) AS f(partition_key, rank)"
                        " ON s._partition = f.partition_key WHERE s._partition = ANY(%s::text[])").format(
                    _prefixed("s", q.values), qualified(store.STAGED_SCHEMA, source))
            )  # fmt: skip
            keys = [f.partition_key for f in partitions]
            params += [keys, [f.file_id for f in partitions], keys]
    typed_empty = sql.SQL("SELECT {}, 0::bigint AS _file_rank FROM {} WHERE false").format(_ids(q.values), q.table)
    return sql.SQL(" UNION ALL ").join(selects or [typed_empty]), params


def _take_out_affected(q: _Statements, rebuild: bool) -> int:
    """The keys the added rows (in _merge_rows) and the removed files touch leave the target and
    its duplicate rows, kept aside in _merge_old and _merge_old_rows; their rows from files still
    merged join _merge_rows. Returns how many keys were affected."""
    key = _ids(q.key)
    gone = sql.SQL("TRUE") if rebuild else sql.SQL("(_source, _load_id) IN (SELECT source, load_id FROM _merge_removed)")
    q.run(
        sql.SQL("CREATE TEMP TABLE _merge_keys ON COMMIT DROP AS SELECT DISTINCT {key} FROM ("
                " SELECT {key} FROM _merge_rows UNION ALL SELECT {key} FROM {table} WHERE {gone}"
                " UNION ALL SELECT {key} FROM {rows} WHERE {gone}) affected").format(key=key, table=q.table, rows=q.rows, gone=gone)
    )  # fmt: skip
    q.run(sql.SQL("ANALYZE _merge_keys"))
    keys_affected = q.scalar(sql.SQL("SELECT count(*) FROM _merge_keys"))
    # One pass over each table, and the old state for the delta.
    # A rebuild's keys are every row's: no join (hashing 8.8M keys against 8.8M rows took 201 s).
    affected = sql.SQL("") if rebuild else sql.SQL(" USING _merge_keys k WHERE {}").format(key_match("t", "k", q.key))
    for old, table in (("_merge_old", q.table), ("_merge_old_rows", q.rows)):
        with _key_lookups(q, table, keys_affected):
            q.run(
                sql.SQL("WITH gone AS (DELETE FROM {table} t{affected} RETURNING t.*) INSERT INTO {old} SELECT * FROM gone").format(
                    table=table, affected=affected, old=sql.Identifier(old))
            )  # fmt: skip
    # Their rows from files still merged: the duplicate rows when a key had several, else its target row.
    for old, only_row in (("_merge_old_rows", sql.SQL("TRUE")), ("_merge_old", sql.SQL("t._duplicates = 0"))):
        q.run(
            sql.SQL("INSERT INTO _merge_rows SELECT {values}, f.file_rank FROM {old} t"
                    " JOIN _merge_kept f ON t._source = f.source AND t._load_id = f.load_id WHERE {only_row}").format(
                values=_prefixed("t", q.values), old=sql.Identifier(old), only_row=only_row)
        )  # fmt: skip
    return keys_affected


@contextmanager
def _indexes_built_after(q: _Statements, tables: Sequence[sql.Composable], empty: bool) -> Iterator[None]:
    """Filling empty tables, their indexes (the primary key among them) are dropped and built
    after the rows are in, by one sort each: 1M rows inserted in no key order took 5.9 s with the
    indexes kept up row by row, 2.1 s with them built after. They are built again in the same
    transaction, so a failure leaves them as they were; meanwhile the tables are locked, with
    nothing in them to read."""
    if not empty:
        yield
        return
    definitions = []
    for table in tables:
        for index, constraint, index_sql, constraint_sql in q.conn.execute(
            "SELECT i.indexrelid::regclass::text, c.conname, pg_get_indexdef(i.indexrelid), pg_get_constraintdef(c.oid)"
            " FROM pg_index i LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid"
            " WHERE i.indrelid = %s::regclass ORDER BY i.indexrelid",
            (table.as_string(q.conn),),
        ).fetchall():
            if constraint is None:
                q.run(sql.SQL("DROP INDEX {}").format(sql.SQL(index)))
                definitions.append(sql.SQL(index_sql))
            else:
                q.run(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(table, sql.Identifier(constraint)))
                definitions.append(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(table, sql.Identifier(constraint), sql.SQL(constraint_sql)))
    yield
    for definition in definitions:
        q.run(definition)


LOOKUP_RATIO = 2  # a table this many times the keys or larger: look the keys up


@contextmanager
def _key_lookups(q: _Statements, table: sql.Composable, keys: int) -> Iterator[None]:
    """Joins of `keys` keys with `table` look each key up in its key index when the table is much
    larger, so their cost follows the keys: left to itself the planner hashes the keys and reads
    the whole table, which grows with every file (at 9M rows: 2.0 s a merge, and growing). When
    the table is not much larger (a first merge, a rebuild), hashing is the cheaper way. The
    table's size is the planner's own estimate (pg_class.reltuples; -1 before any ANALYZE)."""
    rows = q.scalar(sql.SQL("SELECT reltuples FROM pg_class WHERE oid = %s::regclass"), (table.as_string(q.conn),))
    if rows < LOOKUP_RATIO * keys:
        yield
        return
    saved = q.conn.execute("SELECT current_setting('enable_hashjoin'), current_setting('enable_mergejoin')").fetchone()
    q.conn.execute("SELECT set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)")
    yield
    q.conn.execute("SELECT set_config('enable_hashjoin', %s, true), set_config('enable_mergejoin', %s, true)", saved)


def _record_changes(q: _Statements, merge_id: int) -> dict[str, int]:
    """The delta: keys new to the target, keys whose row changed in any column, keys gone; how many of each."""
    key = q.key
    first = sql.Identifier(storage_name(key[0]))
    others = [c for c in q.values if c not in key]
    new_values = sql.SQL(", ").join([*(sql.SQL("COALESCE(n.{c}, o.{c})").format(c=sql.Identifier(storage_name(k))) for k in key),
                                     *(sql.SQL("n.{}").format(sql.Identifier(storage_name(c))) for c in others)])  # fmt: skip
    compared = [sql.Identifier(storage_name(c)) for c in [*q.values, "_duplicates"]]
    recorded = q.conn.execute(
        sql.SQL("WITH recorded AS (INSERT INTO {changes} (_merge_id, _operation, {values}, _duplicates)"
                " SELECT %s, CASE WHEN o.{first} IS NULL THEN 'insert' WHEN n.{first} IS NULL THEN 'delete' ELSE 'update' END, {new_values}, n._duplicates"
                " FROM _merge_old o FULL JOIN (SELECT {values}, _others AS _duplicates FROM _merge_ranked WHERE _position = 0) n ON {match}"
                " WHERE o.{first} IS NULL OR n.{first} IS NULL OR ROW({o}) IS DISTINCT FROM ROW({n}) RETURNING _operation)"
                " SELECT _operation, count(*) FROM recorded GROUP BY 1").format(
            changes=q.changes, values=_ids(q.values), first=first, new_values=new_values, match=key_match("o", "n", key),
            o=sql.SQL(", ").join(sql.SQL("o.{}").format(c) for c in compared),
            n=sql.SQL(", ").join(sql.SQL("n.{}").format(c) for c in compared)),
        (merge_id,),
    ).fetchall()  # fmt: skip
    return dict(recorded)


def _update_history(q: _Statements, run_id: str, merge_id: int, changed: int) -> int:
    """Close the current version of keys deleted or whose values changed; open a version for keys
    inserted or changed. Lineage alone changing (the same values from a later file) is no new version."""
    columns = list(q.target.columns)
    h_values = sql.SQL(", ").join(sql.SQL("h.{}").format(sql.Identifier(storage_name(c))) for c in columns)
    c_values = sql.SQL(", ").join(sql.SQL("c.{}").format(sql.Identifier(storage_name(c))) for c in columns)
    with _key_lookups(q, q.history, changed):
        q.run(
            sql.SQL("UPDATE {history} h SET valid_to = now(), is_current = false FROM {changes} c WHERE c._merge_id = %s AND h.is_current AND {match}"
                    " AND (c._operation = 'delete' OR ROW({h}) IS DISTINCT FROM ROW({c}))").format(
                history=q.history, changes=q.changes, match=key_match("h", "c", q.key), h=h_values, c=c_values),
            (merge_id,),
        )  # fmt: skip
        values = _ids(q.values)
        return q.run(
            sql.SQL("INSERT INTO {history} ({values}, valid_from, valid_to, is_current, _run_id) SELECT {c_values}, now(), NULL, true, %s"
                    " FROM {changes} c WHERE c._merge_id = %s AND c._operation <> 'delete'"
                    " AND NOT EXISTS (SELECT 1 FROM {history} h WHERE h.is_current AND {match})").format(
                history=q.history, values=values, c_values=_prefixed("c", q.values), changes=q.changes, match=key_match("h", "c", q.key)),
            (run_id, merge_id),
        )  # fmt: skip


def _drop_gone_rejections(conn, sources: list[str], desired: list[MergeFile]) -> None:
    """Harmonize rejections stay for the files the target reflects only, as a rebuild leaves them."""
    current = {(f.source, f.partition_key) for f in desired}
    gone = [file for file in merges.staged_counts(conn, sources) if file not in current]
    if gone:
        rejected.delete_harmonize_rejections(conn, gone)


def _per_source(conn, sources, desired, merged, added, removed) -> list[dict]:
    staged = merges.staged_counts(conn, sources)
    records = []
    for source in sources:
        mine = [staged[(f.source, f.partition_key)] for f in desired if f.source == source]
        records.append({
            "source": source, "files": len(mine), "rows_in": sum(m[0] for m in mine), "rows_mapped": sum(m[1] for m in mine),
            "left_out": sum(m[2] for m in mine), "rejected_values": sum(m[3] for m in mine),
            "files_added": sum(f.source == source for f in added), "files_removed": sum(f.source == source for f in removed),
        })  # fmt: skip
    return records
