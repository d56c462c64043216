"""The metrics contract checks, against a stub whose /metrics breaks one promise at a time."""

from __future__ import annotations

import httpx
import pytest

from pytest_llmserve.checklist import metrics_contract as mc
from pytest_llmserve.errors import ProfileError
from pytest_llmserve.frameworks.contract import MetricContract, MetricFamily
from pytest_llmserve.frameworks.llamacpp import METRICS as LLAMACPP_METRICS
from pytest_llmserve.frameworks.vllm import METRICS
from pytest_llmserve.load.records import RequestRecord
from pytest_llmserve.measure.prometheus import parse
from pytest_llmserve.profile.contract_checks import error_checks, metrics_checks
from tests.stubs.misbehaving import MODEL, Faults, serve


def _served(url: str, n: int = 4, out: int = 3) -> mc.ClientTally:
    """Send ``n`` good requests of 2 prompt words; the tally the client would count."""
    for _ in range(n):
        r = httpx.post(f"{url}/v1/completions",
                       json={"model": MODEL, "prompt": "two words", "max_tokens": out})  # fmt: skip
        assert r.status_code == 200
    return mc.ClientTally(n, n, 2 * n, out * n, 0)


def _around(faults: Faults) -> tuple[list[mc.Movement], mc.ClientTally]:
    with serve(faults) as url:
        before = mc.fetch(url, "/metrics").scrape
        client = _served(url)
        after = mc.fetch(url, "/metrics").scrape
    assert before is not None
    assert after is not None
    return mc.movements(before, after, METRICS, MODEL, client, 0.0), client


def test_a_well_behaved_endpoint_passes_every_check() -> None:
    with serve() as url:
        ep = mc.fetch(url, "/metrics")
        assert mc.endpoint_problems(ep) == []
        assert ep.scrape is not None
        assert mc.family_problems(ep.scrape, METRICS) == []
        assert mc.label_problems(ep.scrape, METRICS, MODEL) == []
        idle = mc.wait_idle(lambda: mc.fetch(url, "/metrics"), METRICS, MODEL, 1.0)
    assert idle.ok
    assert idle.levels == {
        "vllm:num_requests_running": 0.0,
        "vllm:num_requests_waiting": 0.0,
    }
    moved, client = _around(Faults())
    assert {m.signal for m in moved} == {
        "requests_succeeded", "prompt_tokens", "generation_tokens", "ttft", "e2e", "inter_token"
    }  # fmt: skip
    assert all(mc.movement_verdict(m, client).outcome == "pass" for m in moved)


def test_wrong_content_type_and_status_fail() -> None:
    with serve(Faults(content_type="application/json")) as url:
        found = mc.endpoint_problems(mc.fetch(url, "/metrics"))
    assert found == [
        "content type 'application/json' is not Prometheus text "
        "(expected one of: text/plain, application/openmetrics-text)"
    ]
    with serve(Faults(metrics_status=404)) as url:
        assert mc.endpoint_problems(mc.fetch(url, "/metrics")) == ["/metrics answered 404"]


def test_a_missing_family_fails_naming_every_spelling() -> None:
    with serve(Faults(missing_family="vllm:kv_cache_usage_perc")) as url:
        scrape = mc.fetch(url, "/metrics").scrape
    assert scrape is not None
    assert mc.family_problems(scrape, METRICS) == [
        "kv_cache_usage: no family named vllm:kv_cache_usage_perc or "
        "vllm:gpu_cache_usage_perc (a gauge)"
    ]


def test_an_older_spelling_is_accepted() -> None:
    spellings = ("new:running", "vllm:num_requests_running")
    old = MetricContract("/metrics", (MetricFamily("running", "gauge", spellings),))
    with serve() as url:
        scrape = mc.fetch(url, "/metrics").scrape
    assert scrape is not None
    assert mc.family_problems(scrape, old) == []
    assert mc.find(scrape, old.families[0]).name == "vllm:num_requests_running"


