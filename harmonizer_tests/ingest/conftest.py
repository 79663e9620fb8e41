"""Fixtures of the ingest tests: a landing folder and a source name of each test's own."""

from pathlib import Path

import pytest


@pytest.fixture
def landing(tmp_path) -> Path:
    folder = tmp_path / "landing"
    folder.mkdir()
    return folder


@pytest.fixture
def source(schema) -> str:
    # Each test gets its own source name, so registry rows and raw tables never meet.
    return schema.replace("t_", "src_")
