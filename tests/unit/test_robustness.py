"""Robustness checks against a stub that behaves, and against stubs that misbehave:
a server that never aborts hung-up streams, one that answers 500 under a burst."""

from __future__ import annotations

import dataclasses

import pytest

from pytest_llmserve.checklist import burst as bu
from pytest_llmserve.checklist import disconnect as dc
from pytest_llmserve.checklist import robustness as rb
from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.frameworks.openai_compat import OpenAICompatible
from pytest_llmserve.frameworks.vllm import VLLM
from tests.stubs.misbehaving import MODEL, Faults, serve


def at(url: str) -> Endpoint:
    return Endpoint(url, MODEL, VLLM())


def outcomes(verdicts: list[rb.Verdict]) -> dict[str, str]:
    return {v.metric: v.outcome for v in verdicts}


def storm(url: str, **kw: object) -> dc.DisconnectResult:
    args: dict[str, object] = {"streams": 8, "max_tokens": 500, "after_chunks": 3,
                               "drain_max_s": 2.0, "first_chunk_timeout_s": 10.0}  # fmt: skip
    args.update(kw)
    return dc.disconnect_storm(at(url), **args)  # type: ignore[arg-type]


def test_aborting_server_drains_and_counts_aborts() -> None:
    with serve() as url:
        res = storm(url)
    assert res.during is not None
    assert res.during.running == 8  # the streams were in flight when they hung up
    assert all(3 <= n < 500 for n in res.received)
    assert res.ran_out == 0
    assert res.drain_s is not None
    assert res.drain_s < 2.0
    assert res.finished_delta() == {"abort": 8.0, "length": 0.0}
    assert res.settled
    assert res.generated is not None
    assert res.generated_after is not None
    assert 0 <= res.generated_after <= 8 * 4  # the token each was writing, a few in flight
    got = outcomes(dc.disconnect_verdicts(res, 0.02))
    assert got["generated_after_hangup"] == "pass"
    assert set(got.values()) == {"pass"}


def test_server_that_generates_for_gone_clients_fails() -> None:
    with serve(Faults(ignore_hangup=True, token_s=0.01)) as url:
        res = storm(url, max_tokens=100, drain_max_s=5.0)
    assert res.ran_out == 0
    verdicts = dc.disconnect_verdicts(res, 0.02)
    got = outcomes(verdicts)
    assert got["generated_after_hangup"] == "fail"
    assert got["finished_length"] == "fail"
    reason = next(v.reason for v in verdicts if v.metric == "generated_after_hangup")
    assert f"generated {res.generated_after:g} tokens after 8 streams hung up" in reason


def test_slow_metrics_under_load_does_not_hold_the_streams_open() -> None:
    # The CI failure this guards against: a /metrics read that took 30-40 s held the
    # streams open until they had all but finished, and a prompt abort read as a failure.
    with serve(Faults(metrics_busy_s=dc.DURING_WAIT_S + 2.0)) as url:
        res = storm(url)
    assert res.during is None
    assert res.held_s < dc.DURING_WAIT_S + 1.5
    verdicts = dc.disconnect_verdicts(res, 0.02)
    assert set(outcomes(verdicts).values()) == {"pass"}
    assert "running unknown of 8 at the hang-up" in verdicts[-2].reason


def test_streams_that_end_before_the_hang_up_are_inconclusive() -> None:
    with serve() as url:
        res = storm(url, max_tokens=3)
    assert res.ran_out == 8
    verdicts = dc.disconnect_verdicts(res, 0.02)
    got = outcomes(verdicts)
    assert got["generated_after_hangup"] == "inconclusive"
    assert "finished_length" not in got  # they finished as length, rightly
    assert "8 of 8 streams reached their 3 tokens before the hang-up" in verdicts[2].reason


def test_server_that_never_aborts_fails_the_drain_check() -> None:
    with serve(Faults(leak=True)) as url:
        res = storm(url, drain_max_s=1.0)
    assert res.drain_s is None
    verdicts = dc.disconnect_verdicts(res, 0.02)
    got = outcomes(verdicts)
    assert got["drain_s"] == "fail"
    assert got["kv_usage_leak"] == "fail"  # the stub holds 1% of KV per stuck request
    assert "did not abort them" in next(v.reason for v in verdicts if v.metric == "drain_s")


def test_hung_up_streams_that_finished_as_length_fail() -> None:
    res = dc.DisconnectResult(
        streams=4, received=[3] * 4,
        before=rb.Gauges(0, 0, 0.0, {"length": 10}), during=rb.Gauges(4, 0, 0.1),
        after=rb.Gauges(0, 0, 0.0, {"length": 14}), drain_s=3.0, drain_max_s=15.0,
        finished_label="finished_reason", framework="vllm",
    )  # fmt: skip
    assert outcomes(dc.disconnect_verdicts(res, 0.02))["finished_length"] == "fail"