@pytest.mark.parametrize(
    ("family", "message"),
    [
        ("vllm:num_requests_running", "running: vllm:num_requests_running is a counter, "
                                      "expected a gauge"),
        ("vllm:prompt_tokens_total", "prompt_tokens: vllm:prompt_tokens_total is a gauge, "
                                     "expected a counter"),
    ],
)  # fmt: skip
def test_a_wrong_type_fails(family: str, message: str) -> None:
    with serve(Faults(wrong_type=family)) as url:
        scrape = mc.fetch(url, "/metrics").scrape
    assert scrape is not None
    assert mc.family_problems(scrape, METRICS) == [message]


def test_a_wrong_model_label_fails() -> None:
    with serve(Faults(model_label="someone-else")) as url:
        scrape = mc.fetch(url, "/metrics").scrape
    assert scrape is not None
    found = mc.label_problems(scrape, METRICS, MODEL)
    assert len(found) == len(METRICS.families)
    assert found[0] == (
        "vllm:num_requests_running: no sample with model_name='stub-model' (seen: someone-else)"
    )


def test_counters_that_do_not_move_fail() -> None:
    moved, client = _around(Faults(frozen_counters=True))
    verdicts = [mc.movement_verdict(m, client) for m in moved]
    assert {v.outcome for v in verdicts} == {"fail"}
    by_metric = {v.metric: v.reason for v in verdicts}
    assert by_metric["vllm:prompt_tokens_total"] == (
        "vllm:prompt_tokens_total moved by 0; the client counted 8 (exactly): "
        "the counter does not match what was served"
    )
    assert "vllm:e2e_request_latency_seconds_count" in by_metric


def test_a_gap_within_tolerance_passes_and_beyond_fails() -> None:
    m = mc.Movement("prompt_tokens", "p_total", expected=100, observed=99, tolerance=0.02)
    client = mc.ClientTally(4, 4, 100, 10, 0)
    assert mc.movement_verdict(m, client).outcome == "pass"
    tight = mc.Movement("prompt_tokens", "p_total", expected=100, observed=97, tolerance=0.02)
    assert mc.movement_verdict(tight, client).outcome == "fail"


def test_a_run_with_failed_requests_is_inconclusive_not_failed() -> None:
    m = mc.Movement("requests_succeeded", "r_total", expected=3, observed=4, tolerance=0)
    verdict = mc.movement_verdict(m, mc.ClientTally(4, 3, 30, 12, 0))
    assert verdict.outcome == "inconclusive"
    assert "1 of 4 requests failed" in verdict.reason


def test_a_gauge_stuck_above_zero_fails_within_the_bound() -> None:
    with serve(Faults(stuck_running=2)) as url:
        idle = mc.wait_idle(lambda: mc.fetch(url, "/metrics"), METRICS, MODEL, 0.5, poll_s=0.1)
    assert not idle.ok
    assert 0.5 <= idle.seconds < 2
    assert idle.problem == "not idle 0.5 s after the run: vllm:num_requests_running=2"


def test_tally_counts_usage_of_completed_requests_only() -> None:
    ok = RequestRecord(0, 1.0, 5, 3, status=200, last_byte_at=2.0, usage_prompt_tokens=5,
                       usage_output_tokens=3)  # fmt: skip
    bad = RequestRecord(1, 1.0, 5, 3, status=500, last_byte_at=2.0, error="HTTP 500")
    no_usage = RequestRecord(2, 1.0, 5, 3, status=200, last_byte_at=2.0)
    assert mc.tally([ok, bad, no_usage]) == mc.ClientTally(3, 2, 5, 3, 1, missing_cached=2)


def test_tally_sums_what_the_server_took_from_its_prompt_cache() -> None:
    def done(index: int, cached: int | None) -> RequestRecord:
        return RequestRecord(index, 1.0, 5, 3, status=200, last_byte_at=2.0,
                             usage_prompt_tokens=5, usage_output_tokens=3,
                             usage_cached_tokens=cached)  # fmt: skip

    found = mc.tally([done(0, 1), done(1, 0), done(2, None)])
    assert (found.cached_prompt_tokens, found.missing_cached) == (1, 1)


def _llamacpp_prompt_counter(moved_by: float, client: mc.ClientTally) -> mc.Movement:
    """llama.cpp's prompt counter moved by ``moved_by`` around the run ``client`` counted."""
    before = parse("llamacpp:prompt_tokens_total 100\n")
    after = parse(f"llamacpp:prompt_tokens_total {100 + moved_by}\n")
    moved = mc.movements(before, after, LLAMACPP_METRICS, "m", client, 0.0)
    return next(m for m in moved if m.signal == "prompt_tokens")


