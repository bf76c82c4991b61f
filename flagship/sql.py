"""Helpers for the few reads written in plain SQL instead of through the ORM.

The bearer-token user lookup and the approvals list run on nearly every API request. On them,
building and compiling the query through the ORM cost more CPU than the database took to
answer it, so they keep their SQL as constant strings, built once per process from the models'
metadata. These helpers keep that SQL backend-neutral (SQLite and PostgreSQL): quoted column
lists, Django's own from-database converters, and UUIDs written as text by the database.
"""

from collections.abc import Callable

from django.db import connection, models


def columns(model, alias: str) -> list[str]:
    """The model's concrete columns, quoted and qualified by `alias`, in `_meta.concrete_fields`
    order (the order `Model.from_db` expects)."""
    qn = connection.ops.quote_name
    return [f"{qn(alias)}.{qn(field.column)}" for field in model._meta.concrete_fields]


def table(model, alias: str) -> str:
    """`"table" "alias"` for a FROM or JOIN clause."""
    qn = connection.ops.quote_name
    return f"{qn(model._meta.db_table)} {qn(alias)}"


def converter(field) -> Callable | None:
    """A function turning what the database driver returns for the field's column into the
    value the ORM would give (Django's converters for this backend, e.g. text to datetime on
    SQLite, JSON text to objects everywhere); None when the driver's value is already that."""
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


def convert_row(values, converters) -> list:
    return [
        value if convert is None else convert(value)
        for value, convert in zip(values, converters, strict=True)
    ]


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


def read(field, column: str) -> tuple[str, Callable | None]:
    """SQL reading the field's `column` and the conversion its values still need in Python.

    UUIDs (and foreign keys to them) are read as API text, written by the database (NULL stays
    NULL). Every other value is read as is and converted as the ORM would (`converter`)."""
    if not isinstance(getattr(field, "target_field", field), models.UUIDField):
        return column, converter(field)
    return UUID_AS_TEXT[connection.vendor].format(column), None
