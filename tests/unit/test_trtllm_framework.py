"""TensorRT-LLM dialect: argv from a target (process and container), what its startup log
proves about precision, where its log shows a failure, and what it refuses before a start.

Logs are those of ``tests/golden/trtllm/1.2.1/`` (written from TRT-LLM's source, each
file naming where), and single records in the format of ``tensorrt_llm/logger.py``
("[%m/%d/%Y-%H:%M:%S] [TRT-LLM] [I] msg") carrying the messages of the calls that
write them (``llmapi/llm_utils.py``).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from pytest_llmserve.checklist.metrics_contract import family_problems
from pytest_llmserve.errors import ServerStartError
from pytest_llmserve.frameworks import trtllm as trtllm_module
from pytest_llmserve.frameworks.base import EngineFacts
from pytest_llmserve.frameworks.openai_compat import openai_error_body_problems
from pytest_llmserve.frameworks.trtllm import TensorRTLLM, quantized_precision
from pytest_llmserve.measure.prometheus import parse
from pytest_llmserve.profile.model import Target
from tests import golden

trt = TensorRTLLM()
GOLDEN = golden.Golden("trtllm", "1.2.1", golden.framework_folder("trtllm") / "1.2.1")
STARTUP = GOLDEN.startup_logs()


def target(**kw: object) -> Target:
    values: dict[str, object] = {
        "name": "t", "framework": "trtllm", "model": "/m", "precision": "bf16", "device": "gpu",
        **kw,
    }  # fmt: skip
    return Target(**values)  # type: ignore[arg-type]


def argv_of(t: Target, model: str = "/models/x", container: bool = False) -> list[str]:
    return list(trt.launch_spec(t, model, "127.0.0.1", 8123, container=container).argv)


def flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def record(level: str, message: str, rank: int | None = None) -> str:
    mpi = "" if rank is None else f"[MPI_Rank {rank}] "
    return f"[04/20/2026-10:00:02] [TRT-LLM] {mpi}[{level}] {message}"


# --- launch_spec ---------------------------------------------------------------------------


def test_process_argv_runs_the_console_scripts_entry_point_with_this_interpreter() -> None:
    argv = argv_of(target())
    assert argv[:3] == [sys.executable, "-c", trtllm_module._MAIN]
    assert argv[3:5] == ["serve", "/models/x"]
    assert (flag(argv, "--host"), flag(argv, "--port")) == ("127.0.0.1", "8123")
    assert flag(argv, "--backend") == "pytorch"


def test_process_gets_a_yaml_that_turns_the_metrics_page_on() -> None:
    options = Path(str(flag(argv_of(target()), "--extra_llm_api_options")))
    assert options.read_text(encoding="utf-8") == "return_perf_metrics: true\n"
    assert options.parent.name.startswith("llmserve-trtllm-")


def test_the_yaml_is_written_again_if_its_folder_was_removed() -> None:
    first = trtllm_module.metrics_options_file()
    shutil.rmtree(first.parent)
    again = Path(str(flag(argv_of(target()), "--extra_llm_api_options")))
    assert again.is_file()


def test_optional_flags_absent_by_default_and_taken_from_the_target() -> None:
    argv = argv_of(target())
    assert not {"--max_seq_len", "--tp_size", "--pp_size"} & set(argv)
    argv = argv_of(target(max_model_len=4096, tp=2, pp=4))
    assert flag(argv, "--max_seq_len") == "4096"
    assert flag(argv, "--tp_size") == "2"
    assert flag(argv, "--pp_size") == "4"


@pytest.mark.parametrize(
    "own", [("--extra_llm_api_options", "/cfg/a.yaml"), ("--config=/cfg/a.yaml",)]
)
def test_args_naming_their_own_yaml_replace_ours_and_come_last(own: tuple[str, ...]) -> None:
    argv = argv_of(target(args=("--kv_cache_free_gpu_memory_fraction", "0.5", *own)))
    assert argv.count("--extra_llm_api_options") == own.count("--extra_llm_api_options")
    assert argv[-len(own) :] == list(own)


def test_container_argv_is_the_arguments_after_trtllm_serve() -> None:
    own = ("--extra_llm_api_options", "/etc/llmserve/trtllm.yaml")
    argv = argv_of(target(args=own), container=True)
    assert argv[:2] == ["serve", "/models/x"]
    assert sys.executable not in argv
    assert argv[-2:] == list(own)


def test_a_container_without_its_own_yaml_is_refused_with_how_to_give_one() -> None:
    with pytest.raises(ServerStartError, match=r"docker\.volumes.*--extra_llm_api_options"):
        argv_of(target(), container=True)


def test_served_as_is_a_local_folders_name_or_the_name_given(tmp_path: Path) -> None:
    folder = tmp_path / "Llama-3.1-8B-Instruct-FP8"
    folder.mkdir()
    assert trt.launch_spec(target(), str(folder), "h", 1).served_as == folder.name
    hub = "nvidia/Llama-3.1-8B-Instruct-FP8"
    assert trt.launch_spec(target(), hub, "h", 1).served_as == hub


def test_env_passes_through() -> None:
    assert trt.launch_spec(target(env=(("A", "1"),)), "/m", "h", 1).env == {"A": "1"}


# --- what it refuses before a start ----------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "why"),
    [
        ({"api_key_env": "KEY"}, "no API key option"),
        ({"kv_cache_dtype": "fp8_e5m2"}, "e4m3"),
    ],
)
def test_unsupported_here_refuses_what_trtllm_serve_cannot_do(
    kw: dict[str, object], why: str
) -> None:
    found = trt.unsupported_here(target(**kw))
    assert found is not None
    assert why in found


def test_a_launched_server_cannot_take_another_name(tmp_path: Path) -> None:
    """It serves under its folder's name; an external one names its own (served_name)."""
    folder = tmp_path / "llama-fp8"
    folder.mkdir()
    assert trt.launch_spec(target(), str(folder), "h", 1).served_as == "llama-fp8"
    with pytest.raises(ServerStartError, match="no --served_model_name"):
        trt.launch_spec(target(served_name="gpt-x"), str(folder), "h", 1)


