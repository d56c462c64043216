"""A llama.cpp server image made here, shaped like the official one, for the docker tests.

No registry answers here, so the image is imported from a rootfs tarball: this
machine's ``llama-server`` (the project's build, as the process launcher starts it)
at ``/app/llama-server`` with the shared libraries ``ldd`` names, ``/bin/sh`` (the
API key wrapper needs it) and an empty ``/tmp``. Its ENTRYPOINT is
``/app/llama-server``, as in ``ghcr.io/ggml-org/llama.cpp:server``, so the
framework's container argv is the same one it gives that image. The tag is the
binary's content hash: an engine that has it already makes nothing.
"""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

REPOSITORY = "llmserve-test/llama-server"
ENTRYPOINT = "/app/llama-server"
_LIB = re.compile(r"(/\S+\.so[.\d]*)")


def ensure_image(engine: Any, server_binary: Path) -> tuple[str, float]:
    """The image's name, and the seconds it took to make (0.0 when the engine had it)."""
    tag = hashlib.sha256(server_binary.read_bytes()).hexdigest()[:12]
    name = f"{REPOSITORY}:{tag}"
    if engine.images.list(name=name):
        return name, 0.0
    began = time.monotonic()
    engine.api.import_image_from_data(
        _rootfs(server_binary), repository=REPOSITORY, tag=tag,
        changes=[f'ENTRYPOINT ["{ENTRYPOINT}"]', "WORKDIR /app"],
    )  # fmt: skip
    return name, time.monotonic() - began


def _rootfs(server_binary: Path) -> bytes:
    files: dict[str, Path] = {ENTRYPOINT: server_binary, "/bin/sh": Path("/bin/sh").resolve()}
    for program in (server_binary, Path("/bin/sh")):
        for lib in _libraries(program):
            files[str(lib)] = lib.resolve()  # a symlink's target, under the link's name
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for folder in ("tmp", "app", "bin"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if folder == "tmp" else 0o755
            tar.addfile(info)
        for inside, source in sorted(files.items()):
            tar.add(source, arcname=inside.lstrip("/"), recursive=False)
    return out.getvalue()


def _libraries(program: Path) -> list[Path]:
    out = subprocess.run(["ldd", str(program)], capture_output=True, text=True, check=True)
    return [Path(m.group(1)) for m in map(_LIB.search, out.stdout.splitlines()) if m]
