"""map_source runs each text column's steps once per distinct value: the same as mapping each row alone."""

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harmonizer_pipeline.harmonize.mapping import map_source
from harmonizer_tests.harmonize.test_harmonize import lineage
from harmonizer_tests.harmonize.test_harmonize import settings as harmonize_settings

# Few values per column, so that values repeat, with NULLs, blanks and values the rules reject.
POOLS = {
    "name": ["ANNA MEYER", "ludwig van beethoven", "Mia", "  ", "Jan Weber", None],
    "dob": ["03.01.1967", "17.12.1870", "1999-13-40", "2000-02-29", None],
    "sex": ["2", "male", "w", "1", "x", None],
    "road": ["Hauptstraße", "Ring", "", None],
    "number": ["5", "20", None],
    "weight": ["154,3236", "abc", "110", None],
    "balance": ["22,46", "N/A", "1.234,50", None],
    "email": ["ANNA@Example.DE", "mia@@x", "jan@example.org", None],
    "visits": ["3", "2.5", "x", None],
}
ROWS = st.lists(st.fixed_dictionaries({column: st.sampled_from(pool) for column, pool in POOLS.items()}), min_size=1, max_size=8)


def mapped(frame: pd.DataFrame):
    config = harmonize_settings()
    return map_source(frame, "a", config.sources["a"].mapping, config.targets["people"])


def plain(frame: pd.DataFrame) -> list[tuple]:
    return [tuple(None if pd.isna(v) else v for v in row) for row in frame.itertuples(index=False)]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ROWS)
def test_mapping_a_chunk_is_mapping_each_row_alone(rows):
    frame = lineage(pd.DataFrame(rows, columns=list(POOLS), dtype="str"))
    whole = mapped(frame)
    alone = [mapped(frame.iloc[[row]]) for row in range(len(frame))]
    assert plain(whole.frame) == [row for one in alone for row in plain(one.frame)]
    assert whole.frame.dtypes.equals(alone[0].frame.dtypes)
    assert sorted(plain(whole.rejections)) == sorted(row for one in alone for row in plain(one.rejections))
    assert (whole.rows_in, whole.rows_left_out) == (len(rows), sum(one.rows_left_out for one in alone))
