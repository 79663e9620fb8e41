"""The guard in front of `harmonizer ask` (no dagster, no database): a language model's SQL becomes one
PostgreSQL query that only reads the tables a question may read and calls only ALLOWED_FUNCTIONS, or
a refusal saying why in one line.

The model's SQL is treated as hostile. sqlglot parses it; the guard walks the whole tree (every
clause, subquery and CTE) and returns the query as sqlglot writes it back, tables qualified, so that
what runs is what was checked, however the input was spelled (comments, dollar quotes, casing).
This is the first line of defence: the runner then runs the query in a READ ONLY transaction as
harmonizer_reader, with a statement timeout and a row limit, and keeps standard_conforming_strings
on (PostgreSQL's default), under which a backslash in a string is itself, as sqlglot writes it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, TokenError, UnsupportedError
from sqlglot.expressions.dml import DML

DIALECT = "postgres"

# What a query may call, by its PostgreSQL spelling (a function, keyword or operator), with the sqlglot
# classes it parses to; exp.Anonymous is a function sqlglot does not know, accepted by its name. A known
# function is accepted by its class, whatever name it was written with, since what runs is how sqlglot
# writes that class back. None of these reads a file, the catalog or the settings, waits, sends
# anything, or changes state: each computes on the values it is given.
ALLOWED_FUNCTIONS: Mapping[str, tuple[type[exp.Expr], ...]] = MappingProxyType(
    {
        # Aggregates: summarize the rows the query already reads.
        "count": (exp.Count,),
        "sum": (exp.Sum,),
        "avg": (exp.Avg,),
        "min": (exp.Min,),
        "max": (exp.Max,),
        "stddev": (exp.Stddev,),
        "stddev_pop": (exp.StddevPop,),
        "stddev_samp": (exp.StddevSamp,),
        "variance": (exp.Variance,),
        "var_samp": (exp.Variance,),
        "var_pop": (exp.VariancePop,),
        "percentile_cont": (exp.PercentileCont,),
        "percentile_disc": (exp.PercentileDisc,),
        "mode": (exp.Mode,),
        "string_agg": (exp.GroupConcat,),
        "array_agg": (exp.ArrayAgg,),
        "bool_and": (exp.LogicalAnd,),
        "bool_or": (exp.LogicalOr,),
        "every": (exp.Anonymous,),
        "grouping": (exp.Grouping,),
        # Window functions: rank and look across those same rows.
        "row_number": (exp.RowNumber,),
        "rank": (exp.Rank,),
        "dense_rank": (exp.DenseRank,),
        "ntile": (exp.Ntile,),
        "lag": (exp.Lag,),
        "lead": (exp.Lead,),
        "first_value": (exp.FirstValue,),
        "last_value": (exp.LastValue,),
        "nth_value": (exp.NthValue,),
        "percent_rank": (exp.PercentRank,),
        "cume_dist": (exp.CumeDist,),
        # Text: functions of their arguments alone (format only formats, as to_char does).
        "lower": (exp.Lower,),
        "upper": (exp.Upper,),
        "initcap": (exp.Initcap,),
        "length": (exp.Length,),
        "char_length": (exp.Length,),
        "trim": (exp.Trim,),
        "btrim": (exp.Trim,),
        "ltrim": (exp.Trim,),
        "rtrim": (exp.Trim,),
        "substring": (exp.Substring,),
        "substr": (exp.Substring,),
        "left": (exp.Left,),
        "right": (exp.Right,),
        "replace": (exp.Replace,),
        "split_part": (exp.SplitPart,),
        "concat": (exp.Concat,),
        "concat_ws": (exp.ConcatWs,),
        "position": (exp.StrPosition,),
        "strpos": (exp.StrPosition,),
        "starts_with": (exp.StartsWith,),
        "regexp_replace": (exp.RegexpReplace,),
        "regexp_match": (exp.Anonymous,),
        "regexp_matches": (exp.Anonymous,),
        "lpad": (exp.Pad,),
        "rpad": (exp.Pad,),
        "reverse": (exp.Reverse,),
        "format": (exp.Format,),
        "to_char": (exp.TimeToStr,),
        # Numbers: arithmetic.
        "abs": (exp.Abs,),
        "round": (exp.Round,),
        "ceil": (exp.Ceil,),
        "ceiling": (exp.Ceil,),
        "floor": (exp.Floor,),
        "trunc": (exp.Trunc,),
        "sqrt": (exp.Sqrt,),
        "power": (exp.Pow,),
        "^": (exp.Pow,),
        "mod": (exp.Mod,),
        "greatest": (exp.Greatest,),
        "least": (exp.Least,),
        "sign": (exp.Sign,),
        "exp": (exp.Exp,),
        "ln": (exp.Ln,),
        "log": (exp.Log,),
        "width_bucket": (exp.WidthBucket,),
        # Dates and times: the clock and calendar arithmetic.
        "now": (exp.CurrentTimestamp,),
        "current_timestamp": (exp.CurrentTimestamp,),
        "current_date": (exp.CurrentDate,),
        "date_trunc": (exp.TimestampTrunc,),
        "date_part": (exp.Extract,),
        "extract": (exp.Extract,),
        "age": (exp.Anonymous,),
        "make_date": (exp.Anonymous,),
        "to_date": (exp.StrToDate,),
        "to_timestamp": (exp.StrToTime, exp.UnixToTime),
        "justify_days": (exp.JustifyDays,),
        "justify_hours": (exp.JustifyHours,),
        "justify_interval": (exp.JustifyInterval,),
        # Conditionals and casts (casts to the types in _REFUSED_TYPES aside).
        "coalesce": (exp.Coalesce,),
        "nullif": (exp.Nullif,),
        "case": (exp.Case, exp.If),
        "cast": (exp.Cast,),
        "::": (exp.Cast,),
        # JSON accessors and containment tests: read into a value.
        "jsonb_extract_path_text": (exp.Anonymous,),
        "->": (exp.JSONExtract,),
        "->>": (exp.JSONExtractScalar,),
        "#>": (exp.JSONBExtract,),
        "#>>": (exp.JSONBExtractScalar,),
        "?": (exp.JSONBContainsTopKey,),
        "@>": (exp.ArrayContainsAll,),
        "<@": (exp.ArrayContainedBy,),
        "&&": (exp.ArrayOverlaps,),
        # Syntax sqlglot parses as functions: logic, patterns, arrays, subquery tests, collations.
        "and": (exp.And,),
        "or": (exp.Or,),
        "~": (exp.RegexpLike,),
        "~*": (exp.RegexpILike,),
        "array": (exp.Array,),
        "exists": (exp.Exists,),
        "collate": (exp.Collate,),
    }
)
_ALLOWED_NAMES = frozenset(name for name, classes in ALLOWED_FUNCTIONS.items() if exp.Anonymous in classes)
_ALLOWED_CLASSES = frozenset(cls for classes in ALLOWED_FUNCTIONS.values() for cls in classes) - {exp.Anonymous}

# SQL-value functions PostgreSQL reads where a column's name would stand (sqlglot parses some as
# columns): they tell who runs the query and where; quoted, they are columns.
_IDENTITY_KEYWORDS = frozenset({"current_catalog", "current_role", "current_schema", "current_user", "session_user", "system_user", "user"})

# A cast runs the input function of its type: xml parses documents and user-defined types (and
# schema-qualified ones) run what their creator wrote; object identifier types (regclass, oid, ...,
# sqlglot's exp.ObjectIdentifier) look names up in the catalog.
_REFUSED_TYPES = frozenset({exp.DataType.Type.XML, exp.DataType.Type.USERDEFINED})

_NOT_A_QUERY = "is not a query: only SELECT (with WITH) is run"


@dataclass(frozen=True)
class Checked:
    """A query the guard lets through: `sql` as sqlglot writes it for PostgreSQL, with every table
    schema-qualified (what the runner runs); `tables` the (schema, table) pairs it reads, sorted."""

    sql: str
    tables: list[tuple[str, str]]


class QueryRefused(ValueError):
    """Why the guard refuses a query: one line, for a person."""


def check_query(sql: str, allowed: Mapping[str, Collection[str]], default_schema: str = "harmonized") -> Checked:
    """`sql` checked as one read-only query over the `allowed` tables (schema -> table names), or
    QueryRefused. An unqualified name is a CTE where one of that name is in scope, else a table of
    `default_schema` (the runner's search_path). VALUES counts as a query: its rows are constants."""
    statement = _one_statement(sql)
    if not isinstance(statement, (exp.Query, exp.Values)):
        raise QueryRefused(f"{_keyword(statement)} {_NOT_A_QUERY}")
    read: set[tuple[str, str]] = set()
    unqualified: list[exp.Table] = []
    for node in statement.walk():
        _refuse_writing(node)
        _refuse_calling(node)
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier) and not _names_a_cte(node):
            read.add(_table_read(node, allowed, default_schema))
            if not node.args.get("db"):
                unqualified.append(node)
    for table in unqualified:
        table.set("db", exp.to_identifier(default_schema))
    return Checked(_written(statement), sorted(read))


