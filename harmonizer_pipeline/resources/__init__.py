"""Dagster resources shared by every stage: the database, the IO manager, the landing zones."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import psycopg
from pydantic import Field

from harmonizer_pipeline.resources.io_manager import PostgresPandasIOManager
from harmonizer_pipeline.resources.landing import LandingZone, LocalLanding
from harmonizer_pipeline.resources.postgres import DATABASE_URL_ENV, resolve_database_url
from harmonizer_pipeline.settings import Settings

B2_KEY_ID_ENV = "B2_APPLICATION_KEY_ID"
B2_KEY_ENV = "B2_APPLICATION_KEY"


class PostgresResource(dg.ConfigurableResource):
    """The harmonizer database for bookkeeping (file registry, quality tables)."""

    database_url: str | None = Field(
        default=None, description="libpq URL; unset means HARMONIZER_DATABASE_URL or the embedded server."
    )

    def url(self) -> str:
        return resolve_database_url(self.database_url)

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection]:
        """A psycopg connection in a transaction that commits on success."""
        with psycopg.connect(self.url()) as conn:
            yield conn


class LandingResource(dg.ConfigurableResource):
    """Builds each source's landing zone; B2 credentials come from the environment only."""

    b2_application_key_id: str | None = None
    b2_application_key: str | None = None

    def b2_api(self):
        from harmonizer_pipeline.resources.b2 import b2_api

        if not (self.b2_application_key_id and self.b2_application_key):
            raise dg.Failure(f"a source lands in B2 but {B2_KEY_ID_ENV} / {B2_KEY_ENV} are not set")
        return b2_api(self.b2_application_key_id, self.b2_application_key)

    def zone(self, settings: Settings, source: str) -> LandingZone:
        landing = settings.sources[source].landing
        if landing.local is not None:
            return LocalLanding(settings.landing_path(source), landing.local.glob)
        from harmonizer_pipeline.resources.b2 import B2Landing

        return B2Landing(self.b2_api(), landing.b2.bucket, landing.b2.prefix, landing.b2.glob)


def _env(name: str) -> dg.EnvVar | None:
    # Secrets go to Dagster as EnvVars, so they are never stored in run config or shown in the UI.
    return dg.EnvVar(name) if os.environ.get(name) else None


def build_resources() -> dict[str, object]:
    url = _env(DATABASE_URL_ENV)
    return {
        "io_manager": PostgresPandasIOManager(database_url=url),
        "postgres": PostgresResource(database_url=url),
        "landing": LandingResource(b2_application_key_id=_env(B2_KEY_ID_ENV), b2_application_key=_env(B2_KEY_ENV)),
    }
