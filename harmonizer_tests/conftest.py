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

# The modules that take longest (minutes of waiting on deployed processes), handed out first:
# pytest-xdist otherwise orders modules by their number of tests, which left the crash tests (4
# tests, 7 minutes) for last, with the other worker idle.
_LONGEST_FIRST = (
    "harmonizer_tests/deployment/test_crash_recovery.py",
    *_ON_THE_TOPOLOGY,
    "harmonizer_tests/code_location/test_definitions.py",
    "harmonizer_tests/code_location/test_cli.py",
    "harmonizer_tests/keys/test_keys_pipeline.py",
    "harmonizer_tests/ingest/test_ingest_pipeline.py",
    "harmonizer_tests/bookkeeping/test_ops.py",
)


def _module(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(config, items):
    """The modules of _LONGEST_FIRST first, then the others by their number of tests (as
    pytest-xdist's own order); each module's tests stay together and in their order."""
    tests: dict[str, int] = {}
    for item in items:
        tests[_module(item.nodeid)] = tests.get(_module(item.nodeid), 0) + 1

    def rank(item) -> tuple[int, int, str]:
        module = _module(item.nodeid)
        first = _LONGEST_FIRST.index(module) if module in _LONGEST_FIRST else len(_LONGEST_FIRST)
        return first, -tests[module], module

    items.sort(key=rank)


def pytest_xdist_make_scheduler(config, log):
    """`make test` runs two pytest-xdist workers. Each module goes to one worker as a whole, so a
    module-scoped fixture (a pipeline run its tests share) runs once; the modules of
    _ON_THE_TOPOLOGY go together; modules are handed out in the collection's order
    (pytest_collection_modifyitems). (`--dist loadgroup` with marks would say the same, but pytest 9.2
    no longer takes the node ids it rewrites: pytest-xdist issue 1386.)"""
    from xdist.scheduler import LoadScopeScheduling

    if config.getvalue("dist") not in ("load", "loadscope"):  # another --dist asked for by name
        return None
    config.option.loadscopereorder = False

    class ByModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = _module(nodeid)
            return "the deployed topology" if module in _ON_THE_TOPOLOGY else module

    return ByModule(config, log)
