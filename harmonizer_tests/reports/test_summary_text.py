"""The summaries' sentences from facts built here: exact text for each turn the facts can take
(numbers as people write them, singular and plural, nothing said of what did not happen, values
of PII columns masked)."""

from __future__ import annotations

import pytest

from harmonizer_pipeline.reports.summary import (
    ComparisonFacts,
    FileFacts,
    Finding,
    GateFacts,
    KeyFacts,
    MergeFacts,
    count,
    file_summary,
    listed,
    merge_summary,
    percent,
    size,
)

ARRIVED = "visits_2026-11.csv arrived in clinic_a: 1.2 MB, 12,345 rows, read as CSV in Windows-1252."
PASSED = "Every row passed the schema gate."
CLEAN = "The profile found no quality issues."
KEYED = "visit_id is a unique key: it tells all 12,345 rows apart."
FIRST = "It is the first file of clinic_a: there is nothing to compare it with."


def facts(**changes) -> FileFacts:
    """A file that arrived, passed, is clean, has a key and is its source's first, unless changed."""
    base = {
        "source": "clinic_a", "file": "visits_2026-11.csv", "status": "loaded", "size": 1_234_567, "rows": 12_345, "format": "csv",
        "encoding": "cp1252", "gate": GateFacts(12_345, 0, 0.05, "ok", "all 12345 rows passed"), "profiled": True,
        "key": KeyFacts(("visit_id",), True, 12_345),
    }  # fmt: skip
    return FileFacts(**(base | changes))


@pytest.mark.parametrize(
    ("n", "noun", "text"),
    [(0, "row", "0 rows"), (1, "row", "1 row"), (2, "file", "2 files"), (1_234_567, "row", "1,234,567 rows"), (1, "entry", "1 entry")],
)
def test_counts_are_written_as_people_write_them(n, noun, text):
    assert count(n, noun) == text


def test_shares_sizes_and_lists():
    assert [percent(x) for x in (0.05, 0.2, 1 / 3, 0.0024, 1.0, 0.125)] == ["5%", "20%", "33.3%", "0.24%", "100%", "12.5%"]
    assert [size(n) for n in (1, 812, 12_345, 1_234_567, 2_500_000_000, 12_345_000_000_000)] == [
        "1 byte", "812 bytes", "12.3 kB", "1.2 MB", "2.5 GB", "12,345.0 GB",
    ]  # fmt: skip
    assert [listed(items) for items in ([], ["a"], ["a", "b"], ["a", "b", "c"])] == ["", "a", "a and b", "a, b and c"]


def test_a_clean_first_file_with_a_key():
    assert file_summary(facts()) == " ".join([ARRIVED, PASSED, CLEAN, KEYED, FIRST])


def test_a_workbook_has_no_encoding_and_an_unknown_size_is_left_out():
    text = file_summary(facts(format="excel", encoding=None, size=None))
    assert text.startswith("visits_2026-11.csv arrived in clinic_a: 12,345 rows, read as Excel. ")


@pytest.mark.parametrize(
    ("status", "error", "said"),
    [
        ("failed", "visits_2026-11.csv: line 3 has 3 fields, the header has 2", "It could not be loaded: visits_2026-11.csv: line 3 has 3 fields, the header has 2."),
        ("duplicate", "same content as visits_2026-10.csv (loaded)", "It was not loaded: same content as visits_2026-10.csv (loaded)."),
        ("pending", None, "It is being loaded."),
    ],
)  # fmt: skip
def test_a_file_not_loaded_says_why_and_nothing_more(status, error, said):
    text = file_summary(facts(status=status, error=error, rows=None, format=None, encoding=None))
    assert text == f"visits_2026-11.csv arrived in clinic_a: 1.2 MB. {said}"


def test_rows_set_aside_within_the_threshold_with_the_main_reasons():
    failures = (("str_matches('^V\\d+$')", "visit_id", 7), ("not_nullable", "patient_id", 2), ("isin(['F', 'M'])", "sex", 2), ("column_in_dataframe", "", 1))
    gate = GateFacts(12_345, 11, 0.05, "warn", "11 of 12345 rows rejected (0.09%) and quarantined, within max_reject_rate 5.00%", failures)
    key = KeyFacts(("visit_id",), True, 12_334)
    text = file_summary(facts(gate=gate, key=key))
    assert text == " ".join([
        ARRIVED,
        "The schema gate let it through with 11 of 12,345 rows (0.09%) set aside in quality.rejected_rows, within the 5% allowed.",
        "Main reasons: visit_id failed str_matches('^V\\d+$') 7 times, patient_id failed not_nullable twice, sex failed isin(['F', 'M']) twice"
        " and 1 other check.",
        CLEAN, "visit_id is a unique key: it tells all 12,334 rows that passed the gate apart.", FIRST,
    ])  # fmt: skip


