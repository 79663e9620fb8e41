"""What the language model is told about the tables a question may read (no dagster).

The reader's tables are the relations of schema `harmonized` (each target, its duplicates view,
its change log and history); the steward's add those of `quality` and `keys`, but never
quality.rejected_rows, which holds the raw values files were quarantined for. Each table comes
with its columns and types, the descriptions harmonizer.yaml gives, the target's key, and for
the harmonized tables a few distinct values per column: those of PII columns masked, and every
other value scrubbed of what the detector takes for PII, since the prompt leaves for the model's
provider. The same list is what the SQL guard lets a query read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from psycopg import sql

from harmonizer_pipeline.bookkeeping import profiles
from harmonizer_pipeline.harmonize import store
from harmonizer_pipeline.privacy.masking import scrub_text
from harmonizer_pipeline.privacy.policy import MASKED, target_columns
from harmonizer_pipeline.settings import Settings

STEWARD_SCHEMAS = ("quality", "keys")
QUARANTINE = ("quality", "rejected_rows")
SAMPLE_SCAN_ROWS = 1_000  # rows a column's sample values are drawn from (a prompt never scans a whole table)
RELATION_KINDS = ["r", "p", "v", "m"]
# What each relation of a target holds, by the suffix of its name (harmonize.store names them).
TARGET_RELATIONS = {
    "": "the harmonized rows, one per key",
    "_duplicates": "every row of a key that occurred more than once, the kept row first (_kept true)",
    "_changes": "the rows each merge inserted, updated or deleted (_operation), until exported",
    "_history": "every version of each key (valid from _valid_from to _valid_to)",
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    description: str = ""
    samples: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    columns: list[Column]
    description: str = ""
    key: list[str] = field(default_factory=list)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class Catalog:
    tables: list[Table]

    @property
    def allowed(self) -> dict[str, set[str]]:
        """Schema -> the tables a query may read there (what the SQL guard takes)."""
        found: dict[str, set[str]] = {}
        for table in self.tables:
            found.setdefault(table.schema, set()).add(table.name)
        return found

    def prompt(self) -> str:
        """The tables as the system prompt lists them."""
        lines = []
        for table in self.tables:
            head = f"{table.qualified}" + (f": {table.description}" if table.description else "")
            lines.append(head + (f" (key: {', '.join(table.key)})" if table.key else ""))
            for column in table.columns:
                text = f"  - {column.name} {column.type}" + (f": {column.description}" if column.description else "")
                if column.samples:
                    text += "; e.g. " + ", ".join(repr(s) for s in column.samples)
                lines.append(text)
        return "\n".join(lines)


def catalog(conn, settings: Settings, role: str, target: str | None = None, samples: int = 3) -> Catalog:
    """The tables a question asked with `role` (reader or steward) may read, `target`'s alone when given."""
    detected = profiles.flagged_pii(conn, list(settings.sources)) if settings.privacy.detect else {}
    tables = []
    for name in _relations(conn, store.SCHEMA):
        owner, suffix = _target_of(settings, name)
        if owner is None or (target is not None and owner != target):
            continue
        definition = settings.targets[owner]
        pii = target_columns(settings, owner, detected)
        columns = [
            Column(
                c, kind, definition.columns[c].description if c in definition.columns else "",
                _samples(conn, store.SCHEMA, name, c, pii.get(c), samples) if samples else [],
            )
            for c, kind in _columns(conn, store.SCHEMA, name)
        ]  # fmt: skip
        description = f"{TARGET_RELATIONS[suffix]} of target {owner}" + (f" ({definition.description})" if definition.description else "")
        tables.append(Table(store.SCHEMA, name, columns, description, list(definition.key) if suffix in ("", "_duplicates") else []))
    if role == "steward":
        for schema in STEWARD_SCHEMAS:
            tables += [
                Table(schema, name, [Column(c, kind) for c, kind in _columns(conn, schema, name)])
                for name in _relations(conn, schema)
                if (schema, name) != QUARANTINE
            ]
    return Catalog(tables)


def _target_of(settings: Settings, relation: str) -> tuple[str | None, str]:
    """The target a relation of schema harmonized belongs to, and its suffix."""
    for target in settings.targets:
        for suffix in TARGET_RELATIONS:
            if relation == f"{target}{suffix}":
                return target, suffix
    return None, ""


def _relations(conn, schema: str) -> list[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = ANY(%s) ORDER BY 1",
        (schema, RELATION_KINDS),
    ).fetchall()
    return [name for (name,) in rows]


def _columns(conn, schema: str, table: str) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum",
        (schema, table),
    ).fetchall()
    return [(name, kind) for name, kind in rows]


def _samples(conn, schema: str, table: str, column: str, pii_kind: str | None, limit: int) -> list[str]:
    query = sql.SQL(
        "SELECT v FROM (SELECT {c}::text AS v FROM {t} WHERE {c} IS NOT NULL LIMIT {scan}) s GROUP BY v ORDER BY count(*) DESC, v LIMIT {n}"
    ).format(c=sql.Identifier(column), t=sql.Identifier(schema, table), scan=sql.Literal(SAMPLE_SCAN_ROWS), n=sql.Literal(limit))
    values = [value for (value,) in conn.execute(query).fetchall()]
    return [str(MASKED.value(v, pii_kind)) if pii_kind else scrub_text(v) for v in values]


def masked_rows(columns: list[str], rows: list[tuple], pii: Mapping[str, str]) -> list[tuple]:
    """An answer's rows as people see them: the values of columns named as a PII column masked by
    its kind, every other text scrubbed of what the detector takes for PII."""
    kinds = [pii.get(c) for c in columns]
    return [
        tuple(MASKED.value(v, kind) if kind and v is not None else (scrub_text(v) if isinstance(v, str) else v) for v, kind in zip(row, kinds, strict=True))
        for row in rows
    ]
