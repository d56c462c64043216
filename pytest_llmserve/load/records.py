"""What one request and one load run leave behind: raw timings, nothing derived.

Every time is ``time.perf_counter()`` seconds in the client process. Metrics
(TTFT, TPOT, ITL, E2E, throughput) are computed from these records by
``measure.latency``, so a definition lives in one place and can be unit-tested
on hand-made records.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RequestRecord:
    """One request as the client saw it."""

    index: int
    sent_at: float
    prompt_tokens_sent: int  # tokens the workload meant to send (exact when sent as ids)
    max_tokens: int  # output tokens asked for
    status: int = 0  # HTTP status; 0 = no response (transport error)
    first_token_at: float | None = None  # first chunk that carried generated text
    last_byte_at: float | None = None
    chunk_times: list[float] = field(default_factory=list)  # each text-bearing chunk
    chunk_tokens: list[int] = field(default_factory=list)  # tokens in each such chunk
    usage_prompt_tokens: int | None = None  # from the server's `usage`
    usage_output_tokens: int | None = None
    # usage.prompt_tokens_details.cached_tokens: how many prompt tokens the server took
    # from its prompt cache rather than evaluated (None: it did not say)
    usage_cached_tokens: int | None = None
    finish_reason: str | None = None
    error: str | None = None
    warmup: bool = False

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None and self.last_byte_at is not None

    @property
    def client_output_tokens(self) -> int:
        return sum(self.chunk_tokens)

    @property
    def output_tokens(self) -> int:
        """The server's count when it gave one, else the client's."""
        if self.usage_output_tokens is not None:
            return self.usage_output_tokens
        return self.client_output_tokens


@dataclass
class LoadRun:
    """One load run: its requests, its measured window, and what disturbed it.

    A run decided at a look (``look`` set, ``load.runner``) measures its first
    ``look`` requests, and its window ends when the last of them did; the requests
    sent after them (``past_look``) overlap that window and count only in its rates.
    """

    records: list[RequestRecord]
    started_at: float  # first measured (non-warm-up) request sent
    ended_at: float  # last measured request's last byte (or failure)
    concurrency: int | None = None
    rate_rps: float | None = None
    max_loop_lag_s: float = 0.0  # the client's worst event-loop delay during the run
    stopped_by: str = "count"  # "count", "duration", "decided" or "server_gone"
    notes: list[str] = field(default_factory=list)
    look: int | None = None  # measured requests the verdicts were decided on (None: all)
    # Why the client cannot count output tokens from the chunks (None: a chunk is a token).
    uncounted: str | None = None

    @property
    def measured(self) -> list[RequestRecord]:
        return [r for r in self.records if not r.warmup][: self.look]

    @property
    def past_look(self) -> list[RequestRecord]:
        """Requests sent after the look's: served inside its window, timed outside it."""
        return [] if self.look is None else [r for r in self.records if not r.warmup][self.look :]

    @property
    def wall_s(self) -> float:
        return max(0.0, self.ended_at - self.started_at)
