"""The file registry, `ops.file_registry`: every object a sensor saw, what became of it, and why.

One row per (source, object key, object version). Statuses: `pending` (a run was requested),
`loaded`, `failed` (with the one-line error), `duplicate` (same content as a file already
pending or loaded for the source; never loaded again). The registry, not the sensor cursor,
is what makes loading exactly-once: it survives restarts and lost cursors.

Statements are composed with psycopg.sql (identifiers and literals quoted by the driver) and
run on any DB-API connection, psycopg or ADBC, so a load can mark its file `loaded` inside the
same transaction that writes its rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from psycopg import sql

from harmonizer_pipeline.resources.landing import LandedObject

TABLE = sql.SQL("ops.file_registry")
COLUMNS = (
    "source", "object_key", "object_version", "size", "content_id", "sha256", "status", "error",
    "rows", "partition_key", "run_id", "first_seen", "updated_at", "columns",
)  # fmt: skip
_MAX_KEY_CHARS = 200


@dataclass(frozen=True)
class RegistryEntry:
    source: str
    object_key: str
    object_version: str
    size: int | None
    content_id: str
    sha256: str | None
    status: str
    error: str | None
    rows: int | None
    partition_key: str
    run_id: str | None
    first_seen: datetime
    updated_at: datetime
    columns: list[str] | None  # the file's own columns, in its order (the raw table holds every file's)


def _run(conn, statement: sql.Composable) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(statement.as_string(None))
        return cur.fetchall() if cur.description else []


def ensure_registry(conn) -> None:
    """Create `ops.file_registry` if missing (concurrent callers wait for each other)."""
    _run(conn, sql.SQL("SELECT pg_advisory_xact_lock(hashtextextended('ops.file_registry', 0))"))
    _run(conn, sql.SQL("CREATE SCHEMA IF NOT EXISTS ops"))
    _run(
        conn,
        sql.SQL(
            """CREATE TABLE IF NOT EXISTS {table} (
                source text NOT NULL,
                object_key text NOT NULL,
                object_version text NOT NULL,
                size bigint,
                content_id text NOT NULL,
                sha256 text,
                status text NOT NULL CHECK (status IN ('pending', 'loaded', 'failed', 'duplicate')),
                error text,
                rows bigint,
                partition_key text NOT NULL,
                run_id text,
                first_seen timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (source, object_key, object_version)
            )"""
        ).format(table=TABLE),
    )
    # Added after the first release; registries made before it gain the column here.
    _run(conn, sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS columns text[]").format(TABLE))
    _run(conn, sql.SQL("CREATE INDEX IF NOT EXISTS file_registry_content ON {} (source, content_id)").format(TABLE))
    _run(conn, sql.SQL("CREATE INDEX IF NOT EXISTS file_registry_partition ON {} (source, partition_key)").format(TABLE))


def partition_key_for(object_key: str, content_id: str) -> str:
    """Dynamic partition key of a file: its name plus a short content hash, in characters Dagster accepts."""
    name = re.sub(r"[\x00-\x1f\x7f]", "_", object_key).replace("...", "._.")
    if len(name) > _MAX_KEY_CHARS:
        name = "…" + name[-_MAX_KEY_CHARS:]
    return f"{name}@{content_id.split(':', 1)[-1][:12]}"


def _select(where: sql.Composable) -> sql.Composed:
    return sql.SQL("SELECT {} FROM {} WHERE {}").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS), TABLE, where
    )


def _entries(conn, where: sql.Composable, order: str = "first_seen, object_key") -> list[RegistryEntry]:
    return [RegistryEntry(*row) for row in _run(conn, sql.SQL("{} ORDER BY {}").format(_select(where), sql.SQL(order)))]


def _eq(column: str, value) -> sql.Composed:
    return sql.SQL("{} = {}").format(sql.Identifier(column), sql.Literal(value))


def _and(*conditions: sql.Composable) -> sql.Composed:
    return sql.SQL(" AND ").join(conditions)


def statuses(conn, source: str, keys: Iterable[str]) -> dict[tuple[str, str], RegistryEntry]:
    """Entries of these object keys for the source, by (key, version)."""
    keys = list(keys)
    if not keys:
        return {}
    where = _and(_eq("source", source), sql.SQL("object_key IN ({})").format(sql.SQL(", ").join(map(sql.Literal, keys))))
    return {(e.object_key, e.object_version): e for e in _entries(conn, where)}


def live_entry_with_content(conn, source: str, content_id: str | None = None, sha256: str | None = None) -> RegistryEntry | None:
    """The pending or loaded entry of the source with this content, if any."""
    match = _eq("content_id", content_id) if content_id else _eq("sha256", sha256)
    found = _entries(conn, _and(_eq("source", source), match, sql.SQL("status IN ('pending', 'loaded')")))
    return found[0] if found else None


def claim_sha256(conn, source: str, partition_key: str, sha256: str) -> RegistryEntry | None:
    """Another pending or loaded entry of the source with this SHA-256, if any; else the SHA-256
    is recorded on this partition's entry at once, so a twin loading meanwhile finds it."""
    _run(conn, sql.SQL("SELECT pg_advisory_xact_lock(hashtextextended({}, 0))").format(sql.Literal(f"sha256:{source}:{sha256}")))
    twin = live_entry_with_content(conn, source, sha256=sha256)
    if twin is not None and twin.partition_key != partition_key:
        return twin
    update(conn, source, partition_key, sha256=sha256)
    return None


def register(conn, source: str, obj: LandedObject, content_id: str, status: str, error: str | None = None) -> RegistryEntry:
    """Record a newly seen object (`pending` or `duplicate`); a row that exists is left as it is."""
    values = [source, obj.key, obj.version, obj.size, content_id, status, error, partition_key_for(obj.key, content_id)]
    names = ["source", "object_key", "object_version", "size", "content_id", "status", "error", "partition_key"]
    _run(
        conn,
        sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING").format(
            TABLE, sql.SQL(", ").join(map(sql.Identifier, names)), sql.SQL(", ").join(map(sql.Literal, values))
        ),
    )
    return _entries(conn, _and(_eq("source", source), _eq("object_key", obj.key), _eq("object_version", obj.version)))[0]


def entry_for_partition(conn, source: str, partition_key: str) -> RegistryEntry | None:
    found = _entries(conn, _and(_eq("source", source), _eq("partition_key", partition_key)), order="first_seen DESC")
    return found[0] if found else None


def update(conn, source: str, partition_key: str, **changes) -> None:
    """Set columns of the partition's entry (status, error, rows, sha256, run_id, columns) and its updated_at."""
    assignments = [sql.SQL("{} = {}").format(sql.Identifier(k), sql.Literal(v)) for k, v in changes.items()]
    assignments.append(sql.SQL("updated_at = now()"))
    _run(
        conn,
        sql.SQL("UPDATE {} SET {} WHERE {}").format(
            TABLE, sql.SQL(", ").join(assignments), _and(_eq("source", source), _eq("partition_key", partition_key))
        ),
    )


def entries(conn, source: str | None = None) -> list[RegistryEntry]:
    return _entries(conn, _eq("source", source) if source else sql.SQL("TRUE"))
