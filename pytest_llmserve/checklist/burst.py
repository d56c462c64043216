"""A burst far past capacity: requests queue or are refused cleanly, never a 5xx.

The server's running and waiting gauges are polled while the burst runs, to show
it queued; the verdict rests on how every request ended and how long it took.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import httpx

from pytest_llmserve.checklist.gate import Verdict
from pytest_llmserve.checklist.robustness import (
    POLL_S,
    good_request,
    metrics_path,
    read_gauges,
    served_after,
    verdict,
)
from pytest_llmserve.client.endpoint import Endpoint

# Statuses a server may answer a request it will not take now (overload, queue full).
REFUSALS = (429, 503)


@dataclass
class BurstResult:
    """A burst of ``requests`` sent at once: how each ended and what the server queued."""

    requests: int
    statuses: dict[int, int]  # HTTP status -> count (0 = no response: transport error)
    errors: list[str]  # first few non-200 answers, for the report
    wall_s: float
    max_running: float
    max_waiting: float
    burst_max_s: float
    polls: int = 0  # metrics reads that answered while the burst ran
    good_request: str | None = None
    metrics_path: str | None = None  # where the gauges were read, for the report

    @property
    def completed(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def refused(self) -> int:
        return sum(self.statuses.get(s, 0) for s in REFUSALS)

    @property
    def bad(self) -> int:
        return self.requests - self.completed - self.refused


def burst(
    endpoint: Endpoint,
    requests: int = 128,
    max_tokens: int = 8,
    burst_max_s: float = 180.0,
) -> BurstResult:
    """Send ``requests`` short completions at once; gauges are polled while they run."""
    statuses, errors, wall_s, peaks, polls = asyncio.run(
        _burst(endpoint, requests, max_tokens, burst_max_s)
    )
    result = BurstResult(requests, statuses, errors, wall_s, peaks[0], peaks[1], burst_max_s, polls)
    with contextlib.suppress(ValueError):  # no gauges to read: the polls say 0
        result.metrics_path = metrics_path(endpoint.framework)
    result.good_request = good_request(endpoint)
    return result


async def _burst(
    endpoint: Endpoint,
    n: int,
    max_tokens: int,
    bound_s: float,
) -> tuple[dict[int, int], list[str], float, tuple[float, float], int]:
    body = {"model": endpoint.served_name, "prompt": "Count to ten:", "max_tokens": max_tokens,
            "temperature": 0, "ignore_eos": True}  # fmt: skip
    statuses: dict[int, int] = {}
    errors: list[str] = []
    peaks = [0.0, 0.0]
    polls = 0
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    # Past the bound a request counts as hung (status 0): the bound is the check.
    timeout = httpx.Timeout(bound_s, connect=bound_s)

    async def one(c: httpx.AsyncClient) -> None:
        try:
            r = await c.post(endpoint.framework.paths.completions, json=body)
            status, text = r.status_code, r.text
        except httpx.HTTPError as exc:
            status, text = 0, f"{type(exc).__name__}: {exc}"
        statuses[status] = statuses.get(status, 0) + 1
        if status != 200 and len(errors) < 5:
            errors.append(f"{status or 'no response'}: {text[:200]}")

    async def watch() -> None:
        nonlocal polls
        while True:
            try:
                g = await asyncio.to_thread(read_gauges, endpoint)
                peaks[0] = max(peaks[0], g.running or 0.0)
                peaks[1] = max(peaks[1], g.waiting or 0.0)
                polls += 1
            except (httpx.HTTPError, ValueError):
                pass  # a metrics hiccup under load is not the burst's verdict
            await asyncio.sleep(POLL_S)

    async with httpx.AsyncClient(
        base_url=endpoint.base_url, headers=endpoint.headers, timeout=timeout, limits=limits,
        trust_env=False,
    ) as c:  # fmt: skip
        watcher = asyncio.create_task(watch())
        start = time.monotonic()
        await asyncio.gather(*(one(c) for _ in range(n)))
        wall = time.monotonic() - start
        watcher.cancel()
    return statuses, errors, wall, (peaks[0], peaks[1]), polls


def burst_verdicts(res: BurstResult) -> list[Verdict]:
    summary = (f"{res.requests} requests at once: {res.completed} completed, {res.refused} "
               f"refused ({'/'.join(map(str, REFUSALS))}), {res.bad} other, in {res.wall_s:.1f} s; "
               f"peak running {res.max_running:g}, waiting {res.max_waiting:g} "
               f"({res.polls} {res.metrics_path or 'metrics'} reads)")  # fmt: skip
    out = []
    fives = sum(c for s, c in res.statuses.items() if s >= 500 and s not in REFUSALS)
    if fives or res.bad:
        detail = "; ".join(res.errors)
        out.append(verdict("fail", f"{summary}: {fives} server error(s) (5xx), {res.bad} not "
                      f"completed nor cleanly refused: {detail}",
                      "burst_bad", 0.0, res.bad))  # fmt: skip
    else:
        out.append(verdict("pass", summary, "burst_bad", 0.0, 0.0))
    out.append(verdict("pass" if res.wall_s <= res.burst_max_s else "fail",
                  f"the burst ended in {res.wall_s:.1f} s (bound {res.burst_max_s:g} s)",
                  "burst_wall_s", res.burst_max_s, res.wall_s))  # fmt: skip
    out.append(served_after("the burst", res.good_request))
    return out
