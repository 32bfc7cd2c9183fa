"""The test suite's own layout: test modules share helpers through the support
modules (tests/screen_reading.py, tests/ui_apps.py, ...) and fixtures through
tests/conftest.py, never by importing one another."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parent


def imports_of_test_modules(path: Path) -> list[str]:
    """Each ``tests.test_*`` module the file imports, anywhere in it, with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import test_x, from .test_x import y
                base = f"tests.{base}" if base else "tests"
            names = [base] if base.startswith("tests.test_") else [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found += [f"line {node.lineno}: {name}" for name in names if name.startswith("tests.test_")]
    return found


def test_no_test_module_imports_another() -> None:
    modules = sorted(TESTS.glob("test_*.py"))
    assert Path(__file__) in modules
    offenders = {path.name: found for path in modules if (found := imports_of_test_modules(path))}
    assert not offenders, (
        f"test modules import other test modules: {offenders}; move what they share into a support module "
        "(tests/screen_reading.py, tests/ui_apps.py, ...) or, for a fixture, into tests/conftest.py"
    )
