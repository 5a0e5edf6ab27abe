"""Cutting an export into contiguous ranges of its order, for :mod:`.copy_out` to copy at
once on several connections.

An export whose order is a key (:class:`~sms_service.services.exports.Export`,
``order_is_key``: NOT NULL columns of one table that tell every row apart) can be cut at
any keys ``b1 < b2 < …`` into ``key < b1``, ``b1 <= key < b2``, …, ``key >= bn``: every
row is in exactly one range, and the ranges one after another are the export in its
order. The boundaries only decide how even the ranges are, so they come from a sample:
whole pages of the order's table (``TABLESAMPLE SYSTEM``, about :data:`SAMPLE_PAGES`),
read through the export's own joins and filters in the same snapshot. That takes
milliseconds at any size, and reads every row of a small table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import ColumnElement, Select, func, literal, select, tablesample, text, tuple_
from sqlalchemy.engine import Connection
from sqlalchemy.sql.util import ClauseAdapter


class Export(Protocol):
    """What is read of an export (:class:`sms_service.services.exports.Export`, which
    imports this module): its order, and its joins and filters."""

    order: Sequence[ColumnElement]

    def shape(self, query: Select) -> Select: ...


# Pages sampled. Rows on a page are mostly neighbours in time, so it is the number of
# pages that makes the quantiles even: 256 leave each of two ranges within a few percent.
SAMPLE_PAGES = 256
KEPT = 1000  # sampled keys sent back (every m/KEPT-th of the m sampled, in order)


def boundaries(conn: Connection, export: Export, chunks: int, min_rows: int) -> list[tuple]:
    """The keys starting the second range, the third …: at most ``chunks`` ranges of about
    as many rows, none expected under ``min_rows`` (so maybe none: one range)."""
    table = export.order[0].__clause_element__().table
    pages = conn.execute(
        text("SELECT pg_relation_size(CAST(:t AS regclass)) / current_setting('block_size')::int"),
        {"t": table.fullname},
    ).scalar_one()
    percent = min(100.0, 100.0 * SAMPLE_PAGES / max(pages, 1))
    order = export.order
    sample = tablesample(table, func.system(literal(percent)), name="sampled")
    numbered = export.shape(select(*order)).add_columns(
        func.row_number().over(order_by=order).label("rn"), func.count().over().label("m")
    )
    # ClauseAdapter puts the sample in the table's place in every column, join and filter.
    numbered = ClauseAdapter(sample).traverse(numbered).subquery()
    keys = [numbered.c[c.key] for c in order]
    step = func.greatest(1, numbered.c.m // KEPT)
    thinned = select(*keys, numbered.c.m).where((numbered.c.rn - 1) % step == 0).order_by(*keys)
    rows = conn.execute(thinned).all()
    sampled = rows[0].m if rows else 0
    chunks = min(chunks, int(sampled * 100.0 / percent // max(min_rows, 1)), sampled)
    if chunks < 2:
        return []
    picks = sorted({-(-k * len(rows) // chunks) for k in range(1, chunks)})
    return [tuple(rows[i])[: len(order)] for i in picks if i < len(rows)]


def in_range(order: tuple[ColumnElement, ...], low: tuple | None, high: tuple | None) -> list:
    """Conditions for the rows whose key is in [low, high) (None: unbounded)."""
    key = tuple_(*order)

    def value(bound: tuple) -> ColumnElement:
        return tuple_(*(literal(v, c.type) for c, v in zip(order, bound, strict=True)))

    conditions = []
    if low is not None:
        conditions.append(key >= value(low))
    if high is not None:
        conditions.append(key < value(high))
    return conditions
