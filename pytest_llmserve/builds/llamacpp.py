"""llama.cpp's ``llama-server`` and ``llama-quantize``, built from the source vendored in
PyPI's ``llama-cpp-python`` sdist, once per source and flags, into the cache.

No model hub and no release downloads: the sdist is the one pinned, hash-checked
source that pip can fetch everywhere this runs. The build is CPU-only unless
``nvcc`` is found and a GPU is present (or ``$LLMSERVE_LLAMACPP_CUDA`` asks), keyed by the source's
hash and every flag, so a CPU and a CUDA build never overwrite each other. Two
sessions asking at once build once (``file_lock``), and a build cut short never
looks finished (``atomic_dir``).

A ``llama-server`` the user already has wins: ``$LLMSERVE_LLAMA_SERVER``, then one on
PATH. The embedded model's GGUF variants always use the pinned build's
``llama-quantize``, because their cache key names that source.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

from pytest_llmserve.cpu import cpu_flags
from pytest_llmserve.errors import ModelBuildError
from pytest_llmserve.models import builder_env
from pytest_llmserve.models.artifact import (
    MARKER,
    Progress,
    build_artifact,
    content_key,
    is_complete,
    quiet,
)
from pytest_llmserve.models.cache import atomic_dir, cache_root, file_lock

SDIST = "llama-cpp-python"
SDIST_VERSION = "0.3.36"
LLAMACPP_COMMIT = "0c1e570"  # what that sdist vendors
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
_VENDORED = "vendor/llama.cpp/"
PROGRAMS = ("llama-server", "llama-quantize")

ENV_SERVER = "LLMSERVE_LLAMA_SERVER"  # path of a llama-server to use instead of building
ENV_CUDA = "LLMSERVE_LLAMACPP_CUDA"  # "1": build with CUDA, "0": without, unset: if nvcc
ENV_CUDA_ARCH = "LLMSERVE_LLAMACPP_CUDA_ARCH"  # CMAKE_CUDA_ARCHITECTURES (default: native)

# Release build of the two programs only. The UI flags keep the build offline (it
# would fetch its web UI); tests, examples and tools stay unbuilt (minutes on 2 cores).
_BASE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    # The sdist has no git history, so the build would report itself "b0-unknown"; the
    # server's build_info names the commit instead (the golden folder's name).
    f"-DLLAMA_BUILD_COMMIT={LLAMACPP_COMMIT}",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_BUILD_UI=OFF",
)
_STEP = re.compile(r"^\[(\d+)/(\d+)\]")
_STEP_EVERY = 25


def wants_cuda() -> bool:
    asked = os.environ.get(ENV_CUDA, "").strip().lower()
    if asked in ("1", "0"):
        return asked == "1"
    if asked:
        raise ModelBuildError(f"${ENV_CUDA}={asked!r} is not valid (valid: 1, 0, or unset)")
    # nvcc alone is not enough: CPU machines may carry a CUDA toolkit (this one does),
    # and a CUDA build there compiles for minutes longer to use no GPU.
    return shutil.which("nvcc") is not None and Path("/dev/nvidia0").exists()


def build_flags(cuda: bool) -> tuple[str, ...]:
    if not cuda:
        return (*_BASE_FLAGS, "-DGGML_CUDA=OFF")
    arch = os.environ.get(ENV_CUDA_ARCH, "native")
    return (*_BASE_FLAGS, "-DGGML_CUDA=ON", f"-DCMAKE_CUDA_ARCHITECTURES={arch}")


def tool(name: str) -> str:
    """A build tool from this Python's environment (the ``llamacpp`` extra's cmake and
    ninja), else from PATH."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise ModelBuildError(
            f"building llama.cpp needs {name}: pip install 'pytest-llmserve[llamacpp]' "
            f"(or set ${ENV_SERVER} to a llama-server you have)"
        )
    return found


def source_tree(cache_dir: str | Path | None = None, progress: Progress | None = None) -> Path:
    """The vendored llama.cpp source, fetched and unpacked once (hash-checked)."""
    say = progress or quiet
    inputs = {"sdist": SDIST, "version": SDIST_VERSION, "sha256": SDIST_SHA256}
    key = content_key(inputs)
    target = cache_root(cache_dir) / "llama.cpp" / f"source-{SDIST_VERSION}-{key[:12]}"
    with file_lock(target.with_name(target.name + ".lock"), on_wait=say):
        if is_complete(target, key):
            return target / "llama.cpp"
        with atomic_dir(target) as tmp:
            say(f"fetching the {SDIST}=={SDIST_VERSION} sdist for llama.cpp's source")
            # pip prepares an sdist's metadata in an isolated build environment: with
            # ``--no-binary :all:`` it would build that environment's tools (cmake among
            # them) from source too, 20+ minutes on 2 cores; binaries there take 8 s.
            pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", SDIST,
                   "--prefer-binary", "--disable-pip-version-check", "--progress-bar", "off",
                   "-d", str(tmp), *builder_env.pip_args(),
                   f"{SDIST}=={SDIST_VERSION}"]  # fmt: skip
            out = subprocess.run(pip, capture_output=True, text=True, check=False)
            archives = sorted(tmp.glob("*.tar.gz"))
            if out.returncode != 0 or not archives:
                raise ModelBuildError(
                    f"pip could not fetch the {SDIST}=={SDIST_VERSION} sdist (llama.cpp's "
                    f"source); set ${ENV_SERVER} to a llama-server you have\n" + out.stderr[-2000:]
                )
            digest = hashlib.sha256(archives[0].read_bytes()).hexdigest()
            if digest != SDIST_SHA256:
                raise ModelBuildError(
                    f"{archives[0].name}: sha256 {digest}, expected {SDIST_SHA256}"
                )
            _unpack_vendored(archives[0], tmp / "llama.cpp")
            archives[0].unlink()
            (tmp / MARKER).write_text(json.dumps({"key": key, "inputs": inputs}) + "\n")
    return target / "llama.cpp"


