"""The file registry, `ops.file_registry`: every object a sensor saw, what became of it, and why.

One row per (source, object key, object version), addressed by its own `id`. Statuses:
`pending` (a run was requested), `loaded`, `blocked` (loaded, but its schema gate blocked it;
`error` says why), `failed` (with the one-line error; `retry_at` set when the failure was the
infrastructure's, not the file's, so the landing sensor requests it again), `duplicate` (same
content as the current version of a file already pending, loaded, blocked, expired or erased;
never loaded), `expired` (retention emptied every layer of it) and `erased` (`harmonizer erase
--file`); the last two keep the SHA-256, so the same content is not loaded again.
The registry, not the sensor cursor, is what makes loading exactly-once: it survives restarts
and lost cursors.

Content dedup spans names, never versions of one name: a file whose content equals an earlier,
superseded version of the same name (a revert) is loaded again and becomes the current version.

Statements are composed with psycopg.sql (identifiers and literals quoted by the driver) and
run on any DB-API connection, psycopg or ADBC, so a load can mark its file `loaded` inside the
same transaction that writes its rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import LiteralString

from psycopg import sql

from harmonizer_pipeline.bookkeeping.statements import execute
from harmonizer_pipeline.ingest.landing import LandedObject

TABLE = sql.SQL("ops.file_registry")
COLUMNS = (
    "id", "source", "object_key", "object_version", "size", "content_id", "sha256", "status", "error",
    "rows", "partition_key", "run_id", "first_seen", "updated_at", "columns", "attempts", "retry_at", "heartbeat_at",
)  # fmt: skip
STATUSES = ("pending", "loaded", "blocked", "failed", "duplicate", "expired", "erased")
# Statuses whose file holds (or is about to hold) its rows in raw: the content is served.
LIVE = ("pending", "loaded", "blocked")
# Statuses of a file whose rows were removed on purpose: its content is not loaded again.
GONE = ("expired", "erased")
# Statuses of a file whose content a new landing of it repeats (then a duplicate).
SERVED = (*LIVE, *GONE)
# Statuses whose rows are in raw.
IN_RAW = ("loaded", "blocked")
_MAX_KEY_CHARS = 200


@dataclass(frozen=True)
class RegistryEntry:
    id: int
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
    attempts: int  # runs requested for it so far (1 once registered pending)
    retry_at: datetime | None  # a failed load is requested again from then on
    heartbeat_at: datetime | None  # last sign of life of the run loading it
    retry_due: bool = False  # retry_at has passed (by the database's clock)


def _lock(conn, name: str) -> None:
    execute(conn, sql.SQL("SELECT pg_advisory_xact_lock(hashtextextended({}, 0))").format(sql.Literal(name)))


def partition_key_for(object_key: str, content_id: str) -> str:
    """Dynamic partition key of a file: its name plus a short content hash, in characters Dagster accepts.
    Versions of one name with one content share it (their rows are the same)."""
    name = re.sub(r"[\x00-\x1f\x7f]", "_", object_key).replace("...", "._.")
    if len(name) > _MAX_KEY_CHARS:
        name = "…" + name[-_MAX_KEY_CHARS:]
    return f"{name}@{content_id.split(':', 1)[-1][:12]}"


def _select(where: sql.Composable) -> sql.Composed:
    # Aliased `r`, so a condition can compare it with other rows of the registry.
    return sql.SQL("SELECT {}, coalesce(r.retry_at <= now(), false) FROM {} r WHERE {}").format(
        sql.SQL(", ").join(sql.SQL("r.{}").format(sql.Identifier(c)) for c in COLUMNS), TABLE, where
    )


def _entries(conn, where: sql.Composable, order: LiteralString = "id") -> list[RegistryEntry]:
    return [RegistryEntry(*row) for row in execute(conn, sql.SQL("{} ORDER BY {}").format(_select(where), sql.SQL(order)))]


def _eq(column: str, value) -> sql.Composed:
    return sql.SQL("{} = {}").format(sql.Identifier(column), sql.Literal(value))


def _and(*conditions: sql.Composable) -> sql.Composed:
    return sql.SQL(" AND ").join(conditions)


def _in(column: str, values: Iterable) -> sql.Composed:
    return sql.SQL("{} IN ({})").format(sql.Identifier(column), sql.SQL(", ").join(map(sql.Literal, values)))


def statuses(conn, source: str, keys: Iterable[str]) -> dict[tuple[str, str], RegistryEntry]:
    """Entries of these object keys for the source, by (key, version)."""
    keys = list(keys)
    if not keys:
        return {}
    return {(e.object_key, e.object_version): e for e in _entries(conn, _and(_eq("source", source), _in("object_key", keys)))}


def current_twin(conn, source: str, *, content_id: str | None = None, sha256: str | None = None, besides: int | None = None) -> RegistryEntry | None:
    """The entry whose content a file (entry `besides`, or one not registered yet) repeats: one with
    the same content that is the current version of its name (the latest live, expired or erased
    one, `besides` left out), whatever its name. An earlier, superseded version of a name is no
    twin: landing its content again under that name reverts the name to it."""
    match = _eq("content_id", content_id) if content_id else _eq("sha256", sha256)
    other = sql.SQL("TRUE") if besides is None else sql.SQL("r.id <> {}").format(sql.Literal(besides))
    later_other = sql.SQL("TRUE") if besides is None else sql.SQL("later.id <> {}").format(sql.Literal(besides))
    current = sql.SQL(
        "NOT EXISTS (SELECT 1 FROM {table} later WHERE later.source = r.source AND later.object_key = r.object_key "
        "AND later.status IN ({served}) AND later.id > r.id AND {later_other})"
    ).format(table=TABLE, served=sql.SQL(", ").join(map(sql.Literal, SERVED)), later_other=later_other)
    where = _and(_eq("source", source), match, _in("status", SERVED), other, current)
    found = _entries(conn, where)
    return found[0] if found else None


def claim_sha256(conn, entry: RegistryEntry, sha256: str) -> RegistryEntry | None:
    """The twin of this entry's content now that its SHA-256 is known, if any; else the SHA-256
    is recorded on the entry at once, so a twin loading meanwhile finds it."""
    _lock(conn, f"sha256:{entry.source}:{sha256}")
    twin = current_twin(conn, entry.source, sha256=sha256, besides=entry.id)
    if twin is None:
        update(conn, entry.id, sha256=sha256)
    return twin


def register(conn, source: str, obj: LandedObject, content_id: str, status: str, error: str | None = None) -> RegistryEntry:
    """Record a newly seen object (`pending`, its first attempt, or `duplicate`); a row that
    exists is left as it is."""
    attempts = 1 if status == "pending" else 0
    values = [source, obj.key, obj.version, obj.size, content_id, status, error, partition_key_for(obj.key, content_id), attempts]
    names = ["source", "object_key", "object_version", "size", "content_id", "status", "error", "partition_key", "attempts"]
    execute(
        conn,
        sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING").format(
            TABLE, sql.SQL(", ").join(map(sql.Identifier, names)), sql.SQL(", ").join(map(sql.Literal, values))
        ),
    )
    return _entries(conn, _and(_eq("source", source), _eq("object_key", obj.key), _eq("object_version", obj.version)))[0]


def entry(conn, entry_id: int) -> RegistryEntry | None:
    found = _entries(conn, _eq("id", entry_id))
    return found[0] if found else None


def entry_for_partition(conn, source: str, partition_key: str) -> RegistryEntry | None:
    """The latest version (not a duplicate) that loads into this partition: whom a run of the
    partition without a registry id in its tags (a manual materialization) works for."""
    where = _and(_eq("source", source), _eq("partition_key", partition_key), sql.SQL("status <> 'duplicate'"))
    found = _entries(conn, where, order="id DESC")
    return found[0] if found else None


def update(conn, entry_id: int, **changes) -> None:
    """Set columns of the entry (status, error, rows, sha256, run_id, columns …) and its updated_at."""
    assignments: list[sql.Composable] = [sql.SQL("{} = {}").format(sql.Identifier(k), sql.Literal(v)) for k, v in changes.items()]
    assignments.append(sql.SQL("updated_at = now()"))
    execute(conn, sql.SQL("UPDATE {} SET {} WHERE {}").format(TABLE, sql.SQL(", ").join(assignments), _eq("id", entry_id)))


def record_failure(conn, entry_id: int, error: str, retry_in: float | None = None, run_id: str | None = None) -> None:
    """The entry's load failed; with `retry_in` (seconds) the landing sensor requests it again from then on."""
    retry_at = sql.SQL("NULL") if retry_in is None else sql.SQL("now() + make_interval(secs => {})").format(sql.Literal(float(retry_in)))
    run = sql.SQL("") if run_id is None else sql.SQL(", run_id = {}").format(sql.Literal(run_id))
    execute(
        conn,
        sql.SQL("UPDATE {} SET status = 'failed', error = {}, retry_at = {}, updated_at = now(){} WHERE {}").format(
            TABLE, sql.Literal(error), retry_at, run, _eq("id", entry_id)
        ),
    )


