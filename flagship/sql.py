"""Helpers for the few statements written in plain SQL instead of through the ORM.

The bearer-token user lookup and the approvals list run on nearly every API request, and the
transitions' statements on every change. On them, building and compiling the query through the
ORM cost more CPU than the database took to answer it, so they keep their SQL as constant
strings, built once per process from the models' metadata. These helpers keep that SQL
backend-neutral (SQLite and PostgreSQL): quoted column lists, Django's own from-database
converters, and UUIDs and timestamps written as text by the database.
"""

import dataclasses
import itertools
import json
import re
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, lru_cache

import orjson
import psycopg
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, models
from django.db.transaction import TransactionManagementError


def columns(model, alias: str) -> list[str]:
    """The model's concrete columns, quoted and qualified by `alias`, in `_meta.concrete_fields`
    order (the order `Model.from_db` expects)."""
    qn = connection.ops.quote_name
    return [f"{qn(alias)}.{qn(field.column)}" for field in model._meta.concrete_fields]


def table(model, alias: str) -> str:
    """`"table" "alias"` for a FROM or JOIN clause."""
    qn = connection.ops.quote_name
    return f"{qn(model._meta.db_table)} {qn(alias)}"


# orjson reads integers beyond 64 bits as floats, so text with a number this long goes to json.
LONG_NUMBER = re.compile(r"\d{19}")


def load_json(text):
    """JSON text from a JSON column, as JSONField.from_db_value reads it: orjson, a fraction of
    the json module's time on a list page of payloads and states; json itself for what orjson
    reads differently (long integers) or refuses (numbers beyond a double, lone surrogates)."""
    if text is None:
        return None
    if LONG_NUMBER.search(text):
        return json.loads(text)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def converter(field) -> Callable | None:
    """A function turning what the database driver returns for the field's column into the
    value the ORM would give (Django's converters for this backend, e.g. text to datetime on
    SQLite, JSON text to objects everywhere); None when the driver's value is already that."""
    if isinstance(field, models.JSONField) and field.decoder is None:
        return load_json
    expression = field.get_col(field.model._meta.db_table)
    steps = connection.ops.get_db_converters(expression) + field.get_db_converters(connection)
    if not steps:
        return None

    def convert(value):
        for step in steps:
            value = step(value, expression, connection)
        return value

    return convert


def model_converters(model) -> list[Callable | None]:
    return [converter(field) for field in model._meta.concrete_fields]


def instances_from(result, readers) -> list:
    """One model instance per (model, converters) reader, from a result row that holds each
    reader's columns (in `columns` order) one after another."""
    instances, start = [], 0
    for model, converters in readers:
        values = [
            value if convert is None else convert(value)
            for value, convert in zip(
                result[start : start + len(converters)], converters, strict=True
            )
        ]
        instances.append(model.from_db(DEFAULT_DB_ALIAS, None, values))
        start += len(converters)
    return instances


# A UUID column as the API writes ids: 36 characters, 8-4-4-4-12 lowercase hex. PostgreSQL has
# a uuid type; Django stores UUIDs on SQLite as 32 lowercase hex digits. Having the database
# write the text saves making a uuid.UUID per id and then a string of it.
UUID_AS_TEXT = {
    "postgresql": "{}::text",
    "sqlite": (
        "substr({0}, 1, 8) || '-' || substr({0}, 9, 4) || '-' || substr({0}, 13, 4) || '-' || "
        "substr({0}, 17, 4) || '-' || substr({0}, 21, 12)"
    ),
}


# A timestamp as the API writes it (RFC 3339, as DRF renders a datetime here): UTC, `Z`, the
# microseconds only when there are any, as datetime.isoformat() writes them. On a list page of
# 50 requests and their reviews, making a datetime of each timestamp and then its text was a
# fifth of the page's application CPU. The SQLite form takes the column as Django writes it
# there, `str()` of the datetime in UTC (no offset): a value written any other way (SQL's
# CURRENT_TIMESTAMP, a DATABASES TIME_ZONE) would not read right.
TIMESTAMP_AS_TEXT = {
    "postgresql": (
        "replace(to_char({0} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), '.000000', '')"
        " || 'Z'"
    ),
    "sqlite": "substr({0}, 1, 10) || 'T' || substr({0}, 12) || 'Z'",
}


