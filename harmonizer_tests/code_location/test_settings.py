"""harmonizer.yaml: the shipped example loads; every bad field is reported with its path."""

from pathlib import Path

import pytest

from harmonizer_pipeline.settings import PROJECT_ROOT, SettingsError, load_settings_file, parse_settings

# A harmonizer.yaml with four bad fields (the `on:` key itself is fine), and the line for each.
BAD_SETTINGS = """\
sources:
  a:
    landing: {local: {path: in, glob: /etc/*}}
  b:
    landing: {local: {path: in, glob: ../../etc/*}}
  c:
    landing: {local: {glob: "*.csv"}}
alerts:
  on: [run_failure, page_me]
"""


def bad_settings_lines(path: Path) -> list[str]:
    return [
        f"{path}: sources.a.landing.local.glob: glob must be a non-empty pattern relative to the zone root: '/etc/*'",
        f"{path}: sources.b.landing.local.glob: glob must stay inside the zone ('..' leaves it): '../../etc/*'",
        f"{path}: sources.c.landing.local.path: Field required",
        f"{path}: alerts.on[1]: Input should be 'run_failure', 'check_failure' or 'check_warning'",
    ]


def test_bad_settings_file_gives_a_line_per_bad_field(tmp_path):
    path = tmp_path / "harmonizer.yaml"
    path.write_text(BAD_SETTINGS)
    with pytest.raises(SettingsError) as caught:
        load_settings_file(path)
    assert caught.value.lines == bad_settings_lines(path)


def test_shipped_example_loads_and_resolves_relative_paths():
    settings = load_settings_file(PROJECT_ROOT / "harmonizer.yaml")
    assert list(settings.sources) == ["clinic_a", "clinic_b", "clinic_c", "partner_feed"]
    assert settings.sources["clinic_b"].format.delimiter == ";"
    assert settings.landing_path("clinic_a") == PROJECT_ROOT / "harmonizer_pipeline/sample_data/landing/clinic_a"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("sources: [1, 2]", "sources: Input should be a valid dictionary"),
        ("sources:\n  Clinic-A:\n    landing: {local: {path: x}}", "sources.Clinic-A.[key]: String should match pattern '^[a-z][a-z0-9_]{0,62}$'"),
        ("sources:\n  a:\n    landing: {}", "sources.a.landing: give exactly one of 'local' or 'b2'"),
        ("sources:\n  a:\n    landing: {local: {path: x}, b2: {bucket: b}}", "sources.a.landing: give exactly one of 'local' or 'b2'"),
        ("sources:\n  a:\n    landing: {local: {glob: '*.csv'}}", "sources.a.landing.local.path: Field required"),
        ("sources:\n  a:\n    landing: {b2: {bucket: ''}}", "sources.a.landing.b2.bucket: String should have at least 1 character"),
        (
            "sources:\n  a:\n    landing: {local: {path: x}}\n    format: {delimiter: ';;'}",
            "sources.a.format.delimiter: String should have at most 1 character",
        ),
        (
            "sources:\n  a:\n    landing: {local: {path: x}}\n    format: {format: docx}",
            "sources.a.format.format: Input should be 'csv', 'tsv', 'excel', 'json', 'xml' or 'parquet'",
        ),
        ("sources:\n  a:\n    landing: {local: {path: x}}\n    colour: red", "sources.a.colour: Extra inputs are not permitted"),
        ("sources:\n  a:\n    landing: {local: {path: x, glob: 5}}", "sources.a.landing.local.glob: Input should be a valid string"),
        ("- just\n- a list", "must be a mapping with a 'sources' key, not list"),
        ("sources: {a: [unclosed", "line 1, column 23: expected ',' or ']', but got '<stream end>' (while parsing a flow sequence at line 1, column 14)"),
        ("sources:\n  a:\n    landing: {local: {path: x}}\n  a:\n    landing: {local: {path: y}}", "line 4, column 3: duplicate key 'a' (first at line 2)"),
    ],
)
def test_bad_settings_are_one_line_each_with_file_path_and_reason(text, line):
    with pytest.raises(SettingsError) as caught:
        parse_settings(text, base_dir=Path("/tmp"), origin="harmonizer.yaml")
    assert caught.value.lines == [f"harmonizer.yaml: {line}"]
    assert str(caught.value) == f"harmonizer.yaml: {line}"


