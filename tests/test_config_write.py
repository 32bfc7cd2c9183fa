"""Adding a host keeps the operator's file: comments, order, everything."""

from __future__ import annotations

from pathlib import Path

import pytest

from gputui import config as cfg
from gputui.config_write import append_host

ORIGINAL = """# our fleet - do not remove this comment
interval = 2.0  # slower on purpose

[[hosts]]
name = "gpu-01"   # the old one
address = "gpu-01.lab"
"""


def test_append_keeps_comments_and_adds_a_valid_host(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(ORIGINAL)
    config = append_host(path, cfg.Host(name="gpu-02", address="gpu-02.lab", port=2222, tags=["a100"]))
    text = path.read_text()
    assert text.startswith(ORIGINAL)  # nothing before the new block changed, comments included
    assert [h.name for h in config.hosts] == ["gpu-01", "gpu-02"]
    again = cfg.load(path)
    assert again.hosts[1].port == 2222 and again.hosts[1].tags == ["a100"]
    assert again.interval == 2.0


def test_a_duplicate_name_is_refused_and_the_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(ORIGINAL)
    with pytest.raises(cfg.ConfigError, match="already configured"):
        append_host(path, cfg.Host(name="gpu-01"))
    assert path.read_text() == ORIGINAL


def test_a_broken_file_is_not_appended_to(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("interval = [\n")
    with pytest.raises(cfg.ConfigError, match="not valid TOML"):
        append_host(path, cfg.Host(name="gpu-02"))
    assert path.read_text() == "interval = [\n"


def test_a_host_the_dashboard_could_not_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(ORIGINAL)
    with pytest.raises(cfg.ConfigError, match="group"):
        append_host(path, cfg.Host(name="gpu-03", group="nowhere"))
    assert path.read_text() == ORIGINAL
