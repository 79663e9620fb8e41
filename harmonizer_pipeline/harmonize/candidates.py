"""harmonized.<target>_match_candidates kept up to date block by block after a merge (no dagster).

Candidates are pairs within a block (rows equal on `match.block_on`), so only the blocks that the
merge's changed keys were in or are now in are compared again (dedup.match_candidates on each);
the others keep their pairs. A rebuild, or a merge into an empty target, compares every block.
Rows are streamed from PostgreSQL ordered by block, so memory holds about one batch of blocks,
and blocks over `max_block_rows` are counted from SQL and never read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import LiteralString

import pandas as pd
from psycopg import sql

from harmonizer_pipeline.harmonize import store
from harmonizer_pipeline.harmonize.dedup import block_label, match_candidates
from harmonizer_pipeline.harmonize.merge import key_match
from harmonizer_pipeline.harmonize.settings import MatchSettings, Target
from harmonizer_pipeline.storage.frame_codec import qualified, storage_name

BATCH_ROWS = 50_000


@dataclass
class Refreshed:
    candidates: int  # pairs in the table after the refresh
    blocks: int  # blocks compared
    skipped_blocks: int  # blocks over max_block_rows among those touched


def _match(target: Target) -> MatchSettings:
    assert target.match is not None  # candidates are kept only for targets with match settings
    return target.match


def _blocks_sql(target: Target, alias: LiteralString = "") -> sql.Composable:
    prefix = sql.SQL(f"{alias}." if alias else "")
    return sql.SQL(", ").join(sql.SQL("{}{}").format(prefix, sql.Identifier(storage_name(b))) for b in _match(target).block_on)


def _not_null(target: Target, alias: LiteralString = "") -> sql.Composable:
    prefix = sql.SQL(f"{alias}." if alias else "")
    return sql.SQL(" AND ").join(
        [sql.SQL("{}{} IS NOT NULL").format(prefix, sql.Identifier(storage_name(b))) for b in _match(target).block_on] or [sql.SQL("TRUE")]
    )


def _touched_blocks(conn, target_name: str, target: Target, merge_id: int) -> list[tuple]:
    """Block values the merge's changed keys had before it or have now."""
    changes = qualified(store.SCHEMA, store.changes_table(target_name))
    return conn.execute(
        sql.SQL("SELECT {c_blocks} FROM {changes} c WHERE c._merge_id = %s AND c._operation <> 'delete' AND {c_not_null}"
                " UNION SELECT {o_blocks} FROM _merge_old o JOIN {changes} c ON {key_match} AND c._merge_id = %s WHERE {o_not_null}").format(
            c_blocks=_blocks_sql(target, "c"), changes=changes, c_not_null=_not_null(target, "c"), o_blocks=_blocks_sql(target, "o"),
            key_match=key_match("o", "c", target.key), o_not_null=_not_null(target, "o")),
        (merge_id, merge_id),
    ).fetchall()  # fmt: skip


def _selection(conn, target_name: str, target: Target, blocks: list[tuple] | None) -> sql.Composable:
    """WHERE of the target's rows in `blocks` (None: in any block)."""
    if not _match(target).block_on or blocks is None:
        return _not_null(target)
    touched = sql.Identifier("_match_touched")
    conn.execute(
        sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WHERE false").format(
            touched, _blocks_sql(target), qualified(store.SCHEMA, target_name)
        )
    )
    with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(touched)) as copy:
        for values in blocks:
            copy.write_row(values)
    return sql.SQL("({}) IN (SELECT * FROM {})").format(_blocks_sql(target), touched)


def _members(conn, target_name: str, target: Target, selected: sql.Composable) -> Iterator[pd.DataFrame]:
    """The selected rows of blocks of at most max_block_rows rows, ordered by block and key, a
    batch of whole blocks at a time."""
    match = _match(target)
    block_on, columns = list(match.block_on), list(dict.fromkeys([*target.key, *match.columns, *match.block_on]))
    block_ids = _blocks_sql(target) if block_on else sql.SQL("1")
    query = sql.SQL(
        "SELECT {cols} FROM (SELECT t.*, count(*) OVER (PARTITION BY {blocks}) AS _block_rows FROM {table} t WHERE {selected}) s"
        " WHERE _block_rows <= %s ORDER BY {order}"
    ).format(
        cols=sql.SQL(", ").join(sql.Identifier(storage_name(c)) for c in columns), blocks=block_ids, table=qualified(store.SCHEMA, target_name),
        selected=selected, order=sql.SQL(", ").join(sql.Identifier(storage_name(c)) for c in [*block_on, *target.key]),
    )  # fmt: skip
    block_at = [columns.index(b) for b in block_on]
    with conn.cursor(name="match_blocks") as cur:
        cur.execute(query, (match.max_block_rows,))
        pending: list[tuple] = []
        while rows := cur.fetchmany(BATCH_ROWS):
            pending += rows
            cut = len(pending)
            if block_on:  # the last block may go on in the next batch: hold it back
                last = [pending[-1][i] for i in block_at]
                while cut > 0 and [pending[cut - 1][i] for i in block_at] == last:
                    cut -= 1
            if cut:
                yield pd.DataFrame(pending[:cut], columns=columns)
                pending = pending[cut:]
        if pending:
            yield pd.DataFrame(pending, columns=columns)


def refresh(conn, target_name: str, target: Target, merge_id: int, every_block: bool) -> Refreshed:
    """Compare the blocks the merge `merge_id` touched again, in the merge's transaction; with
    `every_block` (a rebuild, or a merge into an empty target, which touches them all) every block,
    without finding the touched ones (1M rows: 1.2 s less)."""
    table = qualified(store.SCHEMA, store.candidates_table(target_name))
    match = _match(target)
    blocks = None if every_block else _touched_blocks(conn, target_name, target, merge_id)
    if blocks is None or not match.block_on:
        conn.execute(sql.SQL("DELETE FROM {}").format(table))
    else:
        labels = [block_label(dict(zip(match.block_on, b)), match.block_on) for b in blocks]
        conn.execute(sql.SQL("DELETE FROM {} WHERE block = ANY(%s)").format(table), (labels,))
    selected = _selection(conn, target_name, target, blocks)
    # Without block_on the whole target is one block (none when it is empty); `GROUP BY 1` would
    # name the select list's count(*).
    grouped = sql.SQL("GROUP BY {}").format(_blocks_sql(target)) if match.block_on else sql.SQL("HAVING count(*) > 0")
    sizes = sql.SQL("SELECT count(*) FILTER (WHERE n <= %s), count(*) FILTER (WHERE n > %s) FROM (SELECT count(*) AS n FROM {} WHERE {} {}) b").format(
        qualified(store.SCHEMA, target_name), selected, grouped
    )
    compared, skipped = conn.execute(sizes, (match.max_block_rows, match.max_block_rows)).fetchone()
    columns = [*(f"left_{k}" for k in target.key), *(f"right_{k}" for k in target.key), "left_text", "right_text", "score", "block"]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(table, sql.SQL(", ").join(sql.Identifier(storage_name(c)) for c in columns))
    found = [match_candidates(batch, list(target.key), match).candidates for batch in _members(conn, target_name, target, selected)]
    with conn.cursor().copy(statement) as copy:
        for frame in found:
            for row in frame[columns].itertuples(index=False):
                copy.write_row(tuple(None if pd.isna(v) else v for v in row))
    total = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()[0]
    return Refreshed(total, compared, skipped)
