"""The load runner against a fake client: schedules, bounds, warm-up, windows and loop lag."""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import statistics
import time
from typing import Any

import pytest

from pytest_llmserve.client.dialects import Dialect, Prompt
from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.frameworks.base import ApiPaths
from pytest_llmserve.frameworks.openai_compat import OpenAICompatible
from pytest_llmserve.load import runner
from pytest_llmserve.load.records import LoadRun, RequestRecord
from pytest_llmserve.load.runner import Schedule, run_load

PROMPTS = [Prompt([1, 2, 3], 3, 4), Prompt([4, 5], 2, 4), Prompt([6], 1, 4)]


class FakeClient:
    """Duck-types ``StreamingClient.send``: a simulated streamed response, and a witness.

    ``block_s`` blocks the event loop (a real ``time.sleep``) at the start of each
    request, as a client doing heavy synchronous work would.
    """

    def __init__(self, latency_s: float = 0.004, chunks: int = 2, block_s: float = 0.0,
                 block_warmup_only: bool = False) -> None:  # fmt: skip
        self.latency_s = latency_s
        self.chunks = chunks
        self.block_s = block_s
        self.block_warmup_only = block_warmup_only
        self.in_flight = 0
        self.max_in_flight = 0
        self.max_connections = 1024
        self.preconnected = 0
        self.sent: list[tuple[RequestRecord, Prompt]] = []

    async def preconnect(self, n: int) -> None:
        self.preconnected = n

    async def send(self, prompt: Prompt, record: RequestRecord) -> RequestRecord:
        record.sent_at = time.perf_counter()
        self.sent.append((record, prompt))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.block_s and (record.warmup or not self.block_warmup_only):
                time.sleep(self.block_s)
            for _ in range(self.chunks):
                await asyncio.sleep(self.latency_s / self.chunks)
                at = time.perf_counter()
                if record.first_token_at is None:
                    record.first_token_at = at
                record.chunk_times.append(at)
                record.chunk_tokens.append(1)
            record.status = 200
            record.usage_prompt_tokens = prompt.prompt_tokens
            record.usage_output_tokens = self.chunks
            record.finish_reason = "length"
            record.last_byte_at = time.perf_counter()
        finally:
            self.in_flight -= 1
        return record


def run(client: FakeClient, schedule: Schedule, **kw: Any) -> LoadRun:
    return asyncio.run(run_load(client, PROMPTS, schedule, **kw))  # type: ignore[arg-type]


def send_offsets(client: FakeClient) -> list[float]:
    times = [r.sent_at for r, _ in client.sent]
    return [t - times[0] for t in times]


# --- Schedule ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"requests": 10}, "exactly one of concurrency or rate_rps"),
        ({"requests": 10, "concurrency": 2, "rate_rps": 5.0}, "exactly one"),
        ({"requests": 0, "concurrency": 2}, "requests >= 1"),
        ({"requests": 10, "concurrency": 2, "warmup": -1}, "warmup >= 0"),
        ({"requests": 10, "concurrency": 0}, "concurrency must be >= 1"),
        ({"requests": 10, "rate_rps": 0.0}, "rate_rps must be > 0"),
        ({"requests": 10, "rate_rps": -3.0}, "rate_rps must be > 0"),
    ],
)
def test_invalid_schedules_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Schedule(**kwargs)


def test_schedule_labels_name_the_loop() -> None:
    assert Schedule(10, concurrency=4).label == "c=4"
    assert Schedule(10, rate_rps=2.5).label == "rate=2.5/s"


