"""The read-only database roles: `harmonizer db roles` run twice, then login users holding
harmonizer_reader or harmonizer_steward connect as themselves; each reads its schemas (a table
the owner made after the roles too, through default privileges) and is refused the rest and
every write with SQLSTATE 42501. Grants given too broadly are taken back; runs from several
processes on two databases at once agree; `harmonizer db migrate` applies them; a login that may
not apply them says so in one line."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from harmonizer_pipeline.bookkeeping import roles, schema
from harmonizer_pipeline.cli import main
from harmonizer_pipeline.storage import postgres

READER, STEWARD = roles.READER.name, roles.STEWARD.name
SECOND_RUN = [
    f"{READER} (exists): reads harmonized; 0 granted, 0 revoked",
    f"{STEWARD} (exists): reads quality, keys, ops, what {READER} reads; 0 granted, 0 revoked",
]
PATIENTS = [(1, "Ada"), (2, "Grace")]


def db_roles(url: str, *args: str) -> list[str]:
    """`harmonizer db roles` on the database at `url`: its lines."""
    result = CliRunner().invoke(main, ["db", "roles", *args], env={postgres.DATABASE_URL_ENV: url})
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def run(url: str, *statements: str | sql.Composed) -> None:
    """Statements as the owner: the session's login, which the pipeline runs as."""
    with psycopg.connect(url) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.fixture
def migrated(new_database) -> str:
    """A new database with the bookkeeping tables (no roles applied in it yet) and a table in raw and validated."""
    url = new_database()
    schema.upgrade(url)
    run(url, "CREATE SCHEMA raw", "CREATE TABLE raw.clinic_a (id text)", "CREATE SCHEMA validated", "CREATE TABLE validated.clinic_a (id bigint)")
    return url


@pytest.fixture
def login(server_url: str) -> Iterator[Callable[..., psycopg.Connection]]:
    """Makes a LOGIN user holding the given roles and returns a connection as that user to the database at a URL."""
    made: list[str] = []
    connections: list[psycopg.Connection] = []

    def connect_as_new_user(url: str, *groups: str, createrole: bool = False) -> psycopg.Connection:
        user, password = f"u_{secrets.token_hex(4)}", secrets.token_hex(12)
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(user), sql.Literal(password)))
            made.append(user)
            for group in groups:
                admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(user)))
        connection = psycopg.connect(url, user=user, password=password, autocommit=True)
        connections.append(connection)
        return connection

    yield connect_as_new_user
    for connection in connections:
        connection.close()
    with psycopg.connect(server_url, autocommit=True) as admin:
        for user in made:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(user)))


def refused(conn: psycopg.Connection, statement: str) -> tuple[str | None, str]:
    """The SQLSTATE and message PostgreSQL refuses `statement` with."""
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as raised:
        conn.execute(statement)
    return raised.value.sqlstate, raised.value.diag.message_primary or ""


def tables(url: str, schema_name: str) -> list[str]:
    with psycopg.connect(url) as conn:
        found = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY table_name", (schema_name,))
        return [name for (name,) in found]


def granted(url: str, owner: str) -> list[str]:
    """What the first run on a new database grants, schema by schema in name order."""
    database = postgres.database_of(url)
    reader = [
        f"  granted CONNECT ON DATABASE {database}",
        "  granted USAGE ON SCHEMA harmonized",
        f"  granted SELECT ON future tables of {owner} in SCHEMA harmonized",
    ]
    steward = [f"  granted CONNECT ON DATABASE {database}"]
    for name in ("keys", "ops", "quality"):
        steward += [f"  granted USAGE ON SCHEMA {name}", f"  granted SELECT ON future tables of {owner} in SCHEMA {name}"]
        steward += [f"  granted SELECT ON TABLE {name}.{table}" for table in tables(url, name)]
    return [*reader, *steward]


