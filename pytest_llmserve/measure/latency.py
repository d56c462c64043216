"""The metric definitions, in one place, as vLLM's benchmark defines them.

Reference: ``vllm/benchmarks/serve.py`` (``calculate_metrics``) and
``vllm/benchmarks/lib/endpoint_request_func.py`` (vLLM 0.32). Matching it means a
figure from this plugin can be put next to a ``vllm bench serve`` figure. Where we
differ, it is on purpose and said where the metric is defined:

- Times are seconds (vLLM prints milliseconds); the unit travels with every figure.
- "First token" is the first chunk that carried generated text; vLLM takes the first
  chunk with a ``choices`` entry, even with empty text. An empty first chunk is not
  a token the user sees.
- E2E ends at the last byte (after the usage chunk and ``[DONE]``); vLLM stops at
  the last ``choices`` chunk. The client is only done when the stream is closed; the
  gap is normally well under a millisecond.
- A request with no generated text is a failure in both; empty metrics give n=0
  and no figure (vLLM reports 0).
- Every throughput and every percentile carries a confidence interval (``stats``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from pytest_llmserve.load.records import LoadRun, RequestRecord
from pytest_llmserve.measure.stats import Rate, Summary, rate_interval, summarize

TOKEN_DISAGREEMENT_LIMIT = 0.01  # server usage vs client count, as a fraction of usage


def ttft(r: RequestRecord) -> float | None:
    """Time to first token: sent_at -> first chunk carrying generated text (s)."""
    return None if r.first_token_at is None else r.first_token_at - r.sent_at


def e2e(r: RequestRecord) -> float | None:
    """End-to-end latency: sent_at -> last byte of the response (s)."""
    return None if r.last_byte_at is None else r.last_byte_at - r.sent_at


def tpot(r: RequestRecord) -> float | None:
    """Time per output token after the first: (E2E - TTFT) / (output tokens - 1) (s).

    Defined only with more than one output token, as in vLLM. Output tokens are the
    server's usage count when it gave one, else the client's count (vLLM falls back
    to re-tokenizing the text).
    """
    first, total = ttft(r), e2e(r)
    if first is None or total is None or r.output_tokens <= 1:
        return None
    return (total - first) / (r.output_tokens - 1)


def itls(r: RequestRecord) -> list[float]:
    """Inter-token latencies: each gap between consecutive text-bearing chunks (s).

    Per chunk, not per token, as in vLLM: a chunk bundling several tokens is one gap.
    The run's ITL distribution pools these gaps over all requests.
    """
    return [b - a for a, b in pairwise(r.chunk_times)]


@dataclass(frozen=True)
class SLO:
    """Per-request service-level bounds for goodput (None: no bound), in seconds."""

    ttft_s: float | None = None
    tpot_s: float | None = None
    e2e_s: float | None = None

    def met_by(self, r: RequestRecord) -> bool:
        """Whether ``r`` meets every bound (inclusive, as vLLM's ``s >= r``).

        A request with one output token has TPOT 0 here, as vLLM counts it for goodput.
        """
        checks = ((self.ttft_s, ttft(r)), (self.tpot_s, tpot(r) or 0.0), (self.e2e_s, e2e(r)))
        return all(
            bound is None or (value is not None and value <= bound) for bound, value in checks
        )


@dataclass
class RunMetrics:
    """A load run's figures over its measured window (warm-up excluded, failures counted)."""

    completed: int
    failed: int
    window_s: float
    output_tokens: int  # server usage (client count for a request without usage)
    client_output_tokens: int
    prompt_tokens: int  # server usage, else the tokens the workload sent
    output_throughput: Rate
    total_throughput: Rate
    request_throughput: Rate
    ttft: Summary
    tpot: Summary
    itl: Summary
    e2e: Summary
    token_disagreement: float | None  # sum |usage - client| / sum usage
    token_disagreement_flagged: bool
    max_loop_lag_s: float
    notes: list[str] = field(default_factory=list)
    _done: list[RequestRecord] = field(default_factory=list, repr=False)  # ended in the window
    _rate_args: dict[str, Any] = field(default_factory=dict, repr=False)

    def goodput(self, slo: SLO) -> Rate:
        """Requests/s that met every bound of ``slo``, over the same window as req/s.

        vLLM's request_goodput: good completed requests / duration. Ours has an interval.
        """
        events = [(_end(r), 1.0) for r in self._done if slo.met_by(r)]
        return rate_interval(events, name="goodput", unit="req/s", **self._rate_args)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: each figure with its unit, n and interval."""
        return {
            "completed": self.completed,
            "failed": self.failed,
            "window_s": self.window_s,
            "output_tokens": self.output_tokens,
            "client_output_tokens": self.client_output_tokens,
            "prompt_tokens": self.prompt_tokens,
            "token_disagreement": self.token_disagreement,
            "token_disagreement_flagged": self.token_disagreement_flagged,
            "max_loop_lag_s": self.max_loop_lag_s,
            **{
                rate.name: rate.to_dict()
                for rate in (self.output_throughput, self.total_throughput, self.request_throughput)
            },
            **{s.name: s.to_dict() for s in (self.ttft, self.tpot, self.itl, self.e2e)},
            "notes": list(self.notes),
        }


def run_metrics(
    run: LoadRun, level: float = 0.95, resamples: int = 1000, seed: int = 0, windows: int = 10
) -> RunMetrics:
    """Every figure of ``run``: measured requests only; failures counted, not timed.

    A request counts as completed when it got HTTP 200, a last byte and generated
    text (vLLM marks a stream without a token chunk as failed).
    """
    measured = run.measured
    done = [r for r in measured if r.ok and r.first_token_at is not None]
    notes = list(run.notes)
    no_text = sum(1 for r in measured if r.ok and r.first_token_at is None)
    if no_text:
        notes.append(f"{no_text} request(s) returned no generated text: counted as failed")

    def summary(values: list[float], name: str) -> Summary:
        return summarize(values, name, "s", level=level, resamples=resamples, seed=seed)

    e2e_s = summary([v for r in done if (v := e2e(r)) is not None], "e2e")
    itl_s = summary([g for r in done for g in itls(r)], "itl")
    # Windows shorter than a typical request give correlated window rates.
    # Rates count what arrived in the window from every measured request: after a
    # look, the requests sent past it were served inside the window too.
    in_window = done + [r for r in run.past_look if r.ok and r.first_token_at is not None]
    rate_args: dict[str, Any] = {
        "start": run.started_at,
        "end": run.ended_at,
        "windows": windows,
        "level": level,
        "min_window_s": e2e_s.p50 or 0.0,
        # A step yields at most a token (and a completion) per request in flight.
        "resolution": float(peak_in_flight(in_window)),
    }
    end = run.ended_at
    out_events = [ev for r in in_window for ev in _output_events(r) if ev[0] <= end]
    prompt_events = [
        (t, float(_prompt_tokens(r)))
        for r in in_window
        if (t := r.first_token_at or _end(r)) <= end
    ]
    with_usage = [r for r in done if r.usage_output_tokens is not None]
    usage_total = sum(r.usage_output_tokens or 0 for r in with_usage)
    disagreement = None
    if run.uncounted:
        notes.append(f"server usage not cross-checked with the client's count: {run.uncounted}")
    elif usage_total > 0:
        diff = sum(abs((r.usage_output_tokens or 0) - r.client_output_tokens) for r in with_usage)
        disagreement = diff / usage_total
    flagged = disagreement is not None and disagreement > TOKEN_DISAGREEMENT_LIMIT
    if flagged:
        notes.append(
            f"server usage and client token counts disagree by {disagreement:.1%} "
            f"(limit {TOKEN_DISAGREEMENT_LIMIT:.0%})"
        )
    if len(with_usage) < len(done):
        notes.append(
            f"{len(done) - len(with_usage)} request(s) without server usage: "
            "their output tokens are the client's count"
        )
    if itl_s.p50 is not None and run.max_loop_lag_s > itl_s.p50:
        notes.append(
            f"client event loop lagged {run.max_loop_lag_s:.3g} s, more than the "
            f"median ITL {itl_s.p50:.3g} s: latencies include client delay"
        )
    return RunMetrics(
        completed=len(done),
        failed=len(measured) - len(done),
        window_s=run.wall_s,
        output_tokens=sum(r.output_tokens for r in done),
        client_output_tokens=sum(r.client_output_tokens for r in done),
        prompt_tokens=sum(_prompt_tokens(r) for r in done),
        output_throughput=rate_interval(
            out_events, name="output_throughput", unit="tok/s", **rate_args
        ),
        total_throughput=rate_interval(
            out_events + prompt_events, name="total_throughput", unit="tok/s", **rate_args
        ),
        request_throughput=rate_interval(
            [(t, 1.0) for r in in_window if (t := _end(r)) <= end],
            name="request_throughput",
            unit="req/s",
            **rate_args,
        ),
        ttft=summary([v for r in done if (v := ttft(r)) is not None], "ttft"),
        tpot=summary([v for r in done if (v := tpot(r)) is not None], "tpot"),
        itl=itl_s,
        e2e=e2e_s,
        token_disagreement=disagreement,
        token_disagreement_flagged=flagged,
        max_loop_lag_s=run.max_loop_lag_s,
        notes=notes,
        _done=[r for r in in_window if _end(r) <= end],
        _rate_args=rate_args,
    )


def _end(r: RequestRecord) -> float:
    return r.last_byte_at if r.last_byte_at is not None else r.sent_at


def _prompt_tokens(r: RequestRecord) -> int:
    return r.usage_prompt_tokens if r.usage_prompt_tokens is not None else r.prompt_tokens_sent


def peak_in_flight(records: Sequence[RequestRecord]) -> int:
    """The most requests that were between send and last byte at the same time."""
    edges = sorted(
        [(r.sent_at, 1) for r in records] + [(_end(r), -1) for r in records],
        key=lambda e: (e[0], e[1]),  # an end before a send at the same instant
    )
    peak = live = 0
    for _, step in edges:
        live += step
        peak = max(peak, live)
    return peak


def _output_events(r: RequestRecord) -> list[tuple[float, float]]:
    """When the request's output tokens arrived: the server's count spread over the
    chunks in proportion to the client's per-chunk counts, so totals are the server's
    and the time profile is the client's (all at the last byte when no chunk was counted).
    """
    client = r.client_output_tokens
    if client <= 0 or len(r.chunk_times) != len(r.chunk_tokens):
        return [(_end(r), float(r.output_tokens))]
    scale = r.output_tokens / client
    return [(t, n * scale) for t, n in zip(r.chunk_times, r.chunk_tokens, strict=True)]
