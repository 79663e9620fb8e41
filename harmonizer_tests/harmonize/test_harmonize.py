"""Mapping a source into its target, survivorship and fuzzy match candidates (no Dagster)."""

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from harmonizer_pipeline.harmonize.dedup import match_candidates
from harmonizer_pipeline.harmonize.mapping import MappingError, map_source
from harmonizer_pipeline.harmonize.rules import as_text
from harmonizer_pipeline.settings import parse_settings

SETTINGS = """
sources:
  a:
    landing: {local: {path: x}}
    target: people
    mapping:
      first_name: {split: {column: name, separator: " ", parts: 2, part: 0}}
      last_name: {split: {column: name, separator: " ", parts: 2, part: 1}}
      born: {column: dob, formats: ["%d.%m.%Y"]}
      sex: {column: sex, values: {M: ["1"], F: ["2"]}}
      street: {combine: [road, number]}
      weight_kg: {column: weight, unit: {from: lb, to: kg}, decimal_comma: true}
      balance: {column: balance, nulls: ["N/A"], decimal_comma: true}
      country: {constant: DE}
  b:
    landing: {local: {path: y}}
    target: people
targets:
  people:
    columns:
      first_name: {type: text, required: true, rules: [person_name]}
      last_name: {type: text, required: true, rules: [{person_name: {family: true}}]}
      born: {type: date, required: true}
      sex: {type: text, rules: [{value_map: {mapping: {M: [m, male], F: [f, w, female]}}}]}
      email: {type: text, rules: [email]}
      street: {type: text}
      weight_kg: {type: float}
      balance: {type: float}
      visits: {type: integer}
      country: {type: text, rules: [country]}
    key: [last_name, first_name, born]
"""


def settings(text: str = SETTINGS):
    return parse_settings(text, base_dir=Path("/tmp"))


def lineage(frame: pd.DataFrame, source_file: str = "f1.csv") -> pd.DataFrame:
    return frame.assign(_source_file=source_file, _row_number=range(2, len(frame) + 2), _load_id="run-1")


SOURCE_A = lineage(
    pd.DataFrame(
        {
            "name": ["ANNA MEYER", "ludwig van beethoven", "Mia", "  ", "Jan Weber"],
            "dob": ["03.01.1967", "17.12.1870", "06.06.1968", "01.01.2000", "1999-13-40"],
            "sex": ["2", "male", "w", "1", "x"],
            "road": ["Hauptstraße", "Bonngasse", None, None, "Ring"],
            "number": ["5", "20", "7", None, None],
            "weight": ["154,3236", None, "abc", "110", "99"],
            "balance": ["22,46", "N/A", None, "1.234,50", "N/A"],
            "email": ["ANNA@Example.DE", None, "mia@@x", None, "jan@example.org"],
        },
        dtype="str",
    )
)


def test_a_source_is_mapped_typed_and_standardized():
    config = settings()
    mapped = map_source(SOURCE_A, "a", config.sources["a"].mapping, config.targets["people"])
    frame = mapped.frame
    # Row 3 has no last name (split gives one part), row 4 no name, row 5 an impossible date: left out.
    assert (mapped.rows_in, len(frame), mapped.rows_left_out) == (5, 2, 3)
    assert frame["first_name"].tolist() == ["Anna", "Ludwig"]
    assert frame["last_name"].tolist() == ["Meyer", "van Beethoven"]
    assert frame["born"].tolist() == [dt.date(1967, 1, 3), dt.date(1870, 12, 17)]
    assert frame["sex"].tolist() == ["F", "M"]
    assert frame["street"].tolist() == ["Hauptstraße 5", "Bonngasse 20"]
    assert round(float(frame["weight_kg"][0]), 3) == 70.0 and pd.isna(frame["weight_kg"][1])
    assert frame["balance"].tolist()[0] == pytest.approx(22.46) and pd.isna(frame["balance"][1])
    assert frame["email"].tolist()[0] == "anna@example.de"
    assert frame["country"].tolist() == ["DE", "DE"]
    assert frame["visits"].isna().all() and str(frame["visits"].dtype) == "Int64"
    assert frame[["_source", "_source_file", "_row_number", "_load_id"]].values.tolist() == [["a", "f1.csv", 2, "run-1"], ["a", "f1.csv", 3, "run-1"]]


