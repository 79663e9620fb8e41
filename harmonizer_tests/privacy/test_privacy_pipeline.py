"""PII planted in landed files never leaves in clear for people: not in any materialization's
metadata or check result, nor in the runs' logs, nor in an alert; exports carry it clear, masked
or pseudonymized as privacy.exports says, while the stored tables keep it clear. Real Dagster
runs on the session's PostgreSQL, a real webhook on loopback."""

import hashlib
import hmac
import io
import json
import uuid
import zipfile
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq

from harmonizer_pipeline.definitions import build_definitions
from harmonizer_pipeline.demo import evaluate_sensor, launch_requests
from harmonizer_pipeline.monitoring.sensors import alerts_sensor
from harmonizer_pipeline.resources import build_resources
from harmonizer_pipeline.settings import parse_settings
from harmonizer_tests.loopback import Inbox

KEY_ENV = "HZ_TEST_PSEUDONYM_KEY"
COLUMNS = ["id", "email", "phone", "card", "iban", "ssn", "ip", "full_name"]
# Row 3's e-mail and row 4's name fail the schema: they are quarantined, shown in the gate's sample.
JAN = [
    ["1", "anna.meyer@example.org", "+49 30 1234567", "4111 1111 1111 1111", "DE89 3704 0044 0532 0130 00", "123-45-6789", "192.168.10.21", "Anna Meyer"],
    ["2", "ben.olsen@example.org", "+44 20 7946 0958", "5500 0000 0000 0004", "GB82 WEST 1234 5698 7654 32", "234-56-7890", "10.20.30.40", "Ben Olsen"],
    ["3", "carla.diaz@evil.com", "+33 1 42 68 53 00", "3400 0000 0000 009", "FR14 2004 1010 0505 0001 3M02 606", "345-67-8901", "172.16.5.4", "Carla Diaz"],
    ["4", "dan.kim@example.org", "+1 202 555 0143", "6011 0000 0000 0004", "NL91 ABNA 0417 1643 00", "456-78-9012", "8.8.4.4", "dan kim"],
]
# New names, cards and IBANs: the drift check finds new categories.
FEB = [
    ["5", "eva.ross@example.org", "+49 89 7654321", "4012 8888 8888 1881", "DE44 5001 0517 5407 3249 31", "567-89-0123", "192.168.10.99", "Eva Ross"],
    ["6", "finn.berg@example.org", "+46 8 123 456 78", "5105 1051 0510 5100", "SE45 5000 0000 0583 9825 7466", "678-90-1234", "10.20.30.77", "Finn Berg"],
]
PLANTED = sorted({value for row in JAN + FEB for value in row[1:]})

SCHEMA = """\
schema_type: dataframe
columns:
  id: {dtype: int64}
  email: {dtype: str, checks: {str_matches: '^[^@]+@example\\.org$'}}
  phone: {dtype: str}
  card: {dtype: str}
  iban: {dtype: str}
  ssn: {dtype: str}
  ip: {dtype: str}
  full_name: {dtype: str, checks: {str_matches: '^[A-Z][a-z]+ [A-Z][a-z]+$'}}
coerce: true
strict: true
"""


def csv_text(rows: list[list[str]]) -> str:
    return "\n".join(",".join(row) for row in [COLUMNS, *rows]) + "\n"


def make_defs(tmp_path: Path, source: str, target: str, exports: str) -> dg.Definitions:
    config = {
        "sources": {
            source: {
                "landing": {"local": {"path": "landing", "glob": "*.csv"}}, "schema": "schema.yaml", "max_reject_rate": 0.5, "target": target,
            }
        },
        "targets": {target: {"columns": {c: {} for c in COLUMNS}, "key": ["id"]}},
        "export": {"directory": "exports", "formats": ["csv", "parquet", "xlsx"]},
        # full_name is declared; every other column is PII by the profile's detector.
        "privacy": {"sources": {source: {"full_name": "name"}}, "exports": exports, "pseudonymization_key_env": KEY_ENV},
    }  # fmt: skip
    return build_definitions(parse_settings(json.dumps(config), base_dir=tmp_path), build_resources())


def land(defs: dg.Definitions, instance, source: str) -> list[dg.ExecuteInProcessResult]:
    sensor = next(s for s in defs.sensors if s.name == f"{source}_landing")
    return launch_requests(defs, sensor, instance, evaluate_sensor(defs, sensor, instance))


def file_text(name: str, data: bytes) -> str:
    """What a file says, whatever its format: Parquet read back, workbooks and zips member by member."""
    if name.endswith(".parquet"):
        return repr(pq.read_table(io.BytesIO(data)).to_pylist())
    if name.endswith((".xlsx", ".zip")):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "\n".join(file_text(member, archive.read(member)) for member in archive.namelist())
    return data.decode("utf-8")


def exported_text(root: Path) -> dict[str, str]:
    return {path.name: file_text(path.name, path.read_bytes()) for path in sorted(root.rglob("*")) if path.is_file()}


def found_in(texts: dict[str, str]) -> set[str]:
    return {value for value in PLANTED for text in texts.values() if value in text}


def pseudonym(key: str, value: str) -> str:
    return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()[:16]


