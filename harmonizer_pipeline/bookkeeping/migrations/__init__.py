"""Alembic's script directory for the bookkeeping tables (env.py, versions/), read by alembic
from its path (schema.MIGRATIONS); a package so that it is installed with the code."""