def read(field, column: str) -> tuple[str, Callable | None]:
    """SQL reading the field's `column` and the conversion its values still need in Python.

    UUIDs (and foreign keys to them) and timestamps are read as API text, written by the
    database (NULL stays NULL). Every other value is read as is and converted as the ORM would
    (`converter`)."""
    if isinstance(getattr(field, "target_field", field), models.UUIDField):
        return UUID_AS_TEXT[connection.vendor].format(column), None
    if isinstance(field, models.DateTimeField):
        return TIMESTAMP_AS_TEXT[connection.vendor].format(column), None
    return column, converter(field)


# ----- writes and locked reads of the transitions ------------------------------------------------
#
# A review that applies a change runs about a dozen statements. Through the ORM, building and
# compiling each cost three to six times what running it did, so the transitions use these
# instead: statements built once per process from the models' metadata, and values prepared by
# the fields themselves (`pre_save`, `get_db_prep_save`), as Model.save and bulk_create do.
# They send no model signals; the project connects none to the models they write.


def thread_connection():
    """The connection `connection` stands for. Each attribute read through `connection` looks
    the thread's connection up again; the fields preparing a write's values read it a few
    dozen times."""
    return connections[DEFAULT_DB_ALIAS]


@cache
def _insert_statement(model, rows: int, vendor: str) -> str:
    qn = connection.ops.quote_name
    names = ", ".join(qn(field.column) for field in model._meta.concrete_fields)
    row = f"({', '.join(['%s'] * len(model._meta.concrete_fields))})"
    return f"INSERT INTO {qn(model._meta.db_table)} ({names}) VALUES {', '.join([row] * rows)}"


def insert(instances) -> None:
    """Writes new rows of one model in one INSERT, as bulk_create would: defaults and
    auto_now dates filled in by the fields. The model's primary key must come from Python (a
    UUID default), since the statement reads nothing back."""
    instances = list(instances)
    if not instances:
        return
    model = type(instances[0])
    if model._meta.pk.db_returning:
        raise TypeError(f"{model.__name__}'s primary key is made by the database")
    db = thread_connection()
    params = []
    for instance in instances:
        for field in model._meta.concrete_fields:
            value = field.pre_save(instance, add=True)
            params.append(field.get_db_prep_save(value, db))
    write(_insert_statement(model, len(instances), db.vendor), params)
    for instance in instances:
        instance._state.adding = False
        instance._state.db = db.alias


@cache
def _update_statement(model, field_names: tuple[str, ...], vendor: str) -> str:
    qn = connection.ops.quote_name
    assignments = ", ".join(
        f"{qn(model._meta.get_field(name).column)} = %s" for name in field_names
    )
    return (
        f"UPDATE {qn(model._meta.db_table)} SET {assignments} "
        f"WHERE {qn(model._meta.pk.column)} = %s"
    )


def update(instance, field_names: list[str]) -> None:
    """Writes the named fields of the instance's row, as save(update_fields=...) would (an
    auto_now field among them is set to now)."""
    model, db = type(instance), thread_connection()
    fields = [model._meta.get_field(name) for name in field_names]
    params = [field.get_db_prep_save(field.pre_save(instance, add=False), db) for field in fields]
    params.append(model._meta.pk.get_db_prep_value(instance.pk, db))
    statement = _update_statement(model, tuple(field_names), db.vendor)
    write(statement, params, expected_rows=1, what=f"{model.__name__} {instance.pk}")


# ----- writes run together -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Write:
    statement: str
    params: list
    expected_rows: int | None
    what: str


@dataclass
class HeldWrites:
    """The writes an open `writes_together` block holds back, and `memo`: what its callers note
    about them when a later step of theirs must account for a write still held (the newest
    audit entry of a chain, for one)."""

    writes: list[_Write] = dataclasses.field(default_factory=list)
    memo: dict = dataclasses.field(default_factory=dict)


def held_writes() -> HeldWrites | None:
    """The open `writes_together` block's writes; None outside one."""
    return getattr(thread_connection(), "flagship_held_writes", None)


