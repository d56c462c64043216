"""GPU slots: each GPU target's server gets GPUs no other server of this machine has.

Two servers on one GPU measure each other (memory, throughput, energy), so a GPU
target leases ``tp x pp`` GPUs just before its server starts and gives them back
when it stops. Leases live in one JSON file per machine, under an ``flock``, so
pytest-xdist workers and separate pytest sessions all see them; each records its
process (pid and start time, so a reused pid does not keep a dead lease alive),
the target and the indices. The leased indices reach the server as
``CUDA_VISIBLE_DEVICES`` in its target's env, where every launcher and the GPU
telemetry already look; a launcher that maps devices itself (a container's
``--gpus device=...``) reads them with ``leased_indices``.

Indices are NVML's, so the server is also given ``CUDA_DEVICE_ORDER=PCI_BUS_ID``:
CUDA then numbers the GPUs as NVML does.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psutil

from pytest_llmserve.errors import LLMServeError
from pytest_llmserve.measure.gpus import GpuInventory
from pytest_llmserve.profile.model import Target

VISIBLE = "CUDA_VISIBLE_DEVICES"
ORDER = ("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
DIR_ENV = "LLMSERVE_GPU_SLOTS_DIR"  # where the lease file lives (tests point it elsewhere)
POLL_S = 1.0
GPUS_FORM = "comma-separated GPU indices (as NVML numbers them), e.g. 0,2,3"


class GpuSlotError(LLMServeError):
    """The GPUs a target needs stayed taken: the message names who holds them."""


def parse_gpus(text: str) -> tuple[int, ...]:
    """``"0,2,3"`` → ``(0, 2, 3)``; raises ``ValueError`` naming the valid form."""
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() for p in parts) or len(set(map(int, parts))) != len(parts):
        raise ValueError(f"{text!r} is not valid (valid: {GPUS_FORM}, each once)")
    return tuple(int(p) for p in parts)


def leased_indices(target: Target) -> tuple[int, ...] | None:
    """The GPU indices ``target``'s env pins (None: none, or UUIDs/MIG names we cannot lease)."""
    value = target.env_dict().get(VISIBLE, "")
    try:
        return parse_gpus(value) if value.strip() else None
    except ValueError:
        return None


def device_env(target: Target) -> dict[str, str]:
    """The device variables of ``target``'s env, for a launcher to give its server."""
    env = target.env_dict()
    return {k: env[k] for k in (VISIBLE, ORDER[0]) if k in env}


@dataclass(frozen=True)
class Allowed:
    """The GPUs this session may lease, and how that limit reads in a skip reason."""

    indices: tuple[int, ...]
    limit: str  # e.g. "--llmserve-gpus allows 1 (0)", "this machine has 2"
    machine: int = 0  # how many GPUs NVML sees
    machine_limit: str = ""  # "this machine has 2", or why NVML sees none


def allowed_gpus(
    requested: Sequence[int] | None, inv: GpuInventory, env: Mapping[str, str] = os.environ
) -> Allowed:
    """``--llmserve-gpus``, else the session's own ``CUDA_VISIBLE_DEVICES`` (a CI runner's
    share of the machine), else every GPU NVML sees; never an index NVML does not see."""
    machine = inv.why_none or f"this machine has {inv.count}"
    source = "--llmserve-gpus"
    if requested is None:
        try:
            requested, source = parse_gpus(env[VISIBLE]), f"the session's {VISIBLE}"
        except (KeyError, ValueError):
            return Allowed(tuple(range(inv.count)), machine, inv.count, machine)
    indices = tuple(i for i in requested if i < inv.count)
    limit = f"{source} allows {len(requested)} ({','.join(map(str, requested))})"
    if len(indices) < len(requested):
        limit += f"; {machine}"
    return Allowed(indices, limit, inv.count, machine)


def shortfall(target: Target, allowed: Allowed) -> str | None:
    """Why this session can never give ``target`` its GPUs (None: it can, maybe after a wait)."""
    pinned = leased_indices(target)
    if pinned is not None:  # the profile chose them: only the machine limits it
        if max(pinned) < allowed.machine:
            return None
        return f"target {target.name} pins GPU(s) {pinned} by {VISIBLE}; {allowed.machine_limit}"
    needed = max(1, target.gpus)
    if needed <= len(allowed.indices):
        return None
    return f"target {target.name} needs {needed} GPU(s); {allowed.limit}"


