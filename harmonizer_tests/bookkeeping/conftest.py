"""Fixtures of the bookkeeping tests: empty databases of their own on the session's server."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator

import pytest

from harmonizer_pipeline.storage import postgres


@pytest.fixture
def new_database(server_url: str) -> Iterator[Callable[[], str]]:
    """Makes empty databases on the server (dropped after the test) and returns their URLs."""
    made = []

    def make() -> str:
        name = f"harmonizer_bookkeeping_{os.getpid()}_{secrets.token_hex(3)}"
        postgres.ensure_database(server_url, name)
        made.append(name)
        return postgres.with_database(server_url, name)

    yield make
    for name in made:
        postgres.drop_database(server_url, name)
