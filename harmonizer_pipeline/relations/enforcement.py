"""The enforced relationships of harmonizer.yaml (`relations:`) checked in PostgreSQL (no dagster).

A relation holds for a referencing row when its `from` values, compared as text (`col::text`, as
`harmonizer relations` compares them), are found together in one row of the referenced table. A
NULL or blank (empty or only spaces) value in any `from` column means the row is not checked (SQL's
MATCH SIMPLE): it never violates. The tables:

- a source's side is validated.<source>: as the referencing side, the rows of the file being
  checked (its partition); as the referenced side, the rows of the source's current files (the
  latest version of each name, not blocked by its gate; a snapshot source's latest file only);
- a target's side is harmonized.<target>, all of it.

One statement counts the violating rows and their distinct values and lists the first
SAMPLE_ROWS (by file and row number) under NOT EXISTS, identifiers quoted by psycopg, values bound.
A referenced table never loaded, or a column a table lacks, fails the check with one line saying so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
import psycopg
from psycopg import sql

from harmonizer_pipeline import naming
from harmonizer_pipeline.bookkeeping import profiles, registry
from harmonizer_pipeline.naming import PARTITION_COLUMN
from harmonizer_pipeline.privacy.masking import scrub_text
from harmonizer_pipeline.privacy.policy import MASKED, detected_kind, source_columns, target_columns
from harmonizer_pipeline.quality.profiling import count_text, detect_pii
from harmonizer_pipeline.relations.settings import Relation, RelationSide, check_names
from harmonizer_pipeline.settings import Settings
from harmonizer_pipeline.storage.catalog import stored_columns, table_exists
from harmonizer_pipeline.storage.frame_codec import qualified, storage_name

SAMPLE_ROWS = 100  # violating rows listed for the UI
_FILLED = sql.Literal("[^[:space:]]")  # a value with something besides spaces: not blank


@dataclass(frozen=True)
class Enforced:
    """One relation of harmonizer.yaml as its check: its name, and the tables of both sides."""

    name: str
    relation: Relation
    referencing: naming.StageAsset
    referenced: naming.StageAsset

    @property
    def listed_columns(self) -> list[str]:
        """The columns of a violating row as listed: where it is, then its `from` values."""
        where = ["_row_number"] if self.referencing.by_file else ["_source_file", "_row_number"]
        return [*where, *self.relation.from_.columns]

    def description(self) -> str:
        relation = self.relation
        said = f"{relation.description} " if relation.description else ""
        scope = "this file's rows" if self.referencing.by_file else "its rows"
        return (
            f"{said}Fails when more than {relation.max_violations} of {scope} have {', '.join(relation.from_.columns)} values that "
            f"{self.referenced.qualified} ({', '.join(relation.to.columns)}) lacks; NULL or blank values are not checked."
        )


@dataclass
class RelationOutcome:
    """What checking a relation found; `problem` is set when it could not be checked."""

    enforced: Enforced
    rows_violating: int = 0
    distinct_missing: int = 0
    rows: list[dict] = field(default_factory=list)  # up to SAMPLE_ROWS, Enforced.listed_columns as text (PII masked)
    problem: str | None = None

    @property
    def passed(self) -> bool:
        return self.problem is None and self.rows_violating <= self.enforced.relation.max_violations

    def summary(self) -> str:
        if self.problem is not None:
            return self.problem
        relation = self.enforced.relation
        allowed = f" (at most {relation.max_violations} allowed)" if relation.max_violations else ""
        if not self.rows_violating:
            return f"every checked value of {relation.from_} is in {relation.to}"
        return f"{self.rows_violating} row(s), {self.distinct_missing} distinct value(s) of {relation.from_} not in {relation.to}{allowed}"


def _asset(settings: Settings, side: RelationSide) -> naming.StageAsset:
    return naming.validated(side.table) if side.table in settings.sources else naming.harmonized(side.table)


def enforced_relations(settings: Settings, referencing: naming.StageAsset) -> list[Enforced]:
    """The relations whose `from` is the table of `referencing` (validated/<source> or harmonized/<target>)."""
    found = []
    for name, relation in zip(check_names(settings.relations), settings.relations):
        enforced = Enforced(name, relation, _asset(settings, relation.from_), _asset(settings, relation.to))
        if enforced.referencing == referencing:
            found.append(enforced)
    return found


def current_partitions(conn, settings: Settings, source: str) -> list[str]:
    """The partitions of validated.<source> that count: its current files that passed their gate
    (a snapshot source's latest only)."""
    loaded = [e for e in registry.current_versions(conn, [source]) if e.status == "loaded"]
    if settings.sources[source].mode == "snapshot":
        loaded = loaded[-1:]
    return [e.partition_key for e in loaded]


def check_relation(conn: psycopg.Connection, settings: Settings, enforced: Enforced, partition_key: str | None = None) -> RelationOutcome:
    """Check the relation on the referencing file's rows (`partition_key`, for a source) or on
    the whole referencing target, on a psycopg connection."""
    relation, referencing, referenced = enforced.relation, enforced.referencing, enforced.referenced
    problem = _missing(conn, referenced, relation.to.columns, referenced=True)
    problem = problem or _missing(conn, referencing, relation.from_.columns, referenced=False, partition_key=partition_key)
    if problem is not None:
        return RelationOutcome(enforced, problem=problem)
    outer, inner = sql.Identifier("f"), sql.Identifier("t")
    from_columns = [sql.Identifier(storage_name(c)) for c in relation.from_.columns]
    to_columns = [sql.Identifier(storage_name(c)) for c in relation.to.columns]
    params: list[object] = []
    conditions: list[sql.Composable] = []
    if referencing.by_file:
        conditions.append(sql.SQL("{}.{} = %s").format(outer, sql.Identifier(PARTITION_COLUMN)))
        params.append(partition_key)
    conditions += [sql.SQL("{}.{}::text ~ {}").format(outer, c, _FILLED) for c in from_columns]
    matches: list[sql.Composable] = []
    if referenced.by_file:
        matches.append(sql.SQL("{}.{} = ANY(%s)").format(inner, sql.Identifier(PARTITION_COLUMN)))
        params.append(current_partitions(conn, settings, referenced.table))
    matches += [sql.SQL("{}.{}::text = {}.{}::text").format(inner, t, outer, f) for f, t in zip(from_columns, to_columns)]
    values = [sql.SQL("{}.{}::text AS {}").format(outer, c, sql.Identifier(f"v{i}")) for i, c in enumerate(from_columns)]
    value_names = sql.SQL(", ").join(sql.Identifier(f"v{i}") for i in range(len(from_columns)))
    where = [sql.Identifier(c) for c in enforced.listed_columns[: -len(from_columns)]]
    place = sql.SQL(", ").join(sql.SQL("{}.{}").format(outer, c) for c in where)
    order = sql.SQL(", ").join(where)
    statement = sql.SQL(
        "WITH violating AS MATERIALIZED ("
        " SELECT {place}, {values} FROM {referencing} {outer}"
        " WHERE {conditions} AND NOT EXISTS (SELECT FROM {referenced} {inner} WHERE {matches}))"
        " SELECT (SELECT count(*) FROM violating),"
        " (SELECT count(*) FROM (SELECT DISTINCT {value_names} FROM violating) d),"
        " (SELECT coalesce(json_agg(json_build_array({order}, {value_names})), '[]'::json)"
        "  FROM (SELECT * FROM violating ORDER BY {order}, {value_names} LIMIT {limit}) s)"
    ).format(
        place=place, values=sql.SQL(", ").join(values), referencing=qualified(referencing.schema, referencing.table), outer=outer,
        conditions=sql.SQL(" AND ").join(conditions), referenced=qualified(referenced.schema, referenced.table), inner=inner,
        matches=sql.SQL(" AND ").join(matches), value_names=value_names, order=order, limit=sql.Literal(SAMPLE_ROWS),
    )  # fmt: skip
    try:
        rows_violating, distinct_missing, listed = conn.execute(statement, params).fetchone() or (0, 0, [])
    except psycopg.Error as error:
        conn.rollback()
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return RelationOutcome(enforced, problem=f"could not check {relation}: {scrub_text(first)}")
    records = [dict(zip(enforced.listed_columns, row)) for row in listed]
    return RelationOutcome(enforced, rows_violating, distinct_missing, _masked(conn, settings, enforced, records))


def check_file(
    conn: psycopg.Connection, settings: Settings, relations: Sequence[Enforced], source: str, partition_key: str, *, gate_passed: bool
) -> list[RelationOutcome]:
    """Check the relations of a file of `source` just validated; when a blocking one fails and the
    schema gate had passed, the file's registry entry becomes `blocked` with the relation's reason
    (as a gate blocks it: it stops counting as a current file until validated again)."""
    outcomes = [check_relation(conn, settings, e, partition_key) for e in relations]
    failed = [o for o in outcomes if o.enforced.relation.blocking and not o.passed]
    entry = registry.entry_for_partition(conn, source, partition_key) if failed and gate_passed else None
    if entry is not None:
        reason = "; ".join(f"{o.enforced.relation}: {o.summary()}" for o in failed)
        registry.record_gate(conn, entry.id, False, scrub_text(f"blocked by a relation of harmonizer.yaml: {reason}"))
    return outcomes


def _missing(conn, asset: naming.StageAsset, columns: Sequence[str], *, referenced: bool, partition_key: str | None = None) -> str | None:
    """One line when the table or one of the columns is not there, else None."""
    if not table_exists(conn, asset.schema, asset.table):
        role = "referenced" if referenced else "referencing"
        return f"the {role} table {asset.qualified} does not exist yet: no file of it was loaded (materialize {asset} first)"
    stored = {spec.name for spec in stored_columns(conn, asset.schema, asset.table).values()}
    if asset.by_file and partition_key is not None:
        entry = registry.entry_for_partition(conn, asset.table, partition_key)
        if entry is not None and entry.columns is not None:
            stored &= set(entry.columns)  # the table holds every file's columns; this file has its own
        lacking = [c for c in columns if c not in stored]
        return f"file {partition_key} of {asset.table} has no column {lacking[0]!r} (its columns: {sorted(stored)})" if lacking else None
    lacking = [c for c in columns if c not in stored]
    if not lacking:
        return None
    whose = f"no file of {asset.table} has" if asset.by_file else f"{asset.qualified} has"
    return f"{whose} column {lacking[0]!r} ({asset.qualified} has {sorted(c for c in stored if not c.startswith('_'))})"


def _masked(conn, settings: Settings, enforced: Enforced, records: list[dict]) -> list[dict]:
    """The listed rows with the values of PII columns masked: columns declared PII or flagged by a
    profile of the referencing table's sources, and columns whose listed values look like PII."""
    columns = enforced.relation.from_.columns
    if not records:
        return records
    frame = pd.DataFrame(records, columns=enforced.listed_columns)
    table, detect = enforced.referencing.table, settings.privacy.detect
    if enforced.referencing.by_file:
        pii = source_columns(settings.privacy, table, profiles.flagged_pii(conn, [table]).get(table, {}) if detect else {})
    else:
        pii = target_columns(settings, table, profiles.flagged_pii(conn, settings.sources_of(table)) if detect else {})
    if detect:  # the listed values themselves, as the profile's detector judges a column
        looks = {c: kind for c in columns if c not in pii and (kind := detected_kind(detect_pii(count_text(frame[c].astype("string")))))}
        pii |= looks
    pii = {c: kind for c, kind in pii.items() if c in columns}
    return MASKED.frame(frame, pii).astype(object).to_dict("records") if pii else records
