"""Plain-English summaries of a file after its load and of a target's merge (no dagster, no
language model): a few short sentences with the numbers, written from the facts the pipeline
recorded in PostgreSQL (bookkeeping.summaries reads them).

`file_summary` and `merge_summary` write the text from their facts (FileFacts, MergeFacts);
`file_facts` and `merge_facts` read those facts; `target_document` is the markdown the export zip
carries as summary.md. Sentences follow the facts: a file whose rows all passed says so rather than
"0 rows rejected", a first file says there was nothing to compare it with. Values from the data
(a key that repeats) are masked as privacy.policy says for the UI, alerts and the CLI.

Reading a file's facts is a dozen small indexed queries: 3.8 ms a file and 2.9 ms a merge on one
open connection (harmonizer_tests/reports' run, 200 reads each), so the assets, the alerts sensor
and the export read them when they need them rather than keeping a table of summaries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import psycopg

from harmonizer_pipeline.bookkeeping import rejected, schema, summaries
from harmonizer_pipeline.bookkeeping.statements import NotMigrated
from harmonizer_pipeline.privacy.masking import scrub_text
from harmonizer_pipeline.privacy.policy import MASKED, source_columns
from harmonizer_pipeline.reports.narrative import rephrased
from harmonizer_pipeline.settings import Settings

FORMATS = {"csv": "CSV", "tsv": "TSV", "excel": "Excel", "json": "JSON", "ndjson": "NDJSON", "xml": "XML", "parquet": "Parquet"}
ENCODINGS = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8 with a byte-order mark", "cp1252": "Windows-1252", "latin-1": "Latin-1", "iso-8859-1": "Latin-1"}
SHOWN_FINDINGS = 3  # quality findings named; the rest are counted
SHOWN_REASONS = 3  # failed checks of the gate named


class SummaryError(LookupError):
    """An unknown source, file or target; the message is one line naming it."""


# Numbers as a person writes them


def count(n: int, noun: str, plural: str | None = None) -> str:
    """`1 file`, `2 files`, `12,345 rows`."""
    return f"{n:,} {noun if n == 1 else (plural or noun + 's')}"


def times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n:,} times")


def percent(share: float) -> str:
    """0.05 -> `5%`, 0.0024 -> `0.24%`: two significant decimals at most."""
    value = share * 100
    text = f"{value:.1f}" if value >= 1 else f"{value:.2f}"
    return text.rstrip("0").rstrip(".") + "%"


def size(n: int) -> str:
    """Bytes as `812 bytes`, `12.3 kB`, `4.5 MB` (decimal units)."""
    if n < 1000:
        return count(n, "byte")
    for unit, scale in (("kB", 1e3), ("MB", 1e6), ("GB", 1e9)):
        if n < scale * 1000 or unit == "GB":
            return f"{n / scale:,.1f} {unit}"
    raise AssertionError("unreachable")


def listed(items: Sequence[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def tally(parts: Sequence[tuple[int, str]], noun: str = "row") -> list[str]:
    """The parts that are not zero, the first with its noun: [(3, 'added'), (0, 'removed'), (1, 'changed')] -> ['3 rows added', '1 changed']."""
    shown = [(n, what) for n, what in parts if n]
    return [f"{count(n, noun) if i == 0 else f'{n:,}'} {what}" for i, (n, what) in enumerate(shown)]


def _columns(names: Sequence[str]) -> str:
    return ", ".join(names)


def _unknown(name: str, kind: str, known: Iterable[str]) -> SummaryError:
    return SummaryError(f"no {kind} {name!r} in harmonizer.yaml ({kind}s: {', '.join(known) or 'none'})")


# The facts


@dataclass(frozen=True)
class GateFacts:
    """The schema gate's latest decision on the file (quality.gate_results)."""

    rows: int
    rejected_rows: int
    max_reject_rate: float
    severity: str  # ok | warn | error
    description: str
    failures: tuple[tuple[str, str, int], ...] = ()  # (check, column or '', failure cases)


@dataclass(frozen=True)
class Finding:
    """A quality finding of the file's profile (quality.recommendations)."""

    column: str
    issue: str
    rows: int


@dataclass(frozen=True)
class KeyFacts:
    """The key the file was analysed on (keys.key_summary, keys.near_keys, keys.duplicate_groups)."""

    columns: tuple[str, ...]  # empty: no key found
    unique: bool
    rows: int  # the rows analysed: those that passed the gate
    declared: bool = False  # the source's key in harmonizer.yaml
    breaking_rows: int = 0  # rows beyond the first of each group sharing a value of the key
    example: Mapping[str, object] | None = None  # one value of the key that repeats
    duplicate_rows: int = 0  # rows repeating another row entirely


