"""Fixtures of the retention and erasure tests: source and target names of each test's own."""

import pytest


@pytest.fixture
def names(schema) -> dict[str, str]:
    suffix = schema.removeprefix("t_")
    return {"a": f"ra_{suffix}", "b": f"rb_{suffix}", "target": f"rp_{suffix}"}
