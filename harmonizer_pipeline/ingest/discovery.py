"""What one sensor tick finds in a landing zone: new files, duplicates, dead loads to try again,
and where to go on.

Exactly-once comes from the file registry, not from the cursor: every listed object is
checked against `ops.file_registry`, so a restart or a lost cursor only costs a re-listing.
The cursor bounds a tick: a zone is swept in slices of `max_listed` objects, and a sweep that
reaches the end starts over, which also finds objects that landed behind the sweep while a
tick ran.

A `pending` file is judged by the runs of its current attempt (`judge`, which the sensor
answers from Dagster's instance): none yet (the request was lost) → requested again with the
same run key, which makes Dagster launch it at most once; one alive → left alone; all over
without loading it (failed, canceled, lost) → `failed` with the reason, and, while attempts
remain, requested again after a backoff under a fresh run key (the attempt is part of it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from harmonizer_pipeline import naming
from harmonizer_pipeline.bookkeeping import audit, registry
from harmonizer_pipeline.ingest.landing import LandedObject, LandingError, LandingZone, LocalLanding
from harmonizer_pipeline.ingest.retries import RetryPolicy
from harmonizer_pipeline.storage.writes import drop_dead_staging

# Tags of a load run: the registry row it loads and which attempt it is.
FILE_ID_TAG = "harmonizer/file_id"
ATTEMPT_TAG = "harmonizer/attempt"


@dataclass(frozen=True)
class FileToLoad:
    source: str
    object_key: str
    version: str
    content_id: str
    partition_key: str
    entry_id: int
    attempt: int

    @property
    def run_key(self) -> str:
        # Content identity plus this landing of it: the same file never loads twice, a fixed
        # re-upload of a failed file still can. Later attempts add their number (the first keeps
        # the key runs requested before attempts existed carry).
        key = f"{self.source}:{self.content_id}:{self.object_key}:{self.version}"
        return key if self.attempt == 1 else f"{key}:attempt-{self.attempt}"

    @property
    def tags(self) -> dict[str, str]:
        return {FILE_ID_TAG: str(self.entry_id), ATTEMPT_TAG: str(self.attempt)}


@dataclass(frozen=True)
class RunVerdict:
    """What became of the runs of a pending file's current attempt."""

    state: str  # "none" (no run yet), "alive", "dead"
    reason: str | None = None  # why it is dead
    run_id: str | None = None  # the dead run

    @classmethod
    def none(cls) -> RunVerdict:
        return cls("none")

    @classmethod
    def alive(cls) -> RunVerdict:
        return cls("alive")

    @classmethod
    def dead(cls, reason: str, run_id: str | None) -> RunVerdict:
        return cls("dead", reason, run_id)


@dataclass
class TickPlan:
    to_load: list[FileToLoad] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # object keys recorded as duplicate
    dead: list[str] = field(default_factory=list)  # why loads that died were recorded failed
    skipped: list[str] = field(default_factory=list)  # why listed objects could not be registered this tick
    listed: int = 0
    next_start_after: str | None = None


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def content_id(zone: LandingZone, obj: LandedObject) -> str:
    """A content identity available without loading: SHA-256 of a local file, B2's SHA-1."""
    if isinstance(zone, LocalLanding):
        return f"sha256:{zone.sha256(obj)}"
    # B2 has no SHA-1 for some large files; the object's version then stands for the content.
    return f"sha1:{obj.content_sha1}" if obj.content_sha1 else f"version:{obj.version}"


def _to_load(entry: registry.RegistryEntry) -> FileToLoad:
    return FileToLoad(entry.source, entry.object_key, entry.object_version, entry.content_id, entry.partition_key, entry.id, entry.attempts)


def _sha256(entry: registry.RegistryEntry) -> str | None:
    if entry.sha256:
        return entry.sha256
    return entry.content_id.removeprefix("sha256:") if entry.content_id.startswith("sha256:") else None  # B2: a SHA-1 or a version


def plan_tick(
    conn,
    zone: LandingZone,
    source: str,
    start_after: str | None,
    max_listed: int,
    max_new: int,
    launched_by: str,
    judge: Callable[[registry.RegistryEntry], RunVerdict] = lambda entry: RunVerdict.none(),
    retry: RetryPolicy = RetryPolicy(1, 0.0),
) -> TickPlan:
    """List up to `max_listed` objects after `start_after`, register the new ones (pending or
    duplicate) in the caller's transaction and say which files to load: new ones, pending ones
    whose request was lost, and failed ones whose retry is due (at most `max_new` of those).
    Duplicates and dead loads are audited there too, as found by `launched_by` (the sensor)."""
    plan = TickPlan()
    listed = list(islice(zone.list_objects(start_after=start_after), max_listed))
    plan.listed = len(listed)
    statuses = registry.statuses(conn, source, [o.key for o in listed])
    requested = 0
    audited = []  # audit rows of duplicates and dead loads, added at once in this transaction
    for obj in listed:
        entry = statuses.get((obj.key, obj.version))
        if entry is not None and entry.status == "pending":
            verdict = judge(entry)
            if verdict.state == "none":
                plan.to_load.append(_to_load(entry))
            if verdict.state != "dead":
                continue
            entry = _record_dead(conn, entry, verdict, retry, launched_by, plan, audited)
        if entry is not None and not (entry.status == "failed" and entry.retry_due):
            continue
        if requested >= max_new:
            # Enough for one tick: the next one takes this slice again; the registry skips what is done.
            plan.next_start_after = start_after
            break
        if entry is not None:
            requested += 1
            plan.to_load.append(_to_load(registry.start_attempt(conn, entry.id)))
            continue
        try:
            identity = content_id(zone, obj)
        except LandingError as exc:
            # Changed or gone while hashed: its next version is listed on a later sweep.
            plan.skipped.append(str(exc))
            continue
        requested += 1
        twin = registry.current_twin(conn, source, content_id=identity)
        if twin is not None:
            why = f"same content as {twin.object_key} ({twin.status})"
            registry.register(conn, source, obj, identity, "duplicate", error=why)
            sha256 = identity.removeprefix("sha256:") if identity.startswith("sha256:") else None
            audited.append(audit.AuditEntry("load", "duplicate", "", launched_by, str(naming.raw(source)), file=obj.key, sha256=sha256, detail=why))
            plan.duplicates.append(obj.key)
            continue
        plan.to_load.append(_to_load(registry.register(conn, source, obj, identity, "pending")))
    else:
        plan.next_start_after = listed[-1].key if len(listed) == max_listed else None
    if audited:
        audit.record(conn, *audited)
    return plan


def _record_dead(conn, entry, verdict: RunVerdict, retry: RetryPolicy, launched_by: str, plan: TickPlan, audited: list) -> registry.RegistryEntry:
    """Record a pending file whose run died as failed (to be retried while attempts remain), drop
    the staging tables its write left behind, and return its entry as it now is."""
    message = f"{verdict.reason} ({retry.describe(entry.attempts)})"
    registry.record_failure(conn, entry.id, message, retry.delay(entry.attempts), run_id=verdict.run_id)
    raw = naming.raw(entry.source)
    drop_dead_staging(conn, raw.schema, raw.table)
    audited.append(audit.AuditEntry(
        "load", "failed", verdict.run_id or "", launched_by, str(raw), entry.partition_key,
        file=entry.object_key, sha256=_sha256(entry), detail=message,
    ))  # fmt: skip
    plan.dead.append(f"{entry.object_key}: {message}")
    recorded = registry.entry(conn, entry.id)
    assert recorded is not None  # registry entries are never deleted
    return recorded