@dataclass(frozen=True)
class ComparisonFacts:
    """The file against the previous file of its source on the key (keys.comparisons)."""

    key: tuple[str, ...]
    added: int
    removed: int
    changed: int
    unchanged: int
    added_columns: tuple[str, ...] = ()
    removed_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileFacts:
    """What is known of one file of a source after its load."""

    source: str
    file: str
    status: str  # the registry's: pending, loaded, blocked, failed, duplicate, expired, erased
    size: int | None = None
    rows: int | None = None
    format: str | None = None
    encoding: str | None = None
    error: str | None = None
    gate: GateFacts | None = None
    profiled: bool = False
    findings: tuple[Finding, ...] = ()
    key: KeyFacts | None = None
    previous_file: str | None = None  # None: the first file of its source
    comparison: ComparisonFacts | None = None
    not_compared: str | None = None  # why there is no comparison with the previous file
    drift: tuple[tuple[str, str, str | None, str | None], ...] = ()  # (kind, column, before, after) from the profile
    pii: Mapping[str, str] = field(default_factory=dict)  # PII columns and their kind: their values are masked


@dataclass(frozen=True)
class MergeFacts:
    """A merge of a target (ops.merges, ops.merged_files, quality.rejected_rows, the match candidates)."""

    target: str
    changed: bool  # False: nothing changed since the last merge (then the counts below are zero)
    files: int  # files the target reflects after the merge
    rows: int  # its rows after the merge
    rebuild: bool = False
    files_added: int = 0
    files_removed: int = 0
    keys_affected: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    duplicate_keys: int = 0
    merged_rows: int = 0
    rejected_values: int = 0
    candidates: int | None = None  # None: the target does no fuzzy matching


# The narratives


def file_summary(facts: FileFacts) -> str:
    """A file after its load, in a few sentences."""
    sentences = [_arrival(facts)]
    if facts.status in ("failed", "duplicate", "pending"):
        sentences.append(
            {
                # A reader's error may quote a value of the file.
                "failed": f"It could not be loaded: {scrub_text(facts.error or 'no reason recorded')}.",
                "duplicate": f"It was not loaded: {facts.error}.",
                "pending": "It is being loaded.",
            }[facts.status]
        )
        return " ".join(sentences)
    if facts.status in ("expired", "erased"):
        sentences.append(f"Its rows have since been removed ({facts.status}).")
    sentences += _gate(facts)
    sentences += _findings(facts)
    if facts.status == "blocked":
        sentences.append("Its rows go no further than validated until a corrected file lands.")
        return " ".join(sentences)
    sentences += _key(facts)
    sentences += _drift(facts)
    return " ".join(sentences)


def _arrival(facts: FileFacts) -> str:
    details = []
    if facts.size is not None:
        details.append(size(facts.size))
    if facts.rows is not None:
        details.append(count(facts.rows, "row"))
    if facts.format:
        read = f"read as {FORMATS.get(facts.format, facts.format)}"
        details.append(read + (f" in {ENCODINGS.get(facts.encoding.lower(), facts.encoding)}" if facts.encoding else ""))
    return f"{facts.file} arrived in {facts.source}" + (f": {', '.join(details)}." if details else ".")


def _gate(facts: FileFacts) -> list[str]:
    gate = facts.gate
    if gate is None:
        return []
    if gate.severity == "ok":
        return ["Every row passed the schema gate."]
    if gate.severity == "warn":
        said = (
            f"The schema gate let it through with {gate.rejected_rows:,} of {count(gate.rows, 'row')} ({percent(gate.rejected_rows / gate.rows)})"
            f" set aside in quality.rejected_rows, within the {percent(gate.max_reject_rate)} allowed."
        )
    elif gate.description.startswith("wrong file structure"):
        said = f"The schema gate quarantined the file: its structure is wrong ({gate.description.partition(': ')[2]})."
    else:
        said = (
            f"The schema gate quarantined the file: {gate.rejected_rows:,} of {count(gate.rows, 'row')} ({percent(gate.rejected_rows / gate.rows)})"
            f" failed the schema, more than the {percent(gate.max_reject_rate)} allowed."
        )
    return [said, *_reasons(gate.failures)]


def _reasons(failures: Iterable[tuple[str, str, int]]) -> list[str]:
    ranked = sorted(failures, key=lambda f: (-f[2], f[1], f[0]))
    if not ranked:
        return []
    named = [f"{column} failed {check} {times(n)}" if column else f"{check} failed {times(n)}" for check, column, n in ranked[:SHOWN_REASONS]]
    more = len(ranked) - SHOWN_REASONS
    return [f"Main reasons: {listed(named + ([count(more, 'other check')] if more > 0 else []))}."]


