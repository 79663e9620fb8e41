"""The layers that hold a file's rows, as retention and erasure empty them (no dagster): raw,
validated and staged (one partition per file) and quality.rejected_rows; leaving validated, a file
also leaves keys.comparison_rows (the differences of comparisons it was part of hold its values)
and keys.dependency_rows (its rows breaking a functional dependency, with their values).
Statements run in the caller's transaction (a psycopg connection)."""

from __future__ import annotations

from psycopg import sql

from harmonizer_pipeline import naming
from harmonizer_pipeline.bookkeeping import merges, rejected
from harmonizer_pipeline.storage.catalog import table_exists
from harmonizer_pipeline.storage.frame_codec import qualified
from harmonizer_pipeline.storage.partitions import drop_partition

REJECTED_ROWS = naming.StageAsset("quality", "rejected_rows")
_BY_FILE = {"raw": naming.raw, "validated": naming.validated, "staged": naming.staged}


def asset(layer: str, source: str) -> naming.StageAsset:
    """The layer's asset (or table, for quality.rejected_rows) of the source."""
    return REJECTED_ROWS if layer == "rejected_rows" else _BY_FILE[layer](source)


def remove(conn, layer: str, source: str, partition_key: str) -> int:
    """Remove the file's rows from the layer; how many there were. Leaving staged, the file also
    leaves ops.staged_files and takes its harmonize rejections along: the next merge of its
    target takes its rows out (as for a file removed since the last merge)."""
    if layer == "rejected_rows":
        return conn.execute("DELETE FROM quality.rejected_rows WHERE source = %s AND partition_key = %s", (source, partition_key)).rowcount
    if layer == "validated":
        # The comparisons' difference rows are copies of validated values, of this file on either side.
        conn.execute(
            "DELETE FROM keys.comparison_rows WHERE source = %s AND (partition_key_a = %s OR partition_key_b = %s)", (source, partition_key, partition_key)
        )
        conn.execute("DELETE FROM keys.dependency_rows WHERE source = %s AND partition_key = %s", (source, partition_key))
    table = asset(layer, source)
    rows = drop_partition(conn, table.schema, table.table, naming.PARTITION_COLUMN, partition_key)
    if layer == "staged":
        merges.forget_staged(conn, source, partition_key)
        rejected.delete_rejected(conn, source, partition_key, harmonize=True)
    return rows


def holds(conn, layer: str, source: str, partition_key: str) -> bool:
    """The layer still holds rows of the file."""
    if layer == "rejected_rows":
        query = sql.SQL("SELECT EXISTS (SELECT FROM quality.rejected_rows WHERE source = %s AND partition_key = %s)")
        return conn.execute(query, (source, partition_key)).fetchone()[0]
    table = asset(layer, source)
    if not table_exists(conn, table.schema, table.table):
        return False
    query = sql.SQL("SELECT EXISTS (SELECT FROM {} WHERE {} = %s)").format(qualified(table.schema, table.table), sql.Identifier(naming.PARTITION_COLUMN))
    return conn.execute(query, (partition_key,)).fetchone()[0]
