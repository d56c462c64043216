"""How fast can our own client go? The ceiling of StreamingClient + run_load on one core.

A load test is only as good as its load generator: if the client cannot read a
server's stream as fast as the server writes it, the figures describe the client.
This benchmark drives the real code path (``StreamingClient`` with the
``openai-completions`` dialect, scheduled by ``run_load``) against
``stub_server.py``, a server that streams instantly from another core, and
reports in one run:

- chunks/s: text chunks received per second of wall time, and per second of the
  client process's CPU time (``time.process_time``): "chunks/s per core", which
  the target applies to. Wall-time rates move with whatever else runs on the
  machine; CPU cost per chunk moves much less.
- how the stub packs events decides the client's cost per chunk, so three ways:
  ``paced`` (each stream gets an event every millisecond, each its own network
  read while the client keeps up: a real server's pattern and the client's worst
  case), ``per-event`` (each event its own write, as fast as possible: a slower
  client finds many waiting at each read) and ``batched`` (a whole response in
  one write: the best case). Network reads are counted, so events per read says
  which case a row really measured.
- requests/s with short responses, where per-request overhead dominates;
- the time the client adds to TTFT, against a bare-minimum reference client (an
  asyncio ``Protocol`` that writes the same HTTP request and stamps the first
  received bytes containing ``data:``) on the same stub, loop and core;
- a floor for the paced case: that reference protocol, plus our ``SSEParser``,
  reading the same paced streams: what any asyncio client pays per event here.
- the client's worst event-loop lag in each run (``LoadRun.max_loop_lag_s``).

Targets (the issue): >= 20,000 chunks/s per core, < 1 ms added to TTFT. The run
is a report and exits 0; ``--check`` exits 1 when a target is missed. It is a
benchmark, not a timed test: its figures depend on the machine and are compared
with each other inside one run, never with a fixed number in CI.

Linux only (``os.sched_setaffinity``, ``/proc``). Run from the repository root:
``python benchmarks/client_ceiling.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pytest_llmserve.client.aio import StreamingClient
from pytest_llmserve.client.dialects import DIALECTS, Prompt
from pytest_llmserve.client.sse import SSEParser
from pytest_llmserve.load.records import LoadRun
from pytest_llmserve.load.runner import Schedule, run_load
from pytest_llmserve.measure.latency import ttft

TARGET_CHUNKS_PER_CORE_S = 20_000.0
TARGET_ADDED_TTFT_S = 0.001
STUB = Path(__file__).with_name("stub_server.py")
DIALECT = "openai-completions"
MODEL = "stub"
# Request counts are sized from these generous ceilings so a run ends by duration;
# a run that ends by count instead is flagged (its figures are still valid, shorter).
MAX_CHUNKS_PER_S = 400_000
MAX_REQUESTS_PER_S = 50_000
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
DISTURBED = 0.2  # others' share of the client's core beyond which a row is flagged


# --- the machine around the run -----------------------------------------------------


def core_busy_s(core: int) -> float:
    """Busy (non-idle) CPU seconds of one core since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{core} "):
                ticks = [int(v) for v in line.split()[1:]]
                idle = ticks[3] + ticks[4]  # idle + iowait
                return (sum(ticks[:8]) - idle) / CLK_TCK
    return math.nan


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of another process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def busy_processes(exclude: set[int], limit: int = 3) -> list[str]:
    """The other processes using the most CPU right now (``ps``), to print beside figures."""
    try:
        out = subprocess.run(
            ["ps", "-eo", "pid,pcpu,comm,args", "--sort=-pcpu", "--no-headers"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    busy = []
    for line in out.splitlines():
        pid, pcpu, comm, *args = line.split(None, 3)
        if int(pid) in exclude or comm == "ps" or float(pcpu) < 20:
            continue
        cmd = args[0] if args else comm
        busy.append(f"pid {pid} {float(pcpu):.0f}% {cmd[:90]}")
    return busy[:limit]


class ReadCounter:
    """Counts the client's network reads: each ``data_received`` of the transport's
    connection protocol (``client.http1.Connection``) is one read from the socket.

    Arrival stamps cannot tell reads apart when a read carries many events (they
    share its stamp), so the reads are counted where they happen. The wrapper costs
    well under 1% of a read's handling. If the protocol moves, the count is
    unavailable (None).
    """

    def __init__(self) -> None:
        self.reads = 0
        self.available = False
        try:
            from pytest_llmserve.client.http1 import Connection

            original = Connection.data_received
        except (ImportError, AttributeError):
            return
        counter = self

        def data_received(self: Connection, data: bytes) -> None:
            counter.reads += 1
            original(self, data)

        Connection.data_received = data_received  # type: ignore[method-assign]
        self.available = True


READS = ReadCounter()


# --- the stub ----------------------------------------------------------------------


class StubProcess:
    """``stub_server.py`` in its own process, pinned to ``core``; ``base_url`` once up."""

    def __init__(self, mode: str, core: int, interval_ms: float = 1.0) -> None:
        self.mode = mode
        self.proc = subprocess.Popen(
            [
                *(sys.executable, str(STUB), "--mode", mode),
                *("--core", str(core), "--interval-ms", str(interval_ms)),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.close()
            raise RuntimeError(f"stub did not start: {line!r}")
        self.port = int(line.split()[1])
        self.base_url = f"http://127.0.0.1:{self.port}"

    def cpu_s(self) -> float:
        return process_cpu_s(self.proc.pid)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@contextlib.contextmanager
def stub(mode: str, core: int, interval_ms: float = 1.0) -> Iterator[StubProcess]:
    s = StubProcess(mode, core, interval_ms)
    try:
        yield s
    finally:
        s.close()


# --- measured runs -------------------------------------------------------------------


@dataclass
class Meter:
    """CPU, wall time and reads around one run: the client's, the stub's, the core's."""

    client_core: int
    stub: StubProcess
    wall: float = 0.0
    client_cpu: float = 0.0
    stub_cpu: float = 0.0
    core_busy: float = 0.0
    reads: int = 0

    def __enter__(self) -> Meter:
        self.wall = -time.perf_counter()
        self.client_cpu = -time.process_time()
        self.stub_cpu = -self.stub.cpu_s()
        self.core_busy = -core_busy_s(self.client_core)
        self.reads = -READS.reads
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter()
        self.client_cpu += time.process_time()
        self.stub_cpu += self.stub.cpu_s()
        self.core_busy += core_busy_s(self.client_core)
        self.reads += READS.reads

    @property
    def others_on_client_core(self) -> float:
        """Share of the client's core that went to other processes (0..1)."""
        return max(0.0, self.core_busy - self.client_cpu) / self.wall if self.wall else 0.0


@dataclass
class StreamRow:
    """One load run's figures (definitions are printed with the table)."""

    label: str
    concurrency: int
    tokens: int
    run: LoadRun
    meter: Meter
    offered: float | None = None  # paced: events/s the stub offers (concurrency / interval)
    completed: int = 0
    failed: int = 0
    chunks: int = 0  # text chunks of completed measured requests
    chunks_all: int = 0  # text chunks of every request, warm-up included (CPU denominator)
    requests_all: int = 0
    wrong_counts: int = 0  # completed requests whose chunk count was not `tokens`
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for r in self.run.records:
            self.chunks_all += len(r.chunk_times)
            self.requests_all += 1
        for r in self.run.measured:
            if r.ok and r.first_token_at is not None:
                self.completed += 1
                self.chunks += len(r.chunk_times)
                self.wrong_counts += len(r.chunk_times) != self.tokens
            else:
                self.failed += 1
        if self.run.stopped_by == "count":
            self.notes.append("ended by request count before --seconds (caps too low)")
        if self.failed:
            self.notes.append(f"{self.failed} failed requests")
        if self.wrong_counts:
            self.notes.append(f"{self.wrong_counts} requests with a chunk count != {self.tokens}")

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.run.wall_s if self.run.wall_s else 0.0

    @property
    def chunks_per_cpu_s(self) -> float:
        return self.chunks_all / self.meter.client_cpu if self.meter.client_cpu else 0.0

    @property
    def requests_per_s(self) -> float:
        return self.completed / self.run.wall_s if self.run.wall_s else 0.0

    @property
    def requests_per_cpu_s(self) -> float:
        return self.requests_all / self.meter.client_cpu if self.meter.client_cpu else 0.0

    @property
    def events_per_read(self) -> float | None:
        """Text events per network read, over every read of the run (headers included)."""
        if not READS.available or not self.meter.reads:
            return None
        return self.chunks_all / self.meter.reads


def request_cap(seconds: float, tokens: int, concurrency: int) -> int:
    per_s = min(MAX_CHUNKS_PER_S / max(tokens, 1), MAX_REQUESTS_PER_S)
    return max(4 * concurrency, math.ceil(seconds * per_s))


async def stream_run(
    client: StreamingClient,
    s: StubProcess,
    concurrency: int,
    tokens: int,
    seconds: float,
    client_core: int,
    offered: float | None = None,
) -> StreamRow:
    """One closed-loop run at ``concurrency`` for ``seconds``, after one warm-up round."""
    prompts = [Prompt(prompt="hello stub", prompt_tokens=2, max_tokens=tokens)]
    schedule = Schedule(
        requests=request_cap(seconds, tokens, concurrency),
        concurrency=concurrency,
        warmup=concurrency,
        max_duration_s=seconds,
    )
    with Meter(client_core, s) as meter:
        run = await run_load(client, prompts, schedule)
    return StreamRow(s.mode, concurrency, tokens, run, meter, offered)


class _ReferenceProtocol(asyncio.Protocol):
    """The least a client can do: stamp the first bytes with ``data:``; wait for the end.

    With ``parse``, every read also goes through our ``SSEParser`` (the paced floor).
    """

    def __init__(self, parse: bool = False) -> None:
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._first_at: float | None = None
        self._done: asyncio.Future[float] | None = None
        self._parser = SSEParser() if parse else None
        self.events = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        at = time.perf_counter()
        if self._parser is not None:
            # The stub's HTTP chunk framing lines are not SSE fields: the parser skips them.
            self.events += len(self._parser.feed(data))
        self._buf += data
        if self._first_at is None and b"data:" in self._buf:
            self._first_at = at
        # The stub ends every response with the last chunk of chunked encoding.
        if self._buf.endswith(b"\r\n0\r\n\r\n") and self._done and not self._done.done():
            assert self._first_at is not None
            self._done.set_result(self._first_at)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._done and not self._done.done():
            self._done.set_exception(exc or ConnectionError("stub closed the connection"))

    async def request(self, raw: bytes) -> float:
        """Send ``raw``; the TTFT (s) from just before the write to the first ``data:``."""
        assert self.transport is not None
        self._buf.clear()
        self._first_at = None
        self._done = asyncio.get_running_loop().create_future()
        sent = time.perf_counter()
        self.transport.write(raw)
        first = await self._done
        return first - sent


def raw_request(s: StubProcess, tokens: int) -> bytes:
    """The HTTP request our client sends for the same prompt, with the fewest headers."""
    path, body = DIALECTS[DIALECT].request(MODEL, Prompt("hello stub", 2, tokens))
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload


@dataclass
class FloorResult:
    concurrency: int
    events: int
    cpu_s: float

    @property
    def us_per_event(self) -> float:
        return self.cpu_s / self.events * 1e6 if self.events else math.nan


async def paced_floor(s: StubProcess, concurrency: int, tokens: int, seconds: float) -> FloorResult:
    """The reference protocol (+ SSEParser) on ``concurrency`` paced streams for ``seconds``."""
    loop = asyncio.get_running_loop()
    conns = [
        (await loop.create_connection(lambda: _ReferenceProtocol(parse=True), "127.0.0.1", s.port))[
            1
        ]
        for _ in range(concurrency)
    ]
    raw = raw_request(s, tokens)
    await asyncio.gather(*(c.request(raw) for c in conns))  # warm
    deadline = time.perf_counter() + seconds

    async def worker(c: _ReferenceProtocol) -> None:
        while time.perf_counter() < deadline:
            await c.request(raw)

    before = sum(c.events for c in conns)
    cpu = time.process_time()
    await asyncio.gather(*(worker(c) for c in conns))
    cpu = time.process_time() - cpu
    events = sum(c.events for c in conns) - before
    for c in conns:
        assert c.transport is not None
        c.transport.close()
    return FloorResult(concurrency, events, cpu)


@dataclass
class TTFTResult:
    ours: list[float]
    reference: list[float]
    max_loop_lag_s: float
    others_on_client_core: float

    @staticmethod
    def pct(values: list[float], q: float) -> float:
        return float(np.percentile(values, q))

    def added(self, q: float) -> float:
        return self.pct(self.ours, q) - self.pct(self.reference, q)


async def ttft_run(
    client: StreamingClient,
    s: StubProcess,
    tokens: int,
    requests: int,
    block: int,
    client_core: int,
) -> TTFTResult:
    """Alternate blocks of ``block`` requests, ours then the reference's, at concurrency 1.

    Alternating blocks spreads any drift of the machine (another process waking up)
    over both clients alike. Ours goes through ``run_load`` like a real run; both
    keep one warm keep-alive connection, so neither pays a TCP handshake.
    """
    loop = asyncio.get_running_loop()
    _, ref = await loop.create_connection(_ReferenceProtocol, "127.0.0.1", s.port)
    raw = raw_request(s, tokens)
    prompts = [Prompt(prompt="hello stub", prompt_tokens=2, max_tokens=tokens)]
    for _ in range(20):  # warm both
        await ref.request(raw)
    await run_load(client, prompts, Schedule(requests=20, concurrency=1))
    ours: list[float] = []
    reference: list[float] = []
    lag = 0.0
    with Meter(client_core, s) as meter:
        while len(ours) < requests:
            run = await run_load(client, prompts, Schedule(requests=block, concurrency=1))
            lag = max(lag, run.max_loop_lag_s)
            ours += [v for r in run.measured if r.ok and (v := ttft(r)) is not None]
            for _ in range(block):
                reference.append(await ref.request(raw))
    assert ref.transport is not None
    ref.transport.close()
    return TTFTResult(ours, reference, lag, meter.others_on_client_core)


# --- report --------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


@dataclass
class Results:
    streams: list[StreamRow]
    short: StreamRow
    ttft: TTFTResult
    floor: FloorResult


def print_report(
    args: argparse.Namespace, res: Results, busy_before: list[str], busy_after: list[str]
) -> bool:
    """Print every figure with its definition; return whether all targets were met."""
    p = print
    p("Client ceiling: StreamingClient + run_load (dialect openai-completions) vs an instant stub")
    p(
        f"python {platform.python_version()}, transport client.http1, asyncio default loop; "
        f"client pinned to core {args.client_core}, stub to core {args.stub_core} "
        f"({os.cpu_count()} cores)"
    )
    for title, busy in (("before", busy_before), ("after", busy_after)):
        p(f"other busy processes {title} the run: " + ("; ".join(busy) if busy else "none"))
    p()
    p(
        f"Streaming: {args.tokens} text events per request, {args.seconds:g} s per run; "
        f"paced: one event per stream every {args.interval_ms:g} ms"
    )
    head = (
        f"{'stub':<9} {'conc':>4} {'offered/s':>9} {'reqs':>5} {'chunks/s':>8} "
        f"{'chunks/CPU-s':>12} {'us CPU/chunk':>12} {'ev/read':>7} {'client CPU':>10} "
        f"{'stub CPU':>8} {'others@core':>11} {'max lag ms':>10}  target"
    )
    p(head)
    p("-" * len(head))
    for row in res.streams:
        m = row.meter
        ok = row.chunks_per_cpu_s >= TARGET_CHUNKS_PER_CORE_S
        if m.others_on_client_core > DISTURBED:
            row.notes.append("disturbed: other processes ran on the client's core")
        offered = f"{row.offered:,.0f}" if row.offered else "max"
        epr = row.events_per_read
        p(
            f"{row.label:<9} {row.concurrency:>4} {offered:>9} {row.completed:>5} "
            f"{row.chunks_per_s:>8,.0f} {row.chunks_per_cpu_s:>12,.0f} "
            f"{1e6 / row.chunks_per_cpu_s:>12.1f} "
            f"{'n/a' if epr is None else f'{epr:.1f}':>7} {m.client_cpu / m.wall:>10.0%} "
            f"{m.stub_cpu / m.wall:>8.0%} {m.others_on_client_core:>11.0%} "
            f"{row.run.max_loop_lag_s * 1e3:>10.1f}  {verdict(ok)}"
            + (f"  ({'; '.join(row.notes)})" if row.notes else "")
        )
    f = res.floor
    p(
        f"floor: a bare asyncio Protocol + our SSEParser on {f.concurrency} paced streams: "
        f"{f.us_per_event:.1f} us CPU/event ({1e6 / f.us_per_event:,.0f} events/CPU-s)"
    )
    p()
    short, m = res.short, res.short.meter
    if m.others_on_client_core > DISTURBED:
        short.notes.append("disturbed: other processes ran on the client's core")
    p(
        f"Short responses: {short.tokens} text events per request, concurrency "
        f"{short.concurrency}, stub {short.label}"
    )
    p(
        f"  requests/s (wall) {short.requests_per_s:,.0f}; requests per client CPU-s "
        f"{short.requests_per_cpu_s:,.0f} ({1e6 / short.requests_per_cpu_s:.0f} us CPU/request); "
        f"client CPU {m.client_cpu / m.wall:.0%}, stub CPU {m.stub_cpu / m.wall:.0%}, "
        f"others@core {m.others_on_client_core:.0%}; max loop lag "
        f"{short.run.max_loop_lag_s * 1e3:.1f} ms"
        + (f"  ({'; '.join(short.notes)})" if short.notes else "")
    )
    p()
    t = res.ttft
    added_p50, added_p99 = t.added(50), t.added(99)
    p(
        f"TTFT added by our client: concurrency 1, {args.ttft_tokens} events per request "
        f"(stub per-event), {len(t.ours)} requests each, alternating blocks of {args.ttft_block}"
    )
    p(
        f"  {'':<10} {'ours ms':>8} {'reference ms':>12} {'added ms':>9}\n"
        f"  {'median':<10} {t.pct(t.ours, 50) * 1e3:>8.3f} {t.pct(t.reference, 50) * 1e3:>12.3f} "
        f"{added_p50 * 1e3:>9.3f}  target < {TARGET_ADDED_TTFT_S * 1e3:g} ms: "
        f"{verdict(added_p50 < TARGET_ADDED_TTFT_S)}\n"
        f"  {'p99':<10} {t.pct(t.ours, 99) * 1e3:>8.3f} {t.pct(t.reference, 99) * 1e3:>12.3f} "
        f"{added_p99 * 1e3:>9.3f}  (reported, not a target)"
    )
    p(
        f"  max loop lag {t.max_loop_lag_s * 1e3:.1f} ms; others@core {t.others_on_client_core:.0%}"
        + ("  (disturbed)" if t.others_on_client_core > DISTURBED else "")
    )
    p()
    for line in DEFINITIONS:
        p(line)
    chunks_ok = all(r.chunks_per_cpu_s >= TARGET_CHUNKS_PER_CORE_S for r in res.streams)
    ttft_ok = added_p50 < TARGET_ADDED_TTFT_S
    worst = min(res.streams, key=lambda r: r.chunks_per_cpu_s)
    p()
    p(
        f"Verdict: chunks/s per core {verdict(chunks_ok)} the target (worst "
        f"{worst.chunks_per_cpu_s:,.0f}: stub {worst.label}, c={worst.concurrency}); "
        f"added TTFT {verdict(ttft_ok)} the target (median {added_p50 * 1e3:.3f} ms)"
    )
    disturbed = sum(
        m.others_on_client_core > DISTURBED for m in [r.meter for r in [*res.streams, res.short]]
    ) + (t.others_on_client_core > DISTURBED)
    if disturbed:
        p(
            f"Warning: {disturbed} measurement(s) disturbed by other processes on the client's "
            "core; their figures are unreliable: rerun on a quiet machine"
        )
    return chunks_ok and ttft_ok


DEFINITIONS = [
    "Definitions",
    "  stub         paced: every event its own write, one per stream per interval (a real",
    "               server's pattern: while the client keeps up, one network read per event);",
    "               per-event: every event its own write, as fast as possible; batched: a",
    "               whole response in one write",
    "  offered/s    paced only: concurrency / interval, the rate the stub aims at",
    "  chunks/s     text chunks of completed measured requests / run wall time (first send",
    "               to last byte); warm-up excluded",
    "  chunks/CPU-s 'chunks/s per core': every text chunk (warm-up included) / the client",
    "               process's CPU time (time.process_time) over the whole run_load call;",
    f"               the target, >= {TARGET_CHUNKS_PER_CORE_S:,.0f}, applies to every row",
    "  ev/read      text events / the client's socket reads in the run (the",
    "               protocol's data_received; header reads included): 1.0 is one read per event",
    "  client/stub  CPU time / wall time of each process. Client near 100%: the client",
    "  CPU          set the pace (events then pile up between reads, ev/read rises, and",
    "               the loop lags); stub near 100%: the stub did",
    "  others@core  share of the client's core used by other processes during the run",
    "  max lag ms   LoadRun.max_loop_lag_s: worst delay of run_load's 10 ms timer; large",
    "               wherever the client is saturated, which is what it is there to flag",
    "  floor        the least CPU per event an asyncio client pays for the paced streams",
    "               on this machine (socket read, wake-up, SSE parsing; no HTTP parsing)",
    "  requests/s   completed measured requests / run wall time",
    "  TTFT         ours: the record's first text chunk - sent_at (as measure.latency);",
    "               reference: an asyncio Protocol on the same loop and core writes the same",
    "               request over its own warm keep-alive connection and stamps the first",
    "               received bytes containing 'data:'. added = ours - reference, as the",
    "               difference of the medians (the target) and of the p99s",
]


async def measure(args: argparse.Namespace) -> Results:
    streams: list[StreamRow] = []
    short: StreamRow | None = None
    t: TTFTResult | None = None
    floor: FloorResult | None = None
    dialect = DIALECTS[DIALECT]
    for mode in ("paced", "per-event", "batched"):
        with stub(mode, args.stub_core, args.interval_ms) as s:
            client = StreamingClient(s.base_url, MODEL, dialect)
            try:
                if mode == "paced":
                    for c in args.paced_concurrency:
                        offered = c / (args.interval_ms / 1e3)
                        streams.append(
                            await stream_run(
                                client, s, c, args.tokens, args.seconds, args.client_core, offered
                            )
                        )
                    floor = await paced_floor(
                        s, min(args.paced_concurrency), args.tokens, args.seconds / 2
                    )
                    continue
                for c in args.concurrency:
                    streams.append(
                        await stream_run(client, s, c, args.tokens, args.seconds, args.client_core)
                    )
                if mode == "per-event":
                    t = await ttft_run(
                        client,
                        s,
                        args.ttft_tokens,
                        args.ttft_requests,
                        args.ttft_block,
                        args.client_core,
                    )
                else:
                    short = await stream_run(
                        client,
                        s,
                        args.short_concurrency,
                        args.short_tokens,
                        args.seconds,
                        args.client_core,
                    )
            finally:
                await client.aclose()
    assert short is not None
    assert t is not None
    assert floor is not None
    return Results(streams, short, t, floor)


def int_list(value: str) -> list[int]:
    return [int(c) for c in value.split(",")]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Ceiling of our own streaming client against an instant local stub."
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each load run")
    parser.add_argument(
        "--concurrency",
        type=int_list,
        default=[1, 8, 64],
        help="comma-separated concurrencies for the per-event and batched runs (1,8,64)",
    )
    parser.add_argument(
        "--paced-concurrency",
        type=int_list,
        default=[8, 16, 32, 64],
        help="comma-separated concurrencies for the paced runs (8,16,32,64)",
    )
    parser.add_argument("--interval-ms", type=float, default=1.0, help="paced: ms between events")
    parser.add_argument("--tokens", type=int, default=256, help="text events per request")
    parser.add_argument("--short-tokens", type=int, default=2, help="events, requests/s run")
    parser.add_argument("--short-concurrency", type=int, default=64)
    parser.add_argument("--ttft-tokens", type=int, default=8, help="events, TTFT run")
    parser.add_argument("--ttft-requests", type=int, default=600, help="per client, TTFT run")
    parser.add_argument("--ttft-block", type=int, default=25)
    parser.add_argument("--client-core", type=int, default=0)
    parser.add_argument("--stub-core", type=int, default=1)
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not hasattr(os, "sched_setaffinity"):
        print("this benchmark needs Linux (sched_setaffinity, /proc)", file=sys.stderr)
        return 2
    available = os.sched_getaffinity(0)
    if {args.client_core, args.stub_core} - available or args.client_core == args.stub_core:
        print(
            f"warning: cores {args.client_core}/{args.stub_core} are not two distinct cores of "
            f"{sorted(available)}; client and stub may share a core",
            file=sys.stderr,
        )
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {args.client_core})
    busy_before = busy_processes({os.getpid()})
    results = asyncio.run(measure(args))
    busy_after = busy_processes({os.getpid()})
    ok = print_report(args, results, busy_before, busy_after)
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