# Each issue of quality.recommendations as a noun, singular and plural, counted in a column.
_ISSUES = {
    "duplicates": ("repeated value", "repeated values"),
    "missing_required": ("missing value", "missing values"),
    "whitespace": ("value with surrounding spaces", "values with surrounding spaces"),
    "inconsistent_case": ("value written several ways", "values written several ways"),
    "invalid_email": ("invalid e-mail address", "invalid e-mail addresses"),
    "invalid_phone": ("invalid phone number", "invalid phone numbers"),
    "mixed_date_formats": ("date in mixed formats", "dates in mixed formats"),
    "outliers": ("outlier", "outliers"),
}


def finding_text(finding: Finding) -> str:
    """`3 invalid e-mail addresses in email`."""
    if finding.issue not in _ISSUES:  # an issue the profile learns later: its name, in words
        return f"{count(finding.rows, 'row')} with {finding.issue.replace('_', ' ')} in {finding.column}"
    singular, plural = _ISSUES[finding.issue]
    return f"{count(finding.rows, singular, plural)} in {finding.column}"


def _findings(facts: FileFacts) -> list[str]:
    if not facts.profiled:
        return []
    if not facts.findings:
        return ["The profile found no quality issues."]
    ranked = sorted(facts.findings, key=lambda f: (-f.rows, f.column, f.issue))
    named = [finding_text(f) for f in ranked[:SHOWN_FINDINGS]]
    more = len(ranked) - SHOWN_FINDINGS
    return [f"The profile found {listed(named + ([count(more, 'other issue')] if more > 0 else []))}."]


def _example(facts: FileFacts, values: Mapping[str, object]) -> str:
    shown = [f"{column} = {MASKED.value(v, facts.pii[column]) if column in facts.pii else v}" for column, v in values.items()]
    return ", ".join(shown)


def _key(facts: FileFacts) -> list[str]:
    key = facts.key
    if key is None:
        return []
    rows = count(key.rows, "row") + (" that passed the gate" if key.rows != facts.rows else "")
    if not key.columns:
        said = ["No unique key or near-key was found."]
    elif key.unique:
        said = [
            f"The declared key {_columns(key.columns)} tells all {rows} apart."
            if key.declared
            else f"{_columns(key.columns)} is a unique key: it tells all {rows} apart."
        ]
    else:
        example = f" (for example {_example(facts, key.example)})" if key.example else ""
        breaking = f"{count(key.breaking_rows, 'row')} {'breaks' if key.breaking_rows == 1 else 'break'} it{example}"
        said = [
            f"The declared key {_columns(key.columns)} does not hold: {breaking}."
            if key.declared
            else f"No column set tells every row apart; {_columns(key.columns)} comes closest: {breaking}."
        ]
    if key.duplicate_rows:
        said.append(f"{count(key.duplicate_rows, 'row')} {'repeats' if key.duplicate_rows == 1 else 'repeat'} another row entirely.")
    return said


_DRIFT = {
    "renamed_column": "{column} was renamed from {before}",
    "type_change": "{column} changed from {before} to {after}",
    "null_rate_jump": "the share of missing values in {column} moved",
    "distinct_rate_jump": "the share of distinct values in {column} moved",
    "new_categories": "{column} has new values",
}


def _drift(facts: FileFacts) -> list[str]:
    said = []
    comparison = facts.comparison
    if facts.previous_file is None:
        return [f"It is the first file of {facts.source}: there is nothing to compare it with."]
    if comparison is not None:
        moved = tally([(comparison.added, "added"), (comparison.removed, "removed"), (comparison.changed, "changed")])
        key = _columns(comparison.key)
        if not moved:
            said.append(f"Against the previous file, {facts.previous_file}, nothing changed on {key}: all {count(comparison.unchanged, 'row')} are the same.")
        else:
            unchanged = [f"{comparison.unchanged:,} unchanged"] if comparison.unchanged else []
            said.append(f"Against the previous file, {facts.previous_file}, on {key}: {listed(moved + unchanged)}.")
    elif facts.not_compared:
        said.append(f"It was not compared with the previous file, {facts.previous_file}: {facts.not_compared}.")
    added = comparison.added_columns if comparison else tuple(c for kind, c, _, _ in facts.drift if kind == "added_column")
    removed = comparison.removed_columns if comparison else tuple(c for kind, c, _, _ in facts.drift if kind == "removed_column")
    if added:
        said.append(f"{'Column' if len(added) == 1 else 'Columns'} {listed(list(added))} {'is' if len(added) == 1 else 'are'} new.")
    if removed:
        said.append(f"{'Column' if len(removed) == 1 else 'Columns'} {listed(list(removed))} {'is' if len(removed) == 1 else 'are'} gone.")
    other = [_DRIFT[kind].format(column=c, before=b, after=a) for kind, c, b, a in facts.drift if kind in _DRIFT]
    if other:
        said.append(f"The profile also noticed that {listed(other)}.")
    return said


