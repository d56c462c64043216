"""Metric definitions on hand-computed records, and a run's figures over its window."""

from __future__ import annotations

import json

import pytest

from pytest_llmserve.load.records import LoadRun, RequestRecord
from pytest_llmserve.measure.latency import (
    SLO,
    e2e,
    itls,
    peak_in_flight,
    run_metrics,
    tpot,
    ttft,
)


def request(
    index: int = 0,
    sent: float = 0.0,
    chunks: tuple[float, ...] = (0.5, 0.6, 0.8),
    usage: int | None = 3,
    **kw: object,
) -> RequestRecord:
    """A completed streamed request: one token per chunk, last byte at the last chunk."""
    r = RequestRecord(
        index=index,
        sent_at=sent,
        prompt_tokens_sent=10,
        max_tokens=16,
        status=200,
        first_token_at=chunks[0] if chunks else None,
        last_byte_at=chunks[-1] if chunks else sent + 0.1,
        chunk_times=list(chunks),
        chunk_tokens=[1] * len(chunks),
        usage_prompt_tokens=10,
        usage_output_tokens=usage,
    )
    for key, value in kw.items():
        setattr(r, key, value)
    return r


def test_hand_computed_request() -> None:
    r = request()
    assert ttft(r) == pytest.approx(0.5)
    assert e2e(r) == pytest.approx(0.8)
    assert tpot(r) == pytest.approx(0.15)  # (0.8 - 0.5) / (3 - 1)
    assert itls(r) == pytest.approx([0.1, 0.2])


def test_one_token_request_has_no_tpot_and_no_itl() -> None:
    r = request(chunks=(0.4,), usage=1)
    assert ttft(r) == pytest.approx(0.4)
    assert tpot(r) is None
    assert itls(r) == []


def test_tpot_uses_the_server_token_count() -> None:
    r = request(chunks=(0.5, 1.0), usage=6)  # two chunks that bundled six tokens
    assert tpot(r) == pytest.approx(0.1)  # (1.0 - 0.5) / 5
    assert itls(r) == pytest.approx([0.5])  # per chunk, as vLLM


def test_unanswered_request_has_no_latencies() -> None:
    r = RequestRecord(index=0, sent_at=0.0, prompt_tokens_sent=5, max_tokens=5)
    assert (ttft(r), e2e(r), tpot(r), itls(r)) == (None, None, None, [])


def sequential_run(n: int = 100, tokens: int = 10) -> LoadRun:
    """Concurrency 1: request i sent at i s, first token at +0.2 s, one token per 0.05 s."""
    records = []
    for i in range(n):
        chunks = tuple(i + 0.2 + 0.05 * k for k in range(tokens))
        records.append(request(i, sent=float(i), chunks=chunks, usage=tokens))
        records[-1].last_byte_at = i + 1.0
    return LoadRun(records=records, started_at=0.0, ended_at=float(n), concurrency=1)


def test_run_metrics_of_a_steady_sequential_run() -> None:
    m = run_metrics(sequential_run())
    assert (m.completed, m.failed) == (100, 0)
    assert m.output_tokens == m.client_output_tokens == 1000
    assert m.prompt_tokens == 1000
    assert m.output_throughput.point == pytest.approx(10.0)
    assert m.total_throughput.point == pytest.approx(20.0)
    assert m.request_throughput.point == pytest.approx(1.0)
    for rate, true in ((m.output_throughput, 10.0), (m.request_throughput, 1.0)):
        assert rate.interval is not None
        assert rate.interval[0] <= true <= rate.interval[1]
    assert m.ttft.p50 == pytest.approx(0.2)
    assert m.e2e.p99 == pytest.approx(1.0)
    assert m.tpot.mean == pytest.approx(0.8 / 9)
    assert m.itl.n == 900
    assert m.itl.p50 == pytest.approx(0.05)
    assert m.token_disagreement == 0.0
    assert not m.token_disagreement_flagged


def test_failed_and_warmup_requests_are_excluded() -> None:
    run = sequential_run(20)
    run.records.append(request(90, sent=-5.0, chunks=(-4.0, -3.0), warmup=True))
    run.records.append(
        RequestRecord(
            index=91,
            sent_at=3.0,
            prompt_tokens_sent=10,
            max_tokens=16,
            status=500,
            last_byte_at=3.1,
        )
    )
    run.records.append(
        RequestRecord(
            index=92, sent_at=4.0, prompt_tokens_sent=10, max_tokens=16, error="connection reset"
        )
    )
    run.records.append(request(93, sent=5.0, chunks=(), usage=0))  # 200 but no text
    m = run_metrics(run)
    assert (m.completed, m.failed) == (20, 3)
    assert m.ttft.n == 20
    assert m.output_tokens == 200
    assert any("no generated text" in note for note in m.notes)


