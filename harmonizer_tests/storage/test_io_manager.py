"""The PostgreSQL IO manager through Dagster's own `materialize`, against a real server."""

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from psycopg import sql

from harmonizer_pipeline.resources import PostgresPandasIOManager
from harmonizer_pipeline.storage.writes import DataFrameChunks


@pytest.fixture
def io_manager(database_url):
    return PostgresPandasIOManager(database_url=database_url)


def rows(psql, schema: str, table: str, order: str) -> list[tuple]:
    return psql(sql.SQL("SELECT * FROM {}.{} ORDER BY {}").format(sql.Identifier(schema), sql.Identifier(table), sql.SQL(order)))


def materialization(result: dg.ExecuteInProcessResult, key: list[str]):
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(key)]
    return event.materialization.metadata


def test_unpartitioned_asset_lands_in_schema_from_key_prefix_with_metadata(io_manager, schema, psql):
    long_name = "a_column_name_that_is_much_longer_than_the_sixty_three_bytes_postgres_allows"

    @dg.asset(key=[schema, "patients"])
    def patients() -> pd.DataFrame:
        return pd.DataFrame({"id": [1, 2], "name": ["Ann", ""], long_name: [True, False]})

    result = dg.materialize([patients], resources={"io_manager": io_manager})
    metadata = materialization(result, [schema, "patients"])
    assert metadata["dagster/row_count"].value == 2
    assert metadata["dagster/table_name"].value.endswith(f"{schema}.patients")
    assert [(c.name, c.type, c.description) for c in metadata["dagster/column_schema"].schema.columns] == [
        ("id", "bigint", "read as pandas int64"),
        ("name", "text", "read as pandas str"),
        (long_name, "boolean", "read as pandas bool"),
    ]
    stored = metadata["renamed_columns"].value[long_name]
    assert len(stored) == 63 and stored.startswith(long_name[:54])
    assert rows(psql, schema, "patients", "id") == [(1, "Ann", True), (2, "", False)]


def test_the_uis_column_schema_shows_the_types_the_table_holds(io_manager, schema):
    # pandas keeps dates as `object`; the UI shows what PostgreSQL holds.
    @dg.asset(key=[schema, "visits"])
    def visits() -> pd.DataFrame:
        return pd.DataFrame({
            "visit_date": [dt.date(2024, 1, 2), None], "seen_at": pd.to_datetime(["2024-01-02 10:00", None], utc=True),
            "weight": [70.5, None], "visits": pd.array([1, None], dtype="Int64"),
        })  # fmt: skip

    result = dg.materialize([visits], resources={"io_manager": io_manager})
    columns = materialization(result, [schema, "visits"])["dagster/column_schema"].schema.columns
    assert [(c.name, c.type) for c in columns] == [
        ("visit_date", "date"), ("seen_at", "timestamp with time zone"), ("weight", "double precision"), ("visits", "bigint"),
    ]  # fmt: skip
    assert columns[0].description == "read as pandas object"


def test_unpartitioned_asset_whose_columns_change_is_replaced(io_manager, schema, psql):
    version = {"columns": {"a": [1, 2, 3], "b": ["x", "y", "z"]}}

    @dg.asset(key=[schema, "evolving"])
    def evolving() -> pd.DataFrame:
        return pd.DataFrame(version["columns"])

    assert dg.materialize([evolving], resources={"io_manager": io_manager}).success
    version["columns"] = {"a": ["one"], "c": [1.5]}
    assert dg.materialize([evolving], resources={"io_manager": io_manager}).success
    assert rows(psql, schema, "evolving", "a") == [("one", 1.5)]
    columns = psql(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s ORDER BY ordinal_position",
        (schema,),
    )
    assert columns == [("a", "text"), ("c", "double precision")]