def test_every_bad_field_is_reported_at_once_one_line_each():
    text = "sources:\n  a:\n    landing: {local: {}}\n  b:\n    landing: {b2: {}}\n    oops: 1"
    with pytest.raises(SettingsError) as caught:
        parse_settings(text, base_dir=Path("/tmp"), origin="/etc/h.yaml")
    assert str(caught.value).splitlines() == [
        "/etc/h.yaml: sources.a.landing.local.path: Field required",
        "/etc/h.yaml: sources.b.landing.b2.bucket: Field required",
        "/etc/h.yaml: sources.b.oops: Extra inputs are not permitted",
    ]


def test_problems_found_across_fields_get_a_line_each():
    text = (
        "sources:\n  a:\n    landing: {local: {path: x}}\n    target: people\n    mapping: {born: {column: b, formats: ['dd.mm.yyyy']}, age: years}\n"
        "targets:\n  people:\n    columns: {born: {type: date}, name: {}}\n    key: [name]\n"
    )
    with pytest.raises(SettingsError) as caught:
        parse_settings(text, base_dir=Path("/tmp"))
    assert caught.value.lines == [
        "harmonizer.yaml: sources.a.mapping.born.formats: date: option formats='dd.mm.yyyy' is invalid: "
        "a strptime format needs % directives such as %d, %m, %Y",
        "harmonizer.yaml: sources.a.mapping.age: 'people' has no column 'age' (columns: ['born', 'name'])",
    ]
    broken_target = text.replace("key: [name]", "key: [nm]\n    survivorship: source_priority")
    with pytest.raises(SettingsError) as caught:
        parse_settings(broken_target, base_dir=Path("/tmp"))
    assert caught.value.lines == [
        "harmonizer.yaml: targets.people.key: ['nm'] not among the target's columns ['born', 'name']",
        "harmonizer.yaml: targets.people.source_priority: give the sources in order when survivorship is source_priority",
    ]


def test_missing_file_is_a_settings_error(tmp_path):
    with pytest.raises(SettingsError) as caught:
        load_settings_file(tmp_path / "nope.yaml")
    assert caught.value.lines == [f"{tmp_path / 'nope.yaml'}: cannot read: No such file or directory"]


@pytest.mark.parametrize(
    ("glob", "reason"),
    [
        ("/etc/*", "glob must be a non-empty pattern relative to the zone root: '/etc/*'"),
        ("", "glob must be a non-empty pattern relative to the zone root: ''"),
        ("../../etc/*", "glob must stay inside the zone ('..' leaves it): '../../etc/*'"),
        ("in/../../*.csv", "glob must stay inside the zone ('..' leaves it): 'in/../../*.csv'"),
        ("in//*.csv", "glob must not have an empty or '.' segment: 'in//*.csv'"),
        ("in/", "glob must not have an empty or '.' segment: 'in/'"),
        ("./*.csv", "glob must not have an empty or '.' segment: './*.csv'"),
    ],
)
@pytest.mark.parametrize("zone", ["local: {path: x, ", "b2: {bucket: b, "])
def test_bad_globs_fail_when_the_settings_load(zone, glob, reason):
    text = f"sources:\n  a:\n    landing: {{{zone}glob: '{glob}'}}}}\n"
    with pytest.raises(SettingsError) as caught:
        parse_settings(text, base_dir=Path("/tmp"))
    assert caught.value.lines == [f"harmonizer.yaml: sources.a.landing.{zone.split(':')[0]}.glob: {reason}"]


@pytest.mark.parametrize("glob", ["*", "*.csv", "**/*.json", "in/2026-*/*.xlsx", "..data/*.csv"])
def test_good_globs_load(glob):
    settings = parse_settings(f"sources:\n  a:\n    landing: {{local: {{path: x, glob: '{glob}'}}}}\n", base_dir=Path("/tmp"))
    assert settings.sources["a"].landing.local.glob == glob


def test_alerts_on_as_written_in_yaml_is_the_key_on():
    settings = parse_settings("alerts:\n  on: [run_failure, check_failure]\n", base_dir=Path("/tmp"))
    assert settings.alerts.on == ["run_failure", "check_failure"]