def test_a_plain_gpu_target_is_not_refused() -> None:
    assert trt.unsupported_here(target(precision="fp8", kv_cache_dtype="fp8", tp=2)) is None


# --- engine_facts / precision_problems ------------------------------------------------------


def test_engine_facts_of_the_golden_bf16_start_show_no_quantization_and_no_dtype() -> None:
    facts = trt.engine_facts(STARTUP["startup.log"])
    assert (facts.dtype, facts.quantization, facts.kv_cache_dtype) == (None, None, None)
    assert "loaded unquantized" in facts.evidence[-1]


def test_engine_facts_of_the_golden_fp8_start() -> None:
    facts = trt.engine_facts(STARTUP["startup-fp8.log"])
    assert (facts.quantization, facts.kv_cache_dtype) == ("FP8", "FP8")
    assert facts.evidence[0] == "Found hf_quant_config.json, pre-quantized checkpoint is used."
    assert trt.precision_problems(target(precision="fp8", kv_cache_dtype="fp8"), facts) == []


def test_engine_facts_read_the_nvfp4_lines_of_a_1_2_container_and_mpi_ranks() -> None:
    log = "\n".join([
        record("I", "Found <MODEL>/hf_quant_config.json, pre-quantized checkpoint is used."),
        record("I", "Setting quant_algo=NVFP4 form HF quant config.", rank=0),
        record("I", "Setting kv_cache_quant_algo=FP8 form HF quant config.", rank=0),
        record("I", "Setting group_size=16 from HF quant config.", rank=0),
    ])  # fmt: skip
    facts = trt.engine_facts(log)
    assert (facts.quantization, facts.kv_cache_dtype) == ("NVFP4", "FP8")
    assert facts.evidence[1] == "Setting quant_algo=NVFP4 form HF quant config."


def test_a_config_json_quantization_is_seen_but_its_precision_stays_unknown() -> None:
    line = (
        "Found quantization_config field in <MODEL>/config.json, pre-quantized checkpoint is used."
    )
    facts = trt.engine_facts(record("I", line))
    assert facts.quantization == "config.json quantization_config"
    problems = trt.precision_problems(target(precision="fp8"), facts)
    assert problems == ["engine applied config.json quantization_config (no precision of ours), "
                        "declared fp8"]  # fmt: skip


def test_an_empty_log_says_nothing() -> None:
    assert trt.engine_facts("") == EngineFacts()


@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
def test_a_float_precision_is_never_confirmed_from_the_log(precision: str) -> None:
    facts = trt.engine_facts(STARTUP["startup.log"])
    (problem,) = trt.precision_problems(target(precision=precision), facts)
    assert f"{precision} cannot be confirmed" in problem


def test_a_float_target_served_from_a_quantized_checkpoint_is_a_problem() -> None:
    facts = trt.engine_facts(STARTUP["startup-fp8.log"])
    assert trt.precision_problems(target(), facts) == [
        "engine applied quantization FP8 to a bf16 target"
    ]


@pytest.mark.parametrize(
    ("algo", "ours"),
    [
        ("FP8", "fp8"), ("FP8_BLOCK_SCALES", "fp8"), ("FP8_PER_CHANNEL_PER_TOKEN", "fp8"),
        ("W4A16_AWQ", "int4"), ("W4A16_GPTQ", "int4"), ("W4A8_AWQ", "int4"),
        ("W8A16", "int8"), ("W8A8_SQ_PER_CHANNEL", "int8"),
        ("NVFP4", None), ("W4A8_NVFP4_FP8", None), ("W4A8_MXFP4_FP8", None),
        ("MIXED_PRECISION", None),
    ],
)  # fmt: skip
def test_quant_algo_maps_to_our_precision_and_fp4_to_none_yet(algo: str, ours: str | None) -> None:
    assert quantized_precision(algo) == ours


