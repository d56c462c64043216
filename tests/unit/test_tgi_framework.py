"""TGI's module: argv from a target, what its launcher's log proves about precision, where
its log shows a failure, its error body, and its tokenize and prefill answers.

The logs are tests/golden/tgi/3.3.6-dev0/'s, written from TGI's v3.3.7 source in its
launcher's own format (expected.json names where).
"""

from __future__ import annotations

import json

import httpx
import pytest

from pytest_llmserve.frameworks.base import EngineFacts
from pytest_llmserve.frameworks.tgi import TGI
from pytest_llmserve.frameworks.tgi_errors import body_problems
from pytest_llmserve.measure.perplexity import NotMeasurable, prefill_logprobs
from pytest_llmserve.profile.model import Target
from tests import golden

tgi = TGI()
(GOLDEN,) = golden.recorded("tgi")


def target(**kw: object) -> Target:
    values: dict[str, object] = {
        "name": "t", "framework": "tgi", "model": "/m", "precision": "bf16", "device": "gpu", **kw
    }  # fmt: skip
    return Target(**values)  # type: ignore[arg-type]


def flag(argv: tuple[str, ...], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_argv_runs_the_launcher_and_serves_under_the_model_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TGI_KEY", "s3cret")
    spec = tgi.launch_spec(target(max_model_len=4096, tp=2, api_key_env="TGI_KEY"),
                           "/models/x", "127.0.0.1", 8123)  # fmt: skip
    assert spec.argv[0] == "text-generation-launcher"
    assert (flag(spec.argv, "--model-id"), flag(spec.argv, "--port")) == ("/models/x", "8123")
    assert flag(spec.argv, "--dtype") == "bfloat16"
    assert (flag(spec.argv, "--max-total-tokens"), flag(spec.argv, "--max-input-tokens")) == (
        "4096", "4095"
    )  # fmt: skip
    assert flag(spec.argv, "--num-shard") == "2"
    assert spec.served_as == "/models/x"
    assert spec.env["API_KEY"] == "s3cret"
    assert "s3cret" not in spec.argv
    container = tgi.launch_spec(target(), "/models/x", "0.0.0.0", 80, container=True).argv
    assert container[0] == "--model-id"  # the image's entrypoint runs the launcher


@pytest.mark.parametrize(
    ("kw", "why"),
    [({"precision": "fp32"}, "not fp32"), ({"pp": 2}, "no pipeline"),
     ({"kv_cache_dtype": "int8"}, "fp8_e4m3fn or fp8_e5m2")],
)  # fmt: skip
def test_what_tgi_cannot_serve_is_refused_before_a_start(kw: dict[str, object], why: str) -> None:
    found = tgi.unsupported_here(target(**kw))
    assert found is not None
    assert why in found


def test_the_golden_starts_prove_their_precision() -> None:
    logs = GOLDEN.startup_logs()
    bf16 = tgi.engine_facts(logs["startup.log"])
    assert tgi.precision_problems(target(), bf16) == []
    assert tgi.precision_problems(target(precision="fp16"), bf16) == [
        "engine dtype is BFloat16, declared fp16"
    ]
    fp8 = tgi.engine_facts(logs["startup-fp8.log"])
    assert fp8.quantization == "fp8"  # the shard's pick, over the launcher's Fp8
    assert tgi.precision_problems(target(precision="fp8"), fp8) == []
    assert tgi.precision_problems(target(precision="int4"), fp8) == [
        "engine applied fp8 (fp8), declared int4"
    ]
    assert tgi.precision_problems(target(precision="int8"), EngineFacts()) != []


def test_first_error_is_the_launchers_error_record_with_its_traceback() -> None:
    found = tgi.first_error(GOLDEN.failure_logs()["startup-oom-failure.log"])
    assert found.splitlines()[0].endswith(
        "ERROR text_generation_launcher: Error when initializing model"
    )
    assert found.splitlines()[-1].startswith("RuntimeError: Not enough memory")
    assert tgi.first_error("Error: ShardCannotStart\n") == "Error: ShardCannotStart"
    assert tgi.first_error(GOLDEN.startup_logs()["startup.log"]) == ""


def test_its_error_body_is_error_and_error_type_exactly() -> None:
    assert body_problems({"error": "Model is overloaded", "error_type": "overloaded"}) == []
    assert body_problems({"error": {"message": "x"}}) == [
        "error missing or not a string", "error_type missing or not a string"
    ]  # fmt: skip
    assert body_problems("Failed to parse the request body as JSON") != []


def test_tokenize_reads_the_golden_answer_without_the_added_special_token() -> None:
    recorded = json.loads((GOLDEN.folder / "tokenize.json").read_text())
    assert tgi.tokenize_body("ignored", "Hello world") == recorded["request"]["body"]
    tokens = tgi.read_tokens(recorded["answer"], "Hello world")
    assert tokens.ids == (15043, 3186)  # the BOS, offsets (0, 0), is not the text's
    assert tokens.spans == ((0, 5), (5, 11))
    with pytest.raises(ValueError, match=r"expected \[\{id, text, start, stop\}\]"):
        tgi.read_tokens({"tokens": [1, 2]}, "Hello world")


def _generate(answer: dict[str, object], seen: list[object]) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, json.loads(request.content)))
        return httpx.Response(200, json=answer)

    return httpx.Client(base_url="http://tgi", transport=httpx.MockTransport(handle))


def test_prefill_logprobs_read_the_golden_generate_answer() -> None:
    recorded = json.loads((GOLDEN.folder / "generate-prefill.json").read_text())
    seen: list[object] = []
    with _generate(recorded["answer"], seen) as http:
        lps = prefill_logprobs(http, tgi, [15043, 3186], "Hello world")
        # the window's first token is not scored, as in the echo dialect
        assert lps == [None, -4.03125]
        assert seen[0] == (recorded["request"]["path"], recorded["request"]["body"])
        with pytest.raises(RuntimeError, match="other tokens than its ids"):
            prefill_logprobs(http, tgi, [15043, 42], "Hello world")


def test_a_tgi_without_prefill_logprobs_is_not_measurable_never_a_number() -> None:
    recorded = json.loads((GOLDEN.folder / "generate-prefill.json").read_text())
    with (
        _generate(recorded["answer_without_prefill_logprobs"], []) as http,
        pytest.raises(NotMeasurable, match="started with --enable-prefill-logprobs"),
    ):
        prefill_logprobs(http, tgi, [15043, 3186], "Hello world")