def test_yaml_1_1_words_are_text_where_text_is_meant_and_booleans_where_a_boolean_is():
    text = (
        "sources:\n  a:\n    landing: {local: {path: x}}\n    format: {header: yes}\n    target: t\n"
        "    mapping:\n      flag: {column: f, nulls: [no, off], values: {'true': [yes, on, Y], 'false': [no, off, N]}}\n"
        "      country: {constant: no}\n"
        "targets:\n  t:\n    columns: {flag: {type: boolean}, country: {}, yes: {}}\n    key: [flag]\n"
        "export: {csv_bom: on, zip: off}\n"
    )
    settings = parse_settings(text, base_dir=Path("/tmp"))
    flag = settings.sources["a"].mapping["flag"]
    assert (flag.nulls, flag.values) == (["no", "off"], {"true": ["yes", "on", "Y"], "false": ["no", "off", "N"]})
    assert settings.sources["a"].mapping["country"].constant == "no"  # Norway, not False
    assert list(settings.targets["t"].columns) == ["flag", "country", "yes"]
    assert (settings.sources["a"].format.header, settings.export.csv_bom, settings.export.zip) == (True, True, False)


def test_an_untyped_rule_option_wants_true_or_false():
    text = "targets:\n  t:\n    columns: {name: {rules: [{person_name: {family: yes}}]}}\n    key: [name]\n"
    with pytest.raises(SettingsError) as caught:
        parse_settings(text, base_dir=Path("/tmp"))
    assert caught.value.lines == ["harmonizer.yaml: targets.t.columns.name.rules[0]: person_name: option family='yes' is invalid: expected true or false"]


def test_b2_source_has_no_local_path():
    settings = parse_settings("sources:\n  cloud:\n    landing: {b2: {bucket: landing, prefix: in/}}", base_dir=Path("/tmp"))
    with pytest.raises(SettingsError, match="source 'cloud' lands in B2, not in a local folder"):
        settings.landing_path("cloud")


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ("ingest: {chunk_rows: 0}", "ingest.chunk_rows: Input should be greater than 0"),
        ("ingest: {max_new_files_per_tick: -1}", "ingest.max_new_files_per_tick: Input should be greater than 0"),
        ("ingest: {max_listed_per_tick: many}", "ingest.max_listed_per_tick: Input should be a valid integer"),
        ("ingest: {staging: /tmp}", "ingest.staging: Extra inputs are not permitted"),
        ("ingest: {max_load_attempts: 0}", "ingest.max_load_attempts: Input should be greater than or equal to 1"),
        ("ingest: {max_load_attempts: 101}", "ingest.max_load_attempts: Input should be less than or equal to 100"),
        ("ingest: {retry_backoff_seconds: -1}", "ingest.retry_backoff_seconds: Input should be greater than or equal to 0"),
        ("ingest: {retry_backoff_seconds: soon}", "ingest.retry_backoff_seconds: Input should be a valid number"),
        ("ingest: {load_heartbeat_timeout_seconds: 0.5}", "ingest.load_heartbeat_timeout_seconds: Input should be greater than or equal to 1"),
        ("ingest: {sensor_interval_seconds: 0}", "ingest.sensor_interval_seconds: Input should be greater than or equal to 1"),
        ("ingest: {sensor_interval_seconds: 1.5}", "ingest.sensor_interval_seconds: Input should be a valid integer"),
    ],
)
def test_bad_ingest_limits_name_the_field(fragment, message):
    with pytest.raises(SettingsError) as caught:
        parse_settings(f"sources: {{}}\n{fragment}\n", base_dir=Path("/tmp"))
    assert message in str(caught.value)


def test_format_hints_reach_the_readers():
    from harmonizer_pipeline.ingest.assets import read_hints

    text = "sources:\n  a:\n    landing: {local: {path: x}}\n    format: {format: csv, delimiter: ';', encoding: cp1252, header: true}\n"
    hints = read_hints(parse_settings(text, base_dir=Path("/tmp")), "a")
    assert (hints.format, hints.delimiter, hints.encoding, hints.header, hints.sheet) == ("csv", ";", "cp1252", True, None)


def test_a_malformed_schema_file_is_a_settings_error_naming_source_and_file(tmp_path):
    (tmp_path / "bad.yaml").write_text("schema_type: dataframe\ncolumns:\n  id: {dtype: not_a_type}\n")
    text = "sources:\n  a:\n    landing: {local: {path: x}}\n    schema: bad.yaml\n"
    with pytest.raises(SettingsError) as caught:
        parse_settings(text, base_dir=tmp_path)
    assert "sources.a.schema: schema bad.yaml: " in str(caught.value)
    assert "not_a_type" in str(caught.value)


