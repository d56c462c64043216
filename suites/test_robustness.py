"""Robustness: clients that hang up mid-stream are aborted, and a burst far past
capacity queues or is refused cleanly, never a 5xx, and the server serves on.

Shapes and bounds come from the target's ``checks.robustness`` (defaults where it
is absent: 16 streams of 512 tokens hung up after 3 events, drained within 15 s;
256 requests at once, twice the 128 sequences vLLM CPU runs at once, all ended
within 180 s). The server's own gauges are the evidence: running and waiting
requests and generated tokens; KV cache use and requests by finished reason where
its framework's metrics have them (llama.cpp's have neither: those figures are
"not measurable" there).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_llmserve.checklist import burst as bu
from pytest_llmserve.checklist import disconnect as dc
from pytest_llmserve.checklist import robustness as rb
from pytest_llmserve.checklist.results import Figure, TargetResults
from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.profile.model import Target
from pytest_llmserve.profile.production import Robustness, robustness_checks

Judge = Callable[..., None]


@pytest.fixture
def spec(llm_target: Target, llm_endpoint: Endpoint) -> Robustness:
    try:
        rb.signal_names(llm_endpoint.framework)
    except ValueError as exc:
        pytest.skip(str(exc))
    return robustness_checks(llm_target.checks, f"target {llm_target.name}")


def _finished(res: dc.DisconnectResult, counters: tuple[str, ...], reason: str) -> Figure:
    """Requests that finished for ``reason`` while the streams hung up (a server figure)."""
    metric = f"disconnect_finished_{reason}"
    if res.finished_label is None or not counters:
        why = f"not measurable: {res.framework}'s metrics do not say why a request finished"
        return Figure(metric, None, "requests", note=why)
    moved = f"{counters[0]}{{{res.finished_label}={reason}}} moved by"
    return Figure(metric, res.finished_delta().get(reason, 0.0), "requests", definition=moved)


def test_disconnected_streams_are_aborted(
    llm_endpoint: Endpoint, spec: Robustness, llm_results: TargetResults, llm_judge: Judge
) -> None:
    res = dc.disconnect_storm(
        llm_endpoint, spec.disconnect_streams, spec.disconnect_max_tokens,
        spec.disconnect_after_chunks, spec.drain_max_s,
    )  # fmt: skip
    names = rb.signal_names(llm_endpoint.framework)
    metrics = rb.metrics_path(llm_endpoint.framework)
    llm_results.add(
        Figure("disconnect_drain_s", res.drain_s, "s", res.streams, better="lower",
               definition=f"{res.streams} streams hung up after {spec.disconnect_after_chunks} "
               "events -> running and waiting requests both 0",
               note=None if res.drain_s is not None else f"not within {spec.drain_max_s:g} s"),
        Figure("disconnect_running_before_hangup", res.during.running if res.during else None,
               "requests", definition=f"{res.framework} running requests just before the hang-ups",
               note=None if res.during else f"no {metrics} answer in {dc.DURING_WAIT_S:g} s"),
        _finished(res, names["finished"], "abort"),
        _finished(res, names["finished"], "length"),
        Figure("disconnect_generated_after_hangup", res.generated_after, "tokens", better="lower",
               definition=f"{names['generated'][0]} moved by, less the {sum(res.received)} "
               f"tokens the {res.streams} clients read before hanging up after {res.held_s:.1f} s"),
    )  # fmt: skip
    llm_judge(*dc.disconnect_verdicts(res, spec.kv_tolerance))


def test_burst_far_above_capacity_queues_or_refuses_cleanly(
    llm_endpoint: Endpoint, spec: Robustness, llm_results: TargetResults, llm_judge: Judge
) -> None:
    res = bu.burst(llm_endpoint, spec.burst_requests, spec.burst_max_tokens, spec.burst_max_s)
    at = f"{res.requests} requests of {spec.burst_max_tokens} tokens sent at once"
    llm_results.add(
        Figure("burst_completed", res.completed, "requests", res.requests, definition=at),
        Figure("burst_refused", res.refused, "requests", res.requests,
               definition=f"{at}: answered 429/503"),
        Figure("burst_wall_s", res.wall_s, "s", res.requests, better="lower",
               definition=f"{at}: first sent -> last answered"),
        Figure("burst_max_waiting", res.max_waiting if res.polls > 1 else None, "requests",
               definition=f"{at}: peak waiting requests (server gauge, polled every 0.2 s)",
               note=None if res.polls > 1 else f"{res.polls} {res.metrics_path} read(s) answered"),
    )  # fmt: skip
    llm_judge(*bu.burst_verdicts(res))
