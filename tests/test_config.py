"""The config file as the operator meets it: what loads, and what a mistake says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gputui import config
from gputui.config import ConfigError

VALID = """\
interval = 2.5

[groups.train]
description = "training nodes"

[groups.infer]

[[hosts]]
name = "gpu-01"
address = "10.0.0.1"
user = "ops"
port = 2222
tags = ["h100", "rack-a"]
group = "train"

[[hosts]]
name = "gpu-02"
transport = "local"
sim = "incident"
seed = 3
gpus = 4
group = "infer"
"""


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_for(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        config.load(path)
    return str(info.value)


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GPUTUI_CONFIG", "XDG_CONFIG_HOME")}
    env.update(extra)
    return env


def test_a_valid_config_loads_hosts_groups_and_settings(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, VALID))

    assert cfg.interval == 2.5
    assert [h.name for h in cfg.hosts] == ["gpu-01", "gpu-02"]
    first, second = cfg.hosts
    assert (first.address, first.user, first.port) == ("10.0.0.1", "ops", 2222)
    assert first.tags == ["h100", "rack-a"]
    assert first.group == "train"
    assert first.transport == "ssh"  # the default
    assert (second.transport, second.sim, second.seed, second.gpus) == ("local", "incident", 3, 4)
    assert second.port is None  # left to ssh_config, whose default is 22
    assert second.tags == []
    assert set(cfg.groups) == {"train", "infer"}
    assert cfg.groups["train"].description == "training nodes"
    assert cfg.groups["infer"].description == ""


def test_thresholds_take_defaults_unless_set(tmp_path: Path) -> None:
    defaults = config.load(write(tmp_path, VALID)).thresholds
    assert defaults.temp_margin_c == 5
    assert defaults.mem_used_pct == 95.0
    assert defaults.idle_holding_minutes == 15.0
    assert defaults.stale_after_intervals == 3

    partial = config.load(write(tmp_path, VALID + "\n[thresholds]\ntemp_margin_c = 8\n", "partial.toml")).thresholds
    assert partial.temp_margin_c == 8
    assert partial.mem_used_pct == 95.0
    assert partial.stale_after_intervals == 3


def test_the_health_rules_thresholds_have_sane_defaults_and_are_checked(tmp_path: Path) -> None:
    defaults = config.load(write(tmp_path, "")).thresholds
    assert (defaults.alert_hold_s, defaults.alert_clear_s) == (10.0, 30.0)
    assert (defaults.temp_hysteresis_c, defaults.mem_hysteresis_pct) == (2.0, 3.0)
    assert (defaults.xid_window_minutes, defaults.counter_window_minutes) == (60.0, 10.0)
    set_ = config.load(write(tmp_path, "[thresholds]\nalert_hold_s = 0\nxid_window_minutes = 1440\n", "set.toml")).thresholds
    assert (set_.alert_hold_s, set_.xid_window_minutes) == (0.0, 1440.0)
    message = error_for(write(tmp_path, "[thresholds]\nalert_clear_s = -1\n", "bad.toml"))
    assert "thresholds.alert_clear_s: input should be greater than or equal to 0, got -1" in message


def test_an_empty_file_is_a_config_with_no_hosts(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, ""))
    assert cfg.hosts == []
    assert cfg.interval == 1.0


def test_unknown_keys_are_named_with_the_file_and_the_host(tmp_path: Path) -> None:
    path = write(tmp_path, 'intervall = 1\n\n[[hosts]]\nname = "gpu-01"\nprot = 22\n')
    message = error_for(path)
    lines = message.splitlines()

    assert len(lines) == 2, message
    assert all(line.startswith(f"{path}: ") for line in lines), message
    top = next(line for line in lines if "intervall" in line)
    host = next(line for line in lines if "prot" in line)
    assert "unknown key" in top
    assert f"{path}: hosts[0] (gpu-01).prot: unknown key" in host
    assert "Traceback" not in message


def test_a_wrong_type_names_the_key_what_was_expected_and_what_was_found(tmp_path: Path) -> None:
    path = write(tmp_path, '[[hosts]]\nname = "gpu-01"\nport = "abc"\n')
    message = error_for(path)

    assert message.startswith(f"{path}: hosts[0] (gpu-01).port: "), message
    assert "integer" in message
    assert "'abc'" in message


def test_an_out_of_range_value_is_refused_with_its_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[[hosts]]\nname = "gpu-01"\nport = 70000\n')
    message = error_for(path)

    assert f"{path}: hosts[0] (gpu-01).port: " in message
    assert "65535" in message
    assert "70000" in message


def test_a_hosts_slowdown_point_for_nvidia_smi_is_optional_and_checked(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, '[[hosts]]\nname = "gpu-01"\ntemp_slowdown_c = 87\n[[hosts]]\nname = "gpu-02"\n'))
    assert [h.temp_slowdown_c for h in loaded.hosts] == [87, None]
    message = error_for(write(tmp_path, '[[hosts]]\nname = "gpu-01"\ntemp_slowdown_c = 870\n', "bad.toml"))
    assert "hosts[0] (gpu-01).temp_slowdown_c: " in message and "870" in message


def test_invalid_toml_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'interval = 1\n[[hosts]\nname = "gpu-01"\n')
    message = error_for(path)

    assert message.startswith(f"{path}: "), message
    assert "not valid TOML" in message
    assert "line 2" in message


def test_a_host_in_an_undefined_group_names_the_key_and_the_group(tmp_path: Path) -> None:
    path = write(tmp_path, '[groups.train]\n\n[[hosts]]\nname = "gpu-01"\ngroup = "infer"\n')
    message = error_for(path)

    assert message.startswith(f"{path}: "), message
    assert "hosts[0]" in message
    assert ".group" in message
    assert "'infer'" in message
    assert "not defined" in message
    assert "train" in message  # the groups that are defined, to pick from


def test_duplicate_host_names_name_the_second_entry(tmp_path: Path) -> None:
    path = write(tmp_path, '[[hosts]]\nname = "gpu-01"\n\n[[hosts]]\nname = "gpu-01"\n')
    message = error_for(path)

    assert message.startswith(f"{path}: "), message
    assert "hosts[1]" in message
    assert ".name" in message
    assert "'gpu-01'" in message
    assert "twice" in message


def test_an_unknown_sim_scenario_names_the_key_and_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, '[[hosts]]\nname = "gpu-01"\ntransport = "local"\nsim = "meltdown"\n')
    message = error_for(path)

    assert message.startswith(f"{path}: hosts[0] (gpu-01).sim: "), message
    assert "'meltdown'" in message
    for known in ("healthy", "mixed", "incident"):
        assert known in message


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "config.toml"
    message = error_for(path)

    assert str(path) in message
    assert "no such file" in message


def test_snapshot_with_a_bad_config_exits_2_with_the_message_and_no_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, '[[hosts]]\nname = "gpu-01"\nprot = 22\n', "BAD.toml")
    result = subprocess.run(
        [sys.executable, "-m", "gputui", "snapshot", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_env(),
    )

    assert result.returncode == 2, result.stderr
    assert f"{path}: hosts[0] (gpu-01).prot: unknown key" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_snapshot_with_a_missing_config_exits_2_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    result = subprocess.run(
        [sys.executable, "-m", "gputui", "snapshot", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_env(),
    )

    assert result.returncode == 2, result.stderr
    assert str(path) in result.stderr
    assert "Traceback" not in result.stderr


def test_gputui_config_env_var_chooses_the_default_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = tmp_path / "elsewhere.toml"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("GPUTUI_CONFIG", raising=False)
    assert config.default_path() == tmp_path / "xdg" / "gputui" / "config.toml"

    monkeypatch.setenv("GPUTUI_CONFIG", str(chosen))
    assert config.default_path() == chosen


def test_snapshot_without_config_flag_reads_the_file_gputui_config_names(tmp_path: Path) -> None:
    path = write(tmp_path, "intervall = 1\n", "from-env.toml")
    result = subprocess.run(
        [sys.executable, "-m", "gputui", "snapshot"],
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_env(GPUTUI_CONFIG=str(path), XDG_CONFIG_HOME=str(tmp_path / "xdg")),
    )

    assert result.returncode == 2, result.stderr
    assert f"{path}: intervall: unknown key" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["gpu:07", "gpu,07", "gpu 07", "gpu\t07"])
def test_a_host_name_that_could_not_be_targeted_is_refused(tmp_path: Path, name: str) -> None:
    quoted = json.dumps(name)  # a TOML basic string, \t and all
    text = f'[[hosts]]\nname = "gpu-01"\n\n[[hosts]]\nname = {quoted}\n'
    path = write(tmp_path, text)
    message = error_for(path)
    assert message.startswith(f"{path}: hosts[1] ({name}).name: {name!r} contains ")
    assert "a host name may be any text without ':', ',', spaces or control characters" in message


def test_the_kill_grace_is_held_to_what_the_hosts_accept(tmp_path: Path) -> None:
    from gputui.protocol import MAX_TERM_WAIT_S

    assert config.load(write(tmp_path, f"[actions]\nterm_wait_s = {MAX_TERM_WAIT_S}\n")).actions.term_wait_s == MAX_TERM_WAIT_S
    message = error_for(write(tmp_path, "[actions]\nterm_wait_s = 400.0\n"))
    assert "actions.term_wait_s: input should be less than or equal to 300" in message
