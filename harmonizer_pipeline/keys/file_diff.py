"""`harmonizer compare FILE_A FILE_B` (no dagster): two files read by the ingestion readers,
compared as text as read by keys.comparison, on a key given, else the key harmonizer.yaml
declares for the source whose landing folder holds FILE_B (or FILE_A), else the key `harmonizer
keys` suggests for FILE_B.

What people see is protected: values of PII columns (declared for that source in `privacy:`, or
flagged by the profile's detector in either file) are masked, on screen and in the files `-o`
writes (`added.csv`, `removed.csv`, `changed.csv`), unless the caller asks for them in clear
(`--show-pii`): those files are a report for a person, not an export for a downstream system.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from harmonizer_pipeline.engine_output import captured_output
from harmonizer_pipeline.ingest.landing import is_selected, split_glob
from harmonizer_pipeline.keys.comparison import Comparison, ComparisonError, ShowValue, compare_frames, protected_show, value_text
from harmonizer_pipeline.keys.discovery import ENGINE_LOGGERS, analyze
from harmonizer_pipeline.privacy.policy import source_columns
from harmonizer_pipeline.privacy.settings import PrivacySettings
from harmonizer_pipeline.quality.profiling import count_text, detect_pii
from harmonizer_pipeline.settings import Settings

LINEAGE = ("_row_number", "_sheet")
PII_SAMPLE_ROWS = 20_000  # rows of each file the PII detector looks at

Protect = Callable[[object, str], object]  # (value, PII kind) -> what is shown


@dataclass(frozen=True)
class KeyChoice:
    columns: list[str]
    reason: str  # where the key came from, for people


def source_of(settings: Settings | None, path: Path) -> str | None:
    """The source whose local landing folder holds the file and whose glob selects it."""
    if settings is None:
        return None
    resolved = path.resolve()
    for source, config in settings.sources.items():
        if config.landing.local is None:
            continue
        root = settings.landing_path(source)
        if resolved.is_relative_to(root) and is_selected(resolved.relative_to(root).as_posix(), split_glob(config.landing.local.glob)):
            return source
    return None


def choose_key(given: Sequence[str] | None, settings: Settings | None, source: str | None, b: pd.DataFrame, columns: Sequence[str]) -> KeyChoice:
    """The key given, else the source's declared key, else the key suggested for file B."""
    if given:
        return KeyChoice(list(given), "given with --key")
    declared = settings.sources[source].key if settings is not None and source is not None else None
    if declared:
        return KeyChoice(list(declared), f"declared for source {source} in harmonizer.yaml")
    with captured_output(ENGINE_LOGGERS):
        suggestion = analyze(b[list(columns)]).suggestion
    if suggestion.columns is None:
        raise ComparisonError("no key to compare on: FILE_B has no key (rows repeat entirely); give one with --key")
    return KeyChoice(list(suggestion.columns), f"suggested for FILE_B: {suggestion.reason}")


def parse_key(text: str | None) -> list[str] | None:
    """--key 'a, b' as its column names."""
    if text is None:
        return None
    columns = [c.strip() for c in text.split(",")]
    if not all(columns):
        raise ComparisonError(f"--key {text!r}: give column names separated by commas")
    return columns


class PiiColumns:
    """Which columns of the frames are PII, with their kind: declared for the source in
    `privacy:`, or flagged by the profile's detector in any of the frames (unless
    `privacy.detect` is off), on a seeded sample of at most PII_SAMPLE_ROWS rows of each (the
    detector judges a column by the share of values that look personal, which a sample
    estimates: 40 columns of two 1M-row files took 12 s whole). Each column is looked at once,
    when its values are first about to be shown."""

    def __init__(self, privacy: PrivacySettings | None, source: str | None, frames: Sequence[pd.DataFrame]):
        self.privacy = privacy or PrivacySettings()
        self.source = source or ""
        self.frames = [_sampled(frame) for frame in frames]
        self.known: dict[str, str | None] = {}

    def kinds(self, columns: Iterable[str]) -> dict[str, str]:
        columns = list(columns)
        new = [c for c in columns if c not in self.known]
        if new:
            detected = {}
            if self.privacy.detect:
                for column in new:
                    detected[column] = sorted({kind for frame in self.frames if column in frame.columns for kind in detect_pii(count_text(frame[column]))})
            found = source_columns(self.privacy, self.source, detected)
            self.known |= {c: found.get(c) for c in new}
        return {c: kind for c in columns if (kind := self.known[c]) is not None}

    def show(self, protect: Protect) -> ShowValue:
        """A ShowValue protecting the values of the PII columns with `protect`."""

        def show(column: str, value: object) -> object:
            kind = self.kinds([column]).get(column)
            return value if kind is None else protect(value, kind)

        return show


