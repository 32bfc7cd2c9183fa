"""The fleet overview list, drawn with Textual's line API.

One line per host (and one per heading when grouped); only the lines on
screen are drawn, so a thousand hosts cost what the visible forty cost. No
widget exists per host or GPU.

A host whose ledger holds GPUs says so at the end of its line ("node
drained", "2 drained 1 reserved"); the words are worked out once per ledger
the host sends, not once per draw.

A line drawn is kept until the view is next refreshed (new data, a new order,
a scroll, a resize, focus, a theme: anything Textual or ``reload`` redraws
for): whatever asks for it again in between (a second pass of the
compositor, a benchmark timing the draw) gets it for nothing. Each style a
line uses is combined with the base style once per reload, not once per
segment per line: that was most of a line's own cost.

A reload draws the visible lines ahead of the compositor, a few per turn of
the event loop (``DRAW_AHEAD_LINES``), and only then asks for the redraw, so
the compositor's turn finds them drawn. Drawn in that turn, they made it
the loop's longest: at 4,096 hosts on a 2-core machine 20 to 28 ms, of
which the lines were about 8, and the longest stalls of the loop were each
made of such a turn and a few ordinary ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Self

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollBarRender
from textual.strip import Strip

from gputui.fleet.allocation import NO_PROCESS_LIST, in_use
from gputui.fleet.store import FleetStore, HostRecord, HostState
from gputui.frame_columns import GpuColumns
from gputui.health.model import Severity
from gputui.render import age_words
from gputui.ui.panels.allocation import ledger_of
from gputui.ui.panels.base import AsciiScrollBarRender
from gputui.ui.state.fleet_figures import FleetFigures
from gputui.ui.widgets.fleet_columns import Columns
from gputui.ui.widgets.fleet_order import Arrangement, Row
from gputui.ui.widgets.heatmap import CELL_W, Ramp, cell
from gputui.ui.widgets.palette import Palette, ascii_mode
from gputui.ui.widgets.slurm_text import node_style

Piece = tuple[str, Style | None]  # a line's text and its style before the base style is added (``FleetView._draw``)
DRAW_AHEAD_LINES = 16  # lines drawn ahead per turn of the event loop (``FleetView._draw_ahead``): 2 to 3 ms


class FleetView(ScrollView, can_focus=True):
    BINDINGS = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("pageup", "move(-20)", "Page up", show=False),
        Binding("pagedown", "move(20)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
        Binding("enter", "open", "Open host"),
    ]

    class Opened(Message):
        def __init__(self, host: str) -> None:
            self.host = host
            super().__init__()

    def __init__(self, store: FleetStore, id: str | None = None) -> None:
        # Lines drawn since the last refresh, by (row, its cursor mark, focus, horizontal scroll, width).
        self.drawn: dict[tuple[int, bool, bool, int, int], Strip] = {}
        self.on_base: dict[Style | None, Style] = {}  # a segment's style on the base style, per reload
        super().__init__(id=id)
        self.store = store
        self.cursor = 0
        self.rows: list[Row] = []
        self.metric = "util"
        self.needle = ""
        self.sort = "name"
        self.grouping = "none"
        self.palette: Palette | None = None
        self.ramp: Ramp | None = None
        self.deg = " °C"  # " C" on the Linux console, as on the host screen
        self.ascii_bars = False
        self.gpu_columns = 0
        self.columns = Columns()
        self.columns_key: tuple[int, int, int] | None = None
        self.figures = FleetFigures(store)  # the overview's summary reads them too
        self.arrangement = Arrangement(store)
        self.ledger_words: dict[str, tuple[object, str]] = {}  # host -> (the ledger it was worked out from, words)
        self.alert_hosts: Mapping[str, Severity] = {}  # host -> its worst shown alert (the app's last evaluation)
        self.drawing: asyncio.Task[None] | None = None  # the lines of the last reload, being drawn ahead

    def on_mount(self) -> None:
        self.figures.follow()  # each host's part counted as its frame comes, not all in a refresh

    def on_unmount(self) -> None:
        self.figures.unfollow()
        if self.drawing is not None:
            self.drawing.cancel()

    @property
    def names(self) -> list[str]:
        return [r.host for r in self.rows if r.host is not None]

    def reload(self) -> None:
        """Pick up hosts, data and the view's options; redraw what is visible.

        The cursor stays on the same host when the order changes under it. The rows and the
        figures are kept while nothing they depend on changed (``Arrangement``, ``FleetFigures``):
        a refresh of a fleet that sent nothing new walks no host.
        """
        keep = self.selected
        in_sight = self._cursor_in_sight()
        figures = self.figures.current()
        rows = self.arrangement.rows_for(self.needle, self.sort, self.grouping, self.alert_hosts, self.figures.generation)
        if rows is not self.rows:
            self.rows = rows
            self._follow(keep)
        self.gpu_columns = figures.widest
        self.columns = self._fitting(self.scrollable_content_region.width)
        self.virtual_size = Size(self.columns.width(self.gpu_columns), len(self.rows))
        self.cursor = min(self.cursor, max(0, len(self.rows) - 1))
        self.palette = Palette.of(self.app)
        self.ramp = Ramp.of(self.app)
        self.on_base = {}
        ascii = ascii_mode(self.app)
        self.deg = " C" if ascii else " °C"
        if ascii != self.ascii_bars:  # the Linux console: scrollbars of spaces, not eighth blocks
            self.ascii_bars = ascii
            bars = AsciiScrollBarRender if ascii else ScrollBarRender
            self.vertical_scrollbar.renderer = bars  # type: ignore[misc]
            self.horizontal_scrollbar.renderer = bars  # type: ignore[misc]
        if in_sight:  # a new order, or a scrollbar that came with wider rows, must not hide it
            self.call_after_refresh(self._reveal_cursor)
        self._draw_ahead()

    def _draw_ahead(self) -> None:
        """Draw the visible lines a few per turn, then ask the compositor for them (the module says
        why); a reload before it is done starts over. The lines drawn before are dropped now: the
        compositor, if it redraws the view meanwhile for anything else, draws anew what it needs."""
        if self.drawing is not None:
            self.drawing.cancel()
            self.drawing = None
        if not self.screen.is_current:  # nothing on screen to keep short: the compositor draws when it is shown
            self.refresh()
            return
        self.drawn.clear()
        self.drawing = asyncio.ensure_future(self._draw_in_turns())

    async def _draw_in_turns(self) -> None:
        try:
            for start in range(0, self.size.height, DRAW_AHEAD_LINES):
                await asyncio.sleep(0)  # a turn of the loop each, the reload's own turn included
                for y in range(start, min(self.size.height, start + DRAW_AHEAD_LINES)):
                    self.render_line(y)
        except asyncio.CancelledError:
            raise  # a newer reload draws its own
        except Exception:
            self.refresh()  # the compositor draws them in its own turn, and reports what fails
            return
        finally:
            if self.drawing is asyncio.current_task():  # not a newer reload's
                self.drawing = None
        super().refresh()  # not ``self.refresh``, which would drop the lines just drawn

    def _follow(self, host: str | None) -> None:
        """Put the cursor back on ``host`` in new rows (it stays at its index when the host is gone)."""
        if host is None:
            return
        for i, row in enumerate(self.rows):
            if row.host == host:
                self.cursor = i
                return

    def _fitting(self, width: int) -> Columns:
        """``Columns.fitting``, worked out again only when the width, the GPUs or the hosts change."""
        key = (width, self.gpu_columns, len(self.store.hosts))
        if key != self.columns_key:
            self.columns = Columns.fitting(width, self.gpu_columns, self.store.hosts)
            self.columns_key = key
        return self.columns

    @property
    def selected(self) -> str | None:
        if not self.rows or self.cursor >= len(self.rows):
            return None
        return self.rows[self.cursor].host

    def empty_words(self) -> str:
        """Why the list is empty: a blank screen would read as a fleet that is all gone."""
        if self.needle:
            return f"no hosts match '{self.needle}': esc clears the filter"
        return "no hosts to show: add [[hosts]] tables to the config (gputui example-config), or c then a to add one"

    def refresh(self, *regions: Region, repaint: bool = True, layout: bool = False, recompose: bool = False) -> Self:
        """Whatever asks for a redraw asks for lines drawn anew."""
        self.drawn.clear()
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def render_line(self, y: int) -> Strip:
        offset = self.scroll_offset
        index, scroll_x = y + int(offset.y), int(offset.x)
        focused, width = self.has_focus, self.size.width
        key = (index, index == self.cursor, focused, scroll_x, width)
        line = self.drawn.get(key)
        if line is None:
            line = self.drawn[key] = self._draw(index, scroll_x, width, focused)
        return line

    def _draw(self, index: int, scroll_x: int, width: int, focused: bool) -> Strip:
        pal, ramp = self.palette, self.ramp
        base = pal.base if pal else None
        if pal is not None and index == 0 and not self.rows:
            line = Strip([Segment(f"  {self.empty_words()}", pal.base + pal.warn)])
            return line.crop(0, width).extend_cell_length(width, base)
        if pal is None or ramp is None or index >= len(self.rows):
            return Strip.blank(width, base)
        row = self.rows[index]
        pieces: list[Piece]
        if row.host is None:
            pieces = [(f"  {row.title} ({row.count})", pal.header)]
        else:
            record = self.store.hosts.get(row.host)
            if record is None:
                return Strip.blank(width, base)
            pieces = self._segments(record, pal, ramp, self.store.clock())
        on_base = self.on_base
        segments = []
        for text, style in pieces:
            combined = on_base.get(style)
            if combined is None:
                combined = on_base[style] = pal.base + (style or Style())
            segments.append(Segment(text, combined))
        if index == self.cursor:
            mark = pal.cursor if focused else Style(reverse=True)
            segments = [Segment(t, (s or Style()) + mark) for t, s, _ in segments]
        strip = Strip(segments).crop(scroll_x, scroll_x + width)
        return strip.extend_cell_length(width, base)

    def _segments(self, r: HostRecord, pal: Palette, ramp: Ramp, now: float) -> list[Piece]:
        state = r.state(now)
        reduced = r.hello is not None and r.hello.source == "nvidia-smi"  # fewer fields: say so
        state_style = {
            HostState.LIVE: pal.ok,
            HostState.CONNECTING: pal.dim,
            HostState.STALE: pal.warn,
            HostState.DOWN: pal.bad,
        }[state]
        critical = self.alert_hosts.get(r.name) is Severity.CRITICAL
        cols = self.columns
        segs: list[Piece] = [
            ("! ", pal.bad) if critical else ("  ", None),  # a critical alert: see the triage (t)
            (f"{r.name[: cols.name_w - 1]:<{cols.name_w}}", pal.text),
            (f"{cols.state_word(state, reduced):<{cols.state_w}}", state_style),
            (f"{age_words(r.age_s(now)):>{cols.age_w}}{' ' * cols.gap}", pal.dim),
        ]
        c = r.columns  # the line is drawn from the host's columns: no GPU's model is made for it
        if state in (HostState.DOWN, HostState.CONNECTING) and not c.indices:
            segs.append(((r.error or "waiting for the first frame")[:100], state_style))
            return segs
        # Old data is drawn without colour: the numbers must not look live.
        stale = state is not HostState.LIVE
        metric, statics = self.metric, r.statics
        for place, index in enumerate(c.indices):
            segs.append(cell(metric, c, place, statics.get(index), ramp, stale))
        segs.append((" " * ((self.gpu_columns - len(c.indices)) * CELL_W + 1), None))
        segs.extend(self._summary(r, c, pal))
        if r.error and state is not HostState.LIVE:
            segs.append((f"  {r.error[:80]}", pal.warn))
        return segs

    def _summary(self, r: HostRecord, c: GpuColumns, pal: Palette) -> list[Piece]:
        """The line's figures from the host's columns: every GPU of its last sample."""
        source = r.hello.source if r.hello else None
        found = [place for place, lost in enumerate(c.lost) if not lost]
        lost = len(c.indices) - len(found)
        if source in NO_PROCESS_LIST:  # judged by holder and memory: such a source's GPUs are whole already
            gpus = r.last_gpus
            busy = sum(in_use(gpus[place], source) for place in found)
        else:
            busy = sum(c.running[place] for place in found)
        used = sum(c.mem_used_mib[place] or 0 for place in found)
        total = sum(c.mem_total_mib[place] or 0 for place in found)
        temps = [t for place in found if (t := c.temp_c[place]) is not None]
        power = [w for place in found if (w := c.power_w[place]) is not None]
        hottest = (f"{f'{max(temps)}{self.deg}':>6} " if temps else "   N/A ", pal.text)
        segs: list[Piece] = [(f"{busy:>2}/{len(c.indices):<2} ", pal.text)]
        if self.columns.narrow:  # memory and power: the heat map's m shows them per GPU
            segs.append(hottest)
        else:
            segs += [
                (f"{(100 * used / total if total else 0):>4.0f}% ", pal.text),
                hottest,
                (f"{sum(power):>6.0f}W" if power else "    N/A", pal.text),
            ]
        if lost:
            segs.append((f"  {lost} GPU lost", pal.bad))
        held = self.held_words(r)
        if held:
            segs.append((f"  {held}", pal.warn))
        node = self.store.slurm.node(r.name) if self.store.slurm is not None else None
        if node is not None:  # Slurm's word for the node, with the reason when it takes no work
            style = node_style(node, pal)
            routine = style == pal.text  # idle, mixed, allocated: said quietly, with no reason
            segs.append((f"  slurm {node.state if routine else node.words()}", pal.dim if routine else style))
        return segs

    def held_words(self, r: HostRecord) -> str:
        """What the host's ledger holds, in a few words; worked out again only when its version moves."""
        ledger = r.ledger
        if ledger is None:
            return ""
        key = (ledger.version, ledger.error) if ledger.version is not None else ledger
        cached = self.ledger_words.get(r.name)
        if cached is not None and cached[0] == key:
            return cached[1]
        held = ledger_of(r)
        states = [m.state for m in held.gpus.values()]
        words = ["ledger unreadable"] if held.error else []
        words += ["node " + held.node.state] if held.node is not None else []
        words += [f"{states.count(s)} {s}" for s in ("drained", "reserved") if states.count(s)]
        self.ledger_words[r.name] = (key, " ".join(words))
        return " ".join(words)

    # -- movement ---------------------------------------------------------
    def action_move(self, delta: int) -> None:
        self._set_cursor(self.cursor + delta)

    def action_jump(self, row: int) -> None:
        self._set_cursor(row if row >= 0 else len(self.rows) - 1)

    def action_open(self) -> None:
        if self.selected is not None:
            self.post_message(self.Opened(self.selected))

    def _set_cursor(self, row: int) -> None:
        if not self.rows:
            return
        self.cursor = max(0, min(len(self.rows) - 1, row))
        self._reveal_cursor()
        self.refresh()

    def _rows_in_sight(self) -> int:
        """The rows a horizontal scrollbar leaves: at 80 columns it takes the last one."""
        return max(1, self.scrollable_content_region.height)

    def _cursor_in_sight(self) -> bool:
        top = int(self.scroll_offset.y)
        return top <= self.cursor < top + self._rows_in_sight()

    def _reveal_cursor(self) -> None:
        """Scroll as little as needed for the cursor's row to be drawn."""
        top, height = int(self.scroll_offset.y), self._rows_in_sight()
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False)

    def on_click(self, event: events.Click) -> None:
        index = event.y + int(self.scroll_offset.y)
        if 0 <= index < len(self.rows):
            if index == self.cursor or event.chain >= 2:
                self.cursor = index
                self.action_open()
            else:
                self._set_cursor(index)
