"""What the docker launcher asks of the engine, through the docker SDK, in one place.

The engine is the one ``DOCKER_HOST`` names (else the local socket), as for the
``docker`` command. Without the SDK, or with no engine answering, a start fails
naming what is missing; the sweep of leftovers then has nothing to do and says nothing.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import IO, Any

from pytest_llmserve.errors import ServerStartError
from pytest_llmserve.launch import gpu_slots, labels
from pytest_llmserve.launch.docker_settings import DockerSettings, Ulimit
from pytest_llmserve.profile.model import Target

# Labels on every container we run: the owning pytest (pid:start time), the host it
# runs on (a pid means nothing on another host sharing the engine), the server, the target.
OWNER = "org.pytest-llmserve.owner"
HOST = "org.pytest-llmserve.host"
SERVER = "org.pytest-llmserve.server"
TARGET = "org.pytest-llmserve.target"
API_TIMEOUT_S = 120  # a vfs engine copies a whole image to create a container
SWEEP_TIMEOUT_S = 5


def client(target_name: str, timeout: float = API_TIMEOUT_S) -> Any:
    """An SDK client of the engine, checked to answer; ``ServerStartError`` otherwise."""
    try:
        import docker
    except ImportError:
        raise ServerStartError(
            f"{target_name}: launcher 'docker' needs the docker SDK: "
            "pip install 'pytest-llmserve[docker]'"
        ) from None
    where = os.environ.get("DOCKER_HOST") or "the default socket (DOCKER_HOST is unset)"
    try:
        engine = docker.from_env(timeout=int(timeout))
        engine.ping()
    except Exception as exc:
        raise ServerStartError(
            f"{target_name}: no docker engine answers at {where}: {type(exc).__name__}: {exc}"
        ) from None
    return engine


def labels_for(server_id: str, target_name: str) -> dict[str, str]:
    return {OWNER: labels.owner_label(), HOST: socket.gethostname(), SERVER: server_id,
            TARGET: target_name}  # fmt: skip


def ensure_image(engine: Any, settings: DockerSettings, log: IO[bytes], target_name: str
                 ) -> tuple[str, ...]:  # fmt: skip
    """The image's ENTRYPOINT, pulling the image first where settings and a registry allow.

    The pull's progress goes to the server's log; a missing image that cannot be pulled
    is an error naming it (no registry here: such images are built locally).
    """
    import docker.errors
    from docker.utils import parse_repository_tag

    image = settings.image
    found = None
    if settings.pull != "always":
        with contextlib.suppress(docker.errors.ImageNotFound):
            found = engine.images.get(image)
    if found is None:
        if settings.pull == "never":
            raise ServerStartError(
                f'{target_name}: image {image!r} is not on the engine, and pull = "never" '
                "(build or load it first: docker build / docker load / docker import)"
            )
        log.write(f"# llmserve: pulling {image}\n".encode())
        repository, tag = parse_repository_tag(image)
        try:
            for event in engine.api.pull(repository, tag=tag or "latest", stream=True,
                                         decode=True):  # fmt: skip
                line = " ".join(str(event.get(k, "")) for k in ("id", "status", "progress"))
                log.write(f"# llmserve: pull: {line.strip()}\n".encode())
                if "error" in event:
                    raise docker.errors.APIError(str(event["error"]))
            found = engine.images.get(image)
        except Exception as exc:
            raise ServerStartError(
                f"{target_name}: image {image!r} is not on the engine and could not be "
                f"pulled: {type(exc).__name__}: {exc}"
            ) from None
        finally:
            log.flush()
    config = found.attrs.get("Config") or {}
    return tuple(config.get("Entrypoint") or ())


def device_requests(gpus: str | int | tuple[str, ...] | None, target: Target) -> list[Any]:
    """GPUs as the engine's device requests: the profile's ``gpus``, else, for a GPU target,
    the GPUs the session leased it (``CUDA_VISIBLE_DEVICES`` in its env), else all."""
    from docker.types import DeviceRequest

    if gpus is None and target.device == "gpu":
        leased = gpu_slots.device_env(target).get(gpu_slots.VISIBLE)
        gpus = tuple(leased.split(",")) if leased else "all"
    if gpus is None:
        return []
    if gpus == "all":
        return [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    if isinstance(gpus, int):
        return [DeviceRequest(count=gpus, capabilities=[["gpu"]])]
    return [DeviceRequest(device_ids=list(gpus), capabilities=[["gpu"]])]


def ulimits(limits: tuple[Ulimit, ...]) -> list[Any]:
    from docker.types import Ulimit as SdkUlimit

    return [SdkUlimit(name=u.name, soft=u.soft, hard=u.hard) for u in limits]


def exit_reason(container: Any) -> str | None:
    """None while the container runs, else why it does not."""
    import docker.errors

    try:
        container.reload()
    except docker.errors.NotFound:
        return "was removed"
    except Exception as exc:
        return f"could not be asked about through the engine ({type(exc).__name__}: {exc})"
    state = container.attrs.get("State") or {}
    status = state.get("Status")
    if status in ("created", "running", "restarting"):
        return None
    if state.get("OOMKilled"):
        return "was killed for memory (OOMKilled)"
    return f"exited with code {state.get('ExitCode')} (container {status})"


def host_pids(container: Any) -> list[int]:
    """The container's processes, as this machine numbers them; empty when not running."""
    try:
        top = container.top(ps_args="-o pid")
        return [int(row[0]) for row in top.get("Processes") or []]
    except Exception:
        return []


def memory_bytes(container: Any) -> int | None:
    """What ``docker stats`` shows: the cgroup's usage less its inactive file cache."""
    try:
        stats = container.stats(stream=False).get("memory_stats") or {}
    except Exception:
        return None
    usage = stats.get("usage")
    if usage is None:
        return None
    detail = stats.get("stats") or {}
    cache = detail.get("inactive_file", detail.get("total_inactive_file", 0))
    return int(usage) - int(cache)


def remove(container: Any, grace_s: float) -> None:
    """Stop (SIGTERM, then SIGKILL after ``grace_s``) and remove; gone already is fine."""
    import docker.errors

    with contextlib.suppress(docker.errors.NotFound):
        container.stop(timeout=int(grace_s))
    with contextlib.suppress(docker.errors.NotFound):
        container.remove(force=True)


def sweep_orphans() -> list[str]:
    """Remove this host's containers whose owning session is gone; one line per container.

    Asked at every session start, so it stays silent and quick where there is no SDK
    or no engine: nothing of ours can be running there.
    """
    try:
        engine = client("sweep", timeout=SWEEP_TIMEOUT_S)
    except ServerStartError:
        return []
    swept: list[str] = []
    here = socket.gethostname()
    try:
        for c in engine.containers.list(all=True, filters={"label": OWNER}):
            owner = c.labels.get(OWNER, "")
            if c.labels.get(HOST) != here or labels.owner_alive(owner):
                continue
            remove(c, grace_s=5)
            swept.append(f"container {c.name} ({c.labels.get(TARGET)}) of gone session {owner}")
    except Exception as exc:
        swept.append(f"docker sweep stopped: {type(exc).__name__}: {exc}")
    finally:
        engine.close()
    return swept
