"""The harmonized tables beside harmonized.<target> itself (no dagster).

- harmonized.<target>_duplicates: every row of a business key that occurred more than once, by
  group (`_group`), the surviving row first (`_kept`);
- harmonized.<target>_match_candidates: likely fuzzy duplicates, for review;
- quality.rejected_rows: values harmonization could not standardize and rows left out, under
  checks named `harmonize:<rule>`; each run replaces the previous run's records of its sources.
The two tables are written in the transaction that writes harmonized.<target>, so they agree
with it; the rejections are committed just before it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from psycopg import sql

from harmonizer_pipeline.quality.store import copy_rejected
from harmonizer_pipeline.resources import table_store
from harmonizer_pipeline.resources.frame_codec import qualified, storage_name

SCHEMA = "harmonized"


def duplicates_table(target: str) -> str:
    return f"{target}_duplicates"


def candidates_table(target: str) -> str:
    return f"{target}_match_candidates"


def add_primary_key(conn, target: str, key: Sequence[str]) -> None:
    """The business key as harmonized.<target>'s primary key (its columns are NOT NULL already)."""
    columns = sql.SQL(", ").join(sql.Identifier(storage_name(c)) for c in key)
    statement = sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(qualified(SCHEMA, target), columns)
    with conn.cursor() as cur:
        cur.execute(statement.as_string(None))


def replace_side_table(conn, table: str, frame: pd.DataFrame) -> None:
    table_store.drop_table(conn, SCHEMA, table)
    table_store.replace_table(conn, SCHEMA, table, [frame])


def replace_rejections(conn, sources: Sequence[str], run_id: str, rejections: pd.DataFrame, partitions: dict[tuple[str, str], str]) -> None:
    """Replace the harmonize records of `sources` in quality.rejected_rows (a psycopg connection).
    `rejections` has `_source`, `_source_file` and mapping.REJECTION_COLUMNS; `partitions` maps
    (source, file) to the file's partition key."""
    conn.execute("DELETE FROM quality.rejected_rows WHERE source = ANY(%s) AND check_name LIKE 'harmonize:%%'", (list(sources),))
    for (source, source_file), rows in rejections.groupby(["_source", "_source_file"], sort=True):
        copy_rejected(conn, source, partitions.get((source, source_file), source_file), run_id, rows)

