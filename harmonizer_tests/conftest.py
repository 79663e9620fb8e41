"""Shared fixtures: a real PostgreSQL (embedded, or HARMONIZER_DATABASE_URL) with a fresh
database for this test session, its bookkeeping tables migrated, which every test and every
subprocess of a test uses."""

from __future__ import annotations

import os
import secrets
import uuid
import warnings
from collections.abc import Iterator

import pytest

from harmonizer_pipeline.bookkeeping import schema as bookkeeping_schema
from harmonizer_pipeline.storage import postgres

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

# The URL of the server the session started with, before the fixture points it at the test db.
_EXTERNAL_URL = os.environ.get(postgres.DATABASE_URL_ENV)


@pytest.fixture(scope="session")
def server_url() -> str:
    """libpq URL of a database on the server (its maintenance database when embedded)."""
    return postgres.libpq_url(_EXTERNAL_URL) if _EXTERNAL_URL else postgres.start_embedded_server()


@pytest.fixture(scope="session", autouse=True)
def database_url(server_url: str) -> Iterator[str]:
    """A database made and migrated for this session and dropped after it; HARMONIZER_DATABASE_URL points at it."""
    name = f"harmonizer_test_{os.getpid()}_{secrets.token_hex(3)}"
    postgres.ensure_database(server_url, name)
    url = postgres.with_database(server_url, name)
    bookkeeping_schema.upgrade(url)
    previous = os.environ.get(postgres.DATABASE_URL_ENV)
    os.environ[postgres.DATABASE_URL_ENV] = url
    yield url
    if previous is None:
        os.environ.pop(postgres.DATABASE_URL_ENV, None)
    else:
        os.environ[postgres.DATABASE_URL_ENV] = previous
    postgres.drop_database(server_url, name)


@pytest.fixture
def conn(database_url: str):
    with postgres.adbc_connection(database_url) as connection:
        yield connection
        connection.rollback()


@pytest.fixture
def schema() -> str:
    """A schema name no other test uses."""
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def psql(database_url: str):
    """Run one SQL query with psycopg and return all rows (for asserting what is stored)."""
    import psycopg

    def run(query, params=None):
        with psycopg.connect(database_url) as c:
            cursor = c.execute(query, params)
            return cursor.fetchall() if cursor.description else None

    return run


@pytest.fixture(scope="session")
def deployed(tmp_path_factory, server_url: str, database_url: str):
    """The production process topology (code server, webserver, daemon; harmonizer_tests/deployment/harness.py)
    on a fresh database, once the landing sensor loaded the sample clinic_a file; shared by the
    topology and UI tests, stopped at the end of the session."""
    from harmonizer_tests.deployment.harness import sample_deployment

    with sample_deployment(tmp_path_factory.mktemp("deployment"), server_url, postgres.database_of(database_url) + "_deploy") as running:
        yield running


@pytest.fixture(autouse=True)
def no_leftover_dagster_state_storage():
    """Entering a Dagster instance (`with instance:`) sets a context variable to its defs-state
    storage, which holds the instance by a weak reference. Left set past its instance, every later
    `materialize` in that process fails ('Attempted to resolve undefined DagsterInstance weakref'):
    seen once under two xdist workers, after whichever module ran before on the worker. Each test
    starts without it, as a fresh process does."""
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    with set_defs_state_storage(None):
        yield


def pytest_addoption(parser):
    parser.addoption("--update-snapshots", action="store_true", help="rewrite harmonizer_tests/snapshots/ from the code, then compare")


# The modules on the session's `deployed` topology: on one worker, which starts it once.
_ON_THE_TOPOLOGY = ("harmonizer_tests/deployment/test_topology.py", "harmonizer_tests/deployment/test_ui.py")


def pytest_xdist_make_scheduler(config, log):
    """`make test` runs two pytest-xdist workers. Each module goes to one worker as a whole, so a
    module-scoped fixture (a pipeline run its tests share) runs once; the modules of
    _ON_THE_TOPOLOGY go together. (`--dist loadgroup` with marks would say the same, but pytest 9.2
    no longer takes the node ids it rewrites: pytest-xdist issue 1386.)"""
    from xdist.scheduler import LoadScopeScheduling

    if config.getvalue("dist") not in ("load", "loadscope"):  # another --dist asked for by name
        return None

    class ByModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "the deployed topology" if module in _ON_THE_TOPOLOGY else module

    return ByModule(config, log)