def _one_statement(sql: str) -> exp.Expr:
    try:
        statements = [statement for statement in sqlglot.parse(sql, read=DIALECT) if statement is not None]
    except (ParseError, TokenError) as error:
        raise QueryRefused(f"the SQL does not parse: {str(error).splitlines()[0]}") from error
    except RecursionError as error:  # sqlglot parses by recursive descent: some 60 nested subqueries are too many
        raise QueryRefused("the SQL nests too deeply to check") from error
    if len(statements) != 1:
        raise QueryRefused(f"{len(statements)} statements: only one query is run")
    return statements[0]


def _refuse_writing(node: exp.Expr) -> None:
    """Refuses what writes or locks: a data-modifying statement (in a CTE), SELECT ... INTO, FOR UPDATE/SHARE."""
    if isinstance(node, (DML, exp.DDL)):
        raise QueryRefused(f"{_keyword(node)} {_NOT_A_QUERY}")
    if isinstance(node, exp.Into):
        raise QueryRefused("SELECT ... INTO creates a table: the query may only read")
    if isinstance(node, exp.Lock):
        raise QueryRefused(f"{node.sql(dialect=DIALECT)} locks rows: the query may only read")


def _refuse_calling(node: exp.Expr) -> None:
    """Refuses a call outside ALLOWED_FUNCTIONS: a function or an operator sqlglot parses as one, a
    schema-qualified function or operator, a function after LATERAL, an identity keyword, a cast to
    one of _REFUSED_TYPES."""
    if isinstance(node, exp.Func):
        known = _identifier_name(node.this) in _ALLOWED_NAMES if isinstance(node, exp.Anonymous) else type(node) in _ALLOWED_CLASSES
        schema = f"{node.parent.this.sql(dialect=DIALECT)}." if isinstance(node.parent, exp.Dot) and node.arg_key == "expression" else ""
        if schema or not known:
            kind, name = _called(node)
            raise QueryRefused(f"{kind} {schema}{name} is not allowed")
    if isinstance(node, exp.Operator):
        raise QueryRefused(f"OPERATOR({node.args['operator']}) is not allowed: write the operator alone")
    if isinstance(node, exp.Lateral) and not isinstance(node.this, exp.Subquery):
        raise QueryRefused("a function after LATERAL is not allowed: LATERAL takes a subquery (SELECT ...)")
    if (
        isinstance(node, exp.Column)
        and not node.table
        and isinstance(node.this, exp.Identifier)
        and not node.this.quoted
        and node.name.lower() in _IDENTITY_KEYWORDS
    ):
        raise QueryRefused(f"function {node.name.lower()} is not allowed")
    if isinstance(node, exp.DataType) and (isinstance(node, exp.ObjectIdentifier) or node.this in _REFUSED_TYPES):
        raise QueryRefused(f"a cast to {node.sql(dialect=DIALECT).lower()} is not allowed")


