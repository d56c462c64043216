"""vLLM dialect: argv/env from a target, what its startup log proves about precision, and
where its log shows a failure.

Logs are vLLM 0.32's own: the golden startup and failure logs recorded from a real
server (tests/golden/vllm/0.32.0/), and for quantized starts single lines in the
formats of the calls that write them ("Using %s for ...", "Selected %s for %s" in
vllm/model_executor).
"""

from __future__ import annotations

import re
import sys

import pytest

from pytest_llmserve.frameworks.base import EngineFacts
from pytest_llmserve.frameworks.vllm import VLLM
from pytest_llmserve.profile.model import Target
from tests import golden

vllm = VLLM()


def target(**kw: object) -> Target:
    values: dict[str, object] = {
        "name": "t", "framework": "vllm", "model": "/m", "precision": "bf16", **kw
    }  # fmt: skip
    return Target(**values)  # type: ignore[arg-type]


def argv_of(t: Target) -> list[str]:
    return list(vllm.launch_spec(t, "/models/x", "127.0.0.1", 8123).argv)


def flag(argv: list[str], name: str) -> str | None:
    """The value after ``name`` in argv (None when the flag is absent)."""
    return argv[argv.index(name) + 1] if name in argv else None


# --- launch_spec ---------------------------------------------------------------------------


