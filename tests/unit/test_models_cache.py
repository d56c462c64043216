"""The model cache: where it is, when it rebuilds, and that concurrent or failed builds
never leave a half-built directory that looks usable. Fast: a fake build script
stands in for the torch one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from pytest_llmserve.errors import ModelBuildError
from pytest_llmserve.models import builder_env, catalog, embedded
from pytest_llmserve.models.cache import atomic_dir, cache_root, clean_stale_temps, file_lock

FAKE_SCRIPT = textwrap.dedent(
    """
    import argparse, json, pathlib, sys, time
    p = argparse.ArgumentParser()
    for a in ("--recipe-json", "--gguf", "--source", "--out"):
        p.add_argument(a)
    a = p.parse_args()
    print('[build]   0.0s versions {"torch": "0-fake"}', flush=True)
    out = pathlib.Path(a.out)
    (out / "recipe.json").write_text(a.recipe_json)
    (out / "source.txt").write_text(str(a.source))
    with open(pathlib.Path(a.gguf).with_name("calls.log"), "a") as f:
        f.write(json.loads(a.recipe_json)["kind"] + "\\n")
    print("[build] done", flush=True)
    """
)


@pytest.fixture
def fake(tmp_path: Path) -> tuple[Path, Path]:
    gguf = tmp_path / "pkg" / "model.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF fake weights")
    script = tmp_path / "fake_build.py"
    script.write_text(FAKE_SCRIPT)
    return gguf, script


def _calls(gguf: Path) -> list[str]:
    log = gguf.with_name("calls.log")
    return log.read_text().split() if log.exists() else []


# -- cache root ---------------------------------------------------------------------


def test_cache_root_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LLMSERVE_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_root() == tmp_path / "home" / ".cache" / "pytest-llmserve"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "pytest-llmserve"
    monkeypatch.setenv("LLMSERVE_CACHE_DIR", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    assert cache_root(tmp_path / "arg") == tmp_path / "arg"
    assert cache_root(str(tmp_path / "arg")) == tmp_path / "arg"
    assert not (tmp_path / "env").exists()  # looking creates nothing


# -- keys ---------------------------------------------------------------------------


def test_key_is_stable_and_follows_every_input(fake: tuple[Path, Path]) -> None:
    gguf, script = fake
    bf16, int8 = catalog.variant("bf16"), catalog.variant("int8-w8a8")
    key, inputs = embedded.variant_key(int8, gguf, script)
    assert embedded.variant_key(int8, gguf, script)[0] == key
    assert inputs["source_key"] == embedded.variant_key(bf16, gguf, script)[0]
    assert "llmcompressor==0.14.0.1" in inputs["builder_requirements"]

    reordered = dataclasses.replace(int8, recipe=dict(reversed(list(int8.recipe.items()))))
    assert embedded.variant_key(reordered, gguf, script)[0] == key
    recipe = {**int8.recipe, "calibration": {**int8.recipe["calibration"], "samples": 7}}
    assert embedded.variant_key(dataclasses.replace(int8, recipe=recipe), gguf, script)[0] != key

    other_script = script.with_name("other.py")
    other_script.write_text(FAKE_SCRIPT + "\n# edited\n")
    assert embedded.variant_key(int8, gguf, other_script)[0] != key

    bf16_key = embedded.variant_key(bf16, gguf, script)[0]
    os.utime(gguf, ns=(1, 1))  # same bytes, new mtime: same key
    assert embedded.variant_key(bf16, gguf, script)[0] == bf16_key
    gguf.write_bytes(b"GGUF other weights")  # the source changes: both keys change
    assert embedded.variant_key(bf16, gguf, script)[0] != bf16_key
    assert embedded.variant_key(int8, gguf, script)[0] != key


def test_builder_venv_name_follows_requirements(monkeypatch: pytest.MonkeyPatch) -> None:
    before = builder_env.requirements_hash()
    assert builder_env.requirements_hash() == before
    monkeypatch.setattr(builder_env, "BUILDER_REQUIREMENTS", ("torch==9.9",))
    assert builder_env.requirements_hash() != before


# -- lock and atomic dir ------------------------------------------------------------


def test_file_lock_makes_second_holder_wait(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    events: list[str] = []
    waited: list[str] = []
    with file_lock(lock):

        def second() -> None:
            with file_lock(lock, on_wait=waited.append):
                events.append("second")

        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.3)
        events.append("first-done")
    t.join(5)
    assert events == ["first-done", "second"]
    assert waited
    assert "another process" in waited[0]


def test_file_lock_across_processes(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    code = (
        "import sys,time; from pathlib import Path;"
        "from pytest_llmserve.models.cache import file_lock\n"
        "with file_lock(Path(sys.argv[1])):\n"
        "    print('held', flush=True); time.sleep(1.0)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(lock)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    waited: list[str] = []
    started = time.monotonic()
    with file_lock(lock, on_wait=waited.append):
        assert time.monotonic() - started > 0.5
    assert waited
    proc.stdout.read()
    assert proc.wait(10) == 0


def test_atomic_dir_publishes_whole_or_nothing(tmp_path: Path) -> None:
    final = tmp_path / "out"

    def crash() -> None:
        with atomic_dir(final) as tmp:
            (tmp / "half").write_text("x")
            raise RuntimeError("crash mid-build")

    with pytest.raises(RuntimeError):
        crash()
    assert not final.exists()
    assert list(tmp_path.iterdir()) == []

    with atomic_dir(final) as tmp:
        assert not final.exists()
        (tmp / "whole").write_text("x")
    assert (final / "whole").exists()
    with atomic_dir(final) as tmp:  # replaces an existing (stale) dir
        (tmp / "new").write_text("x")
    assert sorted(p.name for p in final.iterdir()) == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_stale_temp_dirs_of_dead_processes_are_cleaned(tmp_path: Path) -> None:
    final = tmp_path / "out"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    stale = tmp_path / f".out.tmp-{dead}-abc"
    live = tmp_path / f".out.tmp-{os.getpid()}-abc"
    stale.mkdir()
    live.mkdir()
    assert clean_stale_temps(final) == [stale]
    assert live.exists()


# -- builds -------------------------------------------------------------------------


def test_concurrent_builds_build_once(tmp_path: Path) -> None:
    target = tmp_path / "models" / "m" / "v-0123"
    counter = tmp_path / "count"
    code = (
        "import sys,time,pathlib; time.sleep(0.5);"
        "open(sys.argv[1],'a').write('x');"
        "pathlib.Path(sys.argv[2],'weights').write_text('w')"
    )
    messages: list[list[str]] = [[], []]
    results: list[Path] = []

    def build(i: int) -> None:
        results.append(
            embedded.build_artifact(
                target,
                "k1",
                {"a": 1},
                lambda out: [sys.executable, "-c", code, str(counter), str(out)],
                messages[i].append,
            )
        )

    threads = [threading.Thread(target=build, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.1)
    for t in threads:
        t.join(30)
    assert results == [target, target]
    assert counter.read_text() == "x"
    assert any("already built" in m for m in messages[1])
    assert any("waiting for" in m for m in messages[1])
    assert embedded.is_complete(target, "k1")
    assert not embedded.is_complete(target, "k2")


def test_failed_build_raises_with_tail_and_leaves_nothing_complete(tmp_path: Path) -> None:
    target = tmp_path / "v-dead"
    code = "import sys\nfor i in range(50): print(f'line {i}')\nsys.exit(3)"
    seen: list[str] = []
    with pytest.raises(ModelBuildError) as err:
        embedded.build_artifact(
            target, "k", {}, lambda out: [sys.executable, "-c", code], seen.append
        )
    text = str(err.value)
    assert "exit 3" in text
    assert "line 49" in text
    assert "line 20" in text
    assert "line 19\n" not in text + "\n"
    assert len(seen) == 50  # every line streamed as it came
    assert not target.exists()
    failed_log = target.with_name("v-dead.failed.log")
    assert failed_log.read_text().count("\n") == 50
    assert str(failed_log) in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v-dead.failed.log", "v-dead.lock"]


def test_ensure_variant_builds_source_first_then_reuses(
    tmp_path: Path, fake: tuple[Path, Path]
) -> None:
    gguf, script = fake
    cache = tmp_path / "cache"
    int8 = catalog.variant("int8-w8a8")
    assert embedded.variant_path_if_built(int8, cache, gguf=gguf, build_script=script) is None

    lines: list[str] = []
    path = embedded.ensure_variant(
        int8, cache, lines.append, sys.executable, gguf=gguf, build_script=script
    )
    assert _calls(gguf) == ["convert", "oneshot"]
    bf16_path = embedded.variant_path_if_built(
        catalog.variant("bf16"), cache, gguf=gguf, build_script=script
    )
    assert bf16_path is not None
    assert bf16_path.parent == path.parent
    assert (path / "source.txt").read_text() == str(bf16_path)
    assert path.parent == cache / "models" / "smollm2"
    assert path.name.startswith("int8-w8a8-")
    assert len(path.name) == len("int8-w8a8-") + 16
    info = embedded.build_info(path)
    assert info["builder_versions"] == {"torch": "0-fake"}
    assert info["inputs"]["recipe"] == int8.recipe
    assert (path / "build.log").read_text().startswith("[build]")
    assert (path / embedded.SCRIPT_COPY).read_text() == FAKE_SCRIPT
    assert any("[build] done" in ln for ln in lines)

    again = embedded.ensure_variant(
        int8, cache, None, sys.executable, gguf=gguf, build_script=script
    )
    assert again == path
    assert _calls(gguf) == ["convert", "oneshot"]
    assert embedded.variant_path_if_built(int8, cache, gguf=gguf, build_script=script) == path


def test_failed_builder_venv_is_removed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LLMSERVE_BUILDER_PYTHON", raising=False)

    def broken(venv: Path, say: builder_env.Progress) -> None:
        (venv / "bin").mkdir(parents=True)
        raise ModelBuildError("pip failed")

    monkeypatch.setattr(builder_env, "_make_venv", broken)
    with pytest.raises(ModelBuildError):
        builder_env.ensure_builder_python(cache_dir=tmp_path)
    venv = builder_env.venv_dir(tmp_path)
    assert not venv.exists()
    assert builder_env.existing_builder_python(cache_dir=tmp_path) is None

    def works(venv: Path, say: builder_env.Progress) -> None:
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").write_text("")

    monkeypatch.setattr(builder_env, "_make_venv", works)
    python = builder_env.ensure_builder_python(cache_dir=tmp_path)
    assert python == str(venv / "bin" / "python")
    assert builder_env.existing_builder_python(cache_dir=tmp_path) == python
    assert json.loads((venv / ".llmserve-complete.json").read_text())["requirements"]
    monkeypatch.setenv("LLMSERVE_BUILDER_PYTHON", "/x/python")
    assert builder_env.existing_builder_python(cache_dir=tmp_path) == "/x/python"
