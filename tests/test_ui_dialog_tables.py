"""A table synced in place shows a value whole after it grows wider than its column.

The Allocation tab showed "idle (for 10s" and the Processes tab "100" for
"100%": cells were updated without widening their column. sync_rows
(gputui/ui/widgets/table_sync.py) now widens a column that a new value outgrows.
"""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import DataTable

from gputui.ui.widgets.table_sync import Cell, sync_rows
from tests.screen_reading import screen_rows


class OneTable(App[None]):
    def compose(self) -> ComposeResult:
        table: DataTable[Cell] = DataTable()
        table.add_columns("GPU", "state", "CPU")
        yield table


def row_of(app: OneTable, gpu: str) -> str:
    """The screen row of the table that starts with ``gpu``."""
    return next(row for row in screen_rows(app) if row.strip().startswith(gpu + " "))


async def test_cells_that_grow_wider_than_their_column_are_drawn_whole() -> None:
    app = OneTable()
    async with app.run_test(size=(120, 12)) as pilot:
        table = app.query_one(DataTable)
        sync_rows(table, {"0": ["0", "idle", "5%"], "1": ["1", "busy", "12%"], "2": ["2", "free", "0%"]})
        await pilot.pause()
        assert "idle" in row_of(app, "0") and "12%" in row_of(app, "1")
        # Several rows outgrow their columns in one sync, each by a different width.
        sync_rows(
            table, {"0": ["0", "idle (for 10s)", "101%"], "1": ["1", "idle (for 2m 5s)", "99%"], "2": ["2", "free", "100%"]}
        )
        await pilot.pause()
        assert "idle (for 10s)" in row_of(app, "0") and "101%" in row_of(app, "0"), row_of(app, "0")
        assert "idle (for 2m 5s)" in row_of(app, "1") and "99%" in row_of(app, "1"), row_of(app, "1")
        assert "100%" in row_of(app, "2"), row_of(app, "2")
        # And again, one row at a time, a second later.
        sync_rows(table, {"0": ["0", "busy: 1 process (pid 4242)", "1234%"], "1": ["1", "free", "0%"], "2": ["2", "free", "0%"]})
        await pilot.pause()
        assert "busy: 1 process (pid 4242)" in row_of(app, "0") and "1234%" in row_of(app, "0"), row_of(app, "0")