def test_a_run_without_prompts_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one prompt"):
        asyncio.run(run_load(FakeClient(), [], Schedule(1, concurrency=1)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "schedule", [Schedule(8, concurrency=5), Schedule(8, rate_rps=10.0, max_in_flight=5)]
)
def test_a_schedule_wider_than_the_client_pool_is_refused(schedule: Schedule) -> None:
    # Each request would wait for a connection after its send was stamped: the wait
    # would read as the server's latency.
    client = FakeClient()
    client.max_connections = 4
    with pytest.raises(ValueError, match="up to 5 requests in flight but the client opens at mo"):
        run(client, schedule)
    assert client.sent == []


# --- closed loop ---------------------------------------------------------------------------


def test_closed_loop_keeps_exactly_concurrency_requests_in_flight() -> None:
    client = FakeClient(latency_s=0.01)
    result = run(client, Schedule(20, concurrency=4))
    assert client.max_in_flight == 4
    assert len(result.records) == 20
    assert all(r.ok for r in result.records)
    assert result.concurrency == 4
    assert result.rate_rps is None
    assert result.stopped_by == "count"


def test_closed_loop_sends_exactly_the_requested_count_cycling_prompts() -> None:
    client = FakeClient()
    result = run(client, Schedule(7, concurrency=3, warmup=2))
    assert len(client.sent) == 9
    assert len(result.measured) == 7
    assert sorted(r.index for r in result.records) == list(range(9))
    for record, prompt in client.sent:
        assert prompt is PROMPTS[record.index % len(PROMPTS)]
        assert record.prompt_tokens_sent == prompt.prompt_tokens
        assert record.max_tokens == prompt.max_tokens


def test_warmup_runs_first_and_is_outside_the_measured_window() -> None:
    client = FakeClient(latency_s=0.006)
    result = run(client, Schedule(6, concurrency=2, warmup=3))
    warm = [r for r in result.records if r.warmup]
    measured = result.measured
    assert [r.index for r in warm] == [0, 1, 2]
    assert len(measured) == 6
    assert not any(r.warmup for r in measured)
    last_warm_byte = max(r.last_byte_at for r in warm if r.last_byte_at is not None)
    assert last_warm_byte <= min(r.sent_at for r in measured)
    assert result.started_at == min(r.sent_at for r in measured)
    assert result.started_at >= last_warm_byte


def test_run_window_spans_first_measured_send_to_last_measured_byte() -> None:
    result = run(FakeClient(latency_s=0.005), Schedule(8, concurrency=3, warmup=2))
    measured = result.measured
    assert result.started_at == min(r.sent_at for r in measured)
    assert result.ended_at == max(r.last_byte_at for r in measured if r.last_byte_at)
    assert result.wall_s == pytest.approx(result.ended_at - result.started_at)


def test_duration_bound_stops_new_requests_and_lets_in_flight_ones_finish() -> None:
    client = FakeClient(latency_s=0.02)
    result = run(client, Schedule(1000, concurrency=2, max_duration_s=0.1))
    assert result.stopped_by == "duration"
    assert 4 <= len(client.sent) <= 20  # about 0.1 s / 0.02 s x 2
    assert len(result.records) == len(client.sent)  # unsent requests are not in the run
    assert all(r.ok for r in result.records)  # in-flight requests completed
    last_send = max(r.sent_at for r in result.records)
    assert last_send - result.started_at < 0.1 + 0.01
    assert result.ended_at > result.started_at + 0.1  # the last ones finished past the bound


def test_warmup_does_not_count_against_the_duration_bound() -> None:
    client = FakeClient(latency_s=0.015)
    result = run(client, Schedule(1000, concurrency=1, warmup=3, max_duration_s=0.025))
    assert sum(r.warmup for r in result.records) == 3  # all ran, though they took 0.045 s
    assert 1 <= len(result.measured) <= 3


# --- looks (sequential verdicts) ------------------------------------------------------------


class SlowFirst(FakeClient):
    """The first measured request takes ``slow_s``; every other one ``latency_s``."""

    def __init__(self, slow_s: float, **kw: Any) -> None:
        super().__init__(**kw)
        self.slow_s = slow_s

    async def send(self, prompt: Prompt, record: RequestRecord) -> RequestRecord:
        if record.index == 0:
            await asyncio.sleep(self.slow_s)
        return await super().send(prompt, record)


def test_a_run_decided_at_a_look_stops_sending_and_keeps_what_was_in_flight() -> None:
    client = FakeClient(latency_s=0.01)
    seen: list[LoadRun] = []

    def decided(snapshot: LoadRun) -> bool:
        seen.append(snapshot)
        return True

    result = run(client, Schedule(200, concurrency=4, warmup=2), looks=[20], decided=decided)
    assert [s.look for s in seen] == [20]
    assert result.stopped_by == "decided"
    assert result.look == 20
    assert len(result.measured) == 20
    assert 20 <= len(client.sent) - 2 <= 20 + 4 + 4  # the look's own, and at most a wave more
    assert all(r.ok for r in result.records)  # those past the look finished
    assert result.past_look
    assert result.ended_at == max(r.last_byte_at or 0.0 for r in result.measured)
    assert any("decided at the look after 20 of 200" in n for n in result.notes)


def test_an_undecided_run_is_asked_at_each_look_and_sends_everything() -> None:
    asked: list[int] = []

    def decided(snapshot: LoadRun) -> bool:
        asked.append(len(snapshot.measured))
        return False

    result = run(FakeClient(), Schedule(30, concurrency=3), looks=[10, 20], decided=decided)
    assert asked == [10, 20]
    assert result.stopped_by == "count"
    assert result.look is None
    assert len(result.measured) == 30
    assert result.past_look == []


def test_a_look_waits_for_its_slowest_request_and_never_leaves_it_out() -> None:
    """The look is at the first n *sent*: the slow first request is waited for, while
    the loop keeps sending, so the snapshot holds it, finished."""
    client = SlowFirst(slow_s=0.15, latency_s=0.005)
    snapshots: list[LoadRun] = []

    def decided(snapshot: LoadRun) -> bool:
        snapshots.append(snapshot)
        return True

    run(client, Schedule(400, concurrency=2), looks=[5], decided=decided)
    (snapshot,) = snapshots
    assert [r.index for r in snapshot.measured] == [0, 1, 2, 3, 4]
    assert all(r.ok for r in snapshot.measured)
    assert snapshot.ended_at >= snapshot.measured[0].last_byte_at  # type: ignore[operator]
    assert len(snapshot.past_look) > 5  # the other connection kept the server busy


# --- open loop -----------------------------------------------------------------------------


def expected_offsets(seed: int, rate: float, n: int) -> list[float]:
    rng = random.Random(seed)
    gaps = [rng.expovariate(rate) for _ in range(n - 1)]
    return [0.0, *itertools.accumulate(gaps)]


def lateness(client: FakeClient, seed: int, rate: float) -> list[float]:
    """Each send's offset from the first, minus its seeded arrival offset (s)."""
    offsets = send_offsets(client)
    return [a - e for a, e in zip(offsets, expected_offsets(seed, rate, len(offsets)), strict=True)]


def test_poisson_arrivals_follow_the_seeded_schedule() -> None:
    n, rate = 30, 400.0
    first, again, other = FakeClient(0.001), FakeClient(0.001), FakeClient(0.001)
    run(first, Schedule(n, rate_rps=rate, seed=3))
    run(again, Schedule(n, rate_rps=rate, seed=3))
    run(other, Schedule(n, rate_rps=rate, seed=7))
    for client, seed in ((first, 3), (again, 3), (other, 7)):
        late = lateness(client, seed, rate)
        assert max(abs(x) for x in late) < 0.03  # no send far off its arrival time
        # no drift: the last arrivals are as punctual as the first (a scheduler that
        # sleeps gap after gap falls ~0.7 ms further behind with each request: ~14 ms here)
        assert statistics.median(late[-10:]) - statistics.median(late[:10]) < 0.006
    # another seed is another schedule (these two are 14 ms apart at the median)
    assert statistics.median(abs(x) for x in lateness(other, 3, rate)) > 0.008


def test_poisson_mean_rate_is_the_rate_asked_for() -> None:
    client = FakeClient(latency_s=0.001)
    result = run(client, Schedule(200, rate_rps=1000.0, seed=0))
    offsets = send_offsets(client)
    realized = (len(offsets) - 1) / offsets[-1]
    implied = (len(offsets) - 1) / expected_offsets(0, 1000.0, 200)[-1]
    assert realized == pytest.approx(implied, rel=0.1)
    assert realized == pytest.approx(1000.0, rel=0.2)
    assert result.rate_rps == 1000.0
    assert result.concurrency is None


def test_poisson_in_flight_cap_is_honoured() -> None:
    client = FakeClient(latency_s=0.02)
    result = run(client, Schedule(12, rate_rps=5000.0, max_in_flight=3))
    assert client.max_in_flight == 3
    assert len(result.records) == 12
    assert all(r.ok for r in result.records)


def test_poisson_duration_bound_stops_arrivals() -> None:
    client = FakeClient(latency_s=0.002)
    result = run(client, Schedule(10_000, rate_rps=200.0, max_duration_s=0.1))
    assert result.stopped_by == "duration"
    assert 5 <= len(client.sent) <= 50
    assert all(r.ok for r in result.records)


# --- progress and loop lag -----------------------------------------------------------------


def test_progress_reports_requests_done() -> None:
    messages: list[str] = []
    run(FakeClient(latency_s=0.02), Schedule(10, concurrency=2), progress=messages.append,
        progress_every_s=0.015)  # fmt: skip
    assert messages
    pattern = re.compile(r"^(\d+)/10 requests done, [\d.]+ output tok/s so far$")
    done = []
    for message in messages:
        match = pattern.match(message)
        assert match, message
        done.append(int(match.group(1)))
    assert done == sorted(done)


def test_idle_client_loop_has_small_lag() -> None:
    result = run(FakeClient(latency_s=0.02), Schedule(10, concurrency=2))
    assert result.max_loop_lag_s < 0.05


def test_blocking_client_shows_as_loop_lag() -> None:
    result = run(FakeClient(latency_s=0.004, block_s=0.06), Schedule(2, concurrency=1))
    assert result.max_loop_lag_s > 0.045


def test_loop_lag_during_warmup_is_not_held_against_the_run() -> None:
    client = FakeClient(latency_s=0.01, block_s=0.06, block_warmup_only=True)
    result = run(client, Schedule(4, concurrency=1, warmup=1))
    assert result.max_loop_lag_s < 0.05


# --- run_sync: the framework's streaming dialect -------------------------------------------


class _TGI(OpenAICompatible):
    name = "tgi-like"
    stream_dialect = "tgi-generate"


class _Prefixed(OpenAICompatible):
    name = "prefixed"
    paths = ApiPaths(completions="/api/v1/completions")


class _Misnamed(OpenAICompatible):
    name = "misnamed"
    stream_dialect = "openai-complete"


def _capture(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Swap the streaming client for a FakeClient that notes how it was built."""
    seen: dict[str, Any] = {}

    class Capture(FakeClient):
        def __init__(self, base_url: str, model: str, dialect: Dialect, **kw: Any) -> None:
            super().__init__()
            seen.update(base_url=base_url, model=model, dialect=dialect, **kw)

        async def aclose(self) -> None:
            pass

    monkeypatch.setattr(runner, "StreamingClient", Capture)
    return seen


def test_run_sync_speaks_the_frameworks_streaming_dialect(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _capture(monkeypatch)
    endpoint = Endpoint("http://h:1", "m", _TGI(), {"Authorization": "Bearer k-123"})
    run = runner.run_sync(endpoint, PROMPTS, Schedule(3, concurrency=1))
    assert run.stopped_by == "count"
    assert seen["dialect"].name == "tgi-generate"
    assert (seen["base_url"], seen["model"]) == ("http://h:1", "m")
    assert seen["headers"] == {"Authorization": "Bearer k-123"}


def test_run_sync_sends_to_the_frameworks_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _capture(monkeypatch)
    runner.run_sync(Endpoint("http://h:1", "m", _Prefixed()), PROMPTS, Schedule(1, concurrency=1))
    path, _ = seen["dialect"].request("m", PROMPTS[0])
    assert path == "/api/v1/completions"
    assert seen["headers"] == {}


def test_a_named_dialect_overrides_the_frameworks(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _capture(monkeypatch)
    endpoint = Endpoint("http://h:1", "m", _Prefixed())
    runner.run_sync(endpoint, PROMPTS, Schedule(1, concurrency=1), dialect="openai-chat")
    assert seen["dialect"].name == "openai-chat"


def test_an_unknown_dialect_names_the_valid_ones() -> None:
    endpoint = Endpoint("http://127.0.0.1:9", "m", _Misnamed())
    valid = r"\(valid: hf-generation-config, openai-chat, openai-completions, tgi-generate\)"
    with pytest.raises(ValueError, match=r"misnamed: stream_dialect: .*'openai-complete' " + valid):
        runner.run_sync(endpoint, PROMPTS, Schedule(1, concurrency=1))
    with pytest.raises(
        ValueError, match=r"no streaming dialect 'sse' \(valid: hf-generation-config"
    ):
        runner.run_sync(endpoint, PROMPTS, Schedule(1, concurrency=1), dialect="sse")


@pytest.mark.parametrize(("schedule", "opened"), [
    (Schedule(10, concurrency=8), 8),
    (Schedule(10, rate_rps=100.0), 64),  # an open loop: up to PRECONNECT_MAX
])  # fmt: skip
def test_connections_are_opened_before_the_measured_requests(
    schedule: Schedule, opened: int
) -> None:
    client = FakeClient()
    run(client, schedule)
    assert client.preconnected == opened