def test_static_partition_rematerialization_replaces_exactly_its_rows(io_manager, schema, psql):
    regions = dg.StaticPartitionsDefinition(["north", "south", "o'hare"])
    run = {"n": 0}

    @dg.asset(key=[schema, "sales"], partitions_def=regions, metadata={"partition_expr": "region"})
    def sales(context: dg.AssetExecutionContext) -> pd.DataFrame:
        # The frame leaves out the partition column: the IO manager fills it in.
        return pd.DataFrame({"amount": [run["n"] * 10 + i for i in range(2 if context.partition_key == "north" else 3)]})

    for key in ["north", "south", "o'hare"]:
        assert dg.materialize([sales], partition_key=key, resources={"io_manager": io_manager}).success
    run["n"] = 1
    result = dg.materialize([sales], partition_key="north", resources={"io_manager": io_manager})
    assert materialization(result, [schema, "sales"])["dagster/partition_row_count"].value == 2
    assert materialization(result, [schema, "sales"])["partition"].value == "north"
    assert rows(psql, schema, "sales", "region, amount") == [
        (10, "north"),
        (11, "north"),
        (0, "o'hare"),
        (1, "o'hare"),
        (2, "o'hare"),
        (0, "south"),
        (1, "south"),
        (2, "south"),
    ]


def test_dynamic_partitions_load_one_file_each_and_downstream_reads_them_all(io_manager, schema, psql):
    files = dg.DynamicPartitionsDefinition(name=f"files_{schema}")
    contents = {"a.csv": [1, 2], "b.csv": [3], "a.csv#2": [4, 5, 6]}

    @dg.asset(key=[schema, "raw"], partitions_def=files, metadata={"partition_expr": "_file"})
    def raw(context: dg.AssetExecutionContext) -> pd.DataFrame:
        return pd.DataFrame({"_file": context.partition_key, "value": contents[context.partition_key]})

    @dg.asset(key=[schema, "total"], ins={"raw": dg.AssetIn(key=[schema, "raw"])})
    def total(raw: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"files": [raw["_file"].nunique()], "total": [int(raw["value"].sum())]})

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(files.name, list(contents))
        for key in contents:
            assert dg.materialize([raw], partition_key=key, instance=instance, resources={"io_manager": io_manager}).success
        contents["b.csv"] = [30, 31]
        assert dg.materialize([raw], partition_key="b.csv", instance=instance, resources={"io_manager": io_manager}).success
        result = dg.materialize([raw, total], selection=[total], instance=instance, resources={"io_manager": io_manager})
        assert result.success
    assert rows(psql, schema, "total", "files") == [(3, 1 + 2 + 30 + 31 + 4 + 5 + 6)]


def test_time_window_partitions_replace_their_window(io_manager, schema, psql):
    days = dg.DailyPartitionsDefinition(start_date="2024-01-01", timezone="UTC")
    version = {"n": 1}

    @dg.asset(key=[schema, "events"], partitions_def=days, metadata={"partition_expr": "at"})
    def events(context: dg.AssetExecutionContext) -> pd.DataFrame:
        start = context.partition_time_window.start
        return pd.DataFrame({"at": [pd.Timestamp(start) + pd.Timedelta(hours=h) for h in (1, 23)], "n": [version["n"]] * 2})

    for day in ["2024-01-01", "2024-01-02"]:
        assert dg.materialize([events], partition_key=day, resources={"io_manager": io_manager}).success
    version["n"] = 2
    assert dg.materialize([events], partition_key="2024-01-02", resources={"io_manager": io_manager}).success
    stored = rows(psql, schema, "events", "at")
    utc = dt.UTC
    assert stored == [
        (dt.datetime(2024, 1, 1, 1, tzinfo=utc), 1),
        (dt.datetime(2024, 1, 1, 23, tzinfo=utc), 1),
        (dt.datetime(2024, 1, 2, 1, tzinfo=utc), 2),
        (dt.datetime(2024, 1, 2, 23, tzinfo=utc), 2),
    ]


def test_multi_partitions_replace_exactly_one_cell(io_manager, schema, psql):
    grid = dg.MultiPartitionsDefinition(
        {
            "day": dg.DailyPartitionsDefinition(start_date="2024-01-01"),
            "clinic": dg.StaticPartitionsDefinition(["a", "b"]),
        }
    )
    version = {"n": 1}

    @dg.asset(key=[schema, "visits"], partitions_def=grid, metadata={"partition_expr": {"day": "day", "clinic": "clinic"}})
    def visits(context: dg.AssetExecutionContext) -> pd.DataFrame:
        keys = context.partition_key.keys_by_dimension
        return pd.DataFrame({"clinic": [keys["clinic"]], "n": [version["n"]]})  # "day" is filled in

    for day in ["2024-01-01", "2024-01-02"]:
        for clinic in ["a", "b"]:
            key = dg.MultiPartitionKey({"day": day, "clinic": clinic})
            assert dg.materialize([visits], partition_key=key, resources={"io_manager": io_manager}).success
    version["n"] = 2
    key = dg.MultiPartitionKey({"day": "2024-01-02", "clinic": "a"})
    assert dg.materialize([visits], partition_key=key, resources={"io_manager": io_manager}).success
    stored = psql(sql.SQL("SELECT day::date::text, clinic, n FROM {}.visits ORDER BY 1, 2").format(sql.Identifier(schema)))
    assert stored == [("2024-01-01", "a", 1), ("2024-01-01", "b", 1), ("2024-01-02", "a", 2), ("2024-01-02", "b", 1)]


