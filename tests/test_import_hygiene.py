"""The layers stay apart: the agent runs on a GPU host with the stdlib and
pynvml only, and the command-line tools for cron and monitoring (`gputui
check`, `gputui snapshot`, the actions) start without loading the UI.

The UI keeps its shape too: it never reaches into the command-line front
ends, its screens never look the app up by attribute name (they are handed
what they read and post messages for what they ask), and gputui/ui is
grouped by role, with only the app, its launch and the themes on top."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import TypeGuard

import pytest

UI = Path(__file__).resolve().parent.parent / "gputui" / "ui"
UI_TOP = {"__init__.py", "app.py", "launch.py", "heap.py", "themes.py"}  # heap: the process the launch sets up
FRONT_ENDS = ("gputui.cli", "gputui.actions.cli")


def loaded_after(module: str) -> set[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return {name.split(".")[0] for name in json.loads(out)}


@pytest.mark.parametrize(
    "module",
    ["gputui.agent.main", "gputui.agent.act_main", "gputui.agent.exporter", "gputui.agent.bundle_main", "gputui.sim.nvml"],
)
def test_the_agent_needs_nothing_but_the_stdlib_and_pynvml(module: str) -> None:
    third_party = loaded_after(module) & {"pydantic", "textual", "rich", "asyncssh", "psutil", "plotext", "tomli_w"}
    assert third_party == set(), f"{module} loads {third_party}: a GPU host would need them installed"


def imported_by_run(argv: list[str], tmp_path: Path) -> set[str]:
    """Every module a real run of the command imports, as ``python -X importtime`` lists them."""
    run = subprocess.run(
        [sys.executable, "-X", "importtime", *argv], capture_output=True, text=True, timeout=60, check=True, cwd=tmp_path
    )
    lines = [line for line in run.stderr.splitlines() if line.startswith("import time:") and "imported package" not in line]
    assert lines, run.stderr[-500:]
    return {line.rsplit("|", 1)[1].strip() for line in lines}


def test_gputui_agent_imports_only_what_the_agent_does(tmp_path: Path) -> None:
    """`gputui agent --once` (the console script) costs what `python -m gputui.agent --once` does: the
    front end hands the agent its arguments before it imports anything of the dashboard."""
    once = ["--once", "--sim", "healthy", "--gpus", "2", "--sim-processes", "synthetic", "--state-dir", str(tmp_path)]
    script = Path(sys.executable).parent / "gputui"
    command = imported_by_run([str(script), "agent", *once], tmp_path)
    agent = imported_by_run(["-m", "gputui.agent", *once], tmp_path)
    assert command - agent == {"gputui.cli"}, "gputui agent imports more than the agent"
    dashboard = {"pydantic", "textual", "rich", "asyncssh", "httpx", "asyncio", "tomllib", "gputui.config", "gputui.cli_args"}
    assert {name.split(".")[0] for name in command} & dashboard == set()
    assert command & dashboard == set()


def evaluated_unions(tree: ast.Module) -> list[int]:
    """Lines of annotations written ``X | Y`` that Python evaluates (no ``from __future__ import annotations``):
    before 3.10 they raise TypeError as the module loads."""
    future = any(
        isinstance(node, ast.ImportFrom) and node.module == "__future__" and any(a.name == "annotations" for a in node.names)
        for node in tree.body
    )
    if future:
        return []
    annotations: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            every = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs, node.args.vararg, node.args.kwarg]
            annotations += [a.annotation for a in every if a is not None and a.annotation is not None]
            annotations += [node.returns] if node.returns is not None else []
        elif isinstance(node, ast.AnnAssign):
            annotations.append(node.annotation)
    return sorted(
        {n.lineno for a in annotations for n in ast.walk(a) if isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr)}
    )


def test_the_bundle_loads_on_python_38() -> None:
    """The agent bundle runs on a host's python3, 3.8 up: an annotation ``str | None`` evaluated
    as gputui/protocol.py loaded stopped every agent on 3.8 and 3.9 (vermin's check cannot tell
    it from ``os.O_RDWR | os.O_CREAT``)."""
    package = UI.parent
    sources = [package / "protocol.py", *sorted((package / "agent").glob("*.py")), *sorted((package / "sim").glob("*.py"))]
    found = {
        str(path.relative_to(package.parent)): lines
        for path in sources
        if (lines := evaluated_unions(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert found == {}, "write Optional[X] / Union[X, Y], or add `from __future__ import annotations`"


@pytest.mark.parametrize("module", ["gputui.health.check_cli", "gputui.snapshot", "gputui.actions.cli", "gputui.record.cli"])
def test_command_line_tools_do_not_load_the_ui(module: str) -> None:
    assert "textual" not in loaded_after(module), f"{module} loads Textual"


def ui_sources() -> dict[str, ast.Module]:
    found = {p.relative_to(UI.parent.parent).as_posix(): ast.parse(p.read_text(encoding="utf-8")) for p in UI.rglob("*.py")}
    assert len(found) > 30, f"only {len(found)} modules under {UI}"
    return found


def imported(tree: ast.Module) -> set[str]:
    """Every module an import names, ``from a.b import c`` as both a.b and a.b.c (c may be a module)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_ui_never_imports_a_command_line_front_end() -> None:
    found = [
        f"{path} imports {name}"
        for path, tree in ui_sources().items()
        for name in sorted(imported(tree))
        if any(name == front or name.startswith(front + ".") for front in FRONT_ENDS)
    ]
    assert found == [], "the UI takes what it shares with the command line from a shared module (gputui.actions.until)"


def reaches_into_the_app(node: ast.AST) -> TypeGuard[ast.Call]:
    """``getattr(self.app, ...)`` or ``hasattr(app, ...)``: the app looked up by attribute name."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")):
        return False
    target = node.args[0] if node.args else None
    return (isinstance(target, ast.Attribute) and target.attr == "app") or (isinstance(target, ast.Name) and target.id == "app")


def test_screens_never_look_the_app_up_by_attribute_name() -> None:
    found = [
        f"{path}:{node.lineno}" for path, tree in ui_sources().items() for node in ast.walk(tree) if reaches_into_the_app(node)
    ]
    assert found == [], "hand the screen what it reads (AppParts) and post a message for what it asks (gputui.ui.screens.seam)"
    assert not [p for p in UI.rglob("*.py") if "getattr(self.app" in p.read_text(encoding="utf-8")]


def test_the_ui_top_level_holds_only_the_app_its_launch_its_heap_and_themes() -> None:
    top = {p.name for p in UI.glob("*.py")}
    assert top == UI_TOP, f"modules belong in screens/, dialogs/, widgets/, panels/ or state/, not on top: {sorted(top - UI_TOP)}"
    for package in (p for p in UI.iterdir() if p.is_dir() and p.name != "__pycache__"):
        init = package / "__init__.py"
        assert init.is_file(), f"{package} has no __init__.py"
        assert ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))), f"{init} says nothing of what belongs there"