def test_planted_pii_leaves_only_masked_or_pseudonymized(tmp_path, schema, psql, monkeypatch):
    source, target = f"pp_{schema[2:]}", f"pt_{schema[2:]}"
    (tmp_path / "landing").mkdir()
    (tmp_path / "schema.yaml").write_text(SCHEMA)
    exports = tmp_path / "exports" / target
    monkeypatch.setenv(KEY_ENV, "key-one")
    pseudonymized = make_defs(tmp_path, source, target, "pseudonymized")
    with dg.instance_for_test() as instance:
        (tmp_path / "landing" / "jan.csv").write_text(csv_text(JAN))
        assert [r.success for r in land(pseudonymized, instance, source)] == [True]
        (tmp_path / "landing" / "feb.csv").write_text(csv_text(FEB))
        assert [r.success for r in land(pseudonymized, instance, source)] == [True]
        harmonize = pseudonymized.resolve_job_def(f"harmonize_{target}")
        assert harmonize.execute_in_process(instance=instance).success
        # Stored tables keep clear values.
        assert psql(f'SELECT id, email FROM harmonized."{target}" ORDER BY id') == [
            ("1", JAN[0][1]), ("2", JAN[1][1]), ("5", FEB[0][1]), ("6", FEB[1][1]),
        ]  # fmt: skip
        first = exported_text(exports)
        # The full files, the unique and duplicate records, the change files, the target's page, the zip: none in clear.
        assert len(first) == 9 and sum("_changes_" in name for name in first) == 2
        assert found_in(first) == set()
        anna = pseudonym("key-one", "anna.meyer@example.org")
        assert anna in first[f"{target}.csv"] and anna in first[f"{target}.parquet"] and anna in first[f"{target}.xlsx"]
        # The rejected rows' sheet: the quarantined e-mail as its pseudonym too.
        assert pseudonym("key-one", "carla.diaz@evil.com") in first[f"{target}.xlsx"]
        # Another run, the same key: the same pseudonyms, so files of two runs still join.
        assert harmonize.execute_in_process(instance=instance).success
        again = exported_text(exports)
        assert again[f"{target}.csv"] == first[f"{target}.csv"]
        monkeypatch.setenv(KEY_ENV, "key-two")
        assert harmonize.execute_in_process(instance=instance).success
        other_key = exported_text(exports)[f"{target}.csv"]
        assert anna not in other_key and pseudonym("key-two", "anna.meyer@example.org") in other_key
        # Masked: what people see in the UI; clear: as stored.
        masked_job = make_defs(tmp_path, source, target, "masked").resolve_job_def(f"harmonize_{target}")
        assert masked_job.execute_in_process(instance=instance).success
        masked = exported_text(exports)
        assert found_in(masked) == set()
        assert "a***@example.org" in masked[f"{target}.csv"] and "A*** M***" in masked[f"{target}.csv"] and "**** 1111" in masked[f"{target}.csv"]
        assert "c***@evil.com" in masked[f"{target}.xlsx"]
        clear_job = make_defs(tmp_path, source, target, "clear").resolve_job_def(f"harmonize_{target}")
        assert clear_job.execute_in_process(instance=instance).success
        assert found_in({"csv": exported_text(exports)[f"{target}.csv"]}) == {v for row in (JAN[:2] + FEB) for v in row[1:]}
        # Nothing a run recorded (metadata, check results, log messages) holds a planted value.
        runs = instance.get_runs()
        assert len(runs) == 7
        events = {f"{run.run_id}#{i}": dg.serialize_value(entry) for run in runs for i, entry in enumerate(instance.all_logs(run.run_id))}
        assert found_in(events) == set()
        gates = [e for e in events.values() if "failing_rows_sample" in e]
        assert any("c***@evil.com" in e and "d*** k***" in e for e in gates)
        profiles = [e for e in events.values() if "quality score" in e and "top values" in e]
        assert any("+49 *** **67" in e and "DE** **** 3000" in e and "***-**-**89" in e and "192.*.*.*" in e for e in profiles)
        drift = [e for e in events.values() if "new_categories" in e]
        assert drift and any("E*** R***" in e for e in drift)


def test_an_alert_quoting_pii_is_sent_masked(tmp_path, server_url, monkeypatch):
    from harmonizer_pipeline.storage import postgres

    inbox = Inbox()
    inbox.thread.start()
    monkeypatch.setenv("HZ_TEST_WEBHOOK", f"{inbox.url}/hook")
    name = f"privacy_{uuid.uuid4().hex[:12]}"
    postgres.ensure_database(server_url, name)
    url = postgres.sqlalchemy_url(postgres.with_database(server_url, name), "psycopg2")
    sensor = alerts_sensor(parse_settings(json.dumps({"alerts": {"webhook": {"url_env": "HZ_TEST_WEBHOOK"}}}), base_dir=tmp_path))
    assert sensor is not None

    @dg.asset
    def matching() -> None:
        raise dg.Failure("no match for anna.meyer@example.org (card 4111 1111 1111 1111, phone +49 30 1234567, from 192.168.10.21)")

    try:
        with dg.instance_for_test(overrides={"storage": {"postgres": {"postgres_url": url}}}) as instance:
            context = dg.build_sensor_context(instance=instance)
            sensor(context)
            assert not dg.materialize([matching], instance=instance, raise_on_error=False).success
            context = dg.build_sensor_context(instance=instance, cursor=context.cursor)
            assert sensor(context).skip_message == "1 failed run(s), 0 failed check(s): 1 alert(s) sent, 0 failed to send"
    finally:
        inbox.server.shutdown()
        inbox.server.server_close()
        postgres.drop_database(server_url, name)
    [alert] = inbox.on("/hook")
    assert alert["message"] == "no match for a***@example.org (card **** 1111, phone +49 *** **67, from 192.*.*.*)"
