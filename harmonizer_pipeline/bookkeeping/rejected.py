"""quality.rejected_rows: every failing value of a file's rows, with the check and message (no
dagster). A file's records of validation, or of harmonization (checks `harmonize:<rule>`), are
replaced when it is validated or staged again."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import psycopg
from psycopg import sql


def delete_rejected(conn, source: str, partition_key: str, harmonize: bool = False) -> None:
    """Delete the file's records of validation, or of harmonization (checks `harmonize:<rule>`)."""
    conn.execute(
        "DELETE FROM quality.rejected_rows WHERE source = %s AND partition_key = %s AND (check_name LIKE 'harmonize:%%') = %s",
        (source, partition_key, harmonize),
    )


def delete_harmonize_rejections(conn, files: Sequence[tuple[str, str]]) -> None:
    """Delete the records of harmonization of these files, (source, partition_key) each."""
    conn.execute(
        "DELETE FROM quality.rejected_rows WHERE check_name LIKE 'harmonize:%%' AND (source, partition_key) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
        ([source for source, _ in files], [partition for _, partition in files]),
    )


def count_harmonize_rejections(conn, sources: Sequence[str]) -> int:
    return conn.execute("SELECT count(*) FROM quality.rejected_rows WHERE source = ANY(%s) AND check_name LIKE 'harmonize:%%'", (list(sources),)).fetchone()[0]


def copy_rejected(conn, source: str, partition_key: str, run_id: str, rejected: pd.DataFrame) -> None:
    """Append rejected-row records (validation.REJECTED_COLUMNS) with COPY."""
    columns = ["source", "partition_key", "run_id", "_row_number", "column_name", "check_name", "failure_case", "message"]
    statement = sql.SQL("COPY quality.rejected_rows ({}) FROM STDIN").format(sql.SQL(", ").join(map(sql.Identifier, columns)))
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for row_number, column, check, value, message in zip(
            rejected["_row_number"], rejected["column"], rejected["check"], rejected["failure_case"], rejected["message"]
        ):
            copy.write_row((source, partition_key, run_id, None if pd.isna(row_number) else int(row_number), column, check, value, message))


class RejectedRowsWriter:
    """Replaces a file's records in quality.rejected_rows over one transaction of its own: the old
    records are deleted when the first chunk's arrive (or at commit), each chunk's are COPYed as
    they come, and nothing is visible until commit(); close() without commit() leaves the old ones."""

    def __init__(self, url: str, source: str, partition_key: str, run_id: str, harmonize: bool = False):
        self.url, self.source, self.partition_key, self.run_id, self.harmonize = url, source, partition_key, run_id, harmonize
        self._conn: psycopg.Connection | None = None

    def connection(self) -> psycopg.Connection:
        """The records' transaction (bookkeeping that describes them may join it)."""
        if self._conn is None:
            self._conn = psycopg.connect(self.url)
            delete_rejected(self._conn, self.source, self.partition_key, self.harmonize)
        return self._conn

    def write(self, rejected: pd.DataFrame) -> None:
        copy_rejected(self.connection(), self.source, self.partition_key, self.run_id, rejected)

    def commit(self, *_) -> None:
        self.connection().commit()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()  # rolls back what was not committed
            self._conn = None


def rejected_rows(conn, source: str, partition_key: str) -> pd.DataFrame:
    """The file's rejected-row records, in row order."""
    cur = conn.execute(
        "SELECT _row_number, column_name, check_name, failure_case, message FROM quality.rejected_rows"
        " WHERE source = %s AND partition_key = %s ORDER BY _row_number, column_name, check_name",
        (source, partition_key),
    )
    return pd.DataFrame(cur.fetchall(), columns=["_row_number", "column", "check", "failure_case", "message"])