def _called(function: exp.Func) -> tuple[str, str]:
    """("function", name) or ("operator", symbol): what PostgreSQL calls, for messages. The name as
    written for a function sqlglot does not know, else as sqlglot writes it."""
    if isinstance(function, exp.Anonymous):
        return "function", _identifier_name(function.this)
    written = function.sql(dialect=DIALECT)
    if isinstance(function, exp.Binary):
        return "operator", written.removeprefix(function.left.sql(dialect=DIALECT)).removesuffix(function.right.sql(dialect=DIALECT)).strip()
    return "function", written.split("(", 1)[0].strip().lower()


def _identifier_name(identifier: exp.Expr | str) -> str:
    """The name PostgreSQL reads: as written when quoted, else in lower case."""
    if isinstance(identifier, exp.Identifier) and identifier.quoted:
        return identifier.this
    return (identifier if isinstance(identifier, str) else identifier.name).lower()


def _names_a_cte(table: exp.Table) -> bool:
    """Whether an unqualified `table` names a CTE in scope where it stands. As in PostgreSQL, a WITH's
    CTEs are in scope in its query and each in the CTEs after it, or in all of them under WITH
    RECURSIVE; a CTE naming itself without RECURSIVE reads the table of that name."""
    if table.args.get("db") or table.args.get("catalog"):
        return False
    name = _identifier_name(table.this)
    child, node = table, table.parent
    while node is not None:
        if isinstance(node, exp.With):
            ctes = node.expressions
            in_scope = ctes if node.args.get("recursive") else ctes[: child.index]
        else:
            with_ = node.args.get("with_")
            in_scope = with_.expressions if isinstance(with_, exp.With) and with_ is not child else []
        if any(_identifier_name(cte.args["alias"].this) == name for cte in in_scope):
            return True
        child, node = node, node.parent
    return False


