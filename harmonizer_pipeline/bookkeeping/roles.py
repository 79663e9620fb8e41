"""The database roles harmonizer manages: NOLOGIN group roles an administrator grants to login
users (`GRANT harmonizer_reader TO alice`), read-only, applied by `harmonizer db roles` and
`harmonizer db migrate`.

`harmonizer_reader` reads schema `harmonized`; `harmonizer_steward` is a member of it and also
reads `quality`, `keys` and `ops`. Each role ends up holding exactly that in the pipeline's
schemas: SELECT on every table and view there now, and, through default privileges, on those the
pipeline's login (the owner) creates later; USAGE on the schemas; CONNECT on the database. A
privilege an earlier grant gave them beyond that (a write, CREATE, a schema they should not read)
is revoked; nothing is granted or revoked that already is as it should be, so running it again
changes nothing in the catalogs.

Roles and memberships are cluster-wide, grants are per database. Within one database runs take
turns on an advisory lock (as the migrations do); across databases, a role or membership another
process created meanwhile is taken as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, LiteralString, cast

import psycopg
from psycopg import sql

from harmonizer_pipeline import naming

ROLES_LOCK = "harmonizer database roles"
# The pipeline's schemas: a managed role holds no privilege in one it does not read.
PIPELINE_SCHEMAS = tuple(
    sorted(
        {
            stage("_").schema
            for stage in (naming.raw, naming.validated, naming.profile, naming.keys, naming.staged, naming.trends, naming.harmonized, naming.export)
        }
    )
)
# Tables, partitioned tables, views, materialized views, foreign tables.
RELATION_KINDS = ["r", "p", "v", "m", "f"]


@dataclass(frozen=True)
class Role:
    """A NOLOGIN role that reads `schemas`, and through membership what the roles `member_of` read."""

    name: str
    schemas: tuple[str, ...]
    member_of: tuple[str, ...] = ()


READER = Role("harmonizer_reader", ("harmonized",))
STEWARD = Role("harmonizer_steward", ("quality", "keys", "ops"), member_of=(READER.name,))
ROLES = (READER, STEWARD)


class RolesError(RuntimeError):
    """The roles cannot be applied as this login; the message is one line saying what to do."""


@dataclass
class RoleChanges:
    """What applying changed for one role: `created`, and each privilege granted or revoked, as the
    object it is on (`TABLE harmonized.patients`, `future tables of harmonizer in SCHEMA harmonized`)."""

    name: str
    created: bool = False
    granted: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    # Objects whose owner this login cannot act for, where the role holds other than it should: left alone.
    not_owned: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Privileges:
    """One object a role holds privileges on: `held` now, `wanted` by the declaration."""

    name: str  # how messages name it: TABLE harmonized.patients
    on: sql.Composable  # how GRANT names it: TABLE "harmonized"."patients"
    held: frozenset[str]
    wanted: frozenset[str]
    # Whether this login can act for the object's owner: a GRANT by anyone else only warns.
    may_grant: bool = True
    prefix: sql.Composable = field(default_factory=lambda: sql.Composed([]))  # ALTER DEFAULT PRIVILEGES ... for default privileges


def apply(url: str, owner: str | None = None, roles: Sequence[Role] = ROLES) -> list[RoleChanges]:
    """Create the `roles` where missing and bring their privileges in the database at `url` to
    their declaration, default privileges for tables `owner` (default: this login) creates; in one
    transaction. Raises RolesError when this login may not."""
    with psycopg.connect(url) as conn:
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (ROLES_LOCK,))
                creator: str = owner or _scalar(conn, "SELECT current_user")
                if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (creator,)).fetchone() is None:
                    raise RolesError(f"--owner: no role {creator!r} on the server")
                changes = [_ensure_role(conn, role) for role in roles]
                for role, changed in zip(roles, changes):
                    _ensure_memberships(conn, role, roles, changed)
                    _converge_database(conn, role, changed)
                    for schema in _schemas(roles):
                        _converge_schema(conn, role, schema, creator, changed)
                return changes
        except psycopg.errors.InsufficientPrivilege as exc:
            raise RolesError(
                f"login {conn.info.user!r} may not apply the database roles ({exc.diag.message_primary}): run `harmonizer db roles`"
                " as a role with CREATEROLE that owns the pipeline's schemas and tables or is a member of their owner"
            ) from None


def apply_after_migrations(url: str) -> str | None:
    """Apply the roles as `harmonizer db migrate` does after the upgrade (and so demo, dev, rebuild
    and the deployments at start): None when applied, else the one line why not. A login without
    CREATEROLE still migrates; nobody can read through roles that do not exist."""
    try:
        apply(url)
    except RolesError as exc:
        return f"database roles not applied: {exc}"
    return None


def _schemas(roles: Sequence[Role]) -> list[str]:
    """The pipeline's schemas and any other a role reads."""
    return sorted({*PIPELINE_SCHEMAS, *(schema for role in roles for schema in role.schemas)})