def merge_summary(facts: MergeFacts) -> str:
    """A merge of a target, in a few sentences."""
    holds = f"{count(facts.rows, 'row')} from {count(facts.files, 'file')}"
    if not facts.changed:
        return f"Nothing changed since the last merge: {facts.target} holds {holds}."
    changes = tally([(facts.inserted, "inserted"), (facts.updated, "updated"), (facts.deleted, "deleted")])
    changed = listed(changes) if changes else "no row changed"
    if facts.rebuild:
        sentences = [f"A rebuild of {facts.target} recomputed every key ({facts.keys_affected:,}) from {count(facts.files, 'file')}: {changed}."]
    else:
        files = []
        if facts.files_added:
            files.append(f"took in {count(facts.files_added, 'new file')}")
        if facts.files_removed:
            files.append(f"let {count(facts.files_removed, 'file')} go")
        sentences = [f"The merge of {facts.target} {listed(files) or 'ran'} and recomputed {count(facts.keys_affected, 'key')}: {changed}."]
        sentences.append(f"{facts.target} now holds {holds}.")
    if facts.merged_rows:
        sentences.append(
            f"{count(facts.merged_rows, 'row')} {'was' if facts.merged_rows == 1 else 'were'} merged into another row with the same key"
            f" ({count(facts.duplicate_keys, 'key')} had more than one row)."
        )
    else:
        sentences.append("No two rows share a key.")
    if facts.rejected_values:
        sentences.append(f"{count(facts.rejected_values, 'value')} could not be standardized and {'was' if facts.rejected_values == 1 else 'were'} rejected.")
    else:
        sentences.append("Every value was standardized.")
    if facts.candidates is not None:
        sentences.append(
            f"Fuzzy matching found {count(facts.candidates, 'candidate pair')} to review." if facts.candidates else "Fuzzy matching found no likely duplicates."
        )
    return " ".join(sentences)


# Reading the facts


def file_facts(conn, settings: Settings, source: str, partition_key: str) -> FileFacts:
    """The facts of the file of `partition_key` in `source`, as recorded now."""
    entry = summaries.file_entry(conn, source, partition_key)
    if entry is None:
        raise SummaryError(f"no file with partition {partition_key!r} in source {source}")
    gate = summaries.gate(conn, source, partition_key)
    profile = summaries.profile_findings(conn, source, partition_key)
    key = summaries.key(conn, source, partition_key)
    compared = summaries.comparison(conn, source, partition_key)
    previous = compared[0] if compared else summaries.previous_partition(conn, source, partition_key)
    pii = source_columns(settings.privacy, source, profile.pii if profile else {})
    declared = settings.sources[source].key if source in settings.sources else None
    return FileFacts(
        source=source,
        file=entry.object_key,
        status=entry.status,
        size=entry.size,
        rows=entry.rows,
        format=entry.format,
        encoding=entry.encoding,
        error=entry.error,
        gate=GateFacts(*gate) if gate else None,
        profiled=profile is not None,
        findings=tuple(Finding(*f) for f in profile.findings) if profile else (),
        key=None
        if key is None
        else KeyFacts(
            tuple(key.columns),
            key.unique,
            key.rows,
            declared is not None and list(declared) == list(key.columns),
            key.breaking_rows,
            key.example,
            key.duplicate_rows,
        ),  # fmt: skip
        previous_file=None if previous is None else summaries.file_name(conn, source, previous),
        comparison=ComparisonFacts(*compared[1:]) if compared else None,
        not_compared=None if compared else summaries.not_compared(conn, source, partition_key),
        drift=tuple(profile.drift) if profile else (),
        pii=pii,
    )