def start_attempt(conn, entry_id: int) -> RegistryEntry:
    """The failed entry is requested again: pending, one attempt more."""
    execute(
        conn,
        sql.SQL("UPDATE {} SET status = 'pending', attempts = attempts + 1, retry_at = NULL, heartbeat_at = NULL, updated_at = now() WHERE {}").format(
            TABLE, _eq("id", entry_id)
        ),
    )
    started = entry(conn, entry_id)
    assert started is not None  # registry entries are never deleted
    return started


def beat(conn, entry_id: int) -> None:
    """A sign of life of the run loading the entry."""
    execute(conn, sql.SQL("UPDATE {} SET heartbeat_at = now() WHERE {}").format(TABLE, _eq("id", entry_id)))


def record_gate(conn, entry_id: int, passed: bool, reason: str) -> None:
    """A loaded file's gate decision: `blocked` with the gate's reason, or `loaded` again."""
    if passed:
        execute(
            conn,
            sql.SQL("UPDATE {} SET status = 'loaded', error = NULL, updated_at = now() WHERE {} AND status = 'blocked'").format(TABLE, _eq("id", entry_id)),
        )
    else:
        execute(
            conn,
            sql.SQL("UPDATE {} SET status = 'blocked', error = {}, updated_at = now() WHERE {} AND status IN ('loaded', 'blocked')").format(
                TABLE, sql.Literal(reason), _eq("id", entry_id)
            ),
        )


def entries(conn, source: str | None = None) -> list[RegistryEntry]:
    return _entries(conn, _eq("source", source) if source else sql.SQL("TRUE"))


def current_versions(conn, sources: Iterable[str]) -> list[RegistryEntry]:
    """The current version of each name of these sources whose rows are in raw (loaded or
    blocked): the name's latest landing, by id."""
    wanted = set(sources)
    in_raw = [e for e in entries(conn) if e.source in wanted and e.status in IN_RAW]
    latest = {(e.source, e.object_key): e for e in in_raw}  # entries come by id: a later landing wins
    return sorted(latest.values(), key=lambda e: e.id)