def _unpack_vendored(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            _top, _, rest = member.name.partition("/")
            if not rest.startswith(_VENDORED) or rest == _VENDORED:
                continue
            member.name = rest[len(_VENDORED) :]
            tar.extract(member, dest, filter="data")


def build_dir(cuda: bool, cache_dir: str | Path | None = None) -> tuple[Path, str, dict[str, Any]]:
    # The CPU code is compiled for this CPU (GGML_NATIVE): its flags are in the key, so
    # a cache shared with another kind of CPU never hands over an illegal instruction.
    flags = sorted(cpu_flags() or ())
    inputs = {
        "sha256": SDIST_SHA256,
        "programs": list(PROGRAMS),
        "flags": list(build_flags(cuda)),
        "cpu_flags": hashlib.sha256(" ".join(flags).encode()).hexdigest()[:16],
    }
    key = content_key(inputs)
    kind = "cuda" if cuda else "cpu"
    return cache_root(cache_dir) / "llama.cpp" / f"build-{kind}-{key[:12]}", key, inputs


def binaries(
    cache_dir: str | Path | None = None, progress: Progress | None = None, cuda: bool | None = None
) -> Path:
    """The folder holding the pinned build's ``PROGRAMS``, building them if needed."""
    say = progress or quiet
    cuda = wants_cuda() if cuda is None else cuda
    target, key, inputs = build_dir(cuda, cache_dir)
    if is_complete(target, key):
        return target / "bin"
    src = source_tree(cache_dir, say)
    cmake, ninja = tool("cmake"), tool("ninja")
    jobs = str(len(os.sched_getaffinity(0)))

    def command(out: Path) -> list[str]:
        b = out / "build"
        script = " && ".join([
            shlex.join([cmake, "-S", str(src), "-B", str(b), "-G", "Ninja",
                        f"-DCMAKE_MAKE_PROGRAM={ninja}", *build_flags(cuda)]),
            shlex.join([ninja, "-C", str(b), "-j", jobs, *PROGRAMS]),
            shlex.join(["mkdir", "-p", str(out / "bin")]),
            shlex.join(["cp", *(str(b / "bin" / p) for p in PROGRAMS), str(out / "bin")]),
            shlex.join(["rm", "-rf", str(b)]),
        ])  # fmt: skip
        return ["sh", "-c", script]

    say(f"building llama.cpp ({'CUDA' if cuda else 'CPU'}) from {SDIST} {SDIST_VERSION} "
        f"-> {target} (first use; several minutes)")  # fmt: skip
    return build_artifact(target, key, inputs, command, _steps_only(say)) / "bin"


def _steps_only(say: Progress) -> Progress:
    """Ninja prints a line per compiled file: pass on every ``_STEP_EVERY``-th and the
    last; before the first, what configure says; after it, only what fails. The
    compiler's warnings (twelve thousand lines where AVX-512 is on) stay in the build
    log, which a failed build quotes."""
    compiling = False

    def on_line(line: str) -> None:
        nonlocal compiling
        m = _STEP.match(line)
        if m is not None:
            compiling = True
            if int(m.group(1)) % _STEP_EVERY == 0 or m.group(1) == m.group(2):
                say(f"llama.cpp build {m.group(0)}")
        elif not compiling or line.startswith("FAILED:") or "error:" in line:
            say(line)

    return on_line


def server_description() -> str:
    """Which ``llama-server`` ``server_binary`` gives, without building anything."""
    if given := os.environ.get(ENV_SERVER):
        return f"${ENV_SERVER} ({given})"
    if found := shutil.which("llama-server"):
        return f"on PATH ({found})"
    source = f"{LLAMACPP_COMMIT} from {SDIST} {SDIST_VERSION}"
    target, key, _ = build_dir(wants_cuda())
    return f"{source}, built" if is_complete(target, key) else f"{source}, built on first use"


def server_binary(progress: Progress | None = None) -> str:
    """The ``llama-server`` to start: ``$LLMSERVE_LLAMA_SERVER``, one on PATH, or ours."""
    given = os.environ.get(ENV_SERVER)
    if given:
        if not os.access(given, os.X_OK):
            raise ModelBuildError(f"${ENV_SERVER}={given!r} is not an executable file")
        return given
    return shutil.which("llama-server") or str(binaries(progress=progress) / "llama-server")