def test_a_quarantined_file_stops_at_its_gate():
    gate = GateFacts(12_345, 9_000, 0.05, "error", "9000 of 12345 rows rejected (72.90%), over max_reject_rate 5.00%", (("not_nullable", "visit_id", 9_000),))
    text = file_summary(facts(status="blocked", gate=gate, key=None))
    assert text == " ".join([
        ARRIVED,
        "The schema gate quarantined the file: 9,000 of 12,345 rows (72.9%) failed the schema, more than the 5% allowed.",
        "Main reasons: visit_id failed not_nullable 9,000 times.",
        CLEAN, "Its rows go no further than validated until a corrected file lands.",
    ])  # fmt: skip


def test_a_file_of_the_wrong_structure():
    description = "wrong file structure, all 12345 rows rejected: column 'visit_id' not in dataframe"
    gate = GateFacts(12_345, 12_345, 0.05, "error", description, (("column_in_dataframe", "", 1),))
    text = file_summary(facts(status="blocked", gate=gate, profiled=False, key=None))
    assert text == (
        f"{ARRIVED} The schema gate quarantined the file: its structure is wrong (column 'visit_id' not in dataframe). Main reasons:"
        " column_in_dataframe failed once. Its rows go no further than validated until a corrected file lands."
    )


def test_quality_findings_most_rows_first_the_rest_counted():
    findings = (
        Finding("email", "invalid_email", 1), Finding("phone", "invalid_phone", 40), Finding("name", "whitespace", 3),
        Finding("city", "inconsistent_case", 1_200), Finding("born", "mixed_date_formats", 12_345), Finding("zip", "leading_zeros", 2),
    )  # fmt: skip
    text = file_summary(facts(findings=findings))
    assert text == " ".join([
        ARRIVED, PASSED,
        "The profile found 12,345 dates in mixed formats in born, 1,200 values written several ways in city, 40 invalid phone numbers in"
        " phone and 3 other issues.",
        KEYED, FIRST,
    ])  # fmt: skip
    one = file_summary(facts(findings=(Finding("email", "invalid_email", 1), Finding("zip", "leading_zeros", 2))))
    assert "The profile found 2 rows with leading zeros in zip and 1 invalid e-mail address in email." in one


@pytest.mark.parametrize(
    ("key", "said"),
    [
        (KeyFacts(("visit_id",), True, 12_345, declared=True), "The declared key visit_id tells all 12,345 rows apart."),
        (KeyFacts((), False, 12_345), "No unique key or near-key was found."),
        (
            KeyFacts(("patient_id", "day"), False, 12_345, breaking_rows=1, example={"patient_id": "P-7", "day": "2026-11-02"}),
            "No column set tells every row apart; patient_id, day comes closest: 1 row breaks it (for example patient_id = P-7, day = 2026-11-02).",
        ),
        (
            KeyFacts(("visit_id",), False, 12_345, declared=True, breaking_rows=2_000, example={"visit_id": "V1"}, duplicate_rows=1),
            "The declared key visit_id does not hold: 2,000 rows break it (for example visit_id = V1). 1 row repeats another row entirely.",
        ),
        (KeyFacts(("visit_id",), True, 12_345, duplicate_rows=3), f"{KEYED} 3 rows repeat another row entirely."),
    ],
)
def test_the_key_found(key, said):
    assert file_summary(facts(key=key)) == " ".join([ARRIVED, PASSED, CLEAN, said, FIRST])


