"""Theme files, the Linux console theme, and saving the chosen theme in the config."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from rich.color import Color as RichColor
from rich.color import ColorSystem
from textual.color import Color
from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.widgets import OptionList

from gputui import config as cfg
from gputui.config_write import set_theme
from gputui.ui.app import GpuTuiApp
from gputui.ui.launch import configured_app
from gputui.ui.themes import (
    CONSOLE_THEME,
    GpuTheme,
    ascii_themes,
    console_terminal,
    load_theme,
    offered_themes,
    pick_theme,
    register_themes,
    theme_is_ascii,
    theme_names,
    unknown_theme,
)
from gputui.ui.widgets.palette import Palette

THEMES = Path(__file__).resolve().parent.parent / "themes"
SHIPPED = ["gputui-console", "gputui-dark", "gputui-high-contrast", "gputui-light"]
COLOUR_KEYS = ["primary", "secondary", "accent", "foreground", "background", "surface", "panel", "success", "warning", "error"]

# The Linux console's default palette (drivers/tty/vt: the VGA colours), by ANSI number.
LINUX_CONSOLE = [
    (0x00, 0x00, 0x00), (0xAA, 0x00, 0x00), (0x00, 0xAA, 0x00), (0xAA, 0x55, 0x00),
    (0x00, 0x00, 0xAA), (0xAA, 0x00, 0xAA), (0x00, 0xAA, 0xAA), (0xAA, 0xAA, 0xAA),
    (0x55, 0x55, 0x55), (0xFF, 0x55, 0x55), (0x55, 0xFF, 0x55), (0xFF, 0xFF, 0x55),
    (0x55, 0x55, 0xFF), (0xFF, 0x55, 0xFF), (0x55, 0xFF, 0xFF), (0xFF, 0xFF, 0xFF),
]  # fmt: skip


@pytest.fixture(autouse=True)
def plain_terminal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No user config or themes from this machine, and not the Linux console."""
    monkeypatch.setenv("GPUTUI_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("GPUTUI_ASCII", raising=False)


def welcome_app() -> GpuTuiApp:
    return GpuTuiApp(welcome=(Path("/x"), None))


def contrast(a: str, b: str) -> float:
    def luminance(colour: str) -> float:
        c = Color.parse(colour)
        lin = [v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4 for v in (c.r / 255, c.g / 255, c.b / 255)]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_the_shipped_theme_files_are_the_four() -> None:
    assert sorted(p.stem for p in THEMES.glob("*.toml")) == SHIPPED
    for name in SHIPPED:
        assert load_theme(THEMES / f"{name}.toml").name == name  # the file's name is the theme's


@pytest.mark.parametrize("name", SHIPPED)
async def test_every_shipped_theme_loads_registers_and_draws(name: str) -> None:
    theme = load_theme(THEMES / f"{name}.toml")
    assert isinstance(theme, GpuTheme)
    assert all(getattr(theme, key) for key in COLOUR_KEYS)  # every colour given, none left to Textual's defaults
    app = welcome_app()
    assert app.theme_problems == []
    assert set(SHIPPED) <= set(app.available_themes)
    async with app.run_test() as pilot:
        app.theme = name
        await pilot.pause()
        assert app.current_theme.name == name
        assert app.current_theme.to_color_system().generate()["primary"]  # Textual takes every colour
        palette = Palette.of(app)  # and so does Rich, for the data colours
        assert palette.bad.color is not None
        assert palette.bad.color.triplet == Color.parse(theme.error or "").rgb


@pytest.mark.parametrize("name", SHIPPED)
def test_text_and_status_colours_are_readable(name: str) -> None:
    theme = load_theme(THEMES / f"{name}.toml")
    bg = theme.background or ""
    for key in ("foreground", "success", "warning", "error", "accent"):
        assert contrast(getattr(theme, key), bg) >= 4.5, key  # WCAG AA
    if name == "gputui-high-contrast":
        assert theme.background == "#000000"
        assert theme.foreground == "#FFFFFF"
        assert contrast(theme.primary, bg) >= 7  # the cursor, WCAG AAA


def test_console_theme_uses_only_the_16_colours_and_ascii() -> None:
    data = tomllib.loads((THEMES / "gputui-console.toml").read_text())
    assert data["ascii"] is True
    theme = load_theme(THEMES / "gputui-console.toml")
    for key in COLOUR_KEYS:
        colour = Color.parse(getattr(theme, key))
        assert colour.rgb in LINUX_CONSOLE, key
        number = LINUX_CONSOLE.index(colour.rgb)
        # A 16-colour terminal gets exactly this colour, not a neighbour.
        assert RichColor.parse(colour.hex6).downgrade(ColorSystem.STANDARD).number == number, key
        if key in ("background", "surface", "panel", "primary"):  # drawn as backgrounds (primary: the cursor)
            assert number < 8, key  # a bright background may blink on the console
    assert theme.ascii is True
    assert not any(load_theme(THEMES / f"{name}.toml").ascii for name in SHIPPED if name != CONSOLE_THEME)


async def test_the_app_can_ask_whether_its_theme_is_ascii() -> None:
    app = welcome_app()
    assert ascii_themes(app) == {CONSOLE_THEME}
    async with app.run_test() as pilot:
        assert not theme_is_ascii(app)
        app.theme = CONSOLE_THEME
        await pilot.pause()
        assert theme_is_ascii(app)
        assert not theme_is_ascii(app, "gputui-light")
        assert not theme_is_ascii(app, "no-such-theme")


def test_console_terminal() -> None:
    assert console_terminal({"TERM": "linux"})
    assert console_terminal({"TERM": "linux-16color"})
    assert console_terminal({"TERM": "xterm-256color", "GPUTUI_ASCII": "1"})
    assert not console_terminal({"TERM": "xterm-256color"})
    assert not console_terminal({})
    assert not console_terminal({"TERM": "linux", "GPUTUI_ASCII": "0"})


def test_pick_theme() -> None:
    available = set(SHIPPED)
    assert pick_theme("gputui-light", available, {"TERM": "linux"}) == CONSOLE_THEME  # whatever the config says
    assert pick_theme(None, available, {"TERM": "xterm", "GPUTUI_ASCII": "1"}) == CONSOLE_THEME
    assert pick_theme("gputui-light", available, {"TERM": "xterm-256color"}) == "gputui-light"
    assert pick_theme("gputui-high-contrast", available, {}) == "gputui-high-contrast"
    assert pick_theme("no-such-theme", available, {"TERM": "xterm"}) == "gputui-dark"
    assert pick_theme(None, available, {"TERM": "xterm"}) == "gputui-dark"
    assert pick_theme("gputui-light", available - {CONSOLE_THEME}, {"TERM": "linux"}) == "gputui-light"


async def test_a_broken_user_theme_is_reported_and_skipped(tmp_path: Path) -> None:
    user = tmp_path / "themes"  # next to $GPUTUI_CONFIG
    user.mkdir()
    (user / "blurple.toml").write_text('name = "blurple"\nprimary = "blurple"\n')
    (user / "typo.toml").write_text('name = "typo"\nprimary = "#112233"\nbackgroud = "#000000"\n')
    (user / "ansi.toml").write_text('name = "ansi"\nprimary = "ansi_red"\n')
    (user / "notoml.toml").write_text('name = "notoml\n')
    (user / "mine.toml").write_text('name = "mine"\nprimary = "#FF8800"\nbackground = "black"\n')
    app = welcome_app()
    problems = app.theme_problems
    assert any("blurple.toml: primary: not a colour" in p for p in problems), problems
    assert any("typo.toml: backgroud: unknown key" in p for p in problems), problems
    assert any("ansi.toml: primary: ANSI colour names are not supported" in p for p in problems), problems
    assert any("notoml.toml: not valid TOML" in p for p in problems), problems
    assert len(problems) == 4
    assert {"blurple", "typo", "ansi", "notoml"}.isdisjoint(app.available_themes)
    assert app.get_theme("mine") is not None  # a good user theme next to them still loads
    assert getattr(app.get_theme("mine"), "background", None) == "#000000"  # stored as hex
    async with app.run_test() as pilot:
        await pilot.pause()
        assert app.theme == "gputui-dark"
        assert app.current_theme.name == "gputui-dark"


def test_register_themes_always_leaves_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gputui.ui.themes.theme_dirs", list)  # no theme files at all
    app = welcome_app()
    assert register_themes(app) == []
    assert "gputui-dark" in app.available_themes


CONFIG = """# our fleet - do not remove this comment
interval = 2.0  # slower on purpose
theme = "gputui-dark"   # picked by hand

# the old box
[[hosts]]
name = "gpu-01"   # the old one
address = "gpu-01.lab"
"""


def test_set_theme_replaces_only_the_theme_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(CONFIG.encode())
    set_theme(path, "gputui-light")
    expected = CONFIG.replace('theme = "gputui-dark"   # picked', 'theme = "gputui-light"   # picked')
    assert expected != CONFIG
    assert path.read_bytes() == expected.encode()
    assert cfg.load(path).theme == "gputui-light"


def test_set_theme_keeps_crlf_line_ends(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(CONFIG.replace("\n", "\r\n").encode())
    set_theme(path, "gputui-console")
    expected = CONFIG.replace('"gputui-dark"', '"gputui-console"').replace("\n", "\r\n")
    assert path.read_bytes() == expected.encode()


def test_set_theme_inserts_before_the_first_table(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    # The lines inside the multi-line string look like a table and a theme; they are neither.
    original = CONFIG.replace(
        'theme = "gputui-dark"   # picked by hand\n',
        "ssh.config_file = '''\n[[hosts]]\ntheme = \"x\"\n'''\n",
    )
    path.write_bytes(original.encode())
    set_theme(path, "gputui-high-contrast")
    lines = path.read_text().splitlines(keepends=True)
    at = lines.index('theme = "gputui-high-contrast"\n')
    assert at < lines.index("[[hosts]]\n", 6) and at > lines.index("'''\n", 4)
    assert lines[at + 1 : at + 3] == ["\n", "# the old box\n"]  # the table's comment stays with it
    assert "".join(lines[:at] + lines[at + 2 :]) == original  # nothing else moved
    config = cfg.load(path)
    assert config.theme == "gputui-high-contrast"
    assert config.ssh.config_file == '[[hosts]]\ntheme = "x"\n'


def test_set_theme_appends_when_there_is_no_table(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("# just a comment\ninterval = 5.0")
    set_theme(path, "gputui-light")
    assert path.read_text() == '# just a comment\ninterval = 5.0\ntheme = "gputui-light"\n'


def test_set_theme_creates_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "config.toml"
    set_theme(path, 'odd "name"')
    assert path.read_text() == 'theme = "odd \\"name\\""\n'
    assert cfg.load(path).theme == 'odd "name"'


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('theme = "gputui-dark"\n[[hosts]\nname = "a"\n', "not valid TOML"),
        ('theme = "gputui-dark"\ninterval = "fast"\n', "interval"),
    ],
)
def test_set_theme_refuses_a_broken_file_and_leaves_it(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(text.encode())
    with pytest.raises(cfg.ConfigError, match=reason):
        set_theme(path, "gputui-light")
    assert path.read_bytes() == text.encode()
    assert os.listdir(tmp_path) == ["config.toml"]  # no temp file left behind


def test_check_config_reports_an_unknown_theme_and_fails(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text('theme = "nope-theme"\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "XDG_CONFIG_HOME"}
    argv = [sys.executable, "-m", "gputui", "check-config", "--config", str(path)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    first, second, *_ = result.stdout.splitlines()
    assert first == f"{path}: theme: unknown theme 'nope-theme'; available: {', '.join(SHIPPED)}"
    assert second == f"{path}: 1 problem (0 hosts, 0 groups)"
    assert "valid" not in result.stdout

    path.write_text('theme = "gputui-light"\n', encoding="utf-8")
    fine = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert fine.returncode == 0, fine.stdout + fine.stderr
    assert fine.stdout.startswith(f"{path}: valid (0 hosts, 0 groups)")


def test_check_config_neither_accepts_nor_lists_textuals_own_themes(tmp_path: Path) -> None:
    """nord and the like are not offered (they draw braille and blocks on the console): a config naming one is told so."""
    path = tmp_path / "fleet.toml"
    path.write_text('theme = "nord"\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "XDG_CONFIG_HOME"}
    argv = [sys.executable, "-m", "gputui", "check-config", "--config", str(path)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == f"{path}: theme: unknown theme 'nord'; available: {', '.join(SHIPPED)}"


def test_a_user_theme_file_counts_as_available() -> None:
    user = Path(os.environ["GPUTUI_CONFIG"]).parent / "themes"
    user.mkdir()
    (user / "mine.toml").write_text('name = "mine"\nprimary = "#FF8800"\n')
    assert theme_names() == {"mine", *SHIPPED}  # and none of Textual's own
    assert unknown_theme("mine", theme_names()) is None


async def test_the_dashboard_says_once_that_the_configured_theme_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    config = cfg.parse({"theme": "nope-theme"}, str(path))
    app = configured_app(path, config)
    async with app.run_test() as pilot:
        await pilot.pause()
        await pilot.pause()
        assert app.theme == "gputui-dark"
        said = [str(n.message) for n in app._notifications if "nope-theme" in str(n.message)]
        assert len(said) == 1, said
        assert said[0].startswith(f"{path}: theme: unknown theme 'nope-theme'; available: ")
        assert said[0].endswith("; showing gputui-dark")


# -- the console theme on the screens the every-screen check in test_overview.py missed --
# That check ran at 160 columns, where no summary line is cut (Textual cuts with "…"), and
# never opened the command palette (Textual's 🔎 icon, "…" placeholder and half-block
# borders, and our own "°C"). Here: 80 columns, the palette, its theme list, and the
# host tabs whose summary lines are the longest.


def odd_characters(text: str) -> list[str]:
    return sorted({c for c in text if ord(c) > 127})


async def test_on_the_console_the_palette_and_cut_summary_lines_are_ascii(monkeypatch: pytest.MonkeyPatch) -> None:
    from textual.command import CommandPalette
    from textual.widgets import OptionList

    from tests.screen_reading import screen_text
    from tests.ui_apps import Host
    from tests.waiting import wait_for

    monkeypatch.setenv("TERM", "linux")
    host = Host(samples=20)  # the incident host: a lost GPU, one held at 0 %, throttling
    app = GpuTuiApp(host.store, [], title="console")
    seen: dict[str, str] = {}
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.ascii

        async def palette(typed: str, expect: str) -> None:
            await pilot.press("ctrl+p")
            await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
            await pilot.press(*typed)
            options = app.screen.query_one(OptionList)
            await wait_for(pilot, lambda: any(expect in str(o.prompt) for o in options.options), f"{expect!r} listed")
            await pilot.pause()
            seen[f"palette {typed!r}"] = screen_text(app)

        await palette("", "Heat map")  # everything it offers, before typing
        await palette("heat map", "temperature C")
        await pilot.press("escape")
        await palette("theme", "Theme")
        app.search_themes()  # what the "Theme" command opens
        await wait_for(pilot, lambda: len(app.screen_stack) > 3, "the theme list")
        await pilot.pause()
        seen["theme list"] = screen_text(app)
        await pilot.press("escape", "escape", "enter")
        for tab in "1234":
            await pilot.press(tab)
            await pilot.pause()
            seen[f"host tab {tab}"] = screen_text(app)
    for name, text in seen.items():
        assert not odd_characters(text), f"{name} shows {odd_characters(text)}"
    assert "temperature C" in seen["palette 'heat map'"]
    assert "idle-holding" in seen["host tab 3"] and "processes" in seen["host tab 4"]


# -- which themes are offered: gputui's and the user's, never Textual's own --
# Textual's themes (textual-dark, nord, ...) carry no ASCII flag and draw braille
# charts and block sparklines on the Linux console; they were in the "Theme" list.


def user_theme(name: str = "mine") -> None:
    user = Path(os.environ["GPUTUI_CONFIG"]).parent / "themes"
    user.mkdir(exist_ok=True)
    (user / f"{name}.toml").write_text(f'name = "{name}"\nprimary = "#FF8800"\n')


async def listed(pilot: Pilot[None], app: GpuTuiApp, typed: str = "") -> list[str]:
    """The first line of every option the palette on top shows once ``typed`` is in."""
    from tests.waiting import wait_for

    await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette) and bool(app.screen.query(OptionList)), "the palette")
    await pilot.press(*typed)
    options = app.screen.query_one(OptionList)
    await wait_for(pilot, lambda: options.option_count > 0, "something listed")
    await pilot.pause()
    return [str(option.prompt).split("\n")[0] for option in options.options]


async def test_the_theme_list_offers_gputui_and_user_themes_only() -> None:
    user_theme()
    app = welcome_app()
    async with app.run_test() as pilot:
        app.search_themes()  # what the palette's "Theme" command opens
        offered = await listed(pilot, app)
    assert offered == sorted([*SHIPPED, "mine"])
    assert offered == offered_themes(app)


async def test_the_palette_offers_the_users_themes_and_not_textuals() -> None:
    user_theme()
    app = welcome_app()
    async with app.run_test() as pilot:
        await pilot.press("ctrl+p")
        offered = [o for o in await listed(pilot, app, "theme") if o.startswith("Theme: ")]
    assert sorted(offered) == [f"Theme: {name}" for name in sorted([*SHIPPED, "mine"])]


async def test_the_dashboard_calls_textuals_own_themes_unknown(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    app = configured_app(path, cfg.parse({"theme": "nord"}, str(path)))
    assert set(app.available_themes) == set(SHIPPED)
    async with app.run_test() as pilot:
        await pilot.pause()
        assert app.theme == "gputui-dark"
        said = [str(n.message) for n in app._notifications if "nord" in str(n.message)]
    assert said == [f"{path}: theme: unknown theme 'nord'; available: {', '.join(SHIPPED)}; showing gputui-dark"]


async def choose_theme(pilot: Pilot[None], app: GpuTuiApp, name: str) -> None:
    """As an operator does: the palette's theme list, the name typed, enter."""
    from tests.waiting import wait_for

    app.search_themes()
    assert (await listed(pilot, app, name))[0] == name
    await pilot.press("enter")
    await wait_for(pilot, lambda: app.theme == name and not isinstance(app.screen, CommandPalette), f"the {name} theme")
    await pilot.pause()


async def test_on_the_console_every_theme_switch_and_back_stays_ascii(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each theme offered, chosen on the host screen and then the console theme again:
    every screen is ASCII once more, whatever the other theme drew."""
    from tests.screen_reading import screen_text
    from tests.ui_apps import Host
    from tests.waiting import wait_for

    monkeypatch.setenv("TERM", "linux")
    user_theme()
    host = Host(samples=20)
    app = GpuTuiApp(host.store, [], title="console")
    seen: dict[str, str] = {}
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.theme == CONSOLE_THEME
        others = [name for name in offered_themes(app) if name != CONSOLE_THEME]
        assert others == ["gputui-dark", "gputui-high-contrast", "gputui-light", "mine"]
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.id != "_default" and bool(app.screen.query("#host-tabs")), "host")
        for other in others:
            await choose_theme(pilot, app, other)
            assert not app.ascii
            await choose_theme(pilot, app, CONSOLE_THEME)
            assert app.ascii
            for tab in "1234":
                await pilot.press(tab)
                await pilot.pause()
                seen[f"{other} and back: host tab {tab}"] = screen_text(app)
            await pilot.press("escape")
            await pilot.pause()
            seen[f"{other} and back: overview"] = screen_text(app)
            await pilot.press("question_mark")
            await pilot.pause()
            seen[f"{other} and back: help"] = screen_text(app)
            app.search_themes()
            await listed(pilot, app)
            seen[f"{other} and back: theme list"] = screen_text(app)
            await pilot.press("escape", "escape", "enter")
            await pilot.pause()
    odd = {name: odd_characters(text) for name, text in seen.items() if odd_characters(text)}
    assert not odd, f"not ASCII: {odd}"


async def test_a_theme_switch_redraws_the_host_screens_chart_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the console, choosing the console theme again must not leave the other theme's
    braille chart up until the next tick; the switches here leave no time for one."""
    from tests.screen_reading import screen_text
    from tests.ui_apps import Host
    from tests.waiting import wait_for

    monkeypatch.setenv("TERM", "linux")
    app = GpuTuiApp(Host(samples=20).store, [], title="console")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.id != "_default" and bool(app.screen.query("#host-tabs")), "host")
        await pilot.pause()
        assert not odd_characters(screen_text(app))
        app.theme = "gputui-dark"  # no await from here on: no timer can run in between
        dark = screen_text(app)
        app.theme = CONSOLE_THEME
        console = screen_text(app)
    assert {"⣀", "▇"} & set(dark), "the dark theme draws braille and blocks at once"
    assert not odd_characters(console), odd_characters(console)


async def test_a_host_screen_opened_in_another_theme_turns_ascii_with_the_console_theme(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The tabs' underline is drawn with box characters; the console theme hides it, also on a
    host screen that was opened before the switch."""
    from tests.screen_reading import screen_text
    from tests.ui_apps import Host
    from tests.waiting import wait_for

    monkeypatch.setenv("TERM", "xterm-256color")  # not the console: the dark theme as configured
    app = GpuTuiApp(Host(samples=20).store, [], title="console", theme="gputui-dark")
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.theme == "gputui-dark"
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.id != "_default" and bool(app.screen.query("#host-tabs")), "host")
        await pilot.pause()
        assert odd_characters(screen_text(app)), "the dark theme draws outside ASCII"
        app.theme = CONSOLE_THEME
        await pilot.pause()
        assert not odd_characters(screen_text(app)), odd_characters(screen_text(app))
