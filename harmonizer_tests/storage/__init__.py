"""The storage package and the PostgreSQL IO manager."""
