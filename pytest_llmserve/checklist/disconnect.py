"""Clients that hang up mid-stream: the server must abort them, not serve the void.

Streams ask for many tokens (ignoring EOS), read a few events and hang up at once;
the server's gauges must drain, its KV use return to idle, its token counter show
it stopped generating, and none of them finish as ``length``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx

from pytest_llmserve.checklist.gate import Verdict
from pytest_llmserve.checklist.robustness import (
    POLL_S,
    SETTLE_MAX_S,
    Gauges,
    good_request,
    read_gauges,
    served_after,
    settle,
    verdict,
)


@dataclass
class DisconnectResult:
    """What the server did about ``streams`` clients that hung up after a few chunks."""

    streams: int
    chunks_seen: list[int]  # events each stream read before hanging up
    before: Gauges
    during: Gauges  # just before the hang-ups: proves the requests were in flight
    after: Gauges  # at the end of the drain wait
    drain_s: float | None  # hang-up → running and waiting both 0; None: not within the bound
    drain_max_s: float
    max_tokens: int = 0  # each stream asked for this many tokens, ignoring EOS
    held_s: float = 0.0  # first stream sent → hang-up
    settled: bool = True  # the server was idle, its counters still, before the streams
    good_request: str | None = None  # None: a request after it succeeded; else what went wrong

    def finished_delta(self) -> dict[str, float]:
        keys = set(self.before.finished) | set(self.after.finished)
        return {
            k: self.after.finished.get(k, 0.0) - self.before.finished.get(k, 0.0)
            for k in sorted(keys)
        }

    @property
    def generated(self) -> float | None:
        """Tokens the server generated for the streams, from its own counter."""
        if self.before.generated is None or self.after.generated is None:
            return None
        return self.after.generated - self.before.generated


def disconnect_storm(
    base_url: str,
    model: str,
    framework: str,
    headers: dict[str, str],
    streams: int = 16,
    max_tokens: int = 512,
    after_chunks: int = 3,
    drain_max_s: float = 15.0,
    first_chunk_timeout_s: float = 120.0,
    settle_max_s: float = SETTLE_MAX_S,
) -> DisconnectResult:
    """Open ``streams`` long streams, hang up after ``after_chunks`` events, watch the drain."""
    before, settled = settle(base_url, framework, headers, settle_max_s)
    body = {
        "model": model, "prompt": "Tell a very long story about a lighthouse keeper.",
        "max_tokens": max_tokens, "temperature": 0, "stream": True, "ignore_eos": True,
    }  # fmt: skip
    sent = time.monotonic()
    chunks, during = asyncio.run(
        _open_and_hang_up(base_url, headers, body, streams, after_chunks, first_chunk_timeout_s,
                          lambda: read_gauges(base_url, framework, headers))
    )  # fmt: skip
    hung_up = time.monotonic()
    drain_s: float | None = None
    after = read_gauges(base_url, framework, headers)
    while True:
        if after.idle:
            drain_s = time.monotonic() - hung_up
            break
        if time.monotonic() - hung_up > drain_max_s:
            break
        time.sleep(POLL_S)
        after = read_gauges(base_url, framework, headers)
    if drain_s is not None:
        # Counters move when the engine finishes the abort: read them once they are still.
        after, _ = settle(base_url, framework, headers, max_s=5.0)
    result = DisconnectResult(
        streams, chunks, before, during, after, drain_s, drain_max_s, max_tokens,
        held_s=hung_up - sent, settled=settled,
    )  # fmt: skip
    result.good_request = good_request(base_url, model, headers)
    return result


async def _open_and_hang_up(
    base_url: str,
    headers: dict[str, str],
    body: dict[str, Any],
    streams: int,
    after_chunks: int,
    timeout_s: float,
    gauges: Any,
) -> tuple[list[int], Gauges]:
    """Every stream reads ``after_chunks`` events, waits for the rest, then all hang up at once."""
    all_reading = asyncio.Event()
    hang_up = asyncio.Event()
    counts = [0] * streams
    reached = 0

    async def one(i: int) -> None:
        nonlocal reached
        # A client per stream: closing it closes its socket, which is what the server sees.
        client = httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=timeout_s, trust_env=False
        )
        async with client as c, c.stream("POST", "/v1/completions", json=body) as r:
            if r.status_code != 200:
                await r.aread()
                raise RuntimeError(f"stream {i}: HTTP {r.status_code}: {r.text[:200]}")
            # Read by hand and keep the iterator: an abandoned async generator gets closed
            # by the loop, which would close the response early.
            lines = r.aiter_lines()
            while counts[i] < after_chunks:
                line = await anext(lines)
                if line.startswith("data:") and "[DONE]" not in line:
                    counts[i] += 1
            reached += 1
            if reached == streams:
                all_reading.set()
            # Hold the unread stream open; leaving both contexts then drops the
            # unfinished response and closes its socket: the server sees the hang-up.
            await hang_up.wait()

    tasks = [asyncio.create_task(one(i)) for i in range(streams)]
    waiter = asyncio.create_task(all_reading.wait())
    try:
        done, _ = await asyncio.wait(
            {waiter, *tasks}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        # A task finishing first means it failed (they wait for hang_up otherwise).
        for t in tasks:
            if t in done and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
        if not all_reading.is_set():
            await asyncio.wait_for(all_reading.wait(), timeout_s)
        during = await asyncio.to_thread(gauges)
    finally:
        hang_up.set()
        waiter.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return counts, during


def disconnect_verdicts(res: DisconnectResult, kv_tolerance: float) -> list[Verdict]:
    n = res.streams
    if not res.settled:
        # Counter deltas would mix someone else's requests with ours: no verdict on them.
        b = res.before
        return [verdict("inconclusive", f"the server was not idle before the hang-ups (running="
                   f"{b.running}, waiting={b.waiting}, or its counters still moving): "
                   "another client is using it",
                   "settled", 0.0, None)]  # fmt: skip
    out = []
    if res.drain_s is not None:
        out.append(verdict("pass", f"{n} hung-up streams drained: running and waiting 0 after "
                      f"{res.drain_s:.1f} s (bound {res.drain_max_s:g} s)",
                      "drain_s", res.drain_max_s, res.drain_s))  # fmt: skip
    else:
        out.append(verdict("fail", f"{n} streams hung up mid-answer but the server still has "
                      f"running={res.after.running}, waiting={res.after.waiting} after "
                      f"{res.drain_max_s:g} s: it did not abort them",
                      "drain_s", res.drain_max_s, None))  # fmt: skip
    kv0, kv1 = res.before.kv_usage, res.after.kv_usage
    if kv0 is not None and kv1 is not None:
        leaked = kv1 - kv0
        out.append(verdict("fail" if leaked > kv_tolerance else "pass",
                      f"KV cache use {kv0:.3f} idle before, {kv1:.3f} after the hang-ups "
                      f"(tolerance +{kv_tolerance:g})",
                      "kv_usage_leak", kv_tolerance, leaked))  # fmt: skip
    # Run to the end, each stream would generate max_tokens (ignore_eos) and finish "length".
    full = n * res.max_tokens
    gen = res.generated
    if gen is not None and full:
        out.append(verdict("fail" if gen >= full / 2 else "pass",
                      f"the server generated {gen:g} tokens for {n} streams hung up after "
                      f"{res.held_s:.1f} s (run to the end: {full}; bound < {full / 2:g})",
                      "generated_after_hangup", full / 2, gen))  # fmt: skip
    finished = res.finished_delta()
    length = finished.get("length", 0.0)
    out.append(verdict("fail" if length > 0 else "pass",
                  f"request_success by finished_reason after the hang-ups: "
                  f"{_fmt(finished) or 'unchanged'} (hung-up streams must not finish as length; "
                  f"running {_g(res.during.running)} of {n} at the hang-up)",
                  "finished_length", 0.0, length))  # fmt: skip
    out.append(served_after("the hang-ups", res.good_request))
    return out


def _g(value: float | None) -> str:
    return "unknown" if value is None else f"{value:g}"


def _fmt(values: dict[str, float]) -> str:
    return ", ".join(f"{k or '-'} +{v:g}" for k, v in values.items() if v)
