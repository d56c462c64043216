"""SGLang's module: argv from a target, what its startup log proves about precision, and
where its log shows a failure.

The logs are tests/golden/sglang/0.5.23/'s, written from SGLang's source in its own
formats (expected.json names where), and single lines in the same formats.
"""

from __future__ import annotations

import sys

import pytest

from pytest_llmserve.errors import ServerStartError
from pytest_llmserve.frameworks.base import EngineFacts
from pytest_llmserve.frameworks.sglang import SGLang
from pytest_llmserve.profile.model import Target
from tests import golden

sglang = SGLang()
(GOLDEN,) = golden.recorded("sglang")


def target(**kw: object) -> Target:
    values: dict[str, object] = {
        "name": "t", "framework": "sglang", "model": "/m", "precision": "bf16", **kw
    }  # fmt: skip
    return Target(**values)  # type: ignore[arg-type]


def argv_of(t: Target, *, container: bool = False) -> list[str]:
    return list(sglang.launch_spec(t, "/models/x", "127.0.0.1", 8123, container=container).argv)


def flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_argv_starts_the_launch_server_module_with_metrics_on() -> None:
    argv = argv_of(target(max_model_len=4096, tp=2, kv_cache_dtype="fp8_e4m3"))
    assert argv[:3] == [sys.executable, "-m", "sglang.launch_server"]
    assert (flag(argv, "--model-path"), flag(argv, "--served-model-name")) == ("/models/x", "t")
    assert (flag(argv, "--host"), flag(argv, "--port")) == ("127.0.0.1", "8123")
    assert "--enable-metrics" in argv
    assert flag(argv, "--dtype") == "bfloat16"
    assert flag(argv, "--context-length") == "4096"
    assert flag(argv, "--tp-size") == "2"
    assert flag(argv, "--kv-cache-dtype") == "fp8_e4m3"
    assert flag(argv_of(target(kv_cache_dtype="fp8")), "--kv-cache-dtype") == "fp8_e4m3"


def test_an_fp8_kv_cache_is_confirmed_by_its_allocation_line() -> None:
    line = "[t] KV Cache is allocated. dtype: torch.float8_e4m3fn, #tokens: 8, K size: 1 GB"
    facts = sglang.engine_facts(line)
    assert facts.kv_cache_dtype == "float8_e4m3fn"
    fp8_kv = target(precision="fp8", kv_cache_dtype="fp8")
    assert sglang.precision_problems(fp8_kv, EngineFacts(quantization="fp8", kv_cache_dtype=
                                     "float8_e4m3fn")) == []  # fmt: skip
    assert sglang.precision_problems(fp8_kv, EngineFacts(quantization="fp8", kv_cache_dtype=
                                     "bfloat16")) == [
        "KV cache dtype is bfloat16, declared fp8 (float8_e4m3fn)"
    ]  # fmt: skip


def test_a_quantized_target_reads_its_quantization_from_the_checkpoint() -> None:
    argv = argv_of(target(precision="fp8"))
    assert "--dtype" not in argv
    assert "--quantization" not in argv


def test_the_container_form_is_the_arguments_after_the_entrypoint() -> None:
    argv = argv_of(target(), container=True)
    assert argv[0] == "--model-path"  # the image has no ENTRYPOINT: docker.entrypoint names it


def test_the_key_goes_on_the_command_line_of_a_process_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SGL_KEY", "s3cret")
    keyed = target(api_key_env="SGL_KEY")
    assert flag(argv_of(keyed), "--api-key") == "s3cret"
    with pytest.raises(ServerStartError, match="docker socket"):
        argv_of(keyed, container=True)


def test_the_golden_starts_prove_their_precision() -> None:
    logs = GOLDEN.startup_logs()
    bf16 = sglang.engine_facts(logs["startup.log"])
    assert (bf16.dtype, bf16.quantization, bf16.kv_cache_dtype) == ("bfloat16", None, "bfloat16")
    assert bf16.weights_gib == pytest.approx(0.27e9 / 2**30)
    assert sglang.precision_problems(target(), bf16) == []
    fp8 = sglang.engine_facts(logs["startup-fp8.log"])
    assert sglang.precision_problems(target(precision="fp8"), fp8) == []
    assert sglang.precision_problems(target(precision="int4"), fp8) == [
        "engine applied fp8 (fp8), declared int4"
    ]
    assert sglang.precision_problems(target(), fp8) == [
        "engine applied quantization 'fp8' to a bf16 target"
    ]


@pytest.mark.parametrize(
    ("line", "precision"),
    [
        ("quant=awq, bits=4, ", "int4"),
        ("quant=w8a8_int8, ", "int8"),
        ("quant=compressed-tensors, bits=8, ", "int8"),
        ("quant=modelopt_fp8, ", "fp8"),
    ],
)
def test_quantized_loads_map_to_our_precisions(line: str, precision: str) -> None:
    log = f"[t] Load weight end. elapsed=3.1 s, type=X, {line}avail mem=1 GB, mem usage=0.1 GB."
    facts = sglang.engine_facts(log)
    assert sglang.precision_problems(target(precision=precision), facts) == []


def test_a_float_target_with_nothing_in_its_log_is_not_confirmed() -> None:
    problems = sglang.precision_problems(target(), EngineFacts())
    assert problems == [
        "the server log shows no model or KV-cache dtype: precision cannot be confirmed"
    ]
    assert sglang.precision_problems(target(precision="int8"), EngineFacts()) != []


def test_first_error_finds_the_schedulers_traceback_and_an_argument_error() -> None:
    failures = GOLDEN.failure_logs()
    oom = sglang.first_error(failures["startup-oom-failure.log"])
    assert oom.startswith("Traceback (most recent call last):")
    assert oom.endswith(
        "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static."
    )
    bad_flag = sglang.first_error(failures["startup-quantization-failure.log"])
    assert bad_flag.startswith("sglang serve: error: argument --quantization: invalid choice")
    assert sglang.first_error(GOLDEN.startup_logs()["startup.log"]) == ""
