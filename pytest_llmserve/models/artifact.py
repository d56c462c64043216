"""Build once per content key, whoever asks, and publish the result whole.

Every built thing in the cache (a model variant, a llama.cpp build) is a folder
named after the hash of its inputs, with a marker written last that names that
key: same inputs, same folder, no rebuild; a folder without its marker is not
finished, whatever else is in it.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pytest_llmserve.errors import ModelBuildError
from pytest_llmserve.models import builder_env
from pytest_llmserve.models.cache import atomic_dir, file_lock

MARKER = "llmserve-build.json"
BUILD_LOG = "build.log"
TAIL_LINES = 30

Progress = Callable[[str], None]

# Offline: no model hub here, and a build must never depend on one anyway.
_BUILD_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "PYTHONUNBUFFERED": "1",
    "TOKENIZERS_PARALLELISM": "false",
    # tqdm redraws become one line each through a pipe; one every 10 s is plenty.
    "TQDM_MININTERVAL": "10",
}
_VERSIONS_RE = re.compile(r"^\[build\].*? versions (\{.*\})\s*$")


def quiet(_line: str) -> None:
    """A progress callback that says nothing."""


def content_key(inputs: dict[str, Any]) -> str:
    """The cache key of a build: the hash of everything that shapes its bytes."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def is_complete(target: Path, key: str) -> bool:
    """Complete means: the marker, written last, is there and names this key."""
    try:
        return bool(json.loads((target / MARKER).read_text())["key"] == key)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def build_artifact(
    target: Path,
    key: str,
    inputs: dict[str, Any],
    command: Callable[[Path], Sequence[str]],
    progress: Progress | None = None,
    env: dict[str, str] | None = None,
) -> Path:
    """Run ``command(tmp_dir)`` once per key, whoever asks, and publish its output whole.

    Under the target's lock: if a complete build for ``key`` is there (maybe made
    by the process we waited for) it is returned; otherwise the command fills a
    temp dir, the marker goes in last, and the dir is renamed into place. The
    output, merged, streams to ``progress`` and to ``build.log`` in the dir; a failed
    build keeps its log beside the target as ``<name>.failed.log``.
    """
    say = progress or quiet
    with file_lock(target.with_name(target.name + ".lock"), on_wait=say):
        if is_complete(target, key):
            say(f"already built: {target}")
            return target
        started = time.monotonic()
        with atomic_dir(target) as tmp:
            cmd = list(command(tmp))
            versions: dict[str, Any] = {}
            with (tmp / BUILD_LOG).open("w", encoding="utf-8") as log:

                def on_line(line: str) -> None:
                    log.write(line + "\n")
                    log.flush()
                    if line.strip():  # tqdm's carriage returns leave empty lines
                        say(line)
                    found = _VERSIONS_RE.match(line)
                    if found:
                        versions.update(json.loads(found.group(1)))

                rc, tail = builder_env.run_streaming(
                    cmd,
                    on_line,
                    builder_env.clean_env({**_BUILD_ENV, **(env or {})}),
                    tail=TAIL_LINES,
                )
            if rc != 0:
                kept = target.with_name(target.name + ".failed.log")
                shutil.copyfile(tmp / BUILD_LOG, kept)
                raise ModelBuildError(
                    f"building {target.name} failed (exit {rc}); full log: {kept}\n"
                    "  last output lines:\n" + "\n".join("    " + ln for ln in tail)
                )
            seconds = round(time.monotonic() - started, 1)
            marker = {
                "key": key,
                "inputs": inputs,
                "build_seconds": seconds,
                "builder_versions": versions,
                "builder_python": cmd[0],
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "host_python": sys.version.split()[0],
            }
            (tmp / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
        target.with_name(target.name + ".failed.log").unlink(missing_ok=True)
        say(f"built {target.name} in {seconds}s")
    return target
