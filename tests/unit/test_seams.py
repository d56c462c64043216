"""The seams hold: neutral modules name no launcher, no API path and no framework.

A new framework or launcher must be one registered module. That stays true only
while the rest of the package asks a capability (``Server.launched_here``,
``Framework.paths``...) instead of comparing names or spelling a server's paths,
so this test reads the package's source and lists every place that does.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest_llmserve
from pytest_llmserve.frameworks import registry as frameworks
from pytest_llmserve.launch import registry as launchers

PACKAGE = Path(pytest_llmserve.__file__).parent
README = PACKAGE.parent / "README.md"

# Where a framework's or a launcher's own words belong.
FRAMEWORK_HOMES = ("frameworks/",)
LAUNCHER_HOMES = ("launch/", "profile/model.py")  # the latter: the Target's default
# Request dialects are an API's wire format by name (OpenAI completions, TGI generate).
DIALECT_HOMES = ("client/dialects.py",)
# The embedded default is a vLLM target by definition; the model builder serves it.
EMBEDDED_HOMES = ("profile/default.py", "models/")

API_LITERAL = re.compile(r"^/(v1/|health|metrics|tokenize|version|generate)|finished_reason")


def _strings(path: Path) -> list[tuple[int, str]]:
    """String constants of a module, docstrings left out (prose may name anything)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in docstrings
    ]  # fmt: skip


def _modules(excluded: tuple[str, ...]) -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if not rel.startswith(excluded):
            out.append((rel, path))
    return out


def test_no_launcher_name_is_compared_outside_launch() -> None:
    names = set(launchers.names())
    found = [
        f"{rel}:{line}: {text!r}"
        for rel, path in _modules(LAUNCHER_HOMES)
        for line, text in _strings(path)
        if text in names
    ]
    compared = [
        f"{rel}:{n}: {line.strip()}"
        for rel, path in _modules(LAUNCHER_HOMES)
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"\.launcher\s*(==|!=|\bin\b)", line)
    ]
    assert found + compared == []


def test_no_api_path_or_framework_name_outside_its_module() -> None:
    homes = FRAMEWORK_HOMES + DIALECT_HOMES
    paths = [
        f"{rel}:{line}: {text!r}"
        for rel, path in _modules(homes)
        for line, text in _strings(path)
        if API_LITERAL.search(text)
    ]
    names = [
        f"{rel}:{line}: {text!r}"
        for rel, path in _modules(homes + EMBEDDED_HOMES)
        for line, text in _strings(path)
        if text in frameworks.names()
    ]
    assert paths + names == []


def _readme_row(field: str) -> set[str]:
    for line in README.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0] == f"`{field}`":
            return set(re.findall(r"`([^`]+)`", cells[1]))
    raise AssertionError(f"README has no profile table row for `{field}`")


def test_readme_lists_exactly_the_registered_frameworks_and_launchers() -> None:
    assert _readme_row("framework") == set(frameworks.names())
    assert _readme_row("launcher") == set(launchers.names())