def test_argv_starts_api_server_module_with_this_interpreter() -> None:
    argv = argv_of(target())
    assert argv[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    assert flag(argv, "--model") == "/models/x"
    assert flag(argv, "--host") == "127.0.0.1"
    assert flag(argv, "--port") == "8123"


@pytest.mark.parametrize(
    ("precision", "dtype"),
    [
        ("fp32", "float32"),
        ("fp16", "float16"),
        ("bf16", "bfloat16"),
        ("int8", "auto"),
        ("int4", "auto"),
        ("fp8", "auto"),
    ],
)
def test_dtype_flag_maps_precision_and_leaves_quantized_to_the_checkpoint(
    precision: str, dtype: str
) -> None:
    assert flag(argv_of(target(precision=precision)), "--dtype") == dtype


def test_a_quantized_target_may_name_its_activations_dtype_once() -> None:
    argv = argv_of(target(precision="int8", args=("--enforce-eager", "--dtype", "float32")))
    assert argv.count("--dtype") == 1
    assert flag(argv, "--dtype") == "float32"


def test_served_name_defaults_to_target_name() -> None:
    assert flag(argv_of(target(name="my-target")), "--served-model-name") == "my-target"
    t = target(name="my-target", served_name="gpt-x")
    assert flag(argv_of(t), "--served-model-name") == "gpt-x"


def test_optional_flags_absent_by_default() -> None:
    argv = argv_of(target())
    for name in (
        "--max-model-len",
        "--kv-cache-dtype",
        "--tensor-parallel-size",
        "--pipeline-parallel-size",
    ):
        assert name not in argv


def test_optional_flags_from_target() -> None:
    t = target(max_model_len=2048, kv_cache_dtype="fp8_e5m2", tp=2, pp=4, device="gpu")
    argv = argv_of(t)
    assert flag(argv, "--max-model-len") == "2048"
    assert flag(argv, "--kv-cache-dtype") == "fp8_e5m2"
    assert flag(argv, "--tensor-parallel-size") == "2"
    assert flag(argv, "--pipeline-parallel-size") == "4"


def test_extra_args_come_last_so_they_override() -> None:
    argv = argv_of(target(max_model_len=2048, args=("--enforce-eager", "--dtype", "half")))
    assert argv[-3:] == ["--enforce-eager", "--dtype", "half"]


def test_env_passes_through_and_single_rank_cpu_gets_no_binding() -> None:
    spec = vllm.launch_spec(target(env=(("A", "1"), ("B", "2"))), "/m", "h", 1)
    assert spec.env == {"A": "1", "B": "2"}


def test_multi_rank_cpu_target_gets_threads_binding_split_between_ranks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    spec = vllm.launch_spec(target(tp=2), "/m", "h", 1)
    assert spec.env["VLLM_CPU_OMP_THREADS_BIND"] == "0-3|4-7"
    spec = vllm.launch_spec(target(tp=2, pp=2), "/m", "h", 1)
    assert spec.env["VLLM_CPU_OMP_THREADS_BIND"] == "0-1|2-3|4-5|6-7"


def test_threads_binding_with_more_ranks_than_cores_still_names_one_core_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    binding = vllm.launch_spec(target(tp=4), "/m", "h", 1).env["VLLM_CPU_OMP_THREADS_BIND"]
    assert binding.split("|") == ["0", "1", "1", "1"]


def test_user_threads_binding_is_not_overridden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    t = target(tp=2, env=(("VLLM_CPU_OMP_THREADS_BIND", "6|7"),))
    assert vllm.launch_spec(t, "/m", "h", 1).env["VLLM_CPU_OMP_THREADS_BIND"] == "6|7"


def test_gpu_target_gets_no_cpu_threads_binding() -> None:
    spec = vllm.launch_spec(target(tp=2, device="gpu"), "/m", "h", 1)
    assert "VLLM_CPU_OMP_THREADS_BIND" not in spec.env


def test_launch_spec_does_not_mutate_target_env() -> None:
    t = target(tp=2, env=(("A", "1"),))
    vllm.launch_spec(t, "/m", "h", 1)
    assert t.env == (("A", "1"),)


# --- engine_facts / precision_problems -----------------------------------------------------


# vLLM 0.32's real startup log (tests/golden/vllm/0.32.0/startup.log, a bf16 start on CPU);
# the quantized variants below are that real engine line with its fields changed.
GOLDEN = golden.Golden("vllm", "0.32.0", golden.framework_folder("vllm") / "0.32.0")
STARTUP_LOG = GOLDEN.startup_logs()["startup.log"]
PP2_LOG = GOLDEN.failure_logs()["startup-pp2-failure.log"]
ENGINE_LINE = next(
    line for line in STARTUP_LOG.splitlines() if "Initializing a V1 LLM engine" in line
)


def engine_line(
    dtype: str = "torch.bfloat16",
    quantization: str = "None",
    kv: str = "auto",
    quantization_config: str = "None",
) -> str:
    """The golden engine-config line with its precision fields set (each appears once)."""
    line = ENGINE_LINE
    for name, value in (
        ("dtype", dtype),
        ("quantization", quantization),
        ("quantization_config", quantization_config),
        ("kv_cache_dtype", kv),
    ):
        line, n = re.subn(rf"([\s,]){name}=[^,\s]+", rf"\g<1>{name}={value}", line, count=1)
        assert n == 1, f"{name}= not in the golden engine line"
    return line


# Quantized starts (not in the golden files: their variants take minutes to build):
# each line is in vLLM 0.32's own format, from the call that logs it.
ZERO_LAYERS = (
    "(Worker pid=5354) INFO 11-27 02:30:59 [base_loader.py:151] Quantizing 0 layers of types: "
)
# Logged by vLLM's GPU model runner only (gpu_model_runner.py); the CPU runner does not
# say how much memory the weights took (the golden CPU log has no such line).
LOADING = (
    "(Worker pid=5354) INFO 11-27 02:31:00 [gpu_model_runner.py:5150] "
    "Model loading took 0.2512 GiB memory and 1.234567 seconds"
)
# vLLM 0.32: init_int8_linear_kernel logs "Selected %s for %s" (module name = scheme class).
INT8_KERNEL = (
    "(Worker pid=5354) INFO 11-27 02:30:58 [__init__.py:846] "
    "Selected CPUInt8ScaledMMLinearKernel for CompressedTensorsW8A8Int8"
)
# compressed_tensors_wNa16.py: "Using %s for CompressedTensorsWNA16"
WNA16_KERNEL = (
    "(Worker pid=5354) INFO 11-27 02:30:58 [compressed_tensors_wNa16.py:138] "
    "Using CPUWNA16LinearKernel for CompressedTensorsWNA16"
)
MP_KERNEL = (
    "(Worker pid=5354) INFO 11-27 02:30:58 [__init__.py:923] "
    "Using CPUWNA16LinearKernel for mixed-precision linear"
)
CT_CONFIG = "{'quant_method': 'compressed-tensors', 'format': 'int-quantized', 'dtype': 'x'}"


def log(*lines: str) -> str:
    return "\n".join(["INFO some unrelated line", *lines, "INFO Application startup complete."])


def test_engine_facts_of_the_golden_bf16_start() -> None:
    facts = vllm.engine_facts(STARTUP_LOG)
    assert (facts.dtype, facts.quantization, facts.kv_cache_dtype) == (
        "torch.bfloat16",
        None,
        "auto",
    )
    assert facts.linear_kernels == ()
    assert facts.quantized_layers is None
    assert facts.weights_gib is None  # vLLM's CPU runner does not log it
    assert vllm.precision_problems(target(), facts) == []


def test_engine_line_helper_changes_only_the_fields_asked() -> None:
    assert engine_line() == ENGINE_LINE
    changed = engine_line(dtype="torch.float16", kv="fp8")
    assert vllm.engine_facts(changed).dtype == "torch.float16"
    assert vllm.engine_facts(changed).kv_cache_dtype == "fp8"


def test_engine_facts_read_bf16_config_line() -> None:
    facts = vllm.engine_facts(log(engine_line(), LOADING))
    assert facts.dtype == "torch.bfloat16"
    assert facts.quantization is None  # "None" in the log means none
    assert facts.kv_cache_dtype == "auto"
    assert facts.weights_gib == pytest.approx(0.2512)
    assert facts.linear_kernels == ()
    assert facts.quantized_layers is None
    assert any("engine config" in e for e in facts.evidence)


def test_engine_facts_take_top_level_fields_not_those_inside_quantization_config() -> None:
    line = engine_line(quantization="compressed-tensors", quantization_config=CT_CONFIG)
    facts = vllm.engine_facts(log(line))
    assert facts.dtype == "torch.bfloat16"
    assert facts.quantization == "compressed-tensors"


def test_engine_facts_collect_kernels_once_each_in_order() -> None:
    facts = vllm.engine_facts(log(WNA16_KERNEL, MP_KERNEL, WNA16_KERNEL))
    assert facts.linear_kernels == ("CPUWNA16LinearKernel",)


def test_engine_facts_read_int8_kernel_from_selected_line() -> None:
    facts = vllm.engine_facts(log(INT8_KERNEL))
    assert facts.linear_kernels == ("CPUInt8ScaledMMLinearKernel",)
    assert INT8_KERNEL.split("] ")[-1] in facts.evidence[0]


def test_engine_facts_read_quantized_layer_count() -> None:
    assert vllm.engine_facts(log(ZERO_LAYERS)).quantized_layers == 0
    line = ZERO_LAYERS.replace("0 layers", "12 layers") + "Linear"
    assert vllm.engine_facts(log(line)).quantized_layers == 12


def test_engine_facts_of_an_empty_log_say_nothing() -> None:
    assert vllm.engine_facts("") == EngineFacts()


def test_bf16_target_served_bf16_has_no_problems() -> None:
    facts = vllm.engine_facts(log(engine_line(), LOADING))
    assert vllm.precision_problems(target(), facts) == []


def test_int8_declared_but_zero_layers_quantized_is_a_problem() -> None:
    # vLLM CPU with --quantization int8_per_channel_weight_only: starts, serves bf16.
    facts = vllm.engine_facts(log(engine_line(quantization="int8_per_channel"), ZERO_LAYERS))
    problems = vllm.precision_problems(target(precision="int8"), facts)
    assert any("0 layers" in p for p in problems)
    assert any("no int8 linear kernel" in p for p in problems)


def test_int8_checkpoint_with_int8_kernel_has_no_problems() -> None:
    line = engine_line(quantization="compressed-tensors", quantization_config=CT_CONFIG)
    facts = vllm.engine_facts(log(line, INT8_KERNEL, LOADING))
    assert vllm.precision_problems(target(precision="int8", method="smoothquant"), facts) == []


def test_int8_kernel_logged_with_using_is_accepted_too() -> None:
    using = INT8_KERNEL.replace("Selected", "Using")
    facts = vllm.engine_facts(log(engine_line(quantization="compressed-tensors"), using))
    assert vllm.precision_problems(target(precision="int8"), facts) == []


def test_int4_checkpoint_with_wna16_kernel_has_no_problems() -> None:
    facts = vllm.engine_facts(log(engine_line(quantization="compressed-tensors"), WNA16_KERNEL))
    assert vllm.precision_problems(target(precision="int4", method="gptq"), facts) == []


def test_int4_declared_but_int8_kernel_is_a_problem() -> None:
    facts = vllm.engine_facts(log(engine_line(quantization="compressed-tensors"), INT8_KERNEL))
    problems = vllm.precision_problems(target(precision="int4"), facts)
    assert problems == ["no int4 linear kernel in use (kernels: CPUInt8ScaledMMLinearKernel)"]


def test_quantized_target_served_without_quantization_is_a_problem() -> None:
    facts = vllm.engine_facts(log(engine_line()))
    problems = vllm.precision_problems(target(precision="int4"), facts)
    assert "engine applied no quantization for a int4 target" in problems
    assert any("kernels: none logged" in p for p in problems)


@pytest.mark.parametrize(
    ("declared", "served"),
    [("bf16", "torch.float16"), ("fp16", "torch.bfloat16"), ("fp32", "torch.bfloat16")],
)
def test_dtype_mismatch_is_a_problem(declared: str, served: str) -> None:
    facts = vllm.engine_facts(log(engine_line(dtype=served)))
    problems = vllm.precision_problems(target(precision=declared), facts)
    assert problems == [f"engine dtype is {served}, declared {declared}"]


@pytest.mark.parametrize(
    ("declared", "served"),
    [("fp32", "torch.float32"), ("fp16", "torch.float16"), ("bf16", "bfloat16")],
)
def test_matching_float_dtype_is_fine(declared: str, served: str) -> None:
    facts = vllm.engine_facts(log(engine_line(dtype=served)))
    assert vllm.precision_problems(target(precision=declared), facts) == []


def test_float_target_that_engine_quantized_is_a_problem() -> None:
    facts = vllm.engine_facts(log(engine_line(quantization="fp8")))
    problems = vllm.precision_problems(target(precision="bf16"), facts)
    assert problems == ["engine applied quantization 'fp8' to a bf16 target"]


def test_no_engine_config_line_means_precision_cannot_be_confirmed() -> None:
    facts = vllm.engine_facts(log(WNA16_KERNEL, LOADING))
    problems = vllm.precision_problems(target(precision="int4"), facts)
    assert len(problems) == 1
    assert "cannot be confirmed" in problems[0]


def test_kv_cache_dtype_mismatch_is_a_problem() -> None:
    facts = vllm.engine_facts(log(engine_line(kv="auto")))
    problems = vllm.precision_problems(target(kv_cache_dtype="fp8"), facts)
    assert problems == ["KV cache dtype is auto, declared fp8"]


def test_kv_cache_dtype_applied_is_fine() -> None:
    facts = vllm.engine_facts(log(engine_line(kv="fp8_e4m3")))
    assert vllm.precision_problems(target(kv_cache_dtype="fp8_e4m3"), facts) == []


# --- first_error -----------------------------------------------------------------------------


def record(level: str, *lines: str, process: str = "(Worker_PP1 pid=77) ") -> list[str]:
    """One record of vLLM's logger: every line carries the same header."""
    head = f"{process}{level} 12-02 02:19:01 [multiproc_executor.py:1063] "
    return [head + line for line in lines]


TRACEBACK = (
    "Traceback (most recent call last):",
    '  File "worker.py", line 3, in run',
    "    assert rank_ok",
    "AssertionError",
)


def test_first_error_of_the_golden_pp2_failure_is_the_worker_traceback() -> None:
    found = vllm.first_error(PP2_LOG)
    lines = found.splitlines()
    assert lines[0].startswith("(Worker_PP1 pid=")
    assert lines[0].endswith("WorkerProc hit an exception.")
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "AssertionError"
    assert "assert self.intermediate_tensors is not None" in found
    assert "[multiproc_executor.py:1063]" not in "\n".join(lines[1:])  # headers stripped
    assert "EngineDeadError" not in found
    assert "nanobind" not in found
    assert len(lines) < 40


def test_the_golden_pp2_failure_ends_in_chatter_that_hides_the_cause() -> None:
    tail = "\n".join(PP2_LOG.splitlines()[-golden.TAIL_LINES :])
    assert "AssertionError" not in tail
    assert "nanobind: leaked" in tail


def test_first_error_of_the_golden_clean_start_is_empty() -> None:
    assert vllm.first_error(STARTUP_LOG) == ""


def test_records_below_error_level_are_not_errors_whatever_they_say() -> None:
    text = "\n".join(
        record("WARNING", "Found ulimit of 20000 and failed to increase with error: limit")
        + record("INFO", "ValueError: only quoted in a message")
    )
    assert vllm.first_error(text) == ""


def test_an_error_record_without_traceback_is_its_own_lines() -> None:
    text = "\n".join(["INFO up", *record("ERROR", "engine failed", "  detail"), "INFO down"])
    found = vllm.first_error(text)
    assert found.splitlines() == [record("ERROR", "engine failed")[0], "  detail"]


def test_critical_counts_and_the_first_error_record_wins() -> None:
    text = "\n".join(record("CRITICAL", "first", process="") + record("ERROR", *TRACEBACK))
    assert vllm.first_error(text) == record("CRITICAL", "first", process="")[0]


def test_a_long_traceback_keeps_its_exception_line() -> None:
    frames = [f'  File "f{i}.py", line {i}, in f' for i in range(60)]
    text = "\n".join(record("ERROR", "boom", TRACEBACK[0], *frames, "RuntimeError: deep"))
    lines = vllm.first_error(text).splitlines()
    assert len(lines) <= 41
    assert lines[-1] == "RuntimeError: deep"
    assert "  ..." in lines


def test_a_crash_outside_vllms_logger_gets_the_generic_rule() -> None:
    # A traceback printed to stderr before logging is set up: no record header, only
    # (sometimes) the process prefix, which the generic rule strips.
    text = "\n".join(
        ["INFO starting", *(f"(EngineCore pid=9) {line}" for line in TRACEBACK), "INFO bye"]
    )
    assert vllm.first_error(text) == "\n".join(TRACEBACK)


# --- what this machine cannot serve -------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "precision", "device", "refused"),
    [
        ({"sse2", "avx2"}, "int4", "cpu", True),  # the AVX2 kernel library has no int4 kernel
        ({"sse2", "avx2", "avx512f"}, "int4", "cpu", False),
        ({"sse2", "avx2"}, "int8", "cpu", False),
        ({"sse2", "avx2"}, "bf16", "cpu", False),
        ({"sse2", "avx2"}, "int4", "gpu", False),
        (None, "int4", "cpu", False),  # cannot tell: try it, and a failed start says why
        ({"asimd"}, "int4", "cpu", False),  # not x86
    ],
)
def test_int4_on_a_cpu_without_avx512_is_refused_before_any_start(
    monkeypatch: pytest.MonkeyPatch,
    flags: set[str] | None,
    precision: str,
    device: str,
    refused: bool,
) -> None:
    from pytest_llmserve.frameworks import vllm

    monkeypatch.setattr(vllm, "cpu_flags", lambda: None if flags is None else frozenset(flags))
    why = VLLM().unsupported_here(target(precision=precision, device=device))
    assert (why is not None) == refused
    if why is not None:
        assert "AVX-512" in why
        assert "int4" in why


def test_cpu_flags_reads_this_machine() -> None:
    from pytest_llmserve.cpu import cpu_flags

    flags = cpu_flags()
    assert flags is None or all(isinstance(f, str) and f for f in flags)


@pytest.mark.parametrize(
    ("flags", "native"),
    [
        ({"sse2", "avx2"}, False),  # AVX2 only: bf16 is emulated
        ({"sse2", "avx2", "avx512f"}, False),  # AVX-512 without its BF16 extension
        ({"sse2", "avx2", "avx512f", "avx512_bf16"}, True),
        ({"sse2", "amx_bf16"}, True),
        ({"asimd", "bf16"}, True),  # not x86: as vLLM assumes
        (None, True),  # cannot tell: as vLLM assumes
    ],
)
def test_native_bf16_needs_avx512_bf16_or_amx_on_x86(flags: set[str] | None, native: bool) -> None:
    from pytest_llmserve.cpu import native_bf16

    assert native_bf16(None if flags is None else frozenset(flags)) is native