def test_schemas_of_the_shipped_example_load_from_yaml_and_from_a_class():
    settings = load_settings_file(PROJECT_ROOT / "harmonizer.yaml")
    assert (settings.sources["clinic_a"].max_reject_rate, settings.sources["clinic_b"].max_reject_rate) == (0.05, 0.0)
    clinic_a, clinic_b = settings.schema_for("clinic_a"), settings.schema_for("clinic_b")
    assert clinic_a.columns["patient_id"].unique and str(clinic_a.columns["birth_date"].dtype) == "datetime64[ns]"
    assert list(clinic_b.columns) == ["id", "name", "dob", "sex", "town"] and clinic_b.strict


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ("    format: {encoding: klingon-8}", "sources.a.format.encoding: unknown encoding 'klingon-8'"),
        ("    format: {quotechar: \"''\"}", "sources.a.format.quotechar: String should have at most 1 character"),
        ("    format: {header: maybe}", "sources.a.format.header: Input should be a valid boolean"),
        ("    format: {sheet: 3}", "sources.a.format.sheet: Input should be a valid string"),
        ("    schema: missing.yaml", "sources.a.schema: schema missing.yaml: no such file (/tmp/"),
        ("    schema: ''", "sources.a.schema: String should have at least 1 character"),
        ("    schema: no_such_module:Model", "sources.a.schema: schema no_such_module:Model: cannot import Model from no_such_module"),
        ("    schema: harmonizer_pipeline.settings:Settings", "sources.a.schema: schema harmonizer_pipeline.settings:Settings: Settings is a "),
        ("    schema: [a, b]", "sources.a.schema: Input should be a valid string"),
        ("    max_reject_rate: 1.5", "sources.a.max_reject_rate: Input should be less than or equal to 1"),
        ("    max_reject_rate: -0.1", "sources.a.max_reject_rate: Input should be greater than or equal to 0"),
        ("    max_reject_rate: some", "sources.a.max_reject_rate: Input should be a valid number"),
        ("    key: []", "sources.a.key: List should have at least 1 item"),
        ("    key: id", "sources.a.key: Input should be a valid list"),
        ("    key: ['']", "sources.a.key[0]: String should have at least 1 character"),
        ("    mode: replace", "sources.a.mode: Input should be 'append' or 'snapshot'"),
        ("    mode: [snapshot]", "sources.a.mode: Input should be 'append' or 'snapshot'"),
        ("keys: {max_size: 0}", "keys.max_size: Input should be greater than 0"),
        ("keys: {null_equals_null: sometimes}", "keys.null_equals_null: Input should be a valid boolean"),
        ("keys: {algorithm: fast}", "keys.algorithm: Extra inputs are not permitted"),
    ],
)
def test_bad_source_and_key_fields_name_the_field(fragment, message):
    # Fragments indented by four spaces belong to source `a`; the others are top-level.
    text = f"sources:\n  a:\n    landing: {{local: {{path: x}}}}\n{fragment}\n"
    with pytest.raises(SettingsError) as caught:
        parse_settings(text, base_dir=Path("/tmp"))
    assert message in str(caught.value)


