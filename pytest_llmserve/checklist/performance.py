"""The performance checklist's machinery: load runs per target, cached, turned into verdicts.

Runs are cached per (target, workload, schedule) for the session, so the
throughput floor and the scaling check share the high-concurrency run and the
latency SLO and goodput checks share the latency run. A verdict is "pass",
"fail" or "inconclusive"; inconclusive runs (client saturated, token counts that
disagree, failed requests, too few samples) never pass silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_llmserve.checklist.gate import Verdict
from pytest_llmserve.client.dialects import Prompt
from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.errors import ServerError
from pytest_llmserve.launch.server import Server
from pytest_llmserve.load import workload as wl
from pytest_llmserve.load.records import LoadRun
from pytest_llmserve.load.runner import Schedule, run_sync
from pytest_llmserve.measure.latency import RunMetrics, e2e, run_metrics
from pytest_llmserve.measure.perplexity import NotMeasurable, tokenize_path
from pytest_llmserve.profile.checks import Workload

Progress = Callable[[str], None]


@dataclass
class Measured:
    """One load run and its figures."""

    label: str
    run: LoadRun
    metrics: RunMetrics

    def integrity_doubts(self) -> list[str]:
        """Reasons the run's figures cannot support a verdict either way."""
        m = self.metrics
        reasons = []
        if m.failed:
            reasons.append(f"{m.failed} of {m.failed + m.completed} requests failed")
        if m.token_disagreement_flagged:
            reasons.append(
                f"server usage and client token counts disagree by "
                f"{(m.token_disagreement or 0) * 100:.1f}% (> 1%)"
            )
        return reasons

    def client_lag_doubt(self) -> str | None:
        """Set when the client's own loop lagged more than a median token gap.

        Lag only delays the client's timestamps and requests: it can make the server
        look slower, never faster. It turns a failing verdict inconclusive, not a pass.
        """
        itl = self.metrics.itl.p50
        lag = self.run.max_loop_lag_s
        if itl is not None and lag > itl:
            return f"the client's event loop lagged {lag * 1000:.0f} ms (> median ITL)"
        return None

    def e2e_samples(self) -> list[float]:
        return [x for r in self.run.measured if r.ok and (x := e2e(r)) is not None]


@dataclass
class PerfHarness:
    """Load runs against one server, shared by every performance check of its target.

    Requests go out in the streaming dialect the server's framework declares
    (``Framework.stream_dialect``).
    """

    server: Server
    progress: Progress | None = None
    _corpus: list[int] | None = None
    _runs: dict[tuple[Any, ...], Measured] = field(default_factory=dict)

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint.of(self.server)

    def not_measurable(self, workload: Workload) -> str | None:
        """Why ``workload`` cannot be sent to this server (None: it can)."""
        if workload.kind == "prompt_set":
            return None  # text prompts: the server tokenizes them itself
        try:
            tokenize_path(self.server.framework)
        except NotMeasurable as exc:
            return f"a {workload.kind} workload is not measurable: {exc} (a prompt_set can be)"
        return None

    def prompts(self, workload: Workload, n: int, output_tokens: int | None = None) -> list[Prompt]:
        outputs = wl.Lengths(output_tokens or workload.output_tokens)
        if workload.kind == "prompt_set":
            assert workload.prompts_file is not None  # checked when the profile loaded
            return wl.prompt_set(Path(workload.prompts_file), outputs, seed=workload.seed)
        if self._corpus is None:
            self._corpus = wl.server_token_ids(self.endpoint, wl.corpus_text())
        inputs = wl.Lengths(workload.input_tokens, workload.distribution, workload.spread)
        if workload.kind == "shared_prefix":
            return wl.shared_prefix(
                self._corpus, n, workload.prefix_tokens, inputs, outputs, seed=workload.seed
            )
        return wl.synthetic(self._corpus, n, inputs, outputs, seed=workload.seed)

    def run(
        self, workload: Workload, schedule: Schedule, output_tokens: int | None = None
    ) -> Measured:
        key = (workload, schedule, output_tokens)
        if key not in self._runs:
            prompts = self.prompts(workload, schedule.warmup + schedule.requests, output_tokens)
            label = (
                f"{self.server.target.name} {schedule.label} in={workload.input_tokens} "
                f"out={output_tokens or workload.output_tokens} n={schedule.requests}"
            )
            if self.progress:
                self.progress(f"load run: {label}")
            # In the framework's own streaming dialect (run_sync's default for an endpoint).
            run = run_sync(
                self.endpoint, prompts, schedule, progress=self.progress, exited=self.server.exited
            )
            if run.stopped_by == "server_gone":
                # Not a measurement: the test fails with the server's own last words.
                raise ServerError(
                    f"{self.server.target.name}: load run {label}: {'; '.join(run.notes)}",
                    self.server.log_tail(), str(self.server.log_path or "") or None,
                )  # fmt: skip
            self._runs[key] = Measured(label, run, run_metrics(run))
        return self._runs[key]


def with_doubts(verdict: Verdict, *runs: Measured) -> Verdict:
    """Downgrade a verdict to inconclusive when a run behind it cannot support it."""
    doubts = [d for m in runs for d in m.integrity_doubts()]
    if verdict.outcome == "fail":
        doubts += [d for m in runs if (d := m.client_lag_doubt())]
    if not doubts or verdict.outcome == "inconclusive":
        return verdict
    return Verdict(
        outcome="inconclusive",
        reason=f"{verdict.reason}; but the run cannot support it: {'; '.join(doubts)}",
        metric=verdict.metric,
        bound=verdict.bound,
        point=verdict.point,
        interval=verdict.interval,
        n=verdict.n,
    )
