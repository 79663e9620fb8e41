"""The maskers of each kind, pseudonyms, masking inside free text, and a frame's PII columns protected."""

import datetime as dt
import hashlib
import hmac

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harmonizer_pipeline.privacy.masking import MASKERS, mask, mask_quoted, pseudonymize, scrub_text
from harmonizer_pipeline.privacy.policy import MASKED, PrivacyError, Protection, export_protection, page_protection
from harmonizer_pipeline.privacy.settings import PrivacySettings


@pytest.mark.parametrize(
    ("kind", "value", "masked"),
    [
        ("email", "john.smith@example.org", "j***@example.org"),
        ("email", "not an address", "***"),
        ("phone", "+49 30 12345667", "+49 *** **67"),
        ("phone", "0044 20 7946 0958", "+44 *** **58"),
        ("phone", "030 1234567", "*** **67"),  # no country code to keep
        ("phone", "112", "***"),  # too short to show any digit
        ("card", "4111 1111 1111 1111", "**** 1111"),
        ("iban", "DE89 3704 0044 0532 0130 00", "DE** **** 3000"),
        ("iban", "DE89", "***"),
        ("ssn", "123-45-6789", "***-**-**89"),
        ("ip", "192.168.1.20", "192.*.*.*"),
        ("ip", "2001:db8::1", "2001:*:*:*"),
        ("ip", "999.1.1.1", "***"),
        ("name", "John  Smith", "J*** S***"),
        ("address", "Hauptstraße 5, 10115 Berlin", "***"),
        ("birth_date", "02.03.1984", "1984-**-**"),
        ("birth_date", dt.date(1984, 3, 2), "1984-**-**"),
        ("other", "anything", "***"),
        ("phone", 4930123456, "*** **56"),  # a typed number is masked as its text
    ],
)
def test_each_kind_keeps_its_shape_but_not_the_value(kind, value, masked):
    assert mask(value, kind) == masked


@pytest.mark.parametrize("kind", sorted(MASKERS))
@pytest.mark.parametrize("missing", [None, "", "   ", float("nan"), pd.NA, pd.NaT])
def test_null_and_blank_stay_as_they_are(kind, missing):
    assert mask(missing, kind) is missing
    assert pseudonymize(missing, b"key", 16) is missing


@pytest.mark.parametrize("kind", sorted(MASKERS))
@settings(max_examples=60)
@given(value=st.text(min_size=1).filter(lambda v: v.strip() and "*" not in v))
def test_a_mask_never_is_the_value_and_masking_it_again_changes_nothing(kind, value):
    masked = mask(value, kind)
    assert masked != value
    assert mask(masked, kind) == masked


@given(value=st.text(min_size=1).filter(str.strip))
def test_a_pseudonym_is_the_keyed_hmac_cut_to_its_digits(value):
    expected = hmac.new(b"k1", value.encode(), hashlib.sha256).hexdigest()
    assert pseudonymize(value, b"k1", 16) == expected[:16]
    assert pseudonymize(value, b"k2", 16) != pseudonymize(value, b"k1", 16)


def test_pii_inside_free_text_is_masked_and_the_rest_kept():
    text = "row 3: anna@example.org paid with 4111 1111 1111 1111 from 10.1.2.3, call +49 30 1234567 (ssn 123-45-6789) on 2024-01-15, 2 of 3 rows (66.67%)"
    assert scrub_text(text) == (
        "row 3: a***@example.org paid with **** 1111 from 10.*.*.*, call +49 *** **67 (ssn ***-**-**89) on 2024-01-15, 2 of 3 rows (66.67%)"
    )
    assert scrub_text("jan.csv@3f2a: 12 of 1,000 rows, dagster 1.13.0, at 10:15:00") == "jan.csv@3f2a: 12 of 1,000 rows, dagster 1.13.0, at 10:15:00"


def test_quoted_values_are_masked_in_place():
    assert mask_quoted("new values ['Ann Lee', \"O'Brien\"]", "name") == "new values ['A*** L***', 'O***']"


def test_a_frame_protects_only_its_pii_columns_each_value_the_same_way():
    frame = pd.DataFrame({"id": [1, 2, 3, 4], "email": ["a@x.org", None, "", "a@x.org"], "born": [dt.date(1990, 1, 2), None, dt.date(1985, 5, 6), None]})
    masked = MASKED.frame(frame, {"email": "email", "born": "birth_date", "absent": "name"})
    assert masked["id"].tolist() == [1, 2, 3, 4]
    assert masked["email"].tolist() == ["a***@x.org", pd.NA, "", "a***@x.org"]
    assert masked["born"].tolist() == ["1990-**-**", pd.NA, "1985-**-**", pd.NA]
    pseudonyms = Protection("pseudonymized", b"k", 12).frame(frame, {"email": "email"})["email"].tolist()
    assert pseudonyms[0] == pseudonyms[3] == hmac.new(b"k", b"a@x.org", hashlib.sha256).hexdigest()[:12]
    assert pseudonyms[1:3] == [pd.NA, ""]


def test_a_rejected_value_and_the_message_quoting_it_are_protected_together():
    record = {"column": "email", "failure_case": "bad@evil.com", "message": "column 'email' fails check with 'bad@evil.com'"}
    assert MASKED.failure(record, "email") == {"column": "email", "failure_case": "b***@evil.com", "message": "column 'email' fails check with 'b***@evil.com'"}
    assert MASKED.failure(record, None) == record


def test_pseudonymized_exports_need_their_key_in_the_environment():
    privacy = PrivacySettings(exports="pseudonymized", pseudonymization_key_env="HZ_PSEUDONYM_KEY")
    with pytest.raises(PrivacyError) as raised:
        export_protection(privacy, env={})
    assert str(raised.value) == "privacy.pseudonymization_key_env: environment variable HZ_PSEUDONYM_KEY is not set (exports: pseudonymized needs the key)"
    assert export_protection(privacy, env={"HZ_PSEUDONYM_KEY": "s3cret"}) == Protection("pseudonymized", b"s3cret", 16)
    assert export_protection(PrivacySettings(), env={}) == Protection("clear")


def test_pages_are_masked_unless_set_otherwise():
    assert page_protection(PrivacySettings(), env={}) == MASKED
    assert page_protection(PrivacySettings(reports="clear"), env={}) == Protection("clear")
    privacy = PrivacySettings(reports="pseudonymized", pseudonymization_key_env="HZ_PSEUDONYM_KEY")
    with pytest.raises(PrivacyError) as raised:
        page_protection(privacy, env={})
    assert str(raised.value) == "privacy.pseudonymization_key_env: environment variable HZ_PSEUDONYM_KEY is not set (reports: pseudonymized needs the key)"
    assert page_protection(privacy, env={"HZ_PSEUDONYM_KEY": "k"}) == Protection("pseudonymized", b"k", 16)
