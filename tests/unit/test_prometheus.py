"""Prometheus scrapes: parsing vLLM's exposition, label filters, histogram deltas, quantiles."""

from __future__ import annotations

import pytest

from pytest_llmserve.measure.prometheus import (
    HistogramDelta,
    first_present,
    histogram_delta,
    parse,
)

TTFT = "vllm:time_to_first_token_seconds"
BOUNDS = ("0.001", "0.005", "0.01", "0.02", "0.04", "0.06", "0.08", "0.1", "0.25", "0.5", "1.0",
          "+Inf")  # fmt: skip


def ttft_histogram(engine: str, cumulative: list[int], total: float) -> str:
    """One engine's TTFT histogram as vLLM exposes it (labels in vLLM's order)."""
    lines = [
        f'{TTFT}_bucket{{engine="{engine}",le="{le}",model_name="m"}} {float(c)}'
        for le, c in zip(BOUNDS, cumulative, strict=True)
    ]
    lines.append(f'{TTFT}_count{{engine="{engine}",model_name="m"}} {float(cumulative[-1])}')
    lines.append(f'{TTFT}_sum{{engine="{engine}",model_name="m"}} {total}')
    return "\n".join(lines)


def exposition(
    engine0: list[int],
    sum0: float,
    tokens0: float,
    running0: float = 0.0,
    engine1: list[int] | None = None,
    sum1: float = 0.0,
    tokens1: float = 0.0,
) -> str:
    engine1 = engine1 or [0] * len(BOUNDS)
    return f"""\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{engine="0",model_name="m"}} {running0}
vllm:num_requests_running{{engine="1",model_name="m"}} 1.0
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{{engine="0",model_name="m"}} {tokens0}
vllm:generation_tokens_total{{engine="1",model_name="m"}} {tokens1}
# HELP {TTFT} Histogram of time to first token in seconds.
# TYPE {TTFT} histogram
{ttft_histogram("0", engine0, sum0)}
{ttft_histogram("1", engine1, sum1)}
"""


#            0.001 .005 .01 .02 .04 .06 .08 .1 .25 .5 1.0 +Inf
BEFORE_E0 = [0,    0,   1,  2,  4,  5,  5,  5, 5,  5, 5,  5]  # fmt: skip
AFTER_E0 = [0,     0,   1,  2,  6,  10, 13, 14, 15, 15, 15, 15]  # fmt: skip
# The run added, per bucket (cumulative): 0 0 0 0 2 5 8 9 10 10 10 10; 10 requests, sum 0.6


@pytest.fixture
def before_after() -> tuple[str, str]:
    before = exposition(BEFORE_E0, 0.15, 1000.0, engine1=[0] * 11 + [7], sum1=9.0, tokens1=50.0)
    after = exposition(AFTER_E0, 0.75, 1640.0, running0=3.0,
                       engine1=[0] * 11 + [7], sum1=9.0, tokens1=80.0)  # fmt: skip
    return before, after


def test_parse_reads_every_sample_and_family_type(before_after: tuple[str, str]) -> None:
    s = parse(before_after[1])
    assert s.types[TTFT] == "histogram"
    assert s.types["vllm:num_requests_running"] == "gauge"
    assert s.types["vllm:generation_tokens"] == "counter"  # the family drops _total
    key = (f"{TTFT}_bucket", frozenset({("engine", "0"), ("le", "0.06"), ("model_name", "m")}))
    assert s.samples[key] == 10.0
    assert len([n for n, _ in s.samples if n == f"{TTFT}_bucket"]) == 2 * len(BOUNDS)


def test_value_sums_the_samples_matching_the_labels(before_after: tuple[str, str]) -> None:
    s = parse(before_after[1])
    assert s.value("vllm:generation_tokens_total") == 1720.0
    assert s.value("vllm:generation_tokens_total", engine="0") == 1640.0
    assert s.value("vllm:generation_tokens_total", engine="1", model_name="m") == 80.0
    assert s.value("vllm:generation_tokens_total", model_name="other") == 0.0
    assert s.value("vllm:num_requests_running", engine="0") == 3.0
    assert s.value("vllm:no_such_metric") == 0.0


def test_histogram_delta_is_what_the_run_added(before_after: tuple[str, str]) -> None:
    before, after = map(parse, before_after)
    d = histogram_delta(before, after, TTFT, engine="0")
    assert d.count == 10.0
    assert d.sum == pytest.approx(0.6)
    assert d.mean == pytest.approx(0.06)
    assert [b for b, _ in d.buckets] == [float(b) for b in BOUNDS]
    assert [c for _, c in d.buckets] == [0, 0, 0, 0, 2, 5, 8, 9, 10, 10, 10, 10]


def test_histogram_delta_over_all_engines_adds_them(before_after: tuple[str, str]) -> None:
    before, after = map(parse, before_after)
    assert histogram_delta(before, after, TTFT).count == 10.0  # engine 1 did nothing
    assert histogram_delta(parse(""), after, TTFT).count == 22.0  # 15 + 7 since start
    assert histogram_delta(parse(""), after, TTFT, engine="1").buckets[-1] == (float("inf"), 7.0)


def test_quantiles_interpolate_linearly_inside_the_bucket(before_after: tuple[str, str]) -> None:
    d = histogram_delta(*map(parse, before_after), TTFT, engine="0")
    # rank 1 of 10: bucket (0.02, 0.04] holds ranks 1-2 -> halfway
    assert d.quantile(0.1) == pytest.approx(0.03)
    # rank 3: bucket (0.04, 0.06] holds ranks 3-5 (cumulative 2 -> 5) -> a third in
    assert d.quantile(0.3) == pytest.approx(0.04 + 0.02 / 3)
    # rank 7.5: bucket (0.06, 0.08], cumulative 5 -> 8 -> 2.5/3 in
    assert d.quantile(0.75) == pytest.approx(0.06 + 0.02 * 2.5 / 3)
    # rank 10: the top of the (0.1, 0.25] bucket
    assert d.quantile(1.0) == pytest.approx(0.25)


def test_quantile_in_the_inf_bucket_is_the_last_finite_bound() -> None:
    d = HistogramDelta(TTFT, count=12, sum=30.0,
                       buckets=((0.5, 4.0), (1.0, 10.0), (float("inf"), 12.0)))  # fmt: skip
    assert d.quantile(0.99) == 1.0
    assert d.quantile(0.5) == pytest.approx(0.5 + 0.5 * (6 - 4) / 6)


def test_empty_histogram_has_no_mean_and_no_quantile(before_after: tuple[str, str]) -> None:
    after = parse(before_after[1])
    d = histogram_delta(after, after, TTFT)
    assert d.count == 0
    assert d.mean is None
    assert d.quantile(0.5) is None
    missing = histogram_delta(after, after, "vllm:no_such_histogram")
    assert missing.count == 0
    assert missing.buckets == ()
    assert missing.quantile(0.99) is None


def test_first_present_picks_the_first_spelling_that_exists(before_after: tuple[str, str]) -> None:
    s = parse(before_after[1])
    assert first_present(s, ["vllm:time_to_first_token_seconds_v2", TTFT]) == TTFT
    assert first_present(s, ["vllm:generation_tokens_total", "vllm:gen_tokens"]) == (
        "vllm:generation_tokens_total"
    )
    assert first_present(s, [f"{TTFT}_count", TTFT]) == f"{TTFT}_count"
    assert first_present(s, ["sglang:ttft", "tgi_request_ttft"]) is None
