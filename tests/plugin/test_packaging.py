"""The suites ship in the package as ``pytest_llmserve.suites``, from their one source.

pyproject.toml maps the top-level suites/ folder into the package (``package-dir``),
so the packages are listed by hand there: these checks fail when a package folder
is added without listing it, and when the two ways of running the suites from a
checkout stop collecting the same tests. The wheel itself is built, installed and
run in tests/live/test_wheel_install.py.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _setuptools() -> dict[str, object]:
    table: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
        "setuptools"
    ]
    return table


def test_every_package_folder_is_listed_and_the_suites_are_mapped() -> None:
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "pytest_llmserve").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    listed = set(_setuptools()["packages"])  # type: ignore[call-overload]
    assert listed == on_disk | {"pytest_llmserve.suites"}
    assert _setuptools()["package-dir"] == {"pytest_llmserve.suites": "suites"}
    assert (ROOT / "suites" / "__init__.py").is_file()
    assert not (ROOT / "pytest_llmserve" / "suites").exists(), "one source: suites/ only"


def _collect(*args: str) -> list[str]:
    run = subprocess.run(
        [sys.executable, "-m", "pytest", *args, "--collect-only", "-q", "-p", "no:cacheprovider",
         "--llmserve-history=none", "--llmserve-report=none"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    return [line for line in run.stdout.splitlines() if "::" in line]


def test_suites_collect_once_from_the_folder_and_from_the_package() -> None:
    spec = importlib.util.find_spec("pytest_llmserve.suites")
    assert spec is not None, "pytest_llmserve.suites not importable: pip install -e ."
    assert spec.origin is not None
    assert Path(spec.origin).resolve() == ROOT / "suites" / "__init__.py"
    by_path = _collect("suites")
    by_package = _collect("--pyargs", "pytest_llmserve.suites")
    assert by_path, "no suite collected"
    assert len(by_path) == len(set(by_path)), "a suite test collected twice"
    assert by_package == by_path
    assert all(node.startswith("suites/test_") for node in by_path)
