"""The performance checklist's machinery: load runs per target, cached, turned into verdicts.

Runs are kept for the session and keyed by their load shape (workload, concurrency
or rate, output tokens): a check asking for a run is served by an earlier run of
the same shape planned with at least as many requests, so the throughput floor,
the scaling check's high end and a sweep level at that concurrency share one run,
and the latency SLO and goodput checks share the latency run. A verdict is "pass",
"fail" or "inconclusive"; inconclusive runs (client saturated, token counts that
disagree, failed requests, too few samples) never pass silently.

Every bound a run serves is a ``Gate``, handed to the run by whichever check asks
for it first, so in sequential mode (``measure.sequential``) the run is looked at
before its end and stops once all of them are decided, and every verdict read
from it is at the level its looks were planned for.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pytest_llmserve.checklist.gate import Verdict, check_at_least, check_at_most
from pytest_llmserve.client.dialects import Prompt
from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.errors import ServerError
from pytest_llmserve.frameworks.base import Tokens
from pytest_llmserve.launch.server import Server
from pytest_llmserve.load import workload as wl
from pytest_llmserve.load.records import LoadRun
from pytest_llmserve.load.runner import Schedule, run_sync
from pytest_llmserve.measure import sequential
from pytest_llmserve.measure.cpu_use import CpuUse, CpuWatch
from pytest_llmserve.measure.gpu_telemetry import Sampler, Telemetry, visible_devices
from pytest_llmserve.measure.latency import SLO, RunMetrics, e2e, run_metrics
from pytest_llmserve.measure.perplexity import NotMeasurable, tokenize_path
from pytest_llmserve.measure.stats import min_samples
from pytest_llmserve.profile.checks import (
    QUICK_WAVES,
    Goodput,
    Latency,
    PerfChecks,
    Throughput,
    Workload,
)

Progress = Callable[[str], None]


def _waves(concurrency: int) -> Callable[[float], int]:
    """A closed loop's rate needs about ``QUICK_WAVES`` waves for its 5 windows."""
    return lambda level: QUICK_WAVES * concurrency


@dataclass(frozen=True)
class Gate:
    """One bound a load run serves: which check judges it, how, and the samples it needs.

    ``judge`` reads the run's figures, whose intervals are at the run's look level;
    ``needs(level)`` is the sample count below which it can have no interval at that
    level (a look earlier than that is not planned).
    """

    check: str
    judge: Callable[[RunMetrics], Verdict]
    needs: Callable[[float], int]


def throughput_gates(spec: Throughput) -> list[Gate]:
    """The throughput floor: output tok/s at the run's concurrency."""

    def judge(m: RunMetrics) -> Verdict:
        rate = m.output_throughput
        return check_at_least(
            f"output tok/s at c={spec.concurrency}", rate.point, rate.interval,
            spec.min_output_tok_s, "tok/s", level=rate.level, why_no_interval=rate.note,
        )  # fmt: skip

    return [Gate("throughput", judge, _waves(spec.concurrency))]


def latency_gates(spec: Latency, goodput: Goodput | None) -> list[Gate]:
    """What the latency run serves: TTFT and TPOT at the SLO's percentile, and goodput."""
    gates = []
    for name, bound in (("ttft", spec.max_ttft_s), ("tpot", spec.max_tpot_s)):
        if bound is not None:
            gates.append(Gate("latency", _percentile_judge(name, spec.percentile, bound),
                              lambda level: min_samples(spec.percentile, level)))  # fmt: skip
    if goodput is not None:
        slo = SLO(goodput.max_ttft_s, goodput.max_tpot_s, goodput.max_e2e_s)

        def judge_goodput(m: RunMetrics) -> Verdict:
            rate = m.goodput(slo)
            return check_at_least("goodput", rate.point, rate.interval, goodput.min_rps,
                                  "req/s", level=rate.level, why_no_interval=rate.note)  # fmt: skip

        gates.append(Gate("goodput", judge_goodput, _waves(spec.concurrency)))
    return gates


def _percentile_judge(name: str, stat: str, bound: float) -> Callable[[RunMetrics], Verdict]:
    def judge(m: RunMetrics) -> Verdict:
        summary = m.ttft if name == "ttft" else m.tpot
        return check_at_most(
            f"{summary.name} {stat}", summary.point(stat), summary.interval(stat), bound, "s",
            n=summary.n, level=summary.level, why_no_interval=summary.why_no_interval(stat),
        )  # fmt: skip

    return judge