def test_nvfp4_for_an_int4_target_is_reported_as_no_precision_of_ours() -> None:
    facts = EngineFacts(quantization="NVFP4")
    assert trt.precision_problems(target(precision="int4"), facts) == [
        "engine applied NVFP4 (no precision of ours), declared int4"
    ]


def test_an_awq_checkpoint_serves_int4() -> None:
    facts = EngineFacts(quantization="W4A16_AWQ")
    assert trt.precision_problems(target(precision="int4", method="awq"), facts) == []


def test_a_quantized_target_without_a_prequantized_checkpoint_is_a_problem() -> None:
    facts = trt.engine_facts(STARTUP["startup.log"])
    (problem,) = trt.precision_problems(target(precision="fp8"), facts)
    assert "no pre-quantized checkpoint" in problem


def test_a_declared_fp8_kv_cache_needs_the_checkpoints_kv_cache_quant_algo() -> None:
    facts = EngineFacts(quantization="FP8")
    (problem,) = trt.precision_problems(target(precision="fp8", kv_cache_dtype="fp8"), facts)
    assert "fp8 KV cache cannot be confirmed" in problem
    facts = EngineFacts(quantization="FP8", kv_cache_dtype="NVFP4")
    assert trt.precision_problems(target(precision="fp8", kv_cache_dtype="fp8_e4m3"), facts) == [
        "KV cache quantized as NVFP4, declared fp8_e4m3"
    ]


# --- first_error -----------------------------------------------------------------------------


def test_first_error_of_the_golden_failures_is_the_first_traceback() -> None:
    port = trt.first_error(GOLDEN.failure_logs()["startup-port-failure.log"])
    assert port.splitlines()[0] == "Traceback (most recent call last):"
    assert port.splitlines()[-1] == "OSError: [Errno 98] Address already in use"
    checkpoint = trt.first_error(GOLDEN.failure_logs()["startup-checkpoint-failure.log"])
    assert checkpoint.splitlines()[-1] == "ValueError: 'W3A16' is not a valid QuantAlgo"


@pytest.mark.parametrize("log", sorted(STARTUP))
def test_first_error_of_a_clean_start_is_empty(log: str) -> None:
    assert trt.first_error(STARTUP[log]) == ""


def test_an_error_record_is_its_raw_line() -> None:
    failed = record("E", "Failed to initialize executor on rank 0: boom", rank=0)
    text = "\n".join([record("I", "up"), failed, record("E", "later")])
    assert trt.first_error(text) == failed


def test_an_error_record_carrying_a_traceback_keeps_its_frames_through_the_exception() -> None:
    text = "\n".join([
        record("I", "up"),
        record("E", "Traceback (most recent call last):"),
        '  File "openai_server.py", line 9, in openai_completion',
        "    raise ValueError(msg)",
        "ValueError: bad request",
        record("I", "127.0.0.1:40000 - POST /v1/completions 400"),
    ])  # fmt: skip
    assert trt.first_error(text).splitlines() == [
        record("E", "Traceback (most recent call last):"),
        '  File "openai_server.py", line 9, in openai_completion',
        "    raise ValueError(msg)",
        "ValueError: bad request",
    ]


def test_records_below_error_level_are_not_errors_whatever_they_say() -> None:
    text = "\n".join([record("W", "ERROR in a warning"), record("I", "ValueError: quoted")])
    assert trt.first_error(text) == ""


def test_lines_outside_its_logger_get_the_generic_rule() -> None:
    cpp = "[TensorRT-LLM][ERROR] Assertion failed: mpiSize == tp * pp (mpiUtils.cpp:42)"
    assert trt.first_error("\n".join([record("I", "up"), cpp, record("E", "later")])) == cpp


# --- metrics and errors against the golden files ------------------------------------------


def test_the_metric_contract_names_families_of_the_golden_page_and_no_inter_token() -> None:
    contract = trt.metric_contract()
    assert contract is not None
    page = GOLDEN.metrics()
    assert page is not None
    assert family_problems(parse(page), contract) == []
    assert contract.model_label is None  # 1.2 labels every sample model_name="undefined"
    assert contract.family("inter_token") is None  # its TPOT is one observation per request
    assert [f.names[0].startswith("trtllm_") for f in contract.families] == [True] * 3


def test_the_error_table_holds_exactly_the_golden_cases_in_the_flat_openai_body() -> None:
    bodies = {b.case: b for b in GOLDEN.errors()}
    assert set(bodies) == set(trt.error_expectations())
    for case, expected in trt.error_expectations().items():
        assert bodies[case].status in expected.status
        assert openai_error_body_problems(bodies[case].body) == []
        assert bodies[case].body["object"] == "error"
