"""The ``transformers serve`` module without a server: argv, what it refuses to serve,
its streaming dialect, its readiness, and the run figures its chunks allow."""

from __future__ import annotations

import json

import pytest

from pytest_llmserve.client import dialects
from pytest_llmserve.client.dialects import Prompt
from pytest_llmserve.frameworks import registry
from pytest_llmserve.frameworks.transformers_serve import TransformersServe
from pytest_llmserve.launch.readiness import standard_probes
from pytest_llmserve.load.records import LoadRun, RequestRecord
from pytest_llmserve.measure.latency import run_metrics
from pytest_llmserve.profile.model import Target

TS = TransformersServe()


def _target(**changes: object) -> Target:
    fields: dict[str, object] = {"name": "t", "framework": "transformers", "model": "/m",
                                 "precision": "bf16", "device": "gpu"}  # fmt: skip
    fields.update(changes)
    return Target(**fields)  # type: ignore[arg-type]


def test_registered_and_its_argv_serves_the_path_under_its_own_name() -> None:
    assert registry.get("transformers").name == "transformers"
    spec = TS.launch_spec(_target(args=("--cb-max-memory-percent", "0.05")), "/m", "h", 9)
    argv = list(spec.argv)
    assert argv[argv.index("serve") + 1] == "/m"
    assert argv[argv.index("--device") + 1] == "cuda"
    assert argv[argv.index("--dtype") + 1] == "bfloat16"
    assert "--continuous-batching" in argv
    assert argv[-2:] == ["--cb-max-memory-percent", "0.05"]  # the profile's args last
    assert spec.served_as == "/m"  # it answers to the path, and to nothing else
    assert spec.env["HF_HUB_OFFLINE"] == "1"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"precision": "int4"}, "precision int4 is not mapped"),
        ({"api_key_env": "KEY"}, "no API key option"),
        ({"served_name": "x"}, "under its path only"),
        ({"tp": 2}, "tp and pp must be 1"),
    ],
)
def test_what_it_cannot_serve_is_skipped_with_the_reason(
    changes: dict[str, object], reason: str
) -> None:
    why = TS.unsupported_here(_target(**changes))
    assert why is not None
    assert reason in why
    assert TS.unsupported_here(_target()) is None


def test_its_dialect_holds_length_with_generation_config_not_ignore_eos() -> None:
    dialect = dialects.for_framework(TS)
    path, body = dialect.request("/m", Prompt("Hi", 1, 32))
    assert path == "/v1/completions"
    assert "ignore_eos" not in body  # it answers 422 to a field outside its schema
    assert "min_tokens" not in body
    assert json.loads(body["generation_config"]) == {
        "max_new_tokens": 32, "min_new_tokens": 32, "do_sample": False,
    }  # fmt: skip
    assert dialect.uncounted is not None


def test_readiness_skips_its_model_list_and_primes_min_new_tokens() -> None:
    names = [p.name for p in standard_probes(TS, "/m")]
    assert not any("listed" in n for n in names)
    assert any("listed" in p.name for p in standard_probes(registry.get("vllm"), "m"))
    _, body = TS.readiness_request("/m")
    assert json.loads(body["generation_config"])["min_new_tokens"] == 1


def test_chunks_that_are_not_tokens_are_not_cross_checked_with_usage() -> None:
    r = RequestRecord(0, sent_at=0.0, prompt_tokens_sent=5, max_tokens=4, status=200,
                      first_token_at=0.1, last_byte_at=0.4, chunk_times=[0.1, 0.4],
                      chunk_tokens=[1, 1], usage_output_tokens=4)  # fmt: skip
    counted = run_metrics(LoadRun([r], 0.0, 0.4), resamples=0)
    assert counted.token_disagreement_flagged  # 2 chunks for 4 tokens: 50% apart
    run = LoadRun([r], 0.0, 0.4, uncounted="several tokens to a chunk")
    m = run_metrics(run, resamples=0)
    assert not m.token_disagreement_flagged
    assert m.output_tokens == 4  # the server's count
    assert any("not cross-checked" in n and "several tokens" in n for n in m.notes)