class _NoReasons(VLLM):
    """vLLM's gauges, but metrics that do not say why a request finished."""

    name = "no-reasons"
    finished_label = None


def test_without_a_finished_label_the_token_counter_decides_and_else_not_measurable() -> None:
    with serve() as url:
        res = dc.disconnect_storm(Endpoint(url, MODEL, _NoReasons()), streams=4, max_tokens=500,
                                  after_chunks=3, drain_max_s=2.0)  # fmt: skip
    assert res.finished_label is None
    assert set(res.before.finished) <= {""}  # every finished request, not split by reason
    got = outcomes(dc.disconnect_verdicts(res, 0.02))
    # tokens generated after the hang-up answer "did it stop?": no verdict on the reason
    assert got["generated_after_hangup"] == "pass"
    assert got["drain_s"] == "pass"
    assert "finished_length" not in got
    # without that counter either, whether the streams were aborted cannot be told
    blind = dataclasses.replace(
        res,
        before=dataclasses.replace(res.before, generated=None),
        after=dataclasses.replace(res.after, generated=None),
    )
    verdicts = dc.disconnect_verdicts(blind, 0.02)
    assert outcomes(verdicts)["finished_length"] == "inconclusive"
    reason = next(v.reason for v in verdicts if v.metric == "finished_length")
    assert "not measurable: no-reasons's metrics do not say why a request finished" in reason


def _gauges(generated: float) -> rb.Gauges:
    return rb.Gauges(0, 0, 0.0, {"length": 0}, generated)


@pytest.mark.parametrize(
    ("read", "generated", "outcome"),
    [
        (8 * 400, 8 * 400 + 30, "pass"),  # held long, aborted at once: read, not generated after
        (8 * 3, 8 * 3 + 8 * 250, "fail"),  # half of the 8 * 497 left, generated for nobody
        (8 * 3, 8 * 3 + 8 * 240, "pass"),
    ],
)
def test_tokens_generated_after_the_hang_up_are_judged_not_the_total(
    read: int, generated: int, outcome: str
) -> None:
    res = dc.DisconnectResult(
        streams=8, received=[read // 8] * 8, before=_gauges(100), during=rb.Gauges(8, 0, 0.1),
        after=_gauges(100 + generated), drain_s=3.0, drain_max_s=15.0, max_tokens=500,
    )  # fmt: skip
    verdict = next(v for v in dc.disconnect_verdicts(res, 0.02)
                   if v.metric == "generated_after_hangup")  # fmt: skip
    assert verdict.outcome == outcome
    assert verdict.point == generated - read


def test_a_busy_server_makes_the_disconnect_check_inconclusive() -> None:
    with serve(Faults(leak=True)) as url:
        storm(url, drain_max_s=0.5)  # leaves 8 requests "running" for ever
        before, settled = rb.settle(at(url), max_s=0.5)
        res = storm(url, drain_max_s=0.5, settle_max_s=0.5)
    assert before.running == 8
    assert not settled
    assert not res.settled
    verdicts = dc.disconnect_verdicts(res, 0.02)
    assert [v.outcome for v in verdicts] == ["inconclusive"]
    assert "not idle before the hang-ups (running=8" in verdicts[0].reason


def test_burst_on_a_queueing_server_passes_with_counts() -> None:
    with serve(Faults(token_s=0.01)) as url:
        res = bu.burst(at(url), requests=64, max_tokens=4, burst_max_s=30)
    assert res.completed == 64
    assert res.refused == 0
    assert res.bad == 0
    assert res.polls >= 1
    assert set(outcomes(bu.burst_verdicts(res)).values()) == {"pass"}


def test_burst_answered_with_500_fails() -> None:
    with serve(Faults(fail_over=4, token_s=0.02)) as url:
        res = bu.burst(at(url), requests=32, max_tokens=4, burst_max_s=30)
    assert res.statuses.get(500, 0) > 0
    verdicts = bu.burst_verdicts(res)
    assert outcomes(verdicts)["burst_bad"] == "fail"
    assert "server error(s) (5xx)" in verdicts[0].reason


def test_refusals_429_503_count_as_clean() -> None:
    res = bu.BurstResult(10, {200: 6, 429: 3, 503: 1}, [], 2.0, 4, 6, 60.0)
    assert (res.completed, res.refused, res.bad) == (6, 4, 0)
    assert outcomes(bu.burst_verdicts(res))["burst_bad"] == "pass"


def test_burst_past_its_bound_fails() -> None:
    res = bu.BurstResult(10, {200: 10}, [], 90.0, 4, 6, 60.0)
    assert outcomes(bu.burst_verdicts(res))["burst_wall_s"] == "fail"


def test_unknown_framework_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="'openai-compatible' \\(known: llamacpp, sglang, vllm\\)"):
        rb.read_gauges(Endpoint("http://127.0.0.1:9", MODEL, OpenAICompatible()))