class GpuSlots:
    """This session's leases on the machine's GPUs (one instance per pytest process)."""

    def __init__(
        self,
        allowed: Callable[[], Sequence[int]],
        directory: Path | None = None,
        poll_s: float = POLL_S,
    ) -> None:
        self._allowed = allowed  # asked at the first lease: NVML is only started when needed
        default = Path(tempfile.gettempdir(), "pytest-llmserve-gpu-slots")
        self.path = (directory or Path(os.environ.get(DIR_ENV) or default)) / "leases.json"
        self.poll_s = poll_s
        self.owner = uuid.uuid4().hex[:12]  # two sessions in one process release only their own
        self._held: set[str] = set()  # targets this instance holds leases for

    def take(self, target: Target, timeout_s: float | None = None) -> Target:
        """``target`` with its leased GPUs in its env (unchanged for a CPU target).

        Waits (polling) while other processes hold what it needs, up to ``timeout_s``
        (default: the target's ``startup_timeout_s``); raises ``GpuSlotError`` then, or
        at once when only this process holds them (it cannot release them while it waits).
        """
        pinned = leased_indices(target)
        if target.device != "gpu" or (pinned is None and VISIBLE in target.env_dict()):
            return target  # CPU, or devices named by UUID: the profile manages them
        pool = pinned if pinned is not None else tuple(self._allowed())
        needed = len(pool) if pinned is not None else max(1, target.gpus)
        began = time.monotonic()
        deadline = began + (target.startup_timeout_s if timeout_s is None else timeout_s)
        while True:
            with self._book() as leases:
                held = {i: lease for lease in leases for i in lease["indices"]}
                free = [i for i in pool if i not in held]
                if len(free) >= needed:
                    got = free[:needed]
                    me = {"pid": os.getpid(), "started": _started(os.getpid()), "owner": self.owner}
                    leases.append({**me, "target": target.name, "indices": got})
                    self._held.add(target.name)
                    break
            others = [i for i in pool if i in held and held[i]["pid"] != os.getpid()]
            if len(free) + len(others) < needed or time.monotonic() >= deadline:
                raise GpuSlotError(_busy(target, needed, pool, held, time.monotonic() - began))
            time.sleep(self.poll_s)
        if len(self._held) == 1:  # a backstop: a session that ends without stopping
            atexit.register(self.release_all)
        if pinned is not None:
            return target
        env = [*target.env, (VISIBLE, ",".join(map(str, got)))]
        if ORDER[0] not in target.env_dict():
            env.append(ORDER)
        return replace(target, env=tuple(env))

    def release(self, name: str) -> None:
        """Give back the GPUs this session leased for target ``name``."""
        self._drop(lambda lease: lease["target"] == name)

    def release_all(self) -> None:
        self._drop(lambda lease: True)
        atexit.unregister(self.release_all)

    def leases(self) -> list[dict[str, Any]]:
        """Every live lease on this machine, as stored (dead holders' are dropped)."""
        with self._book() as leases:
            return list(leases)

    def _drop(self, which: Callable[[dict[str, Any]], bool]) -> None:
        if not self._held:
            return  # nothing leased: a CPU-only session never touches the lease file
        with self._book() as leases:
            leases[:] = [x for x in leases if x["owner"] != self.owner or not which(x)]
            self._held = {x["target"] for x in leases if x["owner"] == self.owner}

    @contextlib.contextmanager
    def _book(self) -> Iterator[list[dict[str, Any]]]:
        """The live leases, under the machine-wide lock; what the block leaves is written."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+") as f:
            for path, mode in ((self.path.parent, 0o1777), (f.fileno(), 0o666)):
                with contextlib.suppress(PermissionError):  # machine-wide: any user may lease
                    os.chmod(path, mode)
            fcntl.flock(f, fcntl.LOCK_EX)  # released by the kernel if we die holding it
            f.seek(0)
            try:
                stored = json.loads(f.read() or "[]")
            except ValueError:  # cut short: its writer was killed mid-write
                stored = []
            leases = [x for x in stored if _alive(x)]
            yield leases
            f.seek(0)
            f.truncate()
            json.dump(leases, f)


def _busy(target: Target, needed: int, pool: Sequence[int], held: dict[int, Any], s: float) -> str:
    """Who holds the GPUs ``target`` waited for, for its error."""
    ids, head = ",".join(map(str, pool)) or "none", f"target {target.name} needs {needed} GPU(s)"
    if needed > len(pool):
        return f"{head}; only {len(pool)} may be leased ({ids})"
    who = {i: f"GPU {i}: target {held[i]['target']} (pid {held[i]['pid']}" for i in held}
    mine = ", this session, which cannot free it while it waits"
    own = {i: mine if held[i]["pid"] == os.getpid() else "" for i in held}
    holders = "; ".join(f"{who[i]}{own[i]})" for i in pool if i in held)
    return f"{head} of {ids}; after {s:.1f} s, held: {holders}"


def _started(pid: int) -> float | None:
    """When process ``pid`` started; None when it is gone (a zombie is gone: it holds no GPU)."""
    try:
        proc = psutil.Process(pid)
        return None if proc.status() == psutil.STATUS_ZOMBIE else proc.create_time()
    except psutil.Error:
        return None


def _alive(lease: dict[str, Any]) -> bool:
    """Whether the lease's process still runs (a pid reused since is another process)."""
    started = _started(int(lease["pid"]))
    return started is not None and started == lease.get("started", started)