def test_a_repeating_value_of_a_pii_column_is_masked():
    key = KeyFacts(
        ("email", "phone", "visit_id"), False, 12_345, breaking_rows=1, example={"email": "ann.lee@example.org", "phone": "+49 30 1234567", "visit_id": "V1"}
    )
    text = file_summary(facts(key=key, pii={"email": "email", "phone": "phone"}))
    assert "(for example email = a***@example.org, phone = +49 *** **67, visit_id = V1)." in text
    assert "ann.lee" not in text and "1234567" not in text


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        (
            {"comparison": ComparisonFacts(("visit_id",), 1_200, 3, 45, 11_100)},
            "Against the previous file, visits_2026-10.csv, on visit_id: 1,200 rows added, 3 removed, 45 changed and 11,100 unchanged.",
        ),
        (
            {"comparison": ComparisonFacts(("visit_id",), 0, 1, 0, 12_345, ("fax",), ("mobile", "pager"))},
            "Against the previous file, visits_2026-10.csv, on visit_id: 1 row removed and 12,345 unchanged. Column fax is new. Columns mobile"
            " and pager are gone.",
        ),
        (
            {"comparison": ComparisonFacts(("visit_id",), 0, 0, 0, 12_345)},
            "Against the previous file, visits_2026-10.csv, nothing changed on visit_id: all 12,345 rows are the same.",
        ),
        (
            {"not_compared": "no key to compare on", "drift": (("added_column", "fax", None, "free text"), ("type_change", "born", "date", "free text"))},
            "It was not compared with the previous file, visits_2026-10.csv: no key to compare on. Column fax is new. The profile also noticed"
            " that born changed from date to free text.",
        ),
        (
            {
                "comparison": ComparisonFacts(("visit_id",), 5, 0, 0, 0),
                "drift": (("null_rate_jump", "email", "0.0100", "0.4000"), ("new_categories", "city", None, "Bonn"), ("renamed_column", "zip", "plz", "zip")),
            },
            "Against the previous file, visits_2026-10.csv, on visit_id: 5 rows added. The profile also noticed that the share of missing"
            " values in email moved, city has new values and zip was renamed from plz.",
        ),
    ],
)  # fmt: skip
def test_drift_against_the_previous_file(changes, said):
    text = file_summary(facts(previous_file="visits_2026-10.csv", **changes))
    assert text == " ".join([ARRIVED, PASSED, CLEAN, KEYED, said])


def test_an_error_quoting_personal_data_is_masked():
    error = "visits_2026-11.csv: row 7: cannot parse 'ann.lee@example.org' as a date"
    text = file_summary(facts(status="failed", error=error, rows=None, format=None, encoding=None))
    assert (
        text == "visits_2026-11.csv arrived in clinic_a: 1.2 MB. It could not be loaded: visits_2026-11.csv: row 7: cannot parse '***@example.org' as a date."
    )


def test_a_file_whose_rows_were_removed_since():
    text = file_summary(facts(status="erased"))
    assert text == " ".join([ARRIVED, "Its rows have since been removed (erased).", PASSED, CLEAN, KEYED, FIRST])


def merge(**changes) -> MergeFacts:
    base = {"target": "patients", "changed": True, "files": 4, "rows": 1_234_567, "files_added": 2, "keys_affected": 40_000, "inserted": 30_000,
            "updated": 8_000, "deleted": 2_000}  # fmt: skip
    return MergeFacts(**(base | changes))


@pytest.mark.parametrize(
    ("changes", "text"),
    [
        (
            {"merged_rows": 12, "duplicate_keys": 6, "rejected_values": 5, "candidates": 3, "files_removed": 1},
            "The merge of patients took in 2 new files and let 1 file go and recomputed 40,000 keys: 30,000 rows inserted, 8,000 updated and"
            " 2,000 deleted. patients now holds 1,234,567 rows from 4 files. 12 rows were merged into another row with the same key (6 keys had"
            " more than one row). 5 values could not be standardized and were rejected. Fuzzy matching found 3 candidate pairs to review.",
        ),
        (
            {"files_added": 0, "files_removed": 1, "files": 1, "inserted": 0, "updated": 0, "deleted": 1, "keys_affected": 1, "rows": 1,
             "merged_rows": 1, "duplicate_keys": 1, "rejected_values": 1, "candidates": 0},
            "The merge of patients let 1 file go and recomputed 1 key: 1 row deleted. patients now holds 1 row from 1 file. 1 row was merged into"
            " another row with the same key (1 key had more than one row). 1 value could not be standardized and was rejected. Fuzzy matching"
            " found no likely duplicates.",
        ),
        (
            {"rebuild": True, "inserted": 0, "updated": 0, "deleted": 0},
            "A rebuild of patients recomputed every key (40,000) from 4 files: no row changed. No two rows share a key. Every value was standardized.",
        ),
        ({"changed": False}, "Nothing changed since the last merge: patients holds 1,234,567 rows from 4 files."),
    ],
)  # fmt: skip
def test_merge_summaries(changes, text):
    assert merge_summary(merge(**changes)) == text