def _sampled(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sample(PII_SAMPLE_ROWS, random_state=0) if len(frame) > PII_SAMPLE_ROWS else frame


def compare_texts(a: pd.DataFrame, b: pd.DataFrame, names: tuple[str, str], key: Sequence[str], pii: PiiColumns, protect: Protect) -> Comparison:
    """compare_frames() of two files read as text, the value a duplicate-key error quotes protected."""
    return compare_frames(a, b, key, names, show=pii.show(protect), ignore=LINEAGE)


def report(result: Comparison, key: KeyChoice, names: tuple[str, str]) -> dict[str, object]:
    """What --json prints: integer counts, per-column counts and the schema differences."""
    return {
        "file_a": names[0],
        "file_b": names[1],
        "key": list(result.key),
        "key_reason": key.reason,
        "rows_a": result.rows_a,
        "rows_b": result.rows_b,
        **result.counts,
        "changed_columns": result.changed_columns,
        "added_columns": result.added_columns,
        "removed_columns": result.removed_columns,
        "retyped_columns": [{"column": c, "type_a": ta, "type_b": tb} for c, ta, tb in result.retyped_columns],
    }


def text_lines(result: Comparison, key: KeyChoice, names: tuple[str, str]) -> list[str]:
    """The report as people read it on a terminal."""
    lines = [
        f"{names[0]} ({result.rows_a} rows) -> {names[1]} ({result.rows_b} rows)",
        f"key: {', '.join(result.key)} ({key.reason})",
        f"added {result.added}, removed {result.removed}, changed {result.changed}, unchanged {result.unchanged}",
    ]
    if result.changed_columns:
        lines.append("changed rows per column:")
        width = max(len(c) for c in result.changed_columns)
        lines += [f"  {c:<{width}}  {n}" for c, n in result.changed_columns.items()]
    lines.append(f"columns added: {', '.join(result.added_columns) or '(none)'}")
    lines.append(f"columns removed: {', '.join(result.removed_columns) or '(none)'}")
    lines.append("columns retyped: " + (", ".join(f"{c} ({before} -> {after})" for c, before, after in result.retyped_columns) or "(none)"))
    return lines


def write_differences(result: Comparison, directory: Path, pii: Mapping[str, str], protect: Protect) -> dict[str, int]:
    """added.csv (B's rows), removed.csv (A's rows) and changed.csv (key columns, column, before,
    after), in UTF-8 with a header, chunk by chunk; PII values protected. Rows written per file."""
    directory.mkdir(parents=True, exist_ok=True)
    show = protected_show(pii, protect)
    written = {}

    def protected(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(**{c: frame[c].map(lambda v, c=c: show(c, v)) for c in frame.columns if c in pii})

    def changed_rows() -> Iterable[pd.DataFrame]:
        for cells in result.changed_cells():
            column = str(cells["column"].iat[0]) if len(cells) else ""
            kind = pii.get(column)
            cells = protected(cells[[*result.key, "column", "before", "after"]])
            if kind is not None:
                cells = cells.assign(**{side: cells[side].map(lambda v, kind=kind: protect(v, kind)) for side in ("before", "after")})
            yield cells

    shared_a = [c for c in result.a.columns if c not in LINEAGE]
    shared_b = [c for c in result.b.columns if c not in LINEAGE]
    outputs = (
        ("added.csv", (protected(chunk[shared_b]) for chunk in result.added_rows()), shared_b),
        ("removed.csv", (protected(chunk[shared_a]) for chunk in result.removed_rows()), shared_a),
        ("changed.csv", changed_rows(), [*result.key, "column", "before", "after"]),
    )
    for name, chunks, header in outputs:
        written[name] = _write_csv(directory / name, chunks, header)
    return written


def _write_csv(path: Path, chunks: Iterable[pd.DataFrame], header: Sequence[str]) -> int:
    """Chunks as one CSV (every value as text, NULL as an empty field), header even when empty."""
    schema = pa.schema([(name, pa.string()) for name in header])
    rows = 0
    with pacsv.CSVWriter(str(path), schema) as writer:
        for chunk in chunks:
            columns = [_text_array(chunk[c]) for c in header]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))
            rows += len(chunk)
    return rows


def _text_array(values: pd.Series) -> pa.Array:
    """A column as Arrow text: text as it is, other values by value_text (NULL stays NULL)."""
    if pd.api.types.is_string_dtype(values.dtype) and values.dtype != object:
        return pa.array(values.array, type=pa.string(), from_pandas=True)
    return pa.array([value_text(v) for v in values.array], pa.string())