def _table_read(table: exp.Table, allowed: Mapping[str, Collection[str]], default_schema: str) -> tuple[str, str]:
    """(schema, table) of a table the query reads, refused unless allowed, or when read with ONLY
    (no harmonized table has children to leave out: it is a spelling the guard keeps out)."""
    qualifiers = [_identifier_name(part) for part in (table.args.get("catalog"), table.args.get("db")) if part]
    schema = qualifiers[-1] if qualifiers else default_schema
    name = _identifier_name(table.this)
    qualified = ".".join([*(qualifiers or [default_schema]), name])
    if len(qualifiers) > 1 or name not in allowed.get(schema, ()):
        everything = ", ".join(sorted(f"{s}.{t}" for s, tables in allowed.items() for t in tables))
        raise QueryRefused(f"table {qualified} is not one the question may read (allowed: {everything})")
    if table.args.get("only"):
        raise QueryRefused(f"ONLY {qualified} is not allowed: name the table alone")
    return schema, name


def _keyword(statement: exp.Expr) -> str:
    """The keyword a statement starts with, past its WITH clause (DELETE, COPY, EXPLAIN ...), for messages."""
    bare = statement.copy()
    bare.set("with_", None)
    return bare.sql(dialect=DIALECT).split(maxsplit=1)[0].upper()


def _written(statement: exp.Expr) -> str:
    """The query as sqlglot writes it for PostgreSQL, without comments, or refused where it cannot write it as parsed."""
    try:
        return statement.sql(dialect=DIALECT, comments=False, normalize_functions=False, unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as error:
        raise QueryRefused(f"the query cannot be written for PostgreSQL as it is: {str(error).splitlines()[0]}") from error