def test_a_counter_of_evaluated_tokens_is_expected_short_by_the_cached_prefix() -> None:
    # llama.cpp reused one cached token of a prompt: it counted 511 of the 512 sent
    client = mc.ClientTally(16, 16, 512, 256, 0, cached_prompt_tokens=1)
    m = _llamacpp_prompt_counter(511, client)
    verdict = mc.movement_verdict(m, client)
    assert verdict.outcome == "pass"
    assert verdict.reason == (
        "llamacpp:prompt_tokens_total moved by 511; the client counted 512 less 1 the "
        "server took from its prompt cache = 511 (exactly)"
    )
    assert mc.movement_verdict(_llamacpp_prompt_counter(512, client), client).outcome == "fail"


def test_a_counter_of_every_prompt_token_is_not_excused_by_the_cache() -> None:
    client = mc.ClientTally(4, 4, 8, 12, 0, cached_prompt_tokens=2)
    before, after = (parse(f'vllm:prompt_tokens_total{{model_name="{MODEL}"}} {n}\n')
                     for n in (0, 6))  # fmt: skip
    (m,) = [m for m in mc.movements(before, after, METRICS, MODEL, client, 0.0)
            if m.signal == "prompt_tokens"]  # fmt: skip
    assert (m.expected, m.observed) == (8, 6)
    assert mc.movement_verdict(m, client).outcome == "fail"


def test_a_cache_the_usage_does_not_report_makes_a_short_count_inconclusive() -> None:
    client = mc.ClientTally(16, 16, 512, 256, 0, missing_cached=3)
    verdict = mc.movement_verdict(_llamacpp_prompt_counter(509, client), client)
    assert verdict.outcome == "inconclusive"
    assert verdict.reason.endswith(
        "but 3 completed requests did not say how many of their prompt tokens came from the "
        "prompt cache, which this counter leaves out"
    )


def test_contract_data_rejects_unknown_signal_and_type() -> None:
    with pytest.raises(ValueError, match="valid: running"):
        MetricFamily("speed", "gauge", ("x",))
    with pytest.raises(ValueError, match="valid: gauge, counter, histogram"):
        MetricFamily("running", "summary", ("x",))  # type: ignore[arg-type]


def test_profile_tables_parse_and_reject_with_the_field_named() -> None:
    assert metrics_checks({}, "t").requests == 16
    assert metrics_checks({"metrics": {"token_tolerance": 0.01}}, "t").token_tolerance == 0.01
    assert error_checks({"errors": {"timeout_s": 5}}, "t").timeout_s == 5
    with pytest.raises(ProfileError, match=r"t: checks.metrics.token_tolerance: a fraction"):
        metrics_checks({"metrics": {"token_tolerance": 2}}, "t")
    with pytest.raises(ProfileError, match=r"checks.metrics.tolerance: unknown field \(valid: "):
        metrics_checks({"metrics": {"tolerance": 1}}, "t")
    with pytest.raises(ProfileError, match=r"checks.errors.timeout_s: must be > 0"):
        error_checks({"errors": {"timeout_s": 0}}, "t")


def test_settled_waits_for_a_late_count() -> None:
    def text(n: int) -> str:
        return (
            "# TYPE vllm:e2e_request_latency_seconds histogram\n"
            f"vllm:e2e_request_latency_seconds_count {n}\nprocess_cpu_seconds_total {n * 7}\n"
        )

    counts = iter([3, 4, 4, 9])
    contract = MetricContract(
        "/metrics", (MetricFamily("e2e", "histogram", ("vllm:e2e_request_latency_seconds",)),)
    )

    def scrape() -> mc.Endpoint:
        return mc.Endpoint(200, "text/plain", parse(text(next(counts))))

    ep = mc.settled(scrape, contract, timeout_s=5, poll_s=0.01)
    assert ep.scrape is not None
    assert ep.scrape.value("vllm:e2e_request_latency_seconds_count") == 4
