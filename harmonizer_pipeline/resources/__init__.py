"""Resources shared by every stage."""

from __future__ import annotations

import os

import dagster as dg

from harmonizer_pipeline.resources.io_manager import PostgresPandasIOManager
from harmonizer_pipeline.resources.postgres import DATABASE_URL_ENV


def build_resources() -> dict[str, object]:
    # The URL may carry a password: pass it as an EnvVar so Dagster never stores or shows it.
    url = dg.EnvVar(DATABASE_URL_ENV) if os.environ.get(DATABASE_URL_ENV) else None
    return {"io_manager": PostgresPandasIOManager(database_url=url)}