def _scalar(conn: psycopg.Connection, query: LiteralString, *params) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None  # asked of the session, the connected database or a schema that exists
    return row[0]


def _savepoint_tolerating_a_concurrent_creator(conn: psycopg.Connection, statement: sql.Composed) -> None:
    """Run a cluster-wide statement; another database's run may have done the same meanwhile (the
    advisory lock is per database), which PostgreSQL reports as a duplicate."""
    try:
        with conn.transaction():
            conn.execute(statement)
    except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
        pass


def _ensure_role(conn: psycopg.Connection, role: Role) -> RoleChanges:
    changes = RoleChanges(role.name)
    found = conn.execute("SELECT rolcanlogin, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", (role.name,)).fetchone()
    if found is None:
        _savepoint_tolerating_a_concurrent_creator(conn, sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role.name)))
        changes.created = True
    elif any(found):
        raise RolesError(
            f"role {role.name!r} exists and can log in, is a superuser or bypasses row security: harmonizer manages it as a"
            f" read-only group role; make it NOLOGIN NOSUPERUSER NOBYPASSRLS (ALTER ROLE) and grant it to login users instead"
        )
    return changes


def _ensure_memberships(conn: psycopg.Connection, role: Role, roles: Sequence[Role], changes: RoleChanges) -> None:
    """`role` is a member of the managed roles it declares, and of no other managed role."""
    held = {
        name
        for (name,) in conn.execute(
            "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles r ON r.oid = m.member"
            " WHERE r.rolname = %s AND g.rolname = ANY(%s)",
            (role.name, [r.name for r in roles]),
        )
    }
    for group in sorted(set(role.member_of) - held):
        _savepoint_tolerating_a_concurrent_creator(conn, sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(role.name)))
        changes.granted.append(f"ROLE {group}")
    for group in sorted(held - set(role.member_of)):
        conn.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(group), sql.Identifier(role.name)))
        changes.revoked.append(f"ROLE {group}")


def _held(conn: psycopg.Connection, acl_query: LiteralString, role: Role, *params) -> frozenset[str]:
    """The privileges granted to `role` itself in the ACL the query selects (PUBLIC's are not its to lose)."""
    rows = conn.execute(
        f"SELECT a.privilege_type FROM ({acl_query}) AS acl(items), aclexplode(acl.items) a JOIN pg_roles r ON r.oid = a.grantee WHERE r.rolname = %s",
        (*params, role.name),
    )
    return frozenset(privilege for (privilege,) in rows)


def _converge_database(conn: psycopg.Connection, role: Role, changes: RoleChanges) -> None:
    database = conn.info.dbname
    held = _held(conn, "SELECT datacl FROM pg_database WHERE datname = %s", role, database)
    may_grant = _scalar(conn, "SELECT pg_has_role(datdba, 'USAGE') FROM pg_database WHERE datname = %s", database)
    on = sql.SQL("DATABASE {}").format(sql.Identifier(database))
    _converge(conn, role, _Privileges(f"DATABASE {database}", on, held, frozenset({"CONNECT"}), may_grant), changes)


