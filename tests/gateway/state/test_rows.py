"""The row classes of gateway.state.schema against their tables: the same columns, the same
defaults, and a row that goes into its table comes back equal.

A table and its row class are declared apart (SQLAlchemy Core tables, plain dataclass rows), so
a column added to one and not the other must fail here rather than at the first insert.
"""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import Table, create_engine, insert, select

from gateway.state import schema

# The row classes (gateway.state.rows for those the short commands read without the tables).
ROWS: list[tuple[type[schema.Row], Table]] = [
    (schema.Transfer, schema.TRANSFERS), (schema.Approval, schema.APPROVALS),
    (schema.TransferLink, schema.LINKS), (schema.PendingEvent, schema.PENDING),
    (schema.Holding, schema.HOLDINGS), (schema.Certificate, schema.CERTIFICATES)]


@pytest.mark.parametrize(("row", "table"), ROWS, ids=lambda r: getattr(r, "__name__", ""))
def test_a_row_class_has_exactly_its_tables_columns_and_defaults(row: type[schema.Row],
                                                                 table: Table) -> None:
    fields = {f.name: f for f in dataclasses.fields(row)}  # type: ignore[arg-type]

    assert set(fields) == set(table.c.keys())
    for column in table.c:
        field = fields[column.name]
        if column.default is not None:
            assert field.default == column.default.arg, column.name  # type: ignore[union-attr]
        elif field.default is dataclasses.MISSING:
            # A value every insert must give: the column refuses NULL (or is the primary key).
            assert not column.nullable or column.primary_key, column.name
        else:
            assert field.default is None and (column.nullable or column.primary_key), column.name


def test_a_row_round_trips_through_its_table_and_copies_without_changing_the_original() -> None:
    engine = create_engine("sqlite://")
    schema.METADATA.create_all(engine, tables=[schema.TRANSFERS])
    transfer = schema.Transfer(id="t-000000000001", agreement="a", flow="monthly",
                               recipient="r", state="dropped", file_name="f.csv",
                               source_path="/x/f.csv", created_ns=1, updated_ns=2, size=3 << 40)
    with engine.begin() as conn:
        conn.execute(insert(schema.TRANSFERS), [transfer.model_dump()])
        row = conn.execute(select(schema.TRANSFERS)).mappings().one()

    back = schema.Transfer.model_validate(dict(row))
    assert back == transfer
    changed = back.model_copy(update={"state": "quarantined"})
    assert (changed.state, back.state) == ("quarantined", "dropped")
    assert changed.status.value == "quarantined"
    assert "id" not in schema.Approval(transfer_id="t", witness="w", fingerprint="f",
                                       sha256="s", signature="sig",
                                       created_ns=1).model_dump(exclude={"id"})
