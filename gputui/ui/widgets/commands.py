"""Command palette (ctrl+p): jump to a host, change metric, sort, grouping,
theme, open the triage, the connections or the audit log. Every command is also a key; the palette is for
when the key is not remembered or the host is one of a thousand.

:class:`FleetPalette` is Textual's palette drawn in ASCII on the Linux
console: no magnifier icon, no ellipsis, scrollbars of spaces (its block
borders are replaced in gputui.tcss).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING

from textual.command import (
    CommandInput,
    CommandList,
    CommandPalette,
    DiscoveryHit,
    Hit,
    Hits,
    Provider,
    ProviderSource,
    SearchIcon,
)

from gputui.ui.panels.base import asciify_scrollbars
from gputui.ui.panels.utilization import SPANS
from gputui.ui.themes import offered_themes
from gputui.ui.widgets.fleet_order import GROUPINGS, SORTS
from gputui.ui.widgets.heatmap import ASCII_TITLES, METRIC_TITLES, METRICS
from gputui.ui.widgets.palette import ascii_mode

if TYPE_CHECKING:
    from gputui.ui.app import GpuTuiApp

Command = tuple[str, Callable[[], object], str]


class FleetCommands(Provider):
    @property
    def fleet_app(self) -> GpuTuiApp:
        from gputui.ui.app import GpuTuiApp

        assert isinstance(self.app, GpuTuiApp)
        return self.app

    def commands(self) -> Iterator[Command]:
        app = self.fleet_app
        titles = ASCII_TITLES if ascii_mode(app) else METRIC_TITLES
        for name in app.store.hosts:
            yield f"Open host {name}", partial(app.open_host, name), "show this host's GPUs and processes"
        for metric in METRICS:
            yield f"Heat map: {titles[metric]}", partial(app.set_view, metric=metric), "colour the overview by it"
        for sort in SORTS:
            yield f"Sort hosts by {sort}", partial(app.set_view, sort=sort), "order of the overview"
        for grouping in GROUPINGS:
            yield f"Group hosts by {grouping}", partial(app.set_view, grouping=grouping), "headings in the overview"
        for theme, choose, help_text in theme_commands(app):
            yield f"Theme: {theme}", choose, help_text
        yield "Connections", app.action_connections, "how each host is reached, retry, add a host"
        yield "Triage: active alerts", app.action_triage, "worst first by host: acknowledge, silence, act, report (t)"
        yield "Audit log and ledgers", app.action_audit, "what was done (hash-chained record), what is reserved or drained"
        for index, (name, _) in enumerate(SPANS):
            yield f"Chart span: {name}", partial(app.set_span, index), "the host screen's utilisation chart"

    async def discover(self) -> Hits:
        for text, callback, help_text in self.commands():
            if not text.startswith("Open host"):
                yield DiscoveryHit(text, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, callback, help_text in self.commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), callback, help=help_text)


def theme_commands(app: GpuTuiApp) -> Iterator[Command]:
    """One command per theme offered: gputui's and the user's files, never Textual's own."""
    saved = "saved to the config" if app.config_path is not None else "for this session: there is no config file"
    for theme in offered_themes(app):
        yield theme, partial(setattr, app, "theme", theme), saved


class ThemeCommands(FleetCommands):
    """The list the palette's "Theme" command opens, in place of Textual's (which lists its own themes)."""

    def commands(self) -> Iterator[Command]:
        return theme_commands(self.fleet_app)

    async def discover(self) -> Hits:
        for text, callback, help_text in self.commands():
            yield DiscoveryHit(text, callback, help=help_text)


class FleetPalette(CommandPalette):
    """Textual's command palette; on the Linux console, in ASCII only."""

    def __init__(
        self,
        providers: ProviderSource | None = None,
        placeholder: str = "Search for commands...",
        id: str | None = "--command-palette",
    ) -> None:
        super().__init__(providers, placeholder=placeholder, id=id)

    def on_mount(self) -> None:
        if not ascii_mode(self.app):
            return
        self.query_one(SearchIcon).icon = ">"
        box = self.query_one(CommandInput)
        box.placeholder = box.placeholder.replace("\u2026", "...")
        asciify_scrollbars(self.query_one(CommandList))