def _converge_schema(conn: psycopg.Connection, role: Role, schema: str, owner: str, changes: RoleChanges) -> None:
    reads = schema in role.schemas
    exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is not None
    if not exists and not reads:
        return
    if not exists:
        # Created now, owned by the pipeline's login, so that the default privileges below apply from its first table.
        statement = sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(sql.Identifier(schema), sql.Identifier(owner))
        _savepoint_tolerating_a_concurrent_creator(conn, statement)
    select, usage = frozenset({"SELECT"} if reads else ()), frozenset({"USAGE"} if reads else ())
    held = _held(conn, "SELECT nspacl FROM pg_namespace WHERE nspname = %s", role, schema)
    may_grant = _scalar(conn, "SELECT pg_has_role(nspowner, 'USAGE') FROM pg_namespace WHERE nspname = %s", schema)
    _converge(conn, role, _Privileges(f"SCHEMA {schema}", sql.SQL("SCHEMA {}").format(sql.Identifier(schema)), held, usage, may_grant), changes)
    defaults = _held(
        conn,
        "SELECT d.defaclacl FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace JOIN pg_roles o ON o.oid = d.defaclrole"
        " WHERE n.nspname = %s AND o.rolname = %s AND d.defaclobjtype = 'r'",
        role,
        schema,
        owner,
    )
    prefix = sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} ").format(sql.Identifier(owner), sql.Identifier(schema))
    _converge(conn, role, _Privileges(f"future tables of {owner} in SCHEMA {schema}", sql.SQL("TABLES"), defaults, select, prefix=prefix), changes)
    relations = conn.execute(
        "SELECT c.relname, coalesce(array_agg(a.privilege_type) FILTER (WHERE r.rolname = %s), '{}'), pg_has_role(c.relowner, 'USAGE')"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " LEFT JOIN LATERAL aclexplode(c.relacl) a ON true LEFT JOIN pg_roles r ON r.oid = a.grantee"
        " WHERE n.nspname = %s AND c.relkind = ANY(%s) GROUP BY c.relname, c.relowner ORDER BY c.relname",
        (role.name, schema, RELATION_KINDS),
    )
    for table, privileges, may_grant in relations:
        on = sql.SQL("TABLE {}").format(sql.Identifier(schema, table))
        _converge(conn, role, _Privileges(f"TABLE {schema}.{table}", on, frozenset(privileges), select, may_grant), changes)


def _converge(conn: psycopg.Connection, role: Role, privileges: _Privileges, changes: RoleChanges) -> None:
    """Revoke all when the role holds more than wanted, then grant what it lacks; nothing when it
    holds what is wanted, or when this login may not (noted in `changes.not_owned`)."""
    held = privileges.held
    if held == privileges.wanted:
        return
    if not privileges.may_grant:
        changes.not_owned.append(privileges.name)
        return
    if held - privileges.wanted:
        conn.execute(sql.Composed([privileges.prefix, sql.SQL("REVOKE ALL ON {} FROM {}").format(privileges.on, sql.Identifier(role.name))]))
        changes.revoked.append(f"{', '.join(sorted(held - privileges.wanted))} ON {privileges.name}")
        held = frozenset()
    if privileges.wanted - held:
        # The privilege words are the module's own (CONNECT, USAGE, SELECT), never input.
        missing = sql.SQL(", ").join(sql.SQL(cast(LiteralString, privilege)) for privilege in sorted(privileges.wanted - held))
        conn.execute(sql.Composed([privileges.prefix, sql.SQL("GRANT {} ON {} TO {}").format(missing, privileges.on, sql.Identifier(role.name))]))
        changes.granted.append(f"{', '.join(sorted(privileges.wanted - held))} ON {privileges.name}")