def test_columns_input_metadata_selects_columns(io_manager, schema):
    seen = {}

    @dg.asset(key=[schema, "wide"])
    def wide() -> pd.DataFrame:
        return pd.DataFrame({"a": [1], "b": ["x"], "c": [2.0]})

    @dg.asset(key=[schema, "narrow"], ins={"wide": dg.AssetIn(key=[schema, "wide"], metadata={"columns": ["c", "a"]})})
    def narrow(wide: pd.DataFrame) -> pd.DataFrame:
        seen["columns"] = wide.columns.tolist()
        return wide

    assert dg.materialize([wide, narrow], resources={"io_manager": io_manager}).success
    assert seen["columns"] == ["c", "a"]


def test_hostile_column_names_through_an_asset(io_manager, schema, psql):
    hostile = 'x"; DROP TABLE guard; --'
    psql("CREATE TABLE IF NOT EXISTS public.guard (id int)")
    seen = {}

    @dg.asset(key=[schema, "hostile"])
    def hostile_asset() -> pd.DataFrame:
        return pd.DataFrame({hostile: ["1"], "ok": [1]})

    @dg.asset(key=[schema, "reader"], ins={"h": dg.AssetIn(key=[schema, "hostile"], metadata={"columns": [hostile]})})
    def reader(h: pd.DataFrame) -> pd.DataFrame:
        seen["frame"] = h
        return h

    assert dg.materialize([hostile_asset, reader], resources={"io_manager": io_manager}).success
    assert seen["frame"].to_dict("list") == {hostile: ["1"]}
    assert psql("SELECT to_regclass('public.guard') IS NOT NULL") == [(True,)]


@pytest.mark.slow
def test_streamed_million_rows_are_copied_in_chunks_and_read_back_in_chunks(io_manager, schema):
    produced = []
    consumed = {}

    def chunks():
        for i in range(10):
            produced.append(i)
            yield pd.DataFrame({"n": np.arange(i * 100_000, (i + 1) * 100_000, dtype="int64"), "even": True})

    @dg.asset(key=[schema, "big"])
    def big() -> DataFrameChunks:
        return DataFrameChunks(chunks())

    @dg.asset(
        key=[schema, "big_summary"],
        ins={"big": dg.AssetIn(key=[schema, "big"], metadata={"chunk_rows": 250_000})},
    )
    def big_summary(big: DataFrameChunks) -> pd.DataFrame:
        sizes, total = [], 0
        for frame in big:
            sizes.append(len(frame))
            total += int(frame["n"].sum())
        consumed.update(sizes=sizes, total=total)
        return pd.DataFrame({"rows": [sum(sizes)]})

    result = dg.materialize([big, big_summary], resources={"io_manager": io_manager})
    assert result.success
    assert produced == list(range(10))
    assert materialization(result, [schema, "big"])["dagster/row_count"].value == 1_000_000
    assert consumed == {"sizes": [250_000] * 4, "total": sum(range(1_000_000))}


def test_a_failed_write_keeps_the_previous_materialization(io_manager, schema, psql):
    state = {"fail": False}

    def chunks():
        yield pd.DataFrame({"n": [100]})
        if state["fail"]:
            raise RuntimeError("source went away mid-stream")
        yield pd.DataFrame({"n": [200]})

    @dg.asset(key=[schema, "fragile"])
    def fragile() -> DataFrameChunks:
        return DataFrameChunks(chunks())

    assert dg.materialize([fragile], resources={"io_manager": io_manager}).success
    state["fail"] = True
    result = dg.materialize([fragile], resources={"io_manager": io_manager}, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "source went away mid-stream" in str(failure.step_failure_data.error)
    assert rows(psql, schema, "fragile", "n") == [(100,), (200,)]