def test_every_value_a_rule_cannot_take_is_a_rejection_with_the_original_value():
    config = settings()
    rejected = map_source(SOURCE_A, "a", config.sources["a"].mapping, config.targets["people"]).rejections
    records = sorted(map(tuple, rejected[["_row_number", "column", "check", "failure_case"]].itertuples(index=False)))
    assert records == [
        (4, "email", "harmonize:email", "mia@@x"),
        (4, "last_name", "harmonize:required", None),
        (4, "weight_kg", "harmonize:number", "abc"),
        (5, "first_name", "harmonize:required", None),
        (6, "born", "harmonize:date", "1999-13-40"),
        (6, "born", "harmonize:required", None),
        (6, "sex", "harmonize:value_map", "x"),
    ]
    message = rejected.loc[rejected["check"] == "harmonize:email", "message"].item()
    assert message == "email: email could not standardize 'mia@@x'"
    required = rejected.loc[(rejected["check"] == "harmonize:required") & (rejected["_row_number"] == 5), "message"].item()
    assert required == "row left out: no value for first_name, last_name"


def test_a_mapping_naming_a_column_the_data_lacks_fails_with_both_names():
    config = settings()
    with pytest.raises(MappingError, match=r"a: mapping of 'born' names column\(s\) \['dob'\] the data does not have"):
        map_source(SOURCE_A.drop(columns=["dob"]), "a", config.sources["a"].mapping, config.targets["people"])


def test_unmapped_target_columns_take_the_source_column_of_the_same_name():
    config = settings()
    frame = lineage(pd.DataFrame({"first_name": ["eva"], "last_name": ["o'neil"], "born": ["1980-02-01"], "visits": ["3"], "extra": ["x"]}, dtype="str"))
    mapped = map_source(frame, "b", config.sources["b"].mapping, config.targets["people"]).frame
    assert mapped[["first_name", "last_name", "born", "visits"]].values.tolist() == [["Eva", "O'Neil", dt.date(1980, 2, 1), 3]]
    assert "extra" not in mapped.columns


@pytest.mark.parametrize(
    ("values", "text"),
    [
        (pd.Series([12.0, 1.5, None]), ["12", "1.5", None]),
        (pd.Series([1, 2], dtype="Int64"), ["1", "2"]),
        (pd.Series(pd.to_datetime(["2024-05-01", None])), ["2024-05-01", None]),
        (pd.Series([True, None], dtype="boolean"), ["True", None]),
        (pd.Series(["a", None], dtype="str"), ["a", None]),
    ],
)
def test_values_read_as_a_person_would_type_them(values, text):
    assert [None if pd.isna(v) else v for v in as_text(values)] == text


def rows(*records) -> pd.DataFrame:
    columns = ["first_name", "last_name", "born", "email", "_source", "_source_file", "_row_number"]
    frame = pd.DataFrame(records, columns=columns)
    return frame.assign(_load_id="r")


MATCH = """
    match: {columns: [first_name, last_name], block_on: [born], threshold: 85, max_block_rows: 3}
"""


def test_fuzzy_candidates_find_planted_typos_and_not_distinct_people():
    target = settings(SETTINGS.replace("    key: [last_name, first_name, born]", "    key: [last_name, first_name, born]" + MATCH)).targets["people"]
    frame = rows(
        ("Anna", "Meyer", "1967-01-03", None, "a", "f", 2),
        ("Ana", "Meyer", "1967-01-03", None, "b", "g", 2),  # typo of the row above
        ("Paul", "Fischer", "1967-01-03", None, "a", "f", 3),  # same day, another person
        ("Anna", "Meyer", "1980-05-05", None, "a", "f", 4),  # same name, another birth date: another block
        ("Jonas", "Becker", "1985-04-03", None, "a", "f", 5),
        ("Jonas", "Bäcker", "1985-04-03", None, "b", "g", 6),
        ("X", "Y", "2000-01-01", None, "a", "f", 7),
        ("X", "Z", "2000-01-01", None, "a", "f", 8),
        ("X", "W", "2000-01-01", None, "a", "f", 9),
        ("X", "V", "2000-01-01", None, "a", "f", 10),  # a block of 4 rows: over max_block_rows
    )
    matches = match_candidates(frame, list(target.key), target.match)
    found = matches.candidates[["left_first_name", "right_first_name", "left_last_name", "right_last_name", "score", "block"]].values.tolist()
    assert found == [["Anna", "Ana", "Meyer", "Meyer", 95, "1967-01-03"], ["Jonas", "Jonas", "Becker", "Bäcker", 92, "1985-04-03"]]
    assert (matches.skipped_blocks, matches.compared_pairs) == (1, 4)