TARGET = """targets:
  people:
    columns:
      name: {type: text, required: true, rules: [person_name]}
      born: {type: date}
      email: {type: text, rules: [email]}
    key: [name, born]
"""


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ("    target: persons", "sources.a.target: no target 'persons' (targets: ['people'])"),
        (
            "    target: people\n    mapping: {surname: last}",
            "sources.a.mapping.surname: 'people' has no column 'surname' (columns: ['name', 'born', 'email'])",
        ),
        ("    mapping: {name: n}", "sources.a.mapping: give the target it maps into (sources.a.target)"),
        (
            "    target: people\n    mapping: {name: {column: n, constant: x}}",
            "sources.a.mapping.name: give exactly one of column, constant, combine, split (given: column, constant)",
        ),
        ("    target: people\n    mapping: {name: {}}", "give exactly one of column, constant, combine, split (given: none)"),
        ("    target: people\n    mapping: {name: {combine: [first]}}", "sources.a.mapping.name.combine: List should have at least 2 items"),
        ("    target: people\n    mapping: {name: {split: {column: n, parts: 2, part: 2}}}", "part 2 of 2 parts does not exist"),
        ("    target: people\n    mapping: {born: {column: b, formats: ['dd.mm.yyyy']}}", "sources.a.mapping.born.formats: date: "),
        ("    target: people\n    mapping: {born: {column: b, unit: {from: lb, to: cm}}}", "sources.a.mapping.born.unit: convert_unit: "),
        ("    target: people\n    mapping: {born: {column: b, colour: red}}", "sources.a.mapping.born.colour: Extra inputs are not permitted"),
        (
            "    target: people\n    schema: harmonizer_pipeline/sample_data/schemas/clinic_a.yaml\n    mapping: {name: surname}",
            "sources.a.mapping.name: source 'a' has no column(s) ['surname'] (its schema has ['patient_id', 'first_name'",
        ),
    ],
)
def test_bad_mappings_name_the_field(fragment, message):
    text = f"sources:\n  a:\n    landing: {{local: {{path: x}}}}\n{fragment}\n{TARGET}"
    with pytest.raises(SettingsError) as caught:
        parse_settings(text, base_dir=PROJECT_ROOT)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("replace", "by", "message"),
    [
        ("key: [name, born]", "key: [name, age]", "key: ['age'] not among the target's columns ['name', 'born', 'email']"),
        ("key: [name, born]", "key: []", "targets.people.key: List should have at least 1 item"),
        ("rules: [email]", "rules: [e_mail]", "targets.people.columns.email.rules[0]: "),
        ("rules: [email]", "rules: [{phone: {region: XX}}]", "targets.people.columns.email.rules[0]: "),
        ("rules: [email]", "rules: [{phone: {colour: red}}]", "targets.people.columns.email.rules[0]: "),
        ("{type: date}", "{type: timestamp}", "targets.people.columns.born.type: Input should be 'text', 'integer', 'float', 'boolean', 'date' or 'datetime'"),
        ("{type: date}", "{type: date, required: perhaps}", "targets.people.columns.born.required: Input should be a valid boolean"),
        (
            "key: [name, born]",
            "key: [name, born]\n    survivorship: loudest",
            "targets.people.survivorship: Input should be 'latest_file', 'most_complete' or 'source_priority'",
        ),
        ("key: [name, born]", "key: [name, born]\n    survivorship: source_priority", "source_priority: give the sources in order"),
        (
            "key: [name, born]",
            "key: [name, born]\n    survivorship: source_priority\n    source_priority: [b]",
            "targets.people.source_priority: ['b'] do not map into 'people' (sources that do: ['a'])",
        ),
        ("key: [name, born]", "key: [name, born]\n    match: {columns: [nick]}", "match.columns: ['nick'] not among the target's columns"),
        (
            "key: [name, born]",
            "key: [name, born]\n    match: {columns: [name], threshold: 120}",
            "targets.people.match.threshold: Input should be less than or equal to 100",
        ),
        ("key: [name, born]", "key: [name, born]\n    history: sometimes", "targets.people.history: Input should be a valid boolean"),
        ("key: [name, born]", "key: [name, born]\n  People:\n    columns: {a: {}}\n    key: [a]", "targets.People.[key]: String should match pattern"),
    ],
)
def test_bad_targets_name_the_field(replace, by, message):
    text = f"sources:\n  a:\n    landing: {{local: {{path: x}}}}\n    target: people\n{TARGET.replace(replace, by)}"
    with pytest.raises(SettingsError) as caught:
        parse_settings(text, base_dir=PROJECT_ROOT)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ("export: {formats: [csv, docx]}", "export.formats[1]: Input should be 'csv', 'parquet' or 'xlsx'"),
        ("export: {formats: []}", "export.formats: List should have at least 1 item"),
        ("export: {csv_bom: often}", "export.csv_bom: Input should be a valid boolean"),
        ("export: {b2: {prefix: out/}}", "export.b2.bucket: Field required"),
        ("export: {zip: 3}", "export.zip: Input should be a valid boolean"),
        ("export: {full: weekly}", "export.full: Input should be 'every_run' or 'schedule'"),
        ("ask: {statement_timeout_seconds: 0}", "ask.statement_timeout_seconds: Input should be greater than 0"),
        ("ask: {statement_timeout_seconds: 601}", "ask.statement_timeout_seconds: Input should be less than or equal to 600"),
        ("ask: {row_limit: 0}", "ask.row_limit: Input should be greater than 0"),
        ("ask: {row_limit: many}", "ask.row_limit: Input should be a valid integer"),
        ("ask: {sample_values: 21}", "ask.sample_values: Input should be less than or equal to 20"),
        ("ask: {role: admin}", "ask.role: Input should be 'reader' or 'steward'"),
        ("ask: {model: gpt}", "ask.model: Extra inputs are not permitted"),
        ("summaries: {llm: sometimes}", "summaries.llm: Input should be a valid boolean"),
    ],
)
def test_bad_export_ask_and_summaries_fields_name_the_field(fragment, message):
    with pytest.raises(SettingsError) as caught:
        parse_settings(f"{fragment}\n", base_dir=PROJECT_ROOT)
    assert message in str(caught.value)


