"""The bookkeeping tables' migrations: a database filled by the releases before them is adopted
in place by `harmonizer db migrate`, rows kept, with exactly the schema a new database gets;
migrating again changes nothing; a database nobody migrated says so in one line; the revisions
form one line to the head that start-up applies; migrating loads no dagster (that no bookkeeping
module does is code_location/test_module_boundaries.py's to show)."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from click.testing import CliRunner

from harmonizer_pipeline import bookkeeping
from harmonizer_pipeline.bookkeeping import schema
from harmonizer_pipeline.bookkeeping.statements import NotMigrated
from harmonizer_pipeline.cli import main
from harmonizer_pipeline.storage import postgres
from harmonizer_tests.ingest.test_ingest_pipeline import make_defs, tick

PREVIOUS_SCHEMA = Path(__file__).with_name("fixtures") / "bookkeeping_before_migrations.sql"
BOOKKEEPING_SCHEMAS = ["ops", "quality", "keys"]
CATALOG = {
    "tables": "SELECT table_schema, table_name, table_type FROM information_schema.tables WHERE table_schema = ANY(%s)",
    "columns": "SELECT table_schema, table_name, ordinal_position, column_name, data_type, udt_name, character_maximum_length,"
    " is_nullable, column_default, is_identity, identity_generation FROM information_schema.columns WHERE table_schema = ANY(%s)",
    "indexes": "SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = ANY(%s)",
    "constraints": "SELECT n.nspname, c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid) FROM pg_constraint k"
    " JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY(%s)",
    "sequences": "SELECT sequence_schema, sequence_name, data_type FROM information_schema.sequences WHERE sequence_schema = ANY(%s)",
}
KEPT_ROWS = ["SELECT * FROM ops.file_registry ORDER BY id", "SELECT * FROM quality.gate_results ORDER BY source, partition_key, checked_at"]


def cli(url: str, *args: str) -> str:
    """`harmonizer db ...` on the database at `url`: its one line of output."""
    result = CliRunner().invoke(main, ["db", *args], env={postgres.DATABASE_URL_ENV: url})
    assert result.exit_code == 0, result.output
    [line] = result.output.splitlines()
    return line


def catalog(url: str) -> dict[str, list[tuple]]:
    """Tables, columns with their types, indexes, constraints and sequences of the bookkeeping schemas."""
    with psycopg.connect(url) as conn:
        return {name: sorted(conn.execute(query, (BOOKKEEPING_SCHEMAS,)).fetchall(), key=repr) for name, query in CATALOG.items()}


def rows(url: str) -> list[list[tuple]]:
    with psycopg.connect(url) as conn:
        return [conn.execute(query).fetchall() for query in KEPT_ROWS]


def test_migrate_adopts_a_database_of_the_previous_schema_rows_kept(new_database):
    previous, fresh = new_database(), new_database()
    with psycopg.connect(previous) as conn:
        conn.execute(PREVIOUS_SCHEMA.read_text())
    before = rows(previous)
    assert [len(table) for table in before] == [4, 4]

    assert cli(previous, "migrate") == f"bookkeeping schema: none -> {schema.head()}"
    assert cli(fresh, "migrate") == f"bookkeeping schema: none -> {schema.head()}"

    adopted, made = catalog(previous), catalog(fresh)
    assert adopted == made
    assert ("ops", "file_registry", "file_registry_status", "c") in [row[:4] for row in made["constraints"]]
    # Rows kept as they were; the registry's columns revision 0005 added are empty in them.
    after = rows(previous)
    assert [row[:-2] for row in after[0]] == before[0] and {row[-2:] for row in after[0]} == {(None, None)}
    assert after[1:] == before[1:]


def test_migrate_again_changes_nothing(new_database):
    url = new_database()
    assert cli(url, "current") == f"bookkeeping schema: none (head is {schema.head()}: run `harmonizer db migrate`)"
    first = cli(url, "migrate")
    migrated = catalog(url)
    assert cli(url, "migrate") == f"bookkeeping schema: {schema.head()} -> {schema.head()}" != first
    assert catalog(url) == migrated
    assert cli(url, "current") == f"bookkeeping schema: {schema.head()} (head)"


def _causes(error) -> Iterator[str]:
    while error is not None:
        yield error.message
        error = error.cause


def test_a_database_nobody_migrated_says_to_migrate_it_in_one_line(new_database, monkeypatch, tmp_path):
    monkeypatch.setenv(postgres.DATABASE_URL_ENV, new_database())
    source = f"src_{secrets.token_hex(4)}"
    (tmp_path / "a.csv").write_text("id\n1\n")
    defs = make_defs(tmp_path, source)
    with dg.instance_for_test() as instance:
        with pytest.raises(NotMigrated) as raised:
            tick(defs, instance)
        instance.add_dynamic_partitions(f"{source}_files", ["a.csv@0"])
        run = defs.resolve_job_def(f"load_{source}").execute_in_process(instance=instance, partition_key="a.csv@0", raise_on_error=False)
    message = str(raised.value)
    assert "\n" not in message and "run `harmonizer db migrate`" in message
    audit = CliRunner().invoke(main, ["audit"])
    assert (audit.exit_code, audit.output) == (2, f"error: {message}\n")
    [failure] = [event for event in run.all_events if event.is_step_failure]
    assert failure.step_key == f"raw__{source}"
    assert any(f"NotMigrated: {message}" in cause for cause in _causes(failure.step_failure_data.error))


def test_summary_on_a_database_nobody_migrated_says_to_migrate_it_in_one_line(new_database, monkeypatch):
    monkeypatch.setenv(postgres.DATABASE_URL_ENV, new_database())
    result = CliRunner().invoke(main, ["summary"])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f'harmonizer summary: the bookkeeping tables are not at revision {schema.head()} (relation "ops.file_registry" does not exist):'
        " run `harmonizer db migrate`\n"
    )


def test_the_revisions_form_one_line_to_the_head_that_start_up_applies(new_database, monkeypatch, tmp_path):
    from harmonizer_pipeline.dagster_home import STORAGE_URL_ENV, prepare_dagster_environment

    script = schema.scripts()
    revisions = list(script.walk_revisions())  # the head first
    assert script.get_heads() == [revisions[0].revision] == [schema.head()]
    assert [r.down_revision for r in revisions] == [r.revision for r in revisions[1:]] + [None]
    assert all(Path(r.path).name.startswith(f"{r.revision}_") for r in revisions)

    # What `harmonizer demo`, `dev` and `rebuild` run first; its variables are put back after.
    url = new_database()
    for name, value in {postgres.DATABASE_URL_ENV: url, postgres.HOME_ENV: str(tmp_path), "DAGSTER_HOME": "", STORAGE_URL_ENV: ""}.items():
        monkeypatch.setenv(name, value)
    prepare_dagster_environment()
    assert schema.current(url) == schema.head()

    # Every bookkeeping table the code names is one the migrations made.
    named = {
        match.groups()
        for module in Path(bookkeeping.__file__).parent.glob("*.py")
        for match in re.finditer(r"(?<![\w.])(ops|quality|keys)\.([a-z_]+)\b", module.read_text())
    }
    made = {(table_schema, table) for table_schema, table, _ in catalog(url)["tables"]}
    assert named and named <= made, sorted(named - made)


def test_migrating_loads_no_dagster(new_database):
    code = "import sys; from harmonizer_pipeline.bookkeeping import schema; schema.upgrade(sys.argv[1]); assert 'dagster' not in sys.modules"
    done = subprocess.run([sys.executable, "-c", code, new_database()], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