def test_reader_reads_harmonized_only_steward_also_quality_keys_ops_neither_writes(migrated, login):
    with psycopg.connect(migrated) as conn:
        owner = conn.execute("SELECT current_user").fetchone()[0]
    first = db_roles(migrated, "--verbose")
    # Roles and memberships are the server's: an earlier run elsewhere may have made them.
    assert [line for line in first if not line.startswith(("harmonizer_", f"  granted ROLE {READER}"))] == granted(migrated, owner)
    assert db_roles(migrated) == SECOND_RUN
    assert "rejected_rows" in tables(migrated, "quality") and "file_registry" in tables(migrated, "ops")

    # Made by the owner after the roles: readable through the default privileges alone.
    run(
        migrated,
        "CREATE TABLE harmonized.patients (id bigint PRIMARY KEY, name text)",
        "INSERT INTO harmonized.patients VALUES (1, 'Ada'), (2, 'Grace')",
        "CREATE VIEW harmonized.patient_names AS SELECT name FROM harmonized.patients",
        "CREATE TABLE keys.clinic_a (key text[])",
        "INSERT INTO keys.clinic_a VALUES ('{id}')",
    )

    reader = login(migrated, READER)
    assert reader.execute("SELECT * FROM harmonized.patients ORDER BY id").fetchall() == PATIENTS
    assert reader.execute("SELECT * FROM harmonized.patient_names ORDER BY name").fetchall() == [("Ada",), ("Grace",)]
    for table in ("raw.clinic_a", "validated.clinic_a", "quality.rejected_rows", "ops.file_registry", "keys.clinic_a"):
        assert refused(reader, f"SELECT * FROM {table}") == ("42501", f"permission denied for schema {table.split('.')[0]}")
    for statement in (
        "INSERT INTO harmonized.patients VALUES (3, 'Eve')",
        "UPDATE harmonized.patients SET name = 'Eve'",
        "DELETE FROM harmonized.patients",
        "TRUNCATE harmonized.patients",
    ):
        assert refused(reader, statement) == ("42501", "permission denied for table patients")
    assert refused(reader, "CREATE TABLE harmonized.mine (id int)") == ("42501", "permission denied for schema harmonized")

    steward = login(migrated, STEWARD)
    assert steward.execute("SELECT * FROM harmonized.patients ORDER BY id").fetchall() == PATIENTS
    assert steward.execute("SELECT * FROM keys.clinic_a").fetchall() == [(["id"],)]
    assert steward.execute("SELECT count(*) FROM quality.rejected_rows").fetchone() == (0,)
    assert steward.execute("SELECT count(*) FROM ops.file_registry").fetchone() == (0,)
    for table in ("raw.clinic_a", "validated.clinic_a"):
        assert refused(steward, f"SELECT * FROM {table}") == ("42501", f"permission denied for schema {table.split('.')[0]}")
    assert refused(steward, "DELETE FROM ops.file_registry") == ("42501", "permission denied for table file_registry")
    assert refused(steward, "UPDATE quality.rejected_rows SET source = ''") == ("42501", "permission denied for table rejected_rows")
    assert refused(steward, "INSERT INTO keys.clinic_a VALUES ('{x}')") == ("42501", "permission denied for table clinic_a")
    assert refused(steward, "CREATE TABLE ops.mine (id int)") == ("42501", "permission denied for schema ops")
    assert db_roles(migrated) == SECOND_RUN


def test_grants_given_too_broadly_are_taken_back(migrated, login):
    db_roles(migrated)
    database = postgres.database_of(migrated)
    run(
        migrated,
        "CREATE TABLE harmonized.patients (id bigint)",
        "INSERT INTO harmonized.patients VALUES (1)",
        f"GRANT INSERT, UPDATE ON harmonized.patients TO {READER}",
        f"GRANT CREATE ON SCHEMA harmonized TO {READER}",
        f"GRANT USAGE ON SCHEMA raw TO {READER}",
        f"GRANT SELECT ON raw.clinic_a TO {READER}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA harmonized GRANT DELETE ON TABLES TO {READER}",
        sql.SQL("GRANT TEMPORARY ON DATABASE {} TO {}").format(sql.Identifier(database), sql.Identifier(READER)),
        f"GRANT INSERT ON ops.file_registry TO {STEWARD}",
    )
    with psycopg.connect(migrated) as conn:
        owner = conn.execute("SELECT current_user").fetchone()[0]

    assert db_roles(migrated, "-v") == [
        f"{READER} (exists): reads harmonized; 4 granted, 6 revoked",
        f"  granted CONNECT ON DATABASE {database}",
        "  granted USAGE ON SCHEMA harmonized",
        f"  granted SELECT ON future tables of {owner} in SCHEMA harmonized",
        "  granted SELECT ON TABLE harmonized.patients",
        f"  revoked TEMPORARY ON DATABASE {database}",
        "  revoked CREATE ON SCHEMA harmonized",
        f"  revoked DELETE ON future tables of {owner} in SCHEMA harmonized",
        "  revoked INSERT, UPDATE ON TABLE harmonized.patients",
        "  revoked USAGE ON SCHEMA raw",
        "  revoked SELECT ON TABLE raw.clinic_a",
        f"{STEWARD} (exists): reads quality, keys, ops, what {READER} reads; 1 granted, 1 revoked",
        "  granted SELECT ON TABLE ops.file_registry",
        "  revoked INSERT ON TABLE ops.file_registry",
    ]
    assert db_roles(migrated) == SECOND_RUN
    reader = login(migrated, READER)
    assert reader.execute("SELECT * FROM harmonized.patients").fetchall() == [(1,)]
    assert refused(reader, "INSERT INTO harmonized.patients VALUES (2)") == ("42501", "permission denied for table patients")
    assert refused(reader, "SELECT * FROM raw.clinic_a") == ("42501", "permission denied for schema raw")
    assert refused(reader, "CREATE TABLE harmonized.mine (id int)") == ("42501", "permission denied for schema harmonized")
    steward = login(migrated, STEWARD)
    assert refused(steward, "DELETE FROM ops.file_registry") == ("42501", "permission denied for table file_registry")


