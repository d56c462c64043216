"""The typed ``checks`` table: defaults filled, absent checks absent, every mistake named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_llmserve.errors import ProfileError
from pytest_llmserve.profile.checks import (
    Goodput,
    Latency,
    Scaling,
    Throughput,
    Workload,
    perf_checks,
)
from pytest_llmserve.profile.load import parse_profile

WHERE = "llmserve profile p.toml: targets[0] (t)"


def error_of(checks: dict[str, Any]) -> str:
    with pytest.raises(ProfileError) as info:
        perf_checks(checks, WHERE)
    message = str(info.value)
    assert message.startswith(WHERE)
    assert "\n" not in message
    return message


# --- valid tables --------------------------------------------------------------------------


def test_no_checks_means_default_workload_and_no_check() -> None:
    parsed = perf_checks({}, WHERE)
    assert parsed.workload == Workload()
    assert (parsed.workload.input_tokens, parsed.workload.output_tokens) == (128, 64)
    assert parsed.throughput is None
    assert parsed.latency is None
    assert parsed.scaling is None
    assert parsed.goodput is None


def test_given_fields_are_kept_and_the_rest_default() -> None:
    parsed = perf_checks(
        {
            "workload": {"input_tokens": 512, "distribution": "uniform", "spread": 64},
            "throughput": {"min_output_tok_s": 250.5, "concurrency": 32},
            "latency": {"max_ttft_s": 0.5, "percentile": "p95"},
            "scaling": {"min_ratio": 3},  # an integer is a valid float
            "goodput": {"min_rps": 2.0, "max_e2e_s": 10},
        },
        WHERE,
    )
    assert parsed.workload == Workload(input_tokens=512, output_tokens=64,
                                       distribution="uniform", spread=64, seed=0)  # fmt: skip
    assert parsed.throughput == Throughput(min_output_tok_s=250.5, concurrency=32, requests=160,
                                           warmup=4)  # fmt: skip
    assert parsed.latency == Latency(max_ttft_s=0.5, percentile="p95")
    assert parsed.latency.max_tpot_s is None
    assert parsed.latency.concurrency == 4
    assert parsed.scaling == Scaling(min_ratio=3, low=1, high=16)
    assert parsed.goodput == Goodput(min_rps=2.0, max_e2e_s=10)
    assert parsed.goodput.max_ttft_s is None


def test_workload_defaults_when_only_a_check_is_given() -> None:
    parsed = perf_checks({"throughput": {"min_output_tok_s": 10.0}}, WHERE)
    assert parsed.workload == Workload()
    assert parsed.latency is None


def test_other_issues_tables_are_let_through() -> None:
    parsed = perf_checks({"accuracy": {"anything": 1}, "robustness": {}}, WHERE)
    assert parsed.throughput is None


# --- mistakes ------------------------------------------------------------------------------


def test_unknown_check_table_names_the_valid_ones() -> None:
    message = error_of({"thruput": {"min_output_tok_s": 1.0}})
    assert "checks.thruput: unknown check" in message
    assert "throughput" in message
    assert "latency" in message


def test_unknown_field_names_the_table_and_its_fields() -> None:
    message = error_of({"latency": {"max_ttft": 0.5}})
    assert "checks.latency.max_ttft: unknown field" in message
    assert "max_ttft_s" in message
    assert "percentile" in message


def test_a_check_that_is_not_a_table_is_refused() -> None:
    assert "checks.throughput: expected a table, got float" in error_of({"throughput": 5.0})


@pytest.mark.parametrize(
    ("checks", "field", "expected"),
    [
        ({"throughput": {"min_output_tok_s": "100"}}, "throughput.min_output_tok_s", "float"),
        ({"throughput": {"min_output_tok_s": 1.0, "concurrency": True}},
         "throughput.concurrency", "int"),
        ({"throughput": {"min_output_tok_s": 1.0, "requests": 8.0}}, "throughput.requests", "int"),
        ({"latency": {"max_ttft_s": False}}, "latency.max_ttft_s", "float"),
        ({"workload": {"distribution": 2}}, "workload.distribution", "str"),
    ],
)  # fmt: skip
def test_wrong_types_are_refused(checks: dict[str, Any], field: str, expected: str) -> None:
    message = error_of(checks)
    assert f"checks.{field}: expected {expected}" in message


def test_negative_numbers_are_refused() -> None:
    message = error_of({"goodput": {"min_rps": 1.0, "max_tpot_s": -0.1}})
    assert "checks.goodput.max_tpot_s: must be >= 0, got -0.1" in message


def test_unknown_percentile_names_the_valid_ones() -> None:
    message = error_of({"latency": {"percentile": "p98"}})
    assert "checks.latency.percentile: 'p98' is not valid" in message
    assert "p50, p90, p95, p99" in message


def test_unknown_distribution_names_the_valid_ones() -> None:
    message = error_of({"workload": {"distribution": "zipf"}})
    assert "checks.workload.distribution: 'zipf' is not valid" in message
    assert "fixed, uniform, normal" in message


@pytest.mark.parametrize(
    ("checks", "field"),
    [
        ({"throughput": {"min_output_tok_s": 1.0, "concurrency": 0}}, "throughput.concurrency"),
        ({"latency": {"requests": 0}}, "latency.requests"),
        ({"scaling": {"min_ratio": 2.0, "low": 0}}, "scaling.low"),
        ({"workload": {"input_tokens": 0}}, "workload.input_tokens"),
    ],
)
def test_zero_counts_are_refused(checks: dict[str, Any], field: str) -> None:
    assert f"checks.{field}: must be >= 1, got 0" in error_of(checks)


def test_missing_required_field_is_named() -> None:
    message = error_of({"throughput": {"concurrency": 8}})
    assert "checks.throughput: missing min_output_tok_s" in message
    assert "missing min_rps" in error_of({"goodput": {}})


# --- through the profile -------------------------------------------------------------------


def target(**extra: Any) -> dict[str, Any]:
    return {"name": "t", "framework": "vllm", "model": "org/model", "precision": "bf16",
            "launcher": "external", "url": "http://127.0.0.1:9", **extra}  # fmt: skip


def test_a_bad_check_fails_when_the_profile_loads() -> None:
    with pytest.raises(ProfileError) as info:
        parse_profile({"targets": [target(checks={"latency": {"percentile": "p98"}})]},
                      source="p.toml", base_dir=Path("."))  # fmt: skip
    assert "targets[0] (t)" in str(info.value)
    assert "checks.latency.percentile: 'p98' is not valid" in str(info.value)


def test_a_bad_check_from_defaults_fails_too() -> None:
    data = {"defaults": {"checks": {"throughput": {"concurrency": 4}}}, "targets": [target()]}
    with pytest.raises(ProfileError, match=r"checks\.throughput: missing min_output_tok_s"):
        parse_profile(data, source="p.toml", base_dir=Path("."))


def test_default_checks_merge_with_a_targets_table_by_table_and_key_by_key() -> None:
    data = {
        "defaults": {
            "checks": {
                "workload": {"input_tokens": 256, "output_tokens": 32},
                "throughput": {"min_output_tok_s": 100.0, "concurrency": 8},
                "latency": {"max_ttft_s": 0.5, "max_tpot_s": 0.05},
            }
        },
        "targets": [
            target(name="a", checks={"throughput": {"concurrency": 32},
                                     "latency": {"max_tpot_s": 0.08},
                                     "goodput": {"min_rps": 1.0}}),
            target(name="b"),
        ],
    }  # fmt: skip
    a, b = parse_profile(data, source="p.toml", base_dir=Path(".")).targets
    assert a.checks == {
        "workload": {"input_tokens": 256, "output_tokens": 32},
        "throughput": {"min_output_tok_s": 100.0, "concurrency": 32},
        "latency": {"max_ttft_s": 0.5, "max_tpot_s": 0.08},
        "goodput": {"min_rps": 1.0},
    }
    typed = perf_checks(a.checks, "a")
    assert typed.throughput == Throughput(min_output_tok_s=100.0, concurrency=32)
    assert typed.latency == Latency(max_ttft_s=0.5, max_tpot_s=0.08)
    assert typed.workload.input_tokens == 256
    assert b.checks == data["defaults"]["checks"]
    # merging must not write into the defaults shared by every target
    assert data["defaults"]["checks"]["throughput"]["concurrency"] == 8


def test_workload_kinds_and_their_requirements() -> None:
    ok = perf_checks({"workload": {"kind": "shared_prefix", "prefix_tokens": 64}}, "t")
    assert ok.workload.kind == "shared_prefix"
    assert ok.workload.prefix_tokens == 64
    with pytest.raises(ProfileError, match=r"prefix_tokens: a shared_prefix workload needs >= 1"):
        perf_checks({"workload": {"kind": "shared_prefix"}}, "t")
    with pytest.raises(ProfileError, match=r"prompts_file: a prompt_set workload needs a file"):
        perf_checks({"workload": {"kind": "prompt_set"}}, "t")
    with pytest.raises(ProfileError, match=r"kind: 'zipf' is not valid \(valid: synthetic, "):
        perf_checks({"workload": {"kind": "zipf"}}, "t")


def test_sweep_takes_one_array_of_levels() -> None:
    sweep = perf_checks({"sweep": {"concurrency": [1, 4, 16], "requests": 8}}, "t").sweep
    assert sweep is not None
    assert sweep.concurrency == (1, 4, 16)
    assert sweep.rate_rps == ()
    rates = perf_checks({"sweep": {"rate_rps": [0.5, 2]}}, "t").sweep
    assert rates is not None
    assert rates.rate_rps == (0.5, 2)
    with pytest.raises(ProfileError, match="exactly one of concurrency"):
        perf_checks({"sweep": {"concurrency": [1], "rate_rps": [1.0]}}, "t")
    with pytest.raises(ProfileError, match="exactly one of concurrency"):
        perf_checks({"sweep": {}}, "t")
    with pytest.raises(ProfileError, match=r"concurrency: expected an array of numbers > 0"):
        perf_checks({"sweep": {"concurrency": [1, 0]}}, "t")
    with pytest.raises(ProfileError, match=r"concurrency: expected an array of numbers > 0"):
        perf_checks({"sweep": {"concurrency": [1.5]}}, "t")


def test_shipped_prompt_set_loads() -> None:
    from pytest_llmserve.load.workload import Lengths, prompt_set

    path = Path(__file__).resolve().parents[2] / "fixtures" / "prompts.toml"
    prompts = prompt_set(path, Lengths(32))
    assert len(prompts) >= 10
    assert all(isinstance(p.prompt, str) and p.max_tokens == 32 for p in prompts)
