"""Clients that hang up mid-stream: the server must abort them, not serve the void.

Streams ask for many tokens (ignoring EOS) and read every event until they all
hang up at once, a few events in; the server's gauges must drain, its KV use
return to idle, its token counter show it stopped generating, and none of them
finish as ``length`` (where its metrics say why a request finished:
``Framework.finished_label``).

The clients count what they read up to the hang-up, so "stopped generating" is
judged on the tokens generated *after* it, whatever the hold took: on a starved
machine the first events (or a metrics read) can come late, and a check on
the total would fail a server that aborted at once. A metrics read never
holds the streams open: past ``DURING_WAIT_S`` they hang up without it.
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
    metrics_path,
    parse_gauges,
    read_gauges,
    served_after,
    settle,
    signal_names,
    verdict,
)
from pytest_llmserve.client.endpoint import Endpoint

# How long the streams wait for the "running at the hang-up" metrics read.
DURING_WAIT_S = 2.0


@dataclass
class DisconnectResult:
    """What the server did about ``streams`` clients that hung up after a few events."""

    streams: int
    received: list[int]  # events (one token each) every client read before hanging up
    before: Gauges
    during: Gauges | None  # just before the hang-ups; None: metrics did not answer in time
    after: Gauges  # at the end of the drain wait
    drain_s: float | None  # hang-up → running and waiting both 0; None: not within the bound
    drain_max_s: float
    max_tokens: int = 0  # each stream asked for this many tokens, ignoring EOS
    held_s: float = 0.0  # first stream sent → hang-up
    reading_s: float = 0.0  # first stream sent → every stream had read its first events
    ran_out: int = 0  # streams that reached their end before the hang-up: nothing to abort
    settled: bool = True  # the server was idle, its counters still, before the streams
    good_request: str | None = None  # None: a request after it succeeded; else what went wrong
    # The label that says why a request finished (``Framework.finished_label``); None:
    # the framework's metrics do not say, and "none finished as length" is not measurable.
    finished_label: str | None = None
    framework: str = ""  # its name, for the reasons

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

    @property
    def generated_after(self) -> float | None:
        """Tokens generated once the clients were gone: the counter less what they read.

        A server that packs several tokens in one event makes this an over-count,
        never an under-count: the check errs towards strict.
        """
        gen = self.generated
        return None if gen is None else gen - sum(self.received)


def disconnect_storm(
    endpoint: Endpoint,
    streams: int = 16,
    max_tokens: int = 512,
    after_chunks: int = 3,
    drain_max_s: float = 15.0,
    first_chunk_timeout_s: float = 120.0,
    settle_max_s: float = SETTLE_MAX_S,
) -> DisconnectResult:
    """Open ``streams`` long streams, hang up after ``after_chunks`` events, watch the drain."""
    before, settled = settle(endpoint, settle_max_s)
    body = {
        "model": endpoint.served_name,
        "prompt": "Tell a very long story about a lighthouse keeper.",
        "max_tokens": max_tokens, "temperature": 0, "stream": True, "ignore_eos": True,
    }  # fmt: skip
    sent = time.monotonic()
    seen, during, reading_s = asyncio.run(
        _open_and_hang_up(endpoint, body, streams, after_chunks, first_chunk_timeout_s)
    )  # fmt: skip
    hung_up = time.monotonic()
    drain_s: float | None = None
    after = read_gauges(endpoint)
    while True:
        if after.idle:
            drain_s = time.monotonic() - hung_up
            break
        if time.monotonic() - hung_up > drain_max_s:
            break
        time.sleep(POLL_S)
        after = read_gauges(endpoint)
    if drain_s is not None:
        # Counters move when the engine finishes the abort: read them once they are still.
        after, _ = settle(endpoint, max_s=5.0)
    result = DisconnectResult(
        streams, [s.events for s in seen], before, during, after, drain_s, drain_max_s,
        max_tokens, held_s=hung_up - sent, reading_s=reading_s, settled=settled,
        ran_out=sum(s.ended or s.events >= max_tokens for s in seen),
        finished_label=endpoint.framework.finished_label, framework=endpoint.framework.name,
    )  # fmt: skip
    result.good_request = good_request(endpoint)
    return result


@dataclass
class _Seen:
    """One client's view of its stream."""

    events: int = 0
    ended: bool = False  # the answer ended ([DONE] or closed) before the hang-up


