"""Runs the bookkeeping migrations, all in one transaction, on the database whose libpq URL
harmonizer_pipeline.bookkeeping.schema.config put in the config's attributes."""

from alembic import context
from sqlalchemy import text

from harmonizer_pipeline.bookkeeping.schema import MIGRATION_LOCK, VERSION_SCHEMA, engine

database = engine(context.config.attributes["url"])
with database.connect() as connection:
    context.configure(connection=connection, version_table_schema=VERSION_SCHEMA)
    with context.begin_transaction():
        # Processes that start at once (a deployment's services, a demo beside a test session) migrate one after the other.
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))"), {"name": MIGRATION_LOCK})
        # The version table lives there, so the schema comes before the first revision.
        connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {connection.dialect.identifier_preparer.quote_schema(VERSION_SCHEMA)}"))
        context.run_migrations()
database.dispose()
