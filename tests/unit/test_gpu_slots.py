"""GPU slots without a GPU: the lease maths, the machine-wide lease file shared by
processes, dead holders reclaimed, waiting then failing, a profile's own
``CUDA_VISIBLE_DEVICES`` respected, and ``--llmserve-gpus`` parsed at configure time."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

from pytest_llmserve.launch import gpu_slots
from pytest_llmserve.launch.gpu_slots import Allowed, GpuSlotError, GpuSlots, allowed_gpus
from pytest_llmserve.measure import gpus
from pytest_llmserve.measure.gpus import GpuInventory
from pytest_llmserve.profile.model import Target

TWO = GpuInventory(("H200", "H200"))
FOUR = GpuInventory(("H200",) * 4)


def gpu_target(name: str, tp: int = 1, env: dict[str, str] | None = None) -> Target:
    return Target(name, "vllm", "m", "bf16", tp=tp, device="gpu",
                  env=tuple((env or {}).items()), startup_timeout_s=5)  # fmt: skip


def slots(folder: Path, allowed: tuple[int, ...] = (0, 1)) -> GpuSlots:
    return GpuSlots(lambda: allowed, folder, poll_s=0.02)


def devices(target: Target) -> str | None:
    return target.env_dict().get("CUDA_VISIBLE_DEVICES")


# -- parsing and the allowed set --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "indices"), [("0", (0,)), ("0,2,3", (0, 2, 3)), (" 3, 1", (3, 1))]
)
def test_a_gpu_list_parses_to_indices(text: str, indices: tuple[int, ...]) -> None:
    assert gpu_slots.parse_gpus(text) == indices


@pytest.mark.parametrize("text", ["0,x", "-1", "", "0,,1", "1,1", "GPU-5f2c"])
def test_a_bad_gpu_list_names_the_valid_form(text: str) -> None:
    with pytest.raises(ValueError, match=r"valid: comma-separated GPU indices .* e\.g\. 0,2,3"):
        gpu_slots.parse_gpus(text)


def test_by_default_every_gpu_nvml_sees_is_allowed() -> None:
    assert allowed_gpus(None, FOUR, env={}) == Allowed(
        (0, 1, 2, 3), "this machine has 4", 4, "this machine has 4"
    )


def test_the_option_restricts_and_an_index_the_machine_lacks_is_dropped() -> None:
    assert allowed_gpus((2, 0), FOUR, env={}).indices == (2, 0)
    few = allowed_gpus((0, 5), TWO, env={"CUDA_VISIBLE_DEVICES": "1"})  # the option wins
    assert few.indices == (0,)
    assert few.limit == "--llmserve-gpus allows 2 (0,5); this machine has 2"


def test_the_sessions_own_cuda_visible_devices_is_its_share_of_the_machine() -> None:
    share = allowed_gpus(None, FOUR, env={"CUDA_VISIBLE_DEVICES": "2,3"})
    assert share.indices == (2, 3)
    assert share.limit == "the session's CUDA_VISIBLE_DEVICES allows 2 (2,3)"
    uuids = allowed_gpus(None, FOUR, env={"CUDA_VISIBLE_DEVICES": "GPU-5f2c"})
    assert uuids.indices == (0, 1, 2, 3)  # not indices: NVML's view stands


def test_without_nvml_nothing_is_allowed_and_the_reason_says_why() -> None:
    none = GpuInventory((), why_none="nvidia-ml-py is not installed")
    why = "nvidia-ml-py is not installed"
    assert allowed_gpus(None, none, env={}) == Allowed((), why, 0, why)
    assert allowed_gpus((0,), none, env={}).limit.endswith("; nvidia-ml-py is not installed")


def test_a_target_needing_more_than_allowed_is_skipped_naming_both_numbers() -> None:
    one = allowed_gpus((0,), TWO, env={})
    assert gpu_slots.shortfall(gpu_target("x", tp=2), one) == (
        "target x needs 2 GPU(s); --llmserve-gpus allows 1 (0)"
    )
    assert gpu_slots.shortfall(gpu_target("x", tp=2), allowed_gpus(None, TWO, env={})) is None
    machine = allowed_gpus(None, GpuInventory(("H200",)), env={})
    assert gpu_slots.shortfall(gpu_target("x", tp=2), machine) == (
        "target x needs 2 GPU(s); this machine has 1"
    )


def test_a_pinned_target_is_limited_by_the_machine_not_the_option() -> None:
    one = allowed_gpus((0,), TWO, env={})
    assert gpu_slots.shortfall(gpu_target("p", env={"CUDA_VISIBLE_DEVICES": "1"}), one) is None
    why = gpu_slots.shortfall(gpu_target("p", env={"CUDA_VISIBLE_DEVICES": "1,4"}), one)
    assert why == "target p pins GPU(s) (1, 4) by CUDA_VISIBLE_DEVICES; this machine has 2"


# -- leases in one process ---------------------------------------------------------------


def test_targets_lease_disjoint_gpus_and_get_them_back_on_release(tmp_path: Path) -> None:
    book = slots(tmp_path, (0, 1, 2))
    a = book.take(gpu_target("a", tp=2))
    b = book.take(gpu_target("b"))
    assert (devices(a), devices(b)) == ("0,1", "2")
    assert a.env_dict()["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"  # CUDA numbers GPUs as NVML
    assert gpu_slots.device_env(b) == {
        "CUDA_VISIBLE_DEVICES": "2",
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    }
    stored = {x["target"]: x["indices"] for x in book.leases()}
    assert stored == {"a": [0, 1], "b": [2]}
    assert all(x["pid"] == os.getpid() for x in book.leases())
    book.release("a")
    assert devices(book.take(gpu_target("c"))) == "0"  # a's GPUs are free again
    book.release_all()
    assert book.leases() == []


def test_a_cpu_target_leases_nothing_and_a_cpu_session_never_writes_the_file(
    tmp_path: Path,
) -> None:
    book = slots(tmp_path)
    cpu = Target("c", "vllm", "m", "bf16")
    assert book.take(cpu) is cpu
    book.release_all()
    assert not (tmp_path / "leases.json").exists()


def test_a_profiles_own_cuda_visible_devices_is_respected_and_leased(tmp_path: Path) -> None:
    book = slots(tmp_path, (0,))
    pinned = gpu_target("p", env={"CUDA_VISIBLE_DEVICES": "1"})
    assert book.take(pinned) is pinned  # not overridden, nothing added
    assert [x["indices"] for x in book.leases()] == [[1]]  # outside --llmserve-gpus, yet leased
    assert devices(slots(tmp_path, (0, 1)).take(gpu_target("q"))) == "0"  # GPU 1 is taken
    uuid = gpu_target("u", env={"CUDA_VISIBLE_DEVICES": "GPU-5f2c"})
    assert book.take(uuid) is uuid  # named by UUID: the profile manages it


def test_waiting_on_this_process_alone_fails_at_once_naming_the_holder(tmp_path: Path) -> None:
    book = slots(tmp_path, (0,))
    book.take(gpu_target("first"))
    began = time.monotonic()
    with pytest.raises(GpuSlotError, match=r"GPU 0: target first \(pid \d+, this session"):
        book.take(gpu_target("second"), timeout_s=30)
    assert time.monotonic() - began < 5  # no pointless wait: nobody else could free it


def test_a_target_needing_more_than_may_be_leased_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(GpuSlotError, match=r"needs 2 GPU\(s\); only 1 may be leased \(0\)"):
        slots(tmp_path, (0,)).take(gpu_target("big", tp=2), timeout_s=30)


def test_a_lease_file_cut_short_holds_no_leases(tmp_path: Path) -> None:
    (tmp_path / "leases.json").write_text('[{"pid": 1, "tar')
    assert devices(slots(tmp_path).take(gpu_target("a"))) == "0"


# -- leases across processes ---------------------------------------------------------------


def _hold(folder: Path, name: str, ready: Event, done: Event, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """In a child process: lease one GPU, say which, hold it until told (or for 10 s)."""
    leased = slots(folder).take(gpu_target(name))
    out.put((name, os.getpid(), devices(leased)))
    ready.set()
    done.wait(10)


def test_processes_lease_disjoint_gpus_through_the_shared_file(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    out, done = ctx.Queue(), ctx.Event()
    readies = [ctx.Event() for _ in range(2)]
    procs = [ctx.Process(target=_hold, args=(tmp_path, f"t{i}", readies[i], done, out))
             for i in range(2)]  # fmt: skip
    for p in procs:
        p.start()
    try:
        assert all(r.wait(10) for r in readies)
        got = [out.get(timeout=5) for _ in procs]
        assert sorted(d for _, _, d in got) == ["0", "1"]  # both at once, never the same GPU
        assert {pid for _, pid, _ in got} == {p.pid for p in procs}
        # A third, in this process, finds both taken by live processes and waits, then fails.
        with pytest.raises(
            GpuSlotError, match=r"after 0\.\d s, held: GPU 0: target t\d \(pid \d+\)"
        ):
            slots(tmp_path).take(gpu_target("late"), timeout_s=0.3)
    finally:
        done.set()
        for p in procs:
            p.join(10)


def test_a_waiting_target_gets_the_gpu_once_its_holder_is_gone(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    out, ready, done = ctx.Queue(), ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold, args=(tmp_path, "holder", ready, done, out))
    proc.start()
    assert ready.wait(10)
    began = time.monotonic()
    threading.Timer(0.3, done.set).start()  # the holder exits 0.3 s from now
    leased = slots(tmp_path, (0,)).take(gpu_target("waiter"), timeout_s=10)
    assert devices(leased) == "0"
    assert time.monotonic() - began >= 0.25  # it did wait for the holder
    proc.join(10)


def test_a_dead_processs_lease_is_reclaimed(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead = {"pid": int(gone.stdout), "started": 1.0, "owner": "x", "target": "old", "indices": [0]}
    reused = {**dead, "pid": os.getpid(), "target": "reused", "indices": [1]}  # pid, not process
    (tmp_path / "leases.json").write_text(json.dumps([dead, reused]))
    book = slots(tmp_path)
    assert devices(book.take(gpu_target("new", tp=2), timeout_s=0)) == "0,1"
    assert [x["target"] for x in book.leases()] == ["new"]


# -- the option ------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0,x", "-1"])
def test_a_bad_llmserve_gpus_is_a_usage_error(pytester: pytest.Pytester, value: str) -> None:
    result = pytester.runpytest(f"--llmserve-gpus={value}", "--co")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*--llmserve-gpus: '{value}' is not valid (valid: comma-separated*"]
    )


def test_the_ini_twin_is_read_and_checked(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nllmserve_gpus = 1,1\n")
    result = pytester.runpytest("--co")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--llmserve-gpus: '1,1' is not valid*each once*"])


def test_the_header_shows_the_gpus_slots_come_from(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gpus, "inventory", lambda: FOUR)
    pytester.makeini("[pytest]\nllmserve_gpus = 0\n")
    result = pytester.runpytest("--co", "--llmserve-gpus", "3,1")  # the command line wins
    result.stdout.fnmatch_lines(
        ["llmserve: GPU slots from GPUs 3,1 (--llmserve-gpus allows 2 (3,1))"]
    )
