"""The seams stay where the design puts them: every source kind and action backend is
built through gputui/registry.py, and modules do not import against the layers' grain
(the config module does not reach into the agent or the simulator; the recording
commands do not reach into the UI or another command's front end)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gputui
from gputui import config as cfg
from gputui import registry

PACKAGE = Path(gputui.__file__).parent


def imported_by(path: Path) -> set[str]:
    """Every module ``path`` imports, at its top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def offenders(files: list[Path], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in files:
        bad = sorted(n for n in imported_by(path) if any(n == f or n.startswith(f + ".") for f in forbidden))
        if bad:
            found[str(path.relative_to(PACKAGE))] = bad
    return found


@pytest.mark.parametrize("kind", registry.SOURCE_KINDS, ids=lambda k: k.name)
def test_every_source_kind_in_the_registry_has_its_factory(kind: registry.SourceKind) -> None:
    module = registry.load(kind)
    factory = "host_source" if kind.scope == "host" else "fleet_sources"
    assert callable(getattr(module, factory, None)), f"{kind.module} has no {factory}()"


def test_a_host_kind_is_a_valid_transport_and_a_misspelt_one_names_the_known_ones() -> None:
    for name in registry.host_kinds():
        assert cfg.Host(name="h", transport=name).transport == name
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.parse({"hosts": [{"name": "gpu-01", "transport": "sssh"}]}, "f.toml")
    message = str(caught.value)
    assert message.startswith("f.toml: hosts[0] (gpu-01).transport: unknown transport 'sssh'"), message
    assert all(name in message for name in registry.host_kinds())


def test_an_unknown_action_backend_names_the_known_ones() -> None:
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.parse({"actions": {"backend": "slurn"}}, "f.toml")
    message = str(caught.value)
    assert message.startswith("f.toml: actions.backend: unknown action backend 'slurn'"), message
    assert all(name in message for name in registry.backend_names())


def test_the_config_module_does_not_reach_into_the_agent_or_the_simulator() -> None:
    assert offenders([PACKAGE / "config.py"], ("gputui.agent", "gputui.sim")) == {}


def test_the_recording_commands_do_not_reach_into_the_ui_or_another_command() -> None:
    files = sorted((PACKAGE / "record").glob("*.py"))
    assert offenders(files, ("gputui.ui", "gputui.cli")) == {}


def test_only_the_entry_point_imports_the_gputui_command() -> None:
    files = [p for p in PACKAGE.rglob("*.py") if p.name != "__main__.py" or p.parent != PACKAGE]
    assert offenders(files, ("gputui.cli",)) == {}


def test_fleets_are_opened_in_one_place() -> None:
    """A command builds its store and sources with gputui.sources.fleet, not by making links itself."""
    makers = ("gputui.transport.ssh.SshLink", "gputui.transport.local.LocalLink", "gputui.sources.demo.DemoFleet")
    files = [p for p in PACKAGE.rglob("*.py") if "sources" not in p.parts and "transport" not in p.parts]
    allowed = {"actions/remote.py", "actions/backends/agent.py"}  # an action's one request, not a fleet
    found = {k: v for k, v in offenders(files, makers).items() if k not in allowed}
    assert found == {}
