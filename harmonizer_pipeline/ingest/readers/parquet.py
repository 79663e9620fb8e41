"""Parquet by record batches, every column cast to text."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .base import Detection, ReadError
from .columns import column_names, lineage_table
from .excel import cell_text
from .text import Head


class _Parquet:
    """Parquet row by row group batches, every column cast to text."""

    def __init__(self, head: Head):
        self.path = head.path
        try:
            with pq.ParquetFile(self.path) as file:
                schema, rows, groups = file.schema_arrow, file.metadata.num_rows, file.num_row_groups
        except (pa.ArrowException, OSError) as err:
            raise ReadError(self.path, f"not a readable Parquet file: {err}") from err
        names, renamed, name_why = column_names(schema.names)
        evidence = [*head.evidence, f"{rows} rows in {groups} row groups", *name_why]
        self.detection = Detection("parquet", None, None, None, None, [], None, names, renamed, evidence)

    def tables(self, chunk_rows: int) -> Iterator[pa.Table]:
        """Batches of at most chunk_rows rows, numbered from 1."""
        first = 1
        with pq.ParquetFile(self.path) as file:
            for batch in file.iter_batches(batch_size=chunk_rows):
                arrays = [_arrow_text(column) for column in batch.columns]
                yield lineage_table(self.detection.columns, arrays, np.arange(first, first + batch.num_rows))
                first += batch.num_rows


def _arrow_text(array: pa.Array) -> pa.Array:
    """A column as text (see the package docstring)."""
    kind = array.type
    if pa.types.is_timestamp(kind):
        return pc.replace_substring(array.cast(pa.string()), " ", "T", max_replacements=1)
    if pa.types.is_duration(kind):
        return pa.array([cell_text(value) for value in array.to_pylist()], pa.string())
    if pa.types.is_nested(kind):
        dump = functools.partial(json.dumps, ensure_ascii=False, separators=(",", ":"), default=cell_text)
        return pa.array([None if value is None else dump(value) for value in array.to_pylist()], pa.string())
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
        try:
            return array.cast(pa.string())
        except pa.ArrowInvalid:
            return pa.array([None if v is None else "\\x" + v.hex() for v in array.to_pylist()], pa.string())
    return array.cast(pa.string())
