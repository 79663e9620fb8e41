"""Drift between a source's previous file and its new one, from their profiles."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harmonizer_pipeline.quality.drift import compare_profiles
from harmonizer_pipeline.quality.profiling import profile_frame

TEXT = pd.StringDtype("pyarrow", na_value=np.nan)
N = 100


def frame(**columns) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(values, dtype=TEXT) for name, values in columns.items()})


PREVIOUS = frame(
    id=[str(n) for n in range(N)],
    status=["open", "closed"] * (N // 2),
    amount=[f"{n}.5" for n in range(N)],
    phone=[f"0564 27{n:05d}" for n in range(N)],
    legacy=["x"] * N,
    comment=["ok"] * N,
)


def test_an_unchanged_file_has_no_drift():
    assert compare_profiles(profile_frame(PREVIOUS), profile_frame(PREVIOUS.copy())) == []


def test_each_planted_change_is_found_once():
    current = frame(
        id=[str(n) for n in range(N)],
        status=["open", "closed", "on hold", "open"] * (N // 4),  # a new category
        amount=["n/a"] * N,  # decimal → categorical
        telephone=[f"0564 27{n:05d}" for n in range(N)],  # phone, renamed
        comment=["ok"] * 50 + [""] * 50,  # half of it blank now
        region=["north", "south"] * (N // 2),  # added; `legacy` removed
    )
    found = [(f.kind, f.column, f.previous, f.current) for f in compare_profiles(profile_frame(PREVIOUS), profile_frame(current))]
    assert found == [
        ("new_categories", "status", None, "on hold"),
        ("type_change", "amount", "decimal", "categorical"),
        ("distinct_rate_jump", "amount", "1.0000", "0.0100"),
        ("renamed_column", "telephone", "phone", "telephone"),
        ("null_rate_jump", "comment", "0.0000", "0.5000"),
        ("added_column", "region", None, "categorical"),
        ("removed_column", "legacy", "categorical", None),
    ]
