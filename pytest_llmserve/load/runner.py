"""Schedules and the run loop: fixed concurrency or a seeded Poisson rate.

Warm-up requests run first, as their own phase at the same schedule, and are
kept in the run marked ``warmup`` but outside its measured window. A run is
bounded by request count and by duration: past the duration no new request is
sent and those in flight finish. A watcher task measures the client's own
event-loop lag; ``measure.latency`` flags a run whose client fell behind, and the
gates call a failing verdict on such a run inconclusive rather than blame the server.

A run can also be looked at while it goes (``looks``): once the first n measured
requests, in the order they were sent, have all ended, ``decided`` reads the run as
of then; if it says the verdicts are decided, no new request is sent. The requests
looked at are fixed before any of them is timed, so the slow ones still in flight
are waited for, never left out (a look at the first n to *finish* would favour the
fast ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_llmserve.client import dialects
from pytest_llmserve.client.aio import StreamingClient
from pytest_llmserve.client.dialects import Prompt
from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.load.records import LoadRun, RequestRecord

LAG_TICK_S = 0.01
# Connections opened before a run (an open loop past this many opens the rest as it goes).
PRECONNECT_MAX = 64
GONE_POLL_S = 0.5
# Once the server is gone, requests still in flight get this long to end on their own
# (a dead socket errors at once) before they are cancelled and marked failed.
GONE_GRACE_S = 2.0


@dataclass(frozen=True)
class Schedule:
    """How requests are issued: closed loop (``concurrency``) or open loop (``rate_rps``)."""

    requests: int
    concurrency: int | None = None
    rate_rps: float | None = None
    warmup: int = 0
    max_duration_s: float | None = None
    max_in_flight: int = 1024  # open loop: a cap so a stalled server cannot exhaust the client
    seed: int = 0

    def __post_init__(self) -> None:
        if (self.concurrency is None) == (self.rate_rps is None):
            raise ValueError("a schedule needs exactly one of concurrency or rate_rps")
        if self.requests < 1 or self.warmup < 0:
            raise ValueError("a schedule needs requests >= 1 and warmup >= 0")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if self.rate_rps is not None and self.rate_rps <= 0:
            raise ValueError("rate_rps must be > 0")
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        if self.max_duration_s is not None and self.max_duration_s <= 0:
            raise ValueError("max_duration_s must be > 0 (leave it out for no time bound)")

    @property
    def most_in_flight(self) -> int:
        """Requests in flight at once, at most: the client needs a connection for each."""
        return self.concurrency or self.max_in_flight

    @property
    def label(self) -> str:
        return f"c={self.concurrency}" if self.concurrency else f"rate={self.rate_rps:g}/s"


Progress = Callable[[str], None]
# None while the server should be answering, else why it is gone (``Server.exited``).
Exited = Callable[[], str | None]
# Asked at a look with the run as of then (``LoadRun.look`` set): True ends the run.
Decided = Callable[[LoadRun], bool]


class _Ended:
    """Which requests have ended; a look waits here for the ones it reads, woken by each end."""

    def __init__(self, total: int) -> None:
        self.flags = [False] * total
        self.changed = asyncio.Event()

    def mark(self, index: int) -> None:
        self.flags[index] = True
        self.changed.set()

    async def all_of(self, start: int, stop: int) -> None:
        while not all(self.flags[start:stop]):
            self.changed.clear()
            await self.changed.wait()


class _Lag:
    """Worst delay of a 10 ms timer on the client's loop: its own saturation."""

    def __init__(self) -> None:
        self.worst = 0.0

    async def watch(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(LAG_TICK_S)
            self.worst = max(self.worst, time.perf_counter() - before - LAG_TICK_S)


async def run_load(
    client: StreamingClient,
    prompts: list[Prompt],
    schedule: Schedule,
    progress: Progress | None = None,
    progress_every_s: float = 15.0,
    exited: Exited | None = None,
    looks: Sequence[int] = (),
    decided: Decided | None = None,
) -> LoadRun:
    """Send ``schedule.warmup`` then ``schedule.requests`` prompts (cycling ``prompts``).

    With ``exited``, a server that dies ends the run within about a second, not at
    the requests' timeouts: ``stopped_by`` is then ``"server_gone"`` and the notes say why.
    With ``looks`` (measured-request counts below ``schedule.requests``) and
    ``decided``, a run decided at a look stops sending: ``stopped_by`` is
    ``"decided"``, ``look`` is that count and ``ended_at`` its last request's end;
    the requests still in flight finish and stay in the records, past the look.
    """
    if not prompts:
        raise ValueError("a load run needs at least one prompt")
    if schedule.most_in_flight > client.max_connections:
        # A request waiting for a connection has its sent_at stamped already.
        raise ValueError(
            f"{schedule.label} keeps up to {schedule.most_in_flight} requests in flight but the "
            f"client opens at most {client.max_connections} connections: the wait for one "
            "would be timed as the server's latency"
        )
    total = schedule.warmup + schedule.requests
    records = [
        RequestRecord(
            index=i,
            sent_at=0.0,
            prompt_tokens_sent=prompts[i % len(prompts)].prompt_tokens,
            max_tokens=prompts[i % len(prompts)].max_tokens,
            warmup=i < schedule.warmup,
        )
        for i in range(total)
    ]
    lag = _Lag()
    watcher = asyncio.create_task(lag.watch())
    measured = records[schedule.warmup :]
    ended = _Ended(total)
    notes: list[str] = []
    began = time.perf_counter()
    halted: list[int] = []  # the look that decided the run, once one has

    def snapshot(look: int | None = None) -> LoadRun:
        counted = measured[:look] if look is not None else measured
        sent = [r for r in counted if r.sent_at]
        return LoadRun(
            records=[r for r in records if r.sent_at],
            started_at=min((r.sent_at for r in sent), default=began),
            ended_at=max((r.last_byte_at or r.sent_at for r in sent), default=began),
            concurrency=schedule.concurrency,
            rate_rps=schedule.rate_rps,
            max_loop_lag_s=lag.worst,
            notes=notes,
            look=look,
        )

    async def watch_looks() -> None:
        for n in sorted(set(looks)):
            if decided is None or not 0 < n < len(measured):
                return
            await ended.all_of(schedule.warmup, schedule.warmup + n)
            if decided(snapshot(n)):
                halted.append(n)
                return

    async def phases() -> str:
        nonlocal began
        if schedule.warmup:
            await _phase(
                client, prompts, records[: schedule.warmup], schedule, None, None, [], ended
            )
        # Connections are opened before the clock starts: a connect awaited between a
        # request's sent_at and its write was timed as the server's TTFT (16 connects
        # at once cost the first wave ~5 ms each on 2 busy cores, against the metronome).
        await client.preconnect(min(schedule.most_in_flight, PRECONNECT_MAX))
        lag.worst = 0.0  # warm-up includes connection setup; judge the measured phase only
        reporter = asyncio.create_task(_report(measured, progress, progress_every_s))
        looker = asyncio.create_task(watch_looks())
        began = time.perf_counter()
        try:
            stop = await _phase(
                client, prompts, measured, schedule, schedule.max_duration_s, began, notes,
                ended, halt=lambda: bool(halted),
            )  # fmt: skip
            return "decided" if halted else stop
        finally:
            reporter.cancel()
            looker.cancel()

    try:
        stopped_by = await _race_server_exit(phases(), records, exited, notes)
    finally:
        watcher.cancel()
    run = snapshot(halted[0] if halted else None)
    run.stopped_by = stopped_by
    if halted:
        past = sum(1 for r in measured[halted[0] :] if r.sent_at)
        notes.append(
            f"decided at the look after {halted[0]} of {schedule.requests} requests; the "
            f"{past} sent after them count only where they overlap its window"
        )
    return run


async def _phase(
    client: StreamingClient,
    prompts: list[Prompt],
    records: list[RequestRecord],
    schedule: Schedule,
    max_duration_s: float | None,
    began: float | None,
    notes: list[str],
    ended: _Ended,
    halt: Callable[[], bool] | None = None,
) -> str:
    deadline = (began or time.perf_counter()) + max_duration_s if max_duration_s else None
    expired = False

    def may_send() -> bool:
        nonlocal expired
        expired = expired or (deadline is not None and time.perf_counter() >= deadline)
        return not expired and not (halt is not None and halt())

    def prompt_of(r: RequestRecord) -> Prompt:
        return prompts[r.index % len(prompts)]

    async def send(r: RequestRecord) -> RequestRecord:
        try:
            return await client.send(prompt_of(r), r)
        finally:
            ended.mark(r.index)

    if schedule.concurrency is not None:
        queue = list(reversed(records))

        async def worker() -> None:
            while queue and may_send():
                await send(queue.pop())

        await asyncio.gather(*(worker() for _ in range(schedule.concurrency)))
    else:
        assert schedule.rate_rps is not None
        rng = random.Random(schedule.seed)
        gate = asyncio.Semaphore(schedule.max_in_flight)
        queued: list[int] = []
        tasks: list[asyncio.Task[RequestRecord]] = []

        async def bounded(r: RequestRecord) -> RequestRecord:
            if gate.locked():
                # Latency is timed from the send, so a wait here would go unmeasured.
                queued.append(r.index)
            async with gate:
                return await send(r)

        # Arrivals on an absolute timeline: sleeping each gap in turn would add every
        # sleep's overshoot (up to 1 ms each) and fall behind the rate asked for.
        arrival = time.perf_counter()
        for r in records:
            if not may_send():
                break
            tasks.append(asyncio.create_task(bounded(r)))
            arrival += rng.expovariate(schedule.rate_rps)
            await asyncio.sleep(max(0.0, arrival - time.perf_counter()))
        await asyncio.gather(*tasks)
        if queued:
            notes.append(
                f"{len(queued)} open-loop request(s) waited behind max_in_flight="
                f"{schedule.max_in_flight}: their latency excludes that wait"
            )
    return "duration" if expired else "count"


async def _race_server_exit(
    phases: Coroutine[Any, Any, str],
    records: list[RequestRecord],
    exited: Exited | None,
    notes: list[str],
) -> str:
    """Run ``phases``; if the server goes first, end the run and mark what was in flight."""
    run = asyncio.create_task(phases)
    if exited is None:
        return await run
    gone = asyncio.create_task(_gone(exited))
    try:
        await asyncio.wait({run, gone}, return_when=asyncio.FIRST_COMPLETED)
        if run.done():
            # A dead server refuses connections at once, so a run can burn through its
            # requests before the next poll: failed requests ask once more, briefly.
            why = exited()
            if why is None and any(r.sent_at and r.status == 0 for r in records):
                with contextlib.suppress(TimeoutError):
                    why = await asyncio.wait_for(gone, GONE_GRACE_S)
            if why is None:
                return run.result()
        else:
            why = gone.result()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(run), GONE_GRACE_S)
        if not run.done():
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run
    finally:
        gone.cancel()
        if not run.done():
            run.cancel()
    for r in records:
        # Unfinished: no error yet and no finish_reason (cut off mid-stream by the cancel).
        if r.sent_at and r.error is None and r.finish_reason is None:
            r.error = f"server {why} while this request was in flight"
    notes.append(f"the server {why}: the run stopped early")
    return "server_gone"


