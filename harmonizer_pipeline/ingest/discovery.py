"""What one sensor tick finds in a landing zone: new files, duplicates, and where to go on.

Exactly-once comes from the file registry, not from the cursor: every listed object is
checked against `ops.file_registry`, so a restart or a lost cursor only costs a re-listing.
The cursor bounds a tick: a zone is swept in slices of `max_listed` objects, and a sweep that
reaches the end starts over, which also finds objects that landed behind the sweep while a
tick ran. Files still `pending` are requested again; their run key (the content identity)
makes Dagster launch each at most once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from harmonizer_pipeline.ingest import registry
from harmonizer_pipeline.ops import audit
from harmonizer_pipeline.resources.landing import LandedObject, LandingError, LandingZone, LocalLanding


@dataclass(frozen=True)
class FileToLoad:
    object_key: str
    version: str
    content_id: str
    partition_key: str


@dataclass
class TickPlan:
    to_load: list[FileToLoad] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # object keys recorded as duplicate
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


def plan_tick(
    conn, zone: LandingZone, source: str, start_after: str | None, max_listed: int, max_new: int, launched_by: str
) -> TickPlan:
    """List up to `max_listed` objects after `start_after`, register the new ones (pending or
    duplicate) in the caller's transaction and say which files to load. A duplicate is audited
    there too, as set aside by `launched_by` (the sensor): no run ever sees it."""
    plan = TickPlan()
    listed = list(islice(zone.list_objects(start_after=start_after), max_listed))
    plan.listed = len(listed)
    statuses = registry.statuses(conn, source, [o.key for o in listed])
    new_count = 0
    duplicates = []  # their audit rows, added at once (in this transaction, with their registration)
    for obj in listed:
        entry = statuses.get((obj.key, obj.version))
        if entry is not None:
            if entry.status == "pending":
                plan.to_load.append(FileToLoad(obj.key, obj.version, entry.content_id, entry.partition_key))
            continue
        if new_count >= max_new:
            # Enough for one tick: the next one takes this slice again; the registry skips what is done.
            plan.next_start_after = start_after
            break
        try:
            identity = content_id(zone, obj)
        except LandingError as exc:
            # Changed or gone while hashed: its next version is listed on a later sweep.
            plan.skipped.append(str(exc))
            continue
        new_count += 1
        twin = registry.live_entry_with_content(conn, source, content_id=identity)
        if twin is not None:
            why = f"same content as {twin.object_key} ({twin.status})"
            registry.register(conn, source, obj, identity, "duplicate", error=why)
            sha256 = identity.removeprefix("sha256:") if identity.startswith("sha256:") else None  # B2: a SHA-1 or a version
            duplicates.append(audit.AuditEntry("load", "duplicate", "", launched_by, f"raw/{source}", file=obj.key, sha256=sha256, detail=why))
            plan.duplicates.append(obj.key)
            continue
        entry = registry.register(conn, source, obj, identity, "pending")
        plan.to_load.append(FileToLoad(obj.key, obj.version, identity, entry.partition_key))
    else:
        plan.next_start_after = listed[-1].key if len(listed) == max_listed else None
    if duplicates:
        audit.record(conn, *duplicates)
    return plan

