"""The key footer every gputui screen shows.

Textual's footer docks its command-palette hint on the right, over the
bindings: at 80 columns the last key's label ran into it ("? Helctrl+p
palette"). The hint is left out here; the palette is a binding of the app
instead (``^p Palette``), so at a narrow width it is cut at the edge like any
other key, never drawn over one.
"""

from __future__ import annotations

from textual.widgets import Footer


class KeysFooter(Footer):
    """Textual's footer without the docked palette hint."""

    def __init__(self) -> None:
        super().__init__(show_command_palette=False)