@dataclass
class Measured:
    """One load run, its figures, and the bounds it serves.

    ``metrics`` are the figures users see, with 95% intervals whatever the mode, so
    a sequential run's figures compare with a fixed run's; ``judged`` are the same
    figures at the level of the run's looks, which its verdicts read.
    """

    label: str
    run: LoadRun
    metrics: RunMetrics
    gates: tuple[Gate, ...] = ()
    plan: sequential.Plan | None = None
    judged_metrics: RunMetrics | None = None
    telemetry: Telemetry | None = None  # a GPU target's GPUs over the run (None: CPU)
    cpu_use: CpuUse | None = None  # a local CPU target's processes over the run

    @property
    def judged(self) -> RunMetrics:
        return self.judged_metrics or self.metrics

    def verdicts(self, check: str) -> list[Verdict]:
        """The verdicts of ``check``'s gates on this run, each with the run's doubts."""
        return [with_doubts(g.judge(self.judged), self) for g in self.gates if g.check == check]

    @property
    def sampling(self) -> str | None:
        """Which look the run ended on, when it was planned with more than one."""
        if self.plan is None or len(self.plan.sizes) == 1:
            return None
        return self.plan.describe(self.run.look or self.plan.sizes[-1])

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
    verdicts: str = "sequential"  # or "fixed" (``measure.sequential.MODES``)
    _corpus: tuple[str, Tokens] | None = None
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
            if not self.server.framework.takes_token_ids:
                self.corpus()  # its text is sent: the tokenizer must say where each token is
        except NotMeasurable as exc:
            return f"a {workload.kind} workload is not measurable: {exc} (a prompt_set can be)"
        return None

    def prompts(
        self, workload: Workload, n: int, output_tokens: int | None = None, run: str = ""
    ) -> list[Prompt]:
        """``n`` prompts of ``workload`` for the run called ``run``.

        Each run draws its own slices (the workload's seed mixed with the run's name,
        so a run's prompts are the same from session to session): one run sending
        another's prompts would find them in the server's prefix cache and time its
        TTFT without their prefill.
        """
        seed = workload.seed if not run else zlib.crc32(f"{workload.seed}:{run}".encode())
        outputs = wl.Lengths(output_tokens or workload.output_tokens)
        if workload.kind == "prompt_set":
            assert workload.prompts_file is not None  # checked when the profile loaded
            return wl.prompt_set(Path(workload.prompts_file), outputs, seed=seed)
        text, tokens = self.corpus()
        by_text = not self.server.framework.takes_token_ids
        # a framework taking text only: prompts of token positions, sent as their text
        ids = list(range(len(tokens.ids))) if by_text else list(tokens.ids)
        inputs = wl.Lengths(workload.input_tokens, workload.distribution, workload.spread)
        if workload.kind == "shared_prefix":
            prompts = wl.shared_prefix(ids, n, workload.prefix_tokens, inputs, outputs, seed=seed)
        else:
            prompts = wl.synthetic(ids, n, inputs, outputs, seed=seed)
        if by_text:
            assert tokens.spans is not None  # corpus() made sure
            return wl.as_text(prompts, text, tokens.spans)
        return prompts

    def corpus(self) -> tuple[str, Tokens]:
        """The corpus text and its tokens by this server's tokenizer, read once.

        ``NotMeasurable`` when a framework that takes text only gives no spans to cut
        the text by (it could not be sent the tokens asked for).
        """
        if self._corpus is None:
            text = wl.corpus_text()
            self._corpus = text, wl.server_tokens(self.endpoint, text)
        framework = self.server.framework
        if not framework.takes_token_ids and self._corpus[1].spans is None:
            raise NotMeasurable(f"{framework.name} takes text prompts only, and its tokenizer "
                                "says not where each token lies in the text")  # fmt: skip
        return self._corpus

    def run(
        self,
        workload: Workload,
        schedule: Schedule,
        output_tokens: int | None = None,
        gates: Sequence[Gate] = (),
    ) -> Measured:
        """The run of this shape, made on first use; ``gates``: every bound it serves.

        The first caller's gates decide when a sequential run may stop, so each check
        asks with the same list (``throughput_gates``, ``latency_gates``).
        """
        key = (workload, schedule, output_tokens)
        if (cached := self._cached(*key)) is not None:
            return cached
        looks = sequential.plan(
            schedule.requests, self.verdicts if gates else "fixed",
            needs=lambda level: max(g.needs(level) for g in gates),
        )  # fmt: skip
        level = looks.each_level

        def decided(snapshot: LoadRun) -> bool:
            # No bootstrap at a look: the loop is sending; percentiles are exact anyway.
            m = run_metrics(snapshot, level=level, resamples=0)
            return all(g.judge(m).outcome != "inconclusive" for g in gates)

        shape = (
            f"{schedule.label} in={workload.input_tokens} "
            f"out={output_tokens or workload.output_tokens} n={schedule.requests}"
        )
        label = f"{self.server.target.name} {shape}"
        # The same prompts for every target (paired), other prompts for every shape.
        prompts = self.prompts(workload, schedule.warmup + schedule.requests,
                               output_tokens, run=shape)  # fmt: skip
        if self.progress:
            self.progress(f"load run: {label}")
        sampler = gpu_sampler(self.server)
        cpu = CpuWatch(self.server.pids) if self._cpu_target else None
        with sampler or contextlib.nullcontext(), cpu or contextlib.nullcontext():
            # In the framework's own streaming dialect (run_sync's default).
            run = run_sync(
                self.endpoint, prompts, schedule, progress=self.progress,
                exited=self.server.exited, looks=looks.early, decided=decided,
            )  # fmt: skip
        if run.stopped_by == "server_gone":
            # Not a measurement: the test fails with the server's own last words.
            raise ServerError(
                f"{self.server.target.name}: load run {label}: {'; '.join(run.notes)}",
                self.server.log_tail(), str(self.server.log_path or "") or None,
            )  # fmt: skip
        if self.progress and run.look is not None:
            self.progress(f"decided at {looks.describe(run.look)}")
        metrics = run_metrics(run)
        # Gates read percentiles and rates only: no bootstrap of the means again.
        judged = run_metrics(run, level=level, resamples=0) if len(looks.sizes) > 1 else None
        telemetry = sampler.figures(run.started_at, run.ended_at) if sampler else None
        self._runs[key] = Measured(label, run, metrics, tuple(gates), looks, judged,
                                   telemetry, cpu.result if cpu else None)  # fmt: skip
        return self._runs[key]

    @property
    def _cpu_target(self) -> bool:
        return self.server.target.device == "cpu" and self.server.launched_here

    def has_run(self, workload: Workload, schedule: Schedule) -> bool:
        """A run of this shape is measured already (``run`` would not send anything)."""
        return self._cached(workload, schedule, None) is not None

    def _cached(
        self, workload: Workload, schedule: Schedule, output_tokens: int | None
    ) -> Measured | None:
        """This run, or an earlier run of its load shape planned with at least
        ``schedule.requests`` (one stopped early at a look was decided for its own
        bounds; a check reading it gets intervals from what it measured)."""
        if (exact := self._runs.get((workload, schedule, output_tokens))) is not None:
            return exact
        for (w, s, out), measured in self._runs.items():
            if (w, out, s.concurrency, s.rate_rps, s.max_duration_s) == (
                workload, output_tokens, schedule.concurrency, schedule.rate_rps,
                schedule.max_duration_s,
            ) and s.requests >= schedule.requests:  # fmt: skip
                return measured
        return None

    def throughput_run(self, checks: PerfChecks) -> Measured:
        """The throughput floor's run, which the scaling check's high end reads too."""
        spec = checks.throughput
        assert spec is not None, "no throughput check"
        schedule = Schedule(spec.requests, spec.concurrency, warmup=spec.warmup)
        return self.run(checks.workload, schedule, gates=throughput_gates(spec))

    def latency_run(self, checks: PerfChecks) -> Measured:
        """The latency SLO's run, which goodput reads too."""
        spec = checks.latency
        assert spec is not None, "no latency check"
        schedule = Schedule(spec.requests, spec.concurrency, warmup=spec.warmup)
        gates = latency_gates(spec, checks.goodput)
        return self.run(checks.workload, schedule, spec.output_tokens, gates=gates)


def gpu_sampler(server: Server) -> Sampler | None:
    """GPU telemetry for a GPU target's runs, on the GPUs its environment gives it
    (``CUDA_VISIBLE_DEVICES``, else every GPU); None for a CPU target."""
    if server.target.device != "gpu":
        return None
    return Sampler(devices=visible_devices(server.target.env_dict()), pids=server.pids)


def with_doubts(verdict: Verdict, *runs: Measured) -> Verdict:
    """Downgrade a verdict to inconclusive when a run behind it cannot support it, and
    say which look of a sequential run it was decided on."""
    looks = [s for m in runs if (s := m.sampling)]
    if looks:
        verdict = replace(verdict, reason=f"{verdict.reason} ({'; '.join(looks)})")
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
