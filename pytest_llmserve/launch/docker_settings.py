"""The docker launcher's settings: a target's ``docker`` table, parsed and checked early.

Everything a platform team passes to ``docker run`` for a serving image has a key
here; anything else goes through ``run_options`` to the SDK's ``containers.run``,
except the keys the launcher sets itself (they would break its lifecycle). A bad
value fails when the profile is read, naming the key and what it accepts.

A target keeps its ``docker`` table while it launches as a process, so switching
between the two is one line (``launcher = "docker"``); the table is checked either way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_llmserve.errors import ProfileError

NETWORKS = ("host", "bridge")
PULLS = ("missing", "never", "always")
IPC_MODES = ("host", "private", "shareable", "none")
# ``containers.run`` arguments the launcher owns: set from the target and the session.
OWNED = frozenset(
    {
        "image",
        "command",
        "entrypoint",
        "environment",
        "labels",
        "name",
        "detach",
        "network_mode",
        "network",
        "ports",
        "volumes",
        "mounts",
        "device_requests",
        "remove",
        "auto_remove",
        "stdin_open",
        "tty",
        "user",
        "shm_size",
        "ipc_mode",
        "ulimits",
    }
)
_SIZE = re.compile(r"^\d+[bkmg]?$", re.IGNORECASE)
_MODES = ("ro", "rw")


@dataclass(frozen=True)
class Ulimit:
    name: str
    soft: int
    hard: int


@dataclass(frozen=True)
class Volume:
    host: str
    container: str
    mode: str = "rw"


@dataclass(frozen=True)
class DockerSettings:
    image: str
    # Replaces the image's ENTRYPOINT; None: the image's own (official images start
    # their server there, and the framework's container argv follows it).
    entrypoint: tuple[str, ...] | None = None
    network: str = "host"
    container_port: int | None = None  # bridge only; None: the same number as the host's
    # None: none, unless the target's device is "gpu" (then its leased GPUs, else all);
    # "all", a count, or device ids (indices or UUIDs).
    gpus: str | int | tuple[str, ...] | None = None
    shm_size: str | None = None
    ipc_mode: str | None = None
    ulimits: tuple[Ulimit, ...] = ()
    volumes: tuple[Volume, ...] = ()
    user: str | None = None
    pull: str = "missing"
    stop_timeout_s: float = 20.0
    # Anything else ``containers.run`` takes, as JSON: settings stay frozen and hashable.
    run_options: str = "{}"

    def run_kwargs(self) -> dict[str, Any]:
        return dict(json.loads(self.run_options))


_KEYS = frozenset(DockerSettings.__dataclass_fields__)


def parse(table: Any, where: str) -> DockerSettings:
    """``table`` (the target's ``docker`` value) as settings; ``ProfileError`` when invalid."""
    where = f"{where}: docker"
    if not isinstance(table, Mapping):
        raise ProfileError(f'{where}: expected a table such as {{ image = "name:tag" }}')
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ProfileError(
            f"{where}: unknown key {unknown[0]!r} (valid: {', '.join(sorted(_KEYS))})"
        )
    image = table.get("image")
    if not isinstance(image, str) or not image.strip():
        raise ProfileError(
            f'{where}: image: required, the image\'s name (e.g. "vllm/vllm-openai:v0.31.0")'
        )
    network = _choice(table, "network", NETWORKS, "host", where)
    port = table.get("container_port")
    if port is not None:
        if network != "bridge":
            raise ProfileError(f'{where}: container_port: only with network = "bridge"')
        if not _is_int(port) or not 1 <= port <= 65535:
            raise ProfileError(f"{where}: container_port: expected a port number, got {port!r}")
    ipc = table.get("ipc_mode")
    if ipc is not None and (
        not isinstance(ipc, str) or (ipc not in IPC_MODES and not ipc.startswith("container:"))
    ):
        raise ProfileError(
            f"{where}: ipc_mode: expected one of {', '.join(IPC_MODES)} "
            f"or container:<name>, got {ipc!r}"
        )
    timeout = table.get("stop_timeout_s", 20.0)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
        raise ProfileError(f"{where}: stop_timeout_s: expected seconds > 0, got {timeout!r}")
    user = table.get("user")
    if user is not None and not isinstance(user, str):
        raise ProfileError(f'{where}: user: expected a string ("uid:gid" or a name)')
    return DockerSettings(
        image=image.strip(),
        entrypoint=_entrypoint(table.get("entrypoint"), where),
        network=network,
        container_port=port,
        gpus=_gpus(table.get("gpus"), where),
        shm_size=_size(table.get("shm_size"), where),
        ipc_mode=ipc,
        ulimits=_ulimits(table.get("ulimits", {}), where),
        volumes=_volumes(table.get("volumes", []), where),
        user=user,
        pull=_choice(table, "pull", PULLS, "missing", where),
        stop_timeout_s=float(timeout),
        run_options=_run_options(table.get("run_options", {}), where),
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _choice(
    table: Mapping[str, Any], key: str, valid: tuple[str, ...], default: str, where: str
) -> str:
    value = table.get(key, default)
    if value not in valid:
        raise ProfileError(f"{where}: {key}: expected one of {', '.join(valid)}, got {value!r}")
    return str(value)


def _entrypoint(value: Any, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ProfileError(f"{where}: entrypoint: expected a non-empty array of strings")
    return tuple(value)


def _gpus(value: Any, where: str) -> str | int | tuple[str, ...] | None:
    if value is None or value == "all":
        return value  # type: ignore[no-any-return]
    if _is_int(value) and value >= 1:
        return int(value)
    if isinstance(value, list) and value and all(_is_int(v) or isinstance(v, str) for v in value):
        return tuple(str(v) for v in value)
    raise ProfileError(
        f'{where}: gpus: expected "all", a count >= 1, or an array of device '
        f"ids (indices or UUIDs), got {value!r}"
    )


def _size(value: Any, where: str) -> str | None:
    if value is None:
        return None
    text = str(value) if _is_int(value) else value
    if not isinstance(text, str) or not _SIZE.match(text):
        raise ProfileError(
            f'{where}: shm_size: expected bytes or a size such as "1g", "512m", got {value!r}'
        )
    return text.lower()


def _ulimits(value: Any, where: str) -> tuple[Ulimit, ...]:
    if not isinstance(value, Mapping):
        raise ProfileError(f"{where}: ulimits: expected a table such as {{ memlock = -1 }}")
    out: list[Ulimit] = []
    for name, limit in value.items():
        pair = limit if isinstance(limit, list) else [limit, limit]
        if len(pair) != 2 or not all(_is_int(v) for v in pair):
            raise ProfileError(
                f"{where}: ulimits.{name}: expected a number or [soft, hard] "
                f"(-1: unlimited), got {limit!r}"
            )
        out.append(Ulimit(str(name), pair[0], pair[1]))
    return tuple(out)


def _volumes(value: Any, where: str) -> tuple[Volume, ...]:
    if not isinstance(value, list):
        raise ProfileError(f'{where}: volumes: expected an array of "host:container[:ro]"')
    out: list[Volume] = []
    for spec in value:
        parts = spec.split(":") if isinstance(spec, str) else []
        mode = parts.pop() if len(parts) == 3 else "rw"
        if len(parts) != 2 or not parts[0] or not parts[1].startswith("/") or mode not in _MODES:
            raise ProfileError(
                f'{where}: volumes: {spec!r}: expected "host:container" or '
                '"host:container:ro" (an absolute path in the container)'
            )
        out.append(Volume(parts[0], parts[1], mode))
    return tuple(out)


def _run_options(value: Any, where: str) -> str:
    if not isinstance(value, Mapping):
        raise ProfileError(f"{where}: run_options: expected a table of containers.run arguments")
    owned = sorted(OWNED & set(value))
    if owned:
        raise ProfileError(
            f"{where}: run_options: {owned[0]!r} is set by the launcher itself "
            "(use the docker table's own keys, or the target's env and args)"
        )
    try:
        return json.dumps(dict(value), sort_keys=True)
    except TypeError as exc:
        raise ProfileError(f"{where}: run_options: {exc}") from None