def test_goodput_counts_only_requests_meeting_every_bound() -> None:
    run = LoadRun(
        records=[
            request(0, chunks=(0.5, 0.6, 0.8)),  # ttft 0.5, tpot 0.15, e2e 0.8
            request(1, chunks=(1.5, 1.6, 1.8)),  # ttft 1.5: misses the TTFT bound
            request(2, chunks=(0.2, 1.2, 2.2)),  # tpot 1.0, e2e 2.2: misses TPOT and E2E
            request(3, chunks=(0.3,), usage=1),  # one token: TPOT counts as 0, as vLLM
        ],
        started_at=0.0,
        ended_at=4.0,
    )
    m = run_metrics(run)
    slo = SLO(ttft_s=1.0, tpot_s=0.2, e2e_s=2.0)
    assert [slo.met_by(r) for r in run.records] == [True, False, False, True]
    assert m.goodput(slo).point == pytest.approx(2 / 4.0)
    assert m.goodput(SLO()).point == pytest.approx(4 / 4.0)
    assert m.goodput(SLO(e2e_s=0.8)).point == pytest.approx(2 / 4.0)  # bound is inclusive
    assert m.goodput(slo).unit == "req/s"


@pytest.mark.parametrize(("client", "flagged"), [(100, False), (99, False), (98, True)])
def test_token_disagreement_is_flagged_above_one_percent(client: int, flagged: bool) -> None:
    r = request(chunks=tuple(0.1 + 0.01 * k for k in range(client)), usage=100)
    m = run_metrics(LoadRun(records=[r], started_at=0.0, ended_at=2.0))
    assert m.token_disagreement == pytest.approx((100 - client) / 100)
    assert m.token_disagreement_flagged is flagged
    assert any("disagree" in note for note in m.notes) is flagged
    assert m.output_tokens == 100  # the server's count is the one reported


def test_output_throughput_counts_server_tokens_without_usage_falls_back() -> None:
    run = LoadRun(records=[request(0, usage=None)], started_at=0.0, ended_at=1.0)
    m = run_metrics(run)
    assert m.output_tokens == 3
    assert m.token_disagreement is None
    assert any("without server usage" in note for note in m.notes)


def test_a_short_run_has_no_throughput_interval() -> None:
    m = run_metrics(LoadRun(records=[request()], started_at=0.0, ended_at=0.8))
    assert m.output_throughput.interval is None
    assert "too short" in m.output_throughput.note
    assert m.ttft.p50_ci is None


def test_to_dict_is_json_with_units_n_and_intervals() -> None:
    d = json.loads(json.dumps(run_metrics(sequential_run()).to_dict()))
    assert d["ttft"]["unit"] == "s"
    assert d["ttft"]["n"] == 100
    assert len(d["ttft"]["p50"]["interval"]) == 2
    assert d["output_throughput"]["unit"] == "tok/s"
    assert len(d["output_throughput"]["interval"]) == 2
    assert d["completed"] == 100


def test_a_run_decided_at_a_look_times_its_first_requests_and_rates_its_window() -> None:
    """After a look, the requests sent past it were served inside the look's window:
    their tokens before its end count in the rates, their timings in no percentile."""
    looked = [request(0, 0.0, (0.5, 0.6, 0.8)), request(1, 0.1, (0.6, 0.9, 1.0))]
    past = [
        request(2, 0.3, (0.7, 0.95, 1.3)),  # two tokens inside the window, one after
        request(3, 0.9, (1.2, 1.4, 1.5)),  # wholly after the window's end
    ]
    run = LoadRun(records=looked + past, started_at=0.0, ended_at=1.0, look=2)
    assert run.measured == looked
    assert run.past_look == past
    m = run_metrics(run)
    assert m.completed == 2
    assert m.ttft.n == 2  # the look's two requests only
    assert m.output_tokens == 6
    assert m.output_throughput.point == pytest.approx((6 + 2) / 1.0)
    assert m.request_throughput.point == pytest.approx(2 / 1.0)  # request 2 ended at 1.3
    assert m.goodput(SLO(ttft_s=10.0)).point == pytest.approx(2 / 1.0)


def test_a_run_without_a_look_has_nothing_past_it() -> None:
    run = LoadRun(records=[request(0)], started_at=0.0, ended_at=0.8)
    assert run.past_look == []
    assert run_metrics(run).output_throughput.point == pytest.approx(3 / 0.8)


def test_peak_in_flight_counts_overlapping_requests() -> None:
    rs = [
        request(0, sent=0.0, chunks=(0.5, 1.0)),
        request(1, sent=0.2, chunks=(0.7, 1.5)),
        request(2, sent=1.0, chunks=(1.2, 2.0)),  # sent as request 0 ends: not overlapping
        request(3, sent=1.1, chunks=(1.3, 1.4)),
    ]
    assert peak_in_flight(rs) == 3  # requests 1, 2 and 3 at 1.3 s
    assert peak_in_flight([]) == 0


def test_lockstep_waves_get_an_interval_of_one_step_not_zero() -> None:
    # 4 streams in lockstep, waves of 10 steps of 0.1 s: every window of one wave holds
    # the same 40 tokens, yet a window's count is only known to within a step of 4.
    rs = [
        request(w * 4 + i, sent=w * 1.0, chunks=tuple(w + 0.05 + 0.1 * s for s in range(10)),
                usage=10)
        for w in range(6) for i in range(4)
    ]  # fmt: skip
    m = run_metrics(LoadRun(records=rs, started_at=0.0, ended_at=6.0, concurrency=4), windows=6)
    assert m.output_throughput.point == pytest.approx(40.0)
    assert m.output_throughput.interval is not None
    low, high = m.output_throughput.interval
    assert low < 40.0 < high
    assert "floored" in m.output_throughput.note
