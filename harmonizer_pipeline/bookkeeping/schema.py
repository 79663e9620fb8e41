"""The bookkeeping tables' schema version: the alembic migrations under migrations/, configured
here in code (no alembic.ini), applied by `harmonizer db migrate` and at start-up.

Alembic's version table is ops.alembic_version: Dagster's own alembic_version is in public when
its instance shares the database (as under `make dev` and in the compose deployment).
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, pool

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_SCHEMA = "ops"
MIGRATION_LOCK = "harmonizer bookkeeping migrations"


def config(url: str) -> Config:
    """Alembic's configuration for the database at the libpq `url` (migrations/env.py reads it)."""
    alembic_config = Config()
    alembic_config.set_main_option("script_location", str(MIGRATIONS))
    # An attribute, not a main option: the config parser would read a '%' in a password as interpolation.
    alembic_config.attributes["url"] = url
    return alembic_config


def scripts() -> ScriptDirectory:
    """The revisions, as alembic reads them."""
    return ScriptDirectory(str(MIGRATIONS))


def head() -> str:
    """The revision the code expects."""
    revision = scripts().get_current_head()
    assert revision is not None  # migrations/versions holds the revisions
    return revision


def engine(url: str) -> Engine:
    """SQLAlchemy on psycopg 3 for the libpq `url` as it is (a Unix socket in ?host=, a '%' in a
    password), one connection at a time."""
    return create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(url), poolclass=pool.NullPool)


def current(url: str) -> str | None:
    """The database's revision; None when it was never migrated."""
    database = engine(url)
    try:
        with database.connect() as connection:
            return MigrationContext.configure(connection, opts={"version_table_schema": VERSION_SCHEMA}).get_current_revision()
    finally:
        database.dispose()


def upgrade(url: str) -> tuple[str | None, str]:
    """Bring the database to the head revision; returns its revision before and after."""
    before = current(url)
    command.upgrade(config(url), "head")
    after = current(url)
    assert after is not None  # just upgraded to the head revision
    return before, after