async def _gone(exited: Exited) -> str:
    while True:
        why = exited()
        if why is not None:
            return why
        await asyncio.sleep(GONE_POLL_S)


async def _report(records: list[RequestRecord], progress: Progress | None, every_s: float) -> None:
    if progress is None:
        return
    start = time.perf_counter()
    while True:
        await asyncio.sleep(every_s)
        done = [r for r in records if r.last_byte_at is not None]
        tokens = sum(r.client_output_tokens for r in records)
        elapsed = time.perf_counter() - start
        progress(
            f"{len(done)}/{len(records)} requests done, {tokens / elapsed:.1f} output tok/s so far"
        )


def run_sync(
    endpoint: Endpoint,
    prompts: list[Prompt],
    schedule: Schedule,
    progress: Progress | None = None,
    exited: Exited | None = None,
    dialect: str | None = None,
    looks: Sequence[int] = (),
    decided: Decided | None = None,
) -> LoadRun:
    """``run_load`` from synchronous code (a test), on a fresh event loop.

    Requests go out in the streaming dialect the endpoint's framework declares
    (``Framework.stream_dialect``), or in ``dialect`` when one is named; an unknown
    name is a ``ValueError`` naming the valid ones.
    """
    if dialect is None:
        chosen = dialects.for_framework(endpoint.framework)
    else:
        chosen = dialects.get(dialect).at(endpoint.framework.paths)

    async def go() -> LoadRun:
        client = StreamingClient(
            endpoint.base_url, endpoint.served_name, chosen, headers=endpoint.headers,
            max_connections=schedule.most_in_flight,
        )  # fmt: skip
        try:
            run = await run_load(
                client, prompts, schedule, progress, exited=exited, looks=looks, decided=decided
            )
        finally:
            await client.aclose()
        run.uncounted = chosen.uncounted
        return run

    return asyncio.run(go())