def merge_facts(conn, settings: Settings, target: str, *, changed: bool = True) -> MergeFacts:
    """The facts of the target's latest merge; with `changed` False, of a merge that found nothing
    to do after it (the target as the latest merge left it)."""
    if target not in settings.targets:
        raise _unknown(target, "target", settings.targets)
    merge = summaries.latest_merge(conn, target)
    files = summaries.merged_file_count(conn, target)
    if merge is None:
        return MergeFacts(target, changed=False, files=files, rows=0)
    rejected_values = rejected.count_harmonize_rejections(conn, settings.sources_of(target))
    candidates = summaries.match_candidates(conn, target) if settings.targets[target].match else None
    if not changed:
        return MergeFacts(target, changed=False, files=files, rows=merge.rows, duplicate_keys=merge.duplicate_keys, merged_rows=merge.merged_rows)
    return MergeFacts(
        target, True, files, merge.rows, merge.rebuild, merge.files_added, merge.files_removed, merge.keys_affected, merge.inserted,
        merge.updated, merge.deleted, merge.duplicate_keys, merge.merged_rows, rejected_values, candidates,
    )  # fmt: skip


def file_text(conn, settings: Settings, source: str, partition_key: str) -> str:
    return _told(settings, file_summary(file_facts(conn, settings, source, partition_key)))


def merge_text(conn, settings: Settings, target: str) -> str | None:
    """The summary of the target's latest merge; None before its first."""
    if summaries.latest_merge(conn, target) is None:
        return None
    return _told(settings, merge_summary(merge_facts(conn, settings, target)))


def _told(settings: Settings, text: str) -> str:
    """The text as people read it: the model's wording where summaries.llm asks for it (reports.narrative)."""
    return rephrased(text) if settings.summaries.llm else text


def target_document(conn, settings: Settings, target: str) -> str:
    """summary.md of the target's export: its latest merge, then each file it reflects."""
    lines = [f"# {target}", "", "## The latest merge", "", merge_text(conn, settings, target) or "No merge yet.", ""]
    files = summaries.merged_files(conn, target)
    lines += ["## The files merged", ""]
    for source, partition_key in files:
        facts = file_facts(conn, settings, source, partition_key)
        lines += [f"### {source}: {facts.file}", "", _told(settings, file_summary(facts)), ""]
    if not files:
        lines += ["None.", ""]
    return "\n".join(lines)


def alert_narrative(conn, settings: Settings, job: str, partition: str | None) -> str | None:
    """The summary an alert about a run of `job` carries: the file's, for a load or profile of a
    source's file (`partition`); the target's latest merge, for a merge or rebuild (after a failed
    one, the merge before it); None for other jobs and before anything was recorded."""
    for target in settings.targets:
        if job in (f"harmonize_{target}", f"rebuild_{target}"):
            return merge_text(conn, settings, target)
    source = next((job.removeprefix(prefix) for prefix in ("load_", "profile_") if job.startswith(prefix)), None)
    if source is None or partition is None or summaries.file_entry(conn, source, partition) is None:
        return None
    return file_text(conn, settings, source, partition)


# Choosing what to summarize (the CLI)


def choose(conn, settings: Settings, source: str | None, file: str | None, target: str | None) -> list[tuple[str, str, str]]:
    """The summaries asked for, as (kind, source or target, partition key or ''): with no option
    the latest file of each source and every target; raises SummaryError naming what is unknown."""
    if source is not None and source not in settings.sources:
        raise _unknown(source, "source", settings.sources)
    if target is not None and target not in settings.targets:
        raise _unknown(target, "target", settings.targets)
    chosen: list[tuple[str, str, str]] = []
    sources = [source] if source else ([] if target and not file else list(settings.sources))
    if file is not None:
        found = summaries.files_named(conn, sources, file)
        if not found:
            raise SummaryError(f"no file {file!r} in " + (f"source {source}" if source else "any source"))
        chosen += [("file", s, p) for s, p in found]
    else:
        chosen += [("file", s, p) for s, p in summaries.latest_files(conn, sources)]
    if target is not None:
        chosen.append(("target", target, ""))
    elif source is None and file is None:
        chosen += [("target", t, "") for t in settings.targets]
    return chosen


def text_of(conn, settings: Settings, kind: str, name: str, partition_key: str) -> tuple[str, str]:
    """(heading, summary) of one thing `choose` chose."""
    if kind == "file":
        facts = file_facts(conn, settings, name, partition_key)
        return f"{name}: {facts.file}", file_summary(facts)
    return f"target {name}", merge_text(conn, settings, name) or f"{name} has not been merged yet."


def requested(conn, settings: Settings, source: str | None, file: str | None, target: str | None) -> list[tuple[str, str]]:
    """(heading, summary) of each summary `harmonizer summary` prints for these options; raises
    NotMigrated when the database lacks the bookkeeping tables (or their columns) the summaries read."""
    try:
        return [text_of(conn, settings, *chosen) for chosen in choose(conn, settings, source, file, target)]
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn) as error:
        raise NotMigrated(f"the bookkeeping tables are not at revision {schema.head()} ({error.diag.message_primary}): run `harmonizer db migrate`") from None