RELATED = """\
sources:
  patients:
    landing: {local: {path: x}}
    schema: harmonizer_pipeline/sample_data/schemas/clinic_a.yaml
  visits: {landing: {local: {path: y}}}
targets:
  people: {columns: {id: {}, city: {}}, key: [id]}
"""


@pytest.mark.parametrize(
    ("relation", "message"),
    [
        (
            "{from: visits.patient, to: airlinez.carrier}",
            "relations[0].to: no source or target 'airlinez' (sources: ['patients', 'visits'], targets: ['people'])",
        ),
        ("{from: visits.patient, to: patients.nope}", "relations[0].to: 'patients' has no column 'nope' (columns: ['patient_id', 'first_name',"),
        ("{from: people.nope, to: patients.patient_id}", "relations[0].from: 'people' has no column 'nope' (columns: ['id', 'city'])"),
        ("{from: visits, to: patients.patient_id}", "relations[0].from: 'visits' is not table.column (a composite side is {table: t, columns: [a, b]})"),
        ("{from: visits.patient, to: visits.other}", "relations[0].to: 'visits' is the table the relation is from: a relation joins two different tables"),
        (
            "{from: {table: visits, columns: [patient, city]}, to: patients.patient_id}",
            "relations[0].to.columns: 1 column(s) where from has 2: each side needs as many",
        ),
        ("{from: {table: visits, columns: [a, b, c, d]}, to: people.id}", "relations[0].from.columns: List should have at most 3 items"),
        ("{from: {table: visits, columns: []}, to: people.id}", "relations[0].from.columns: List should have at least 1 item"),
        ("{from: {table: visits, columns: [a, a]}, to: {table: people, columns: [id, city]}}", "relations[0].from.columns: ['a'] named more than once"),
        ("{from: visits.patient, to: people.id, max_violations: -1}", "relations[0].max_violations: Input should be greater than or equal to 0"),
        ("{from: visits.patient, to: people.id, blocking: maybe}", "relations[0].blocking: Input should be a valid boolean"),
        ("{from: visits.patient, to: people.id, severity: high}", "relations[0].severity: Extra inputs are not permitted"),
        ("{to: people.id}", "relations[0].from: Field required"),
    ],
)
def test_bad_relations_name_the_field(relation, message):
    with pytest.raises(SettingsError) as caught:
        parse_settings(f"{RELATED}relations:\n  - {relation}\n", base_dir=PROJECT_ROOT)
    assert message in str(caught.value) and len(caught.value.lines) == 1


def test_a_relation_given_twice_is_reported_at_the_second():
    twice = "relations:\n  - {from: visits.patient, to: people.id}\n  - {from: visits.patient, to: people.id, blocking: true}\n"
    with pytest.raises(SettingsError) as caught:
        parse_settings(RELATED + twice, base_dir=PROJECT_ROOT)
    assert caught.value.lines == ["harmonizer.yaml: relations[1]: the same relation as relations[0]"]


def test_the_shipped_targets_and_mappings_load():
    settings = load_settings_file(PROJECT_ROOT / "harmonizer.yaml")
    assert settings.sources_of("patients") == ["clinic_a", "clinic_b", "clinic_c", "partner_feed"]
    patients = settings.targets["patients"]
    assert patients.key == ["last_name", "first_name", "birth_date"]
    assert [r.name for r in patients.columns["phone"].rules] == ["phone"] and patients.columns["phone"].rules[0].options == {"region": "DE"}
    clinic_b = settings.sources["clinic_b"].mapping
    assert (clinic_b["last_name"].split.column, clinic_b["last_name"].split.part) == ("name", 1)
    assert clinic_b["birth_date"].column == "dob"
    assert settings.sources["clinic_c"].mapping["weight_kg"].unit.from_unit == "lb"
    assert settings.export.directory is None
    assert parse_settings("export: {directory: out}", base_dir=Path("/srv/h")).export_directory() == Path("/srv/h/out")