async def _open_and_hang_up(
    endpoint: Endpoint,
    body: dict[str, Any],
    streams: int,
    after_chunks: int,
    timeout_s: float,
) -> tuple[list[_Seen], Gauges | None, float]:
    """Every stream reads on until all have ``after_chunks`` events; then all hang up at once."""
    seen = [_Seen() for _ in range(streams)]
    all_reading = asyncio.Event()
    short = streams  # streams still short of after_chunks events

    def reached() -> None:
        nonlocal short
        short -= 1
        if short == 0:
            all_reading.set()

    async def one(s: _Seen) -> None:
        # A client per stream: closing it closes its socket, which is what the server sees.
        client = httpx.AsyncClient(
            base_url=endpoint.base_url, headers=endpoint.headers, timeout=timeout_s,
            trust_env=False,
        )  # fmt: skip
        path = endpoint.framework.paths.completions
        async with client as c, c.stream("POST", path, json=body) as r:
            if r.status_code != 200:
                await r.aread()
                raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
            # Read on (not just after_chunks) so the count at the hang-up is known; the
            # hang-up is this task's cancellation, which leaves both contexts and
            # closes the socket mid-answer.
            async for line in r.aiter_lines():
                if line.startswith("data:") and "[DONE]" not in line:
                    s.events += 1
                    if s.events == after_chunks:
                        reached()
        s.ended = True
        if s.events < after_chunks:
            reached()

    tasks = [asyncio.create_task(one(s)) for s in seen]
    try:
        start = time.monotonic()
        await _until(all_reading, tasks, timeout_s)
        reading_s = time.monotonic() - start
        during = await _gauges_within(endpoint, DURING_WAIT_S)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return seen, during, reading_s


async def _until(event: asyncio.Event, tasks: list[asyncio.Task[None]], timeout_s: float) -> None:
    """Wait for ``event``; a stream that failed first raises its error, naming the stream."""
    waiter = asyncio.create_task(event.wait())
    pending: set[asyncio.Future[Any]] = {waiter, *tasks}
    deadline = asyncio.get_running_loop().time() + timeout_s
    try:
        while not event.is_set():
            left = deadline - asyncio.get_running_loop().time()
            done, pending = await asyncio.wait(
                pending, timeout=max(left, 0.0), return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                raise TimeoutError(f"not all {len(tasks)} streams answered within {timeout_s:g} s")
            for t in done:
                if t is not waiter and t.exception() is not None:
                    raise RuntimeError(f"stream {tasks.index(t)}: {t.exception()}")  # type: ignore[arg-type]
    finally:
        waiter.cancel()


async def _gauges_within(endpoint: Endpoint, wait_s: float) -> Gauges | None:
    """One metrics reading if the server answers within ``wait_s``; else None."""
    framework = endpoint.framework
    url = endpoint.url(metrics_path(framework))
    try:
        async with httpx.AsyncClient(
            headers=endpoint.headers, timeout=wait_s, trust_env=False
        ) as c:
            r = await asyncio.wait_for(c.get(url), wait_s)
            r.raise_for_status()
    except (TimeoutError, httpx.HTTPError):
        return None
    return parse_gauges(r.text, signal_names(framework), framework.finished_label)


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
    if res.ran_out:
        # Those streams finished as "length" with nothing left to abort: no verdict on them.
        out.append(verdict("inconclusive", f"{res.ran_out} of {n} streams reached their "
                      f"{res.max_tokens} tokens before the hang-up, {res.held_s:.1f} s after they "
                      "were sent: nothing was left to abort (raise disconnect_max_tokens)",
                      "generated_after_hangup", 0.0, None))  # fmt: skip
        out.append(served_after("the hang-ups", res.good_request))
        return out
    # Run to the end, each stream would generate max_tokens (ignore_eos) and finish "length".
    read = sum(res.received)
    left = n * res.max_tokens - read
    after = res.generated_after
    if after is not None and left > 0:
        out.append(verdict("fail" if after >= left / 2 else "pass",
                      f"the server generated {after:g} tokens after {n} streams hung up "
                      f"({read} read by the clients in {res.held_s:.1f} s, all reading after "
                      f"{res.reading_s:.1f} s; {left} left had it run on; bound < {left / 2:g})",
                      "generated_after_hangup", left / 2, after))  # fmt: skip
    finished = res.finished_delta()
    length = finished.get("length", 0.0)
    running = _g(res.during.running if res.during else None)
    if res.finished_label is None:
        # The finished-reason figure says "not measurable"; the token counter above already
        # tells whether the server stopped, so only without it is the check inconclusive.
        if after is None or left <= 0:
            who = res.framework or "the framework"
            out.append(verdict("inconclusive", f"not measurable: {who}'s metrics do not say why "
                          "a request finished, so whether the hung-up streams finished as length "
                          f"cannot be told (running {running} of {n} at the hang-up)",
                          "finished_length", 0.0, None))  # fmt: skip
        out.append(served_after("the hang-ups", res.good_request))
        return out
    out.append(verdict("fail" if length > 0 else "pass",
                  f"request_success by {res.finished_label} after the hang-ups: "
                  f"{_fmt(finished) or 'unchanged'} (hung-up streams must not finish as length; "
                  f"running {running} of {n} at the hang-up)",
                  "finished_length", 0.0, length))  # fmt: skip
    out.append(served_after("the hang-ups", res.good_request))
    return out


def _g(value: float | None) -> str:
    return "unknown" if value is None else f"{value:g}"


def _fmt(values: dict[str, float]) -> str:
    return ", ".join(f"{k or '-'} +{v:g}" for k, v in values.items() if v)