def write(statement: str, params: list, *, expected_rows: int | None = None, what: str = ""):
    """Runs one INSERT, UPDATE or upsert now, or, inside `writes_together`, as that block ends.
    With `expected_rows`, a different number of rows written raises DatabaseError naming
    `what`."""
    held = held_writes()
    if held is not None:
        held.writes.append(_Write(statement, params, expected_rows, what))
        return
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        _check_rows(_Write(statement, params, expected_rows, what), cursor.rowcount)


def _check_rows(held: _Write, rows: int) -> None:
    if held.expected_rows is not None and rows != held.expected_rows:
        raise DatabaseError(f"{held.what} was not updated")


@contextmanager
def writes_together():
    """Holds back the writes made inside it through this module (`insert`, `update`, `write`)
    and runs them as it ends: on PostgreSQL as one statement, each write a data-modifying WITH
    clause, saving a round trip to the database per write; on SQLite one after another.

    For the writes of one transition, inside its transaction: they never read one another's
    rows (the clauses of one statement all see the database as it was before it), and no row
    is written twice. Statements run directly (reads, locks, the ORM) are not held back. When
    the block raises, what it held is dropped. A nested block joins the outer one."""
    held = held_writes()
    if held is not None:
        kept, memo = len(held.writes), dict(held.memo)
        try:
            yield
        except BaseException:
            del held.writes[kept:]
            held.memo = memo
            raise
        return
    if not connection.in_atomic_block:
        # In autocommit, locks taken inside (the audit chain's) would be gone before the
        # writes they guard ran.
        raise TransactionManagementError("writes_together() must run inside a transaction")
    connection.flagship_held_writes = held = HeldWrites()
    try:
        yield
    finally:
        connection.flagship_held_writes = None
    if connection.vendor == "postgresql" and len(held.writes) > 1:
        _run_in_one_statement(held.writes)
    else:
        for each in held.writes:
            write(each.statement, each.params, expected_rows=each.expected_rows, what=each.what)


def _run_in_one_statement(held: list[_Write]) -> None:
    statement = _one_statement(
        tuple((each.statement, each.expected_rows is not None) for each in held)
    )
    params = [param for each in held for param in each.params]
    if connection.queries_logged:
        # Django's query log renders statements from their %s placeholders.
        with connection.cursor() as cursor:
            cursor.execute(statement.text, params)
            rows = cursor.fetchone()
    else:
        with _numbered_placeholder_cursor() as cursor:
            cursor.execute(statement.numbered, params)
            rows = cursor.fetchone()
    counted = [each for each in held if each.expected_rows is not None]
    for each, number_of_rows in zip(counted, rows, strict=False):
        _check_rows(each, number_of_rows)


@dataclass(frozen=True)
class _OneStatement:
    text: str  # placeholders %s, as every statement Django runs
    numbered: str  # placeholders $1, $2..., as PostgreSQL takes them


@lru_cache(maxsize=128)
def _one_statement(writes: tuple[tuple[str, bool], ...]) -> _OneStatement:
    """The writes (statement, whether its rows are counted) as one statement of data-modifying
    WITH clauses. A transition's writes come in a handful of shapes, so each is built once per
    process, its placeholders numbered too: psycopg parses the placeholders of a statement with
    more than 50 parameters on every run, which cost a review 0.2 ms of CPU."""
    clauses, counts = [], []
    for number, (statement, counted) in enumerate(writes):
        if counted:
            statement += " RETURNING 1"
            counts.append(f"(SELECT count(*) FROM w{number})")
        clauses.append(f"w{number} AS ({statement})")
    # Every data-modifying WITH clause runs to completion, whether or not the SELECT reads it.
    text = f"WITH {', '.join(clauses)} SELECT {', '.join(counts) or '1'}"
    numbers = itertools.count(1)
    # The module's statements hold no literal %: each % starts a placeholder.
    numbered = re.sub("%s", lambda match: f"${next(numbers)}", text)
    return _OneStatement(text, numbered)


