"""What a Textual app shows, read back as an operator sees it: the whole
screen as text, line by line or row by row at its columns, and the text of
single widgets."""

from __future__ import annotations

import html
import re
from typing import Any

from rich.text import Text
from textual.app import App
from textual.content import Content
from textual.widgets import DataTable, Static

from gputui.ui.app import GpuTuiApp


def screen_text(app: GpuTuiApp) -> str:
    """Every character the screen shows, from Textual's own export."""
    svg = app.export_screenshot()
    body = svg[svg.index("<g class=") :]  # skip the stylesheet and the window chrome's title font
    return html.unescape("".join(re.findall(r">([^<]*)</text>", body))).replace("\xa0", " ")


def screen_lines(app: GpuTuiApp) -> list[str]:
    """What is on screen, line by line, as the terminal would get it.

    ``export_screenshot`` is Textual's public way to get exactly the cells
    the compositor drew for the whole screen (every widget: tabs, tables,
    the chart, scrollbars, the footer), not what one widget meant to draw.
    Rich writes each run of same-styled cells as a ``<text>`` element,
    HTML-escaped, with every space as ``&#160;``; those are turned back
    into plain characters here.
    """
    svg = app.export_screenshot()
    runs = re.findall(r"<text [^>]*>(.*?)</text>", svg)
    return [html.unescape(run).replace("\xa0", " ") for run in runs]


CELL = 12.2  # the width of one cell in Textual's SVG screenshots
RUN = re.compile(r'<text [^>]*x="([0-9.]+)"[^>]*clip-path="url\(#[^)]*-line-([0-9]+)\)">(.*?)</text>')


def screen_rows(app: App[Any]) -> list[str]:
    """The screen row by row, as the terminal shows it: each run of cells put at its column."""
    rows: dict[int, list[str]] = {}
    for x, y, text in RUN.findall(app.export_screenshot()):
        row = rows.setdefault(int(y), [" "] * app.size.width)
        for i, char in enumerate(html.unescape(text).replace("\xa0", " ")):
            row[round(float(x) / CELL) + i] = char
    return ["".join(rows.get(y, [])) for y in range(app.size.height)]


def static_text(widget: Static) -> str:
    """The plain text a Static shows (markup resolved)."""
    content = widget.content
    if isinstance(content, Text):
        return content.plain
    if isinstance(content, str):
        return Content.from_markup(content).plain
    return str(content)


def summary(app: GpuTuiApp) -> str:
    return static_text(app.screen.query_one("#summary", Static))


def cells(table: DataTable[object], key: str) -> list[str]:
    return [str(c) for c in table.get_row(key)]