def test_migrate_applies_them(new_database):
    url = new_database()
    result = CliRunner().invoke(main, ["db", "migrate"], env={postgres.DATABASE_URL_ENV: url})
    assert (result.exit_code, result.output) == (0, f"bookkeeping schema: none -> {schema.head()}\n")
    assert db_roles(url) == SECOND_RUN


APPLY = (
    "import sys; from harmonizer_pipeline.bookkeeping.roles import Role, apply;"
    " reader, steward = sys.argv[2:]; apply(sys.argv[1], roles=(Role(reader, ('harmonized',)), Role(steward, ('ops',), member_of=(reader,))))"
)


def test_runs_from_several_processes_on_two_databases_at_once_agree(new_database, server_url):
    # Roles of this test only, so that creating them races for real; dropped after.
    reader, steward = f"t_reader_{secrets.token_hex(3)}", f"t_steward_{secrets.token_hex(3)}"
    declared = (roles.Role(reader, ("harmonized",)), roles.Role(steward, ("ops",), member_of=(reader,)))
    databases = [new_database(), new_database()]
    try:
        processes = [subprocess.Popen([sys.executable, "-c", APPLY, url, reader, steward], stderr=subprocess.PIPE, text=True) for url in databases * 2]
        for process in processes:
            assert process.wait(timeout=120) == 0, process.stderr.read() if process.stderr else ""
        for url in databases:
            assert [(c.name, c.created, c.granted, c.revoked) for c in roles.apply(url, roles=declared)] == [(reader, False, [], []), (steward, False, [], [])]
            with psycopg.connect(url) as conn:
                held = conn.execute(
                    "SELECT has_schema_privilege(%(r)s, 'harmonized', 'USAGE'), has_schema_privilege(%(r)s, 'ops', 'USAGE'),"
                    " has_schema_privilege(%(s)s, 'harmonized', 'USAGE'), has_schema_privilege(%(s)s, 'ops', 'USAGE'),"
                    " pg_has_role(%(s)s, %(r)s, 'MEMBER'), (SELECT rolcanlogin FROM pg_roles WHERE rolname = %(r)s)",
                    {"r": reader, "s": steward},
                ).fetchone()
            assert held == (True, False, True, True, True, False)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            for url in databases:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(sql.SQL("DROP OWNED BY {}, {}").format(sql.Identifier(reader), sql.Identifier(steward)))
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}, {}").format(sql.Identifier(steward), sql.Identifier(reader)))


def test_a_login_that_may_not_apply_them_says_so_in_one_line(migrated, new_database, login):
    roles.apply(new_database())  # the roles exist on the server: only creating the schema below is refused
    user = login(migrated)
    as_user = psycopg.conninfo.make_conninfo(migrated, user=user.info.user, password=user.info.password)
    how = "run `harmonizer db roles` as a role with CREATEROLE that owns the pipeline's schemas and tables or is a member of their owner"
    with pytest.raises(roles.RolesError) as raised:
        roles.apply(as_user, roles=(roles.Role(f"t_never_{secrets.token_hex(3)}", ("harmonized",)),))
    assert str(raised.value) == f"login {user.info.user!r} may not apply the database roles (permission denied to create role): {how}"
    # What `harmonizer db migrate` prints as a warning (and still migrates): harmonized does not exist and this login may not create it.
    database = postgres.database_of(migrated)
    assert (
        roles.apply_after_migrations(as_user)
        == f"database roles not applied: login {user.info.user!r} may not apply the database roles (permission denied for database {database}): {how}"
    )

    result = CliRunner().invoke(main, ["db", "roles", "--owner", "nobody_here"], env={postgres.DATABASE_URL_ENV: migrated})
    assert (result.exit_code, result.output) == (1, "Error: --owner: no role 'nobody_here' on the server\n")
