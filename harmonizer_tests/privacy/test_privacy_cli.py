"""`harmonizer profile` and `harmonizer validate` print the values of PII columns masked, and in
clear only with --show-pii, which they say on standard error."""

import json

from click.testing import CliRunner

from harmonizer_pipeline.cli import main

PATIENTS = (
    "id,email,phone,status\n"
    + "".join(f"{n},user{n}@example.org,+49 30 55501{n:02d},{'AB'[n % 2]}\n" for n in range(1, 9))
    + "9,ann@evil.com,+49 30 5550199,C\n"
)
SCHEMA = """\
schema_type: dataframe
columns:
  id: {dtype: int64, coerce: true}
  email: {dtype: str, checks: {str_matches: '^[^@]+@example\\.org$'}}
  phone: {dtype: str}
  status: {dtype: str, checks: {isin: [A, B]}}
"""


def test_profile_masks_the_values_of_pii_columns_unless_asked(tmp_path):
    (tmp_path / "patients.csv").write_text(PATIENTS)
    masked = CliRunner().invoke(main, ["profile", str(tmp_path / "patients.csv"), "--json"])
    assert (masked.exit_code, masked.stderr) == (0, "")
    columns = {c["name"]: c for c in json.loads(masked.stdout)["columns"]}
    assert (columns["email"]["pii"], columns["email"]["min"], columns["email"]["max"]) == (["email"], "a***@evil.com", "u***@example.org")
    assert columns["phone"]["top_values"][0] == ["+49 *** **01", 1]
    assert columns["status"]["top_values"] == [["B", 4], ["A", 4], ["C", 1]]  # not PII: as read
    shown = CliRunner().invoke(main, ["profile", str(tmp_path / "patients.csv"), "--json", "--show-pii"])
    assert (shown.exit_code, shown.stderr) == (0, "showing the values of PII columns in clear (--show-pii)\n")
    columns = {c["name"]: c for c in json.loads(shown.stdout)["columns"]}
    assert (columns["email"]["min"], columns["phone"]["top_values"][0]) == ("ann@evil.com", ["+49 30 5550101", 1])


def test_validate_shows_failing_values_masked_unless_asked(tmp_path):
    (tmp_path / "patients.csv").write_text(PATIENTS)
    (tmp_path / "schema.yaml").write_text(SCHEMA)
    args = ["validate", str(tmp_path / "patients.csv"), "--schema", str(tmp_path / "schema.yaml")]
    masked = CliRunner().invoke(main, args)
    assert masked.exit_code == 1
    assert masked.stdout.splitlines()[-2:] == [
        "  row 10  email: str_matches('^[^@]+@example\\.org$'): 'a***@evil.com'",
        "  row 10  status: isin(['A', 'B']): 'C'",
    ]
    shown = CliRunner().invoke(main, [*args, "--json", "--show-pii"])
    assert shown.stderr == "showing the values of PII columns in clear (--show-pii)\n"
    assert [(s["_row_number"], s["column"], s["failure_case"]) for s in json.loads(shown.stdout)["sample"]] == [
        (10, "email", "ann@evil.com"),
        (10, "status", "C"),
    ]
