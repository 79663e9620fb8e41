"""`privacy:` in harmonizer.yaml: declarations naming what exists, kinds that exist, a key for pseudonyms."""

import json

import pytest

from harmonizer_pipeline.settings import SettingsError, parse_settings

SCHEMA = """\
schema_type: dataframe
columns:
  id: {dtype: str}
  mail: {dtype: str}
strict: true
"""


def settings_with(tmp_path, privacy: dict):
    (tmp_path / "a.yaml").write_text(SCHEMA)
    config = {
        "sources": {
            "clinic": {"landing": {"local": {"path": "in"}}, "schema": "a.yaml", "target": "people", "mapping": {"email": "mail"}},
            "loose": {"landing": {"local": {"path": "in2"}}},
        },
        "targets": {"people": {"columns": {"id": {}, "email": {}}, "key": ["id"]}},
        "privacy": privacy,
    }
    return parse_settings(json.dumps(config), base_dir=tmp_path)


def test_declared_columns_detection_and_export_mode_are_read(tmp_path):
    privacy = settings_with(
        tmp_path,
        {"sources": {"clinic": {"mail": "email"}, "loose": {"anything": "name"}}, "targets": {"people": {"email": "email"}},
         "exports": "pseudonymized", "pseudonymization_key_env": "HZ_KEY", "pseudonym_digits": 24, "detect": False},
    ).privacy  # fmt: skip
    assert (privacy.sources, privacy.targets) == ({"clinic": {"mail": "email"}, "loose": {"anything": "name"}}, {"people": {"email": "email"}})
    assert (privacy.exports, privacy.pseudonymization_key_env, privacy.pseudonym_digits, privacy.detect) == ("pseudonymized", "HZ_KEY", 24, False)
    assert settings_with(tmp_path, {}).privacy.exports == "clear"


@pytest.mark.parametrize(
    ("privacy", "message"),
    [
        (
            {"sources": {"clinic": {"mail": "passport"}}},
            "privacy.sources.clinic.mail: Input should be 'email', 'phone', 'card', 'iban', 'ssn', 'ip', 'name', 'address', 'birth_date' or 'other'",
        ),
        ({"sources": {"clinic": {"phone": "phone"}}}, "privacy.sources.clinic.phone: 'clinic' has no column 'phone' (columns: ['id', 'mail'])"),
        ({"sources": {"nowhere": {"mail": "email"}}}, "privacy.sources.nowhere: no source 'nowhere' (sources: ['clinic', 'loose'])"),
        ({"targets": {"people": {"name": "name"}}}, "privacy.targets.people.name: 'people' has no column 'name' (columns: ['id', 'email'])"),
        ({"targets": {"others": {"name": "name"}}}, "privacy.targets.others: no target 'others' (targets: ['people'])"),
        ({"exports": "pseudonymized"}, "privacy: exports: pseudonymized needs pseudonymization_key_env, the environment variable holding the key"),
        ({"exports": "hashed"}, "privacy.exports: Input should be 'clear', 'masked' or 'pseudonymized'"),
        ({"reports": "pseudonymized"}, "privacy: reports: pseudonymized needs pseudonymization_key_env, the environment variable holding the key"),
        ({"reports": "hidden"}, "privacy.reports: Input should be 'clear', 'masked' or 'pseudonymized'"),
        (
            {"exports": "pseudonymized", "pseudonymization_key_env": "HZ KEY"},
            "privacy.pseudonymization_key_env: String should match pattern '^[A-Za-z_][A-Za-z0-9_]*$'",
        ),
        ({"pseudonym_digits": 4}, "privacy.pseudonym_digits: Input should be greater than or equal to 8"),
        ({"detect": "sometimes"}, "privacy.detect: Input should be a valid boolean, unable to interpret input"),
        ({"mask": True}, "privacy.mask: Extra inputs are not permitted"),
    ],
)
def test_bad_privacy_settings_name_the_field(tmp_path, privacy, message):
    with pytest.raises(SettingsError) as raised:
        settings_with(tmp_path, privacy)
    assert raised.value.lines == [f"harmonizer.yaml: {message}"]
