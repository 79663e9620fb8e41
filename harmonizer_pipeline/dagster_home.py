"""Dagster's own instance (runs, events, schedules, sensor cursors) on the harmonizer PostgreSQL.

`DAGSTER_HOME` is `<HARMONIZER_HOME>/dagster_home`; its dagster.yaml is copied from the
package's template (dagster_instance.yaml, not a dagster.yaml in the repository root, which
`dagster dev` and `dagster definitions validate` would read there with nothing set), which reads the storage URL from HARMONIZER_DAGSTER_PG_URL, so
no password is ever written to disk. `make demo` and `make dev` both go through here, which is
why demo runs show up in the UI, and why both start on bookkeeping tables at the head revision and with the database roles applied.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from harmonizer_pipeline.bookkeeping import roles, schema
from harmonizer_pipeline.storage.postgres import harmonizer_home, resolve_database_url, sqlalchemy_url

STORAGE_URL_ENV = "HARMONIZER_DAGSTER_PG_URL"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = Path(__file__).resolve().with_name("dagster_instance.yaml")
WORKSPACE = PROJECT_ROOT / "workspace.yaml"


def dagster_home() -> Path:
    return harmonizer_home() / "dagster_home"


def prepare_dagster_environment() -> dict[str, str]:
    """Start/resolve the database, migrate its bookkeeping tables, write DAGSTER_HOME/dagster.yaml
    and return the variables a Dagster process needs; they are also set in this process."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TEMPLATE, home / "dagster.yaml")
    url = resolve_database_url()
    schema.upgrade(url)
    problem = roles.apply_after_migrations(url)
    if problem:
        logging.getLogger(__name__).warning(problem)
    # dagster-postgres needs psycopg2 spelled out under SQLAlchemy 2.1 (dagster issue 33958).
    variables = {"DAGSTER_HOME": str(home), STORAGE_URL_ENV: sqlalchemy_url(url, "psycopg2")}
    os.environ.update(variables)
    return variables
