"""Update a DataTable in place: keeps the cursor and scroll where they were.

Clearing and refilling a table every second resets the operator's cursor;
instead rows are matched by key, changed cells updated, vanished rows
removed and new ones added.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.text import Text
from textual.widgets import DataTable

Cell = str | Text


def sync_rows(table: DataTable[Cell], rows: Mapping[str, Sequence[Cell]]) -> None:
    """Plain strings are shown verbatim: a command line is data, not markup."""
    columns = list(table.columns.keys())
    existing = {str(k.value) for k in table.rows}
    for key in existing - rows.keys():
        table.remove_row(key)
    for key, given in rows.items():
        cells = [Text(c) if isinstance(c, str) else c for c in given]
        if key in existing:
            for col, value in zip(columns, cells, strict=False):
                if table.get_cell(key, col) != value:
                    table.update_cell(key, col, value)
        else:
            table.add_row(*cells, key=key)