def _numbered_placeholder_cursor():
    """A cursor of the current connection for statements whose placeholders are PostgreSQL's
    ($1, $2...), wrapped as Django wraps its own (execute wrappers, error translation)."""
    connection.ensure_connection()
    connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        cursor = psycopg.RawCursor(connection.connection)
    return connection.make_cursor(cursor)


@dataclass(frozen=True)
class _RowStatement:
    text: str
    readers: list  # (model, its converters): the row's model, each related one, the partner's
    foreign_keys: list  # the foreign key each related row is reached by


@cache
def _row_statement(
    model,
    where: tuple[str, ...],
    related: tuple[str, ...],
    lock: bool,
    vendor,
    partner: tuple | None = None,
):
    qn = connection.ops.quote_name
    selected = columns(model, "row")
    joins, readers, foreign_keys = [], [(model, model_converters(model))], []
    for name in related:
        foreign_key = model._meta.get_field(name)
        target = foreign_key.related_model
        selected += columns(target, name)
        joins.append(
            f"INNER JOIN {table(target, name)} ON {qn(name)}.{qn(target._meta.pk.column)} = "
            f'"row".{qn(foreign_key.column)}'
        )
        readers.append((target, model_converters(target)))
        foreign_keys.append(foreign_key)
    locked = ['"row"']
    if partner is not None:
        partner_model, shared = partner
        selected += columns(partner_model, "partner")
        matches = " AND ".join(
            f'"partner".{qn(partner_model._meta.get_field(name).column)} = '
            f'"row".{qn(model._meta.get_field(name).column)}'
            for name in shared
        )
        joins.append(f"INNER JOIN {table(partner_model, 'partner')} ON {matches}")
        readers.append((partner_model, model_converters(partner_model)))
        locked.append('"partner"')
    conditions = " AND ".join(
        f'"row".{qn(model._meta.get_field(name).column)} = %s' for name in where
    )
    text = (
        f"SELECT {', '.join(selected)} FROM {table(model, 'row')} {' '.join(joins)} "
        f"WHERE {conditions}"
    )
    if lock and connection.features.has_select_for_update:
        text += f" FOR UPDATE OF {', '.join(locked)}"
    return _RowStatement(text, readers, foreign_keys)


def _fetch(
    model, conditions: dict, related: tuple[str, ...], lock: bool, partner: tuple | None = None
) -> list[list]:
    """Each matching row as [the row (its related rows set on it), the partner's row]."""
    db = thread_connection()
    statement = _row_statement(model, tuple(conditions), related, lock, db.vendor, partner)
    params = [
        model._meta.get_field(name).get_db_prep_value(value, db)
        for name, value in conditions.items()
    ]
    with db.cursor() as cursor:
        cursor.execute(statement.text, params)
        results = cursor.fetchall()
    rows = []
    for result in results:
        row, *others = instances_from(result, statement.readers)
        related = len(statement.foreign_keys)
        related_rows, partner = others[:related], others[related:]
        for foreign_key, related_row in zip(statement.foreign_keys, related_rows, strict=True):
            foreign_key.set_cached_value(row, related_row)
        rows.append([row, *partner])
    return rows


def lock_one(model, *, related: tuple[str, ...] = (), **conditions):
    """The row whose fields equal `conditions`, locked (FOR UPDATE) until the caller's
    transaction ends, with the rows of its `related` foreign keys joined in as select_related
    would; None when there is none. Only the row itself is locked."""
    rows = _fetch(model, conditions, related, lock=True)
    return rows[0][0] if rows else None


def lock_with_partner(model, partner_model, *, shared: tuple[str, ...], related=(), **conditions):
    """(row, partner) as `lock_one` finds the row, with the one row of `partner_model` whose
    `shared` fields equal the row's, both locked by one statement; None when either is
    missing. PostgreSQL locks them in the order FOR UPDATE OF names them, the row first, as
    two statements one after the other would."""
    rows = _fetch(model, conditions, related, lock=True, partner=(partner_model, shared))
    return tuple(rows[0]) if rows else None


def select(model, *, related: tuple[str, ...] = (), **conditions) -> list:
    """The rows whose fields equal `conditions`, in no particular order, with the rows of
    their `related` foreign keys joined in as select_related would."""
    return [row for row, *_ in _fetch(model, conditions, related, lock=False)]
