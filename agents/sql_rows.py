"""Model instances from SQL written once per process, for the statements of every event request.

The ORM builds and compiles a queryset on each call: for the agent lock of an event (three
models joined, locked) that was more Python time than sending the statement and reading its
answer. The statements on that path are written here once, from the models' own metadata
(table, column names, the converters the ORM applies), and their rows turned into the same
instances the ORM would build (``Model.from_db``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Model

M = TypeVar("M", bound=Model)
Converter = Callable[[Any, Any, Any], Any]


@dataclass(frozen=True)
class RowReader:
    """Every concrete column of ``model`` in a select list (its table named ``alias``), and
    how to turn those values into an instance."""

    model: type[Model]
    columns: str  # "alias"."column", ... in field order
    width: int
    attnames: list[str]
    converters: list[tuple[int, list[Converter], Any]]  # (position, converters, expression)

    def instance(self, values: Sequence[Any]) -> Any:
        """The instance of one row's values (``width`` of them, in ``columns`` order)."""
        row = list(values)
        # The connection itself: each read through the proxy is a look-up of the thread's one.
        db = connections[DEFAULT_DB_ALIAS]
        for position, converters, expression in self.converters:
            for converter in converters:
                row[position] = converter(row[position], expression, db)
        return self.model.from_db(DEFAULT_DB_ALIAS, self.attnames, row)


@functools.cache
def row_reader(model: type[M], alias: str) -> RowReader:
    """The reader of ``model``'s rows selected from its table aliased ``alias``."""
    fields = model._meta.concrete_fields
    quote = connection.ops.quote_name
    converters = []
    for position, field in enumerate(fields):
        column = field.get_col(alias)
        found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if found:
            converters.append((position, found, column))
    return RowReader(
        model=model,
        columns=", ".join(f"{quote(alias)}.{quote(field.column)}" for field in fields),
        width=len(fields),
        attnames=[field.attname for field in fields],
        converters=converters,
    )
