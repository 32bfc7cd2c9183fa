"""Update a DataTable in place: keeps the cursor and scroll where they were.

Clearing and refilling a table every second resets the operator's cursor;
instead rows are matched by key, changed cells updated, vanished rows
removed and new ones added.

A cell that grows wider than its column widens the column, so no value is
ever cut ("idle (for 10s)", "101%"). Textual re-measures a column for each
cell updated with ``update_width``, and a whole column when that cell is
narrower than the column by then, so only the widest cell of a column that
outgrew it is passed so: one measure per widened column per sync, whatever
the number of rows. Columns never narrow while the table lives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

Cell = str | Text


def cell_width(value: Text) -> int:
    """The cells ``value`` takes on screen: its widest line."""
    plain = value.plain
    return cell_len(plain) if "\n" not in plain else max(map(cell_len, plain.splitlines()), default=0)


def sync_rows(table: DataTable[Cell], rows: Mapping[str, Sequence[Cell]]) -> None:
    """Plain strings are shown verbatim: a command line is data, not markup."""
    columns = list(table.columns.values())
    existing = {str(k.value) for k in table.rows}
    for key in existing - rows.keys():
        table.remove_row(key)
    widest: dict[ColumnKey, tuple[int, str, Text]] = {}  # per column, the widest changed cell wider than it
    for key, given in rows.items():
        cells = [Text(c) if isinstance(c, str) else c for c in given]
        if key not in existing:
            table.add_row(*cells, key=key)
            continue
        for column, value in zip(columns, cells, strict=False):
            if table.get_cell(key, column.key) == value:
                continue
            width = cell_width(value)
            if width > max(column.content_width, widest.get(column.key, (0,))[0]):
                widest[column.key] = (width, key, value)
            table.update_cell(key, column.key, value)
    for column_key, (_, key, value) in widest.items():
        table.update_cell(key, column_key, value, update_width=True)
