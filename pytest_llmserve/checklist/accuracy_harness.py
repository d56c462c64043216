"""A session's accuracy measurements: each target measured once, on its baseline's tokens.

A candidate is only comparable with its baseline on the same token ids and items,
so the workload (perplexity windows, encoded task items) is made once per
baseline, through the baseline's own server (its tokenize endpoint), and every
target judged against that baseline is scored on it. Figures are cached for the session: the
baseline is usually measured by its own tests first (tests run grouped by target
in profile order), so a candidate later finds its baseline's per-token NLLs and
per-item results here after the baseline's server has stopped. Only when they
are missing is the baseline's server started (through the session's pool) and,
when no later test needs it, stopped again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pytest_llmserve.checklist import accuracy_looks, footprint
from pytest_llmserve.checklist.accuracy_figures import AccuracyFigures
from pytest_llmserve.checklist.results import Figure
from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.launch.server import Server
from pytest_llmserve.load.workload import server_token_ids
from pytest_llmserve.measure import perplexity, task_items, tasks
from pytest_llmserve.profile.accuracy import AccuracyChecks
from pytest_llmserve.profile.model import Target

# Tokenized on both servers: a candidate whose tokenizer disagrees is not comparable.
PROBE_TEXT = "Tokenizers differ: 3.14159, naïve café, def f(x): return x ** 2  # end"


@dataclass(frozen=True)
class Workload:
    """What every target judged against ``baseline`` is scored on, as token ids (and
    the windows' text, where the baseline's tokenizer says where each token lies)."""

    baseline: str
    windows: tuple[tuple[int, ...], ...]
    items: tuple[tasks.Encoded, ...]
    probe: tuple[int, ...]
    window_texts: tuple[str, ...] | None = None


@dataclass
class AccuracyHarness:
    """Session-wide: workloads per baseline, figures per (target, baseline), memory per target."""

    target_named: Callable[[str], Target]
    get_server: Callable[[Target], Server]
    release_server: Callable[[Target], None]
    still_needed: Callable[[str], bool] = lambda name: False
    progress: Callable[[str], None] | None = None
    verdicts: str = "sequential"  # a candidate's looks (``measure.sequential.MODES``)
    workloads: dict[str, Workload] = field(default_factory=dict)
    figures: dict[tuple[str, str], AccuracyFigures] = field(default_factory=dict)
    memory: dict[str, list[Figure]] = field(default_factory=dict)

    def measure(self, server: Server, spec: AccuracyChecks) -> AccuracyFigures:
        """This target's figures on its baseline's workload (measured once per session).

        ``perplexity.NotMeasurable`` when the baseline's framework cannot tokenize.
        """
        workload = self._workload(spec, server if server.target.name == spec.baseline else None)
        return self._measure(server, workload, spec)

    def baseline(self, spec: AccuracyChecks) -> AccuracyFigures:
        """The baseline's figures, from the cache or by starting its server now."""
        key = (spec.baseline, spec.baseline)
        if key in self.figures:
            return self.figures[key]
        target = self.target_named(spec.baseline)
        server = self.get_server(target)
        try:
            return self.measure(server, spec)
        finally:
            if not self.still_needed(target.name):
                self.release_server(target)

    def _workload(self, spec: AccuracyChecks, server: Server | None) -> Workload:
        if spec.baseline in self.workloads:
            return self.workloads[spec.baseline]
        if server is None:
            self.baseline(spec)  # starts the baseline's server and makes its workload
            return self.workloads[spec.baseline]
        target = server.target
        if target.max_model_len is not None and spec.window_tokens >= target.max_model_len:
            raise ValueError(
                f"checks.accuracy.window_tokens ({spec.window_tokens}) must be below the "
                f"context of {target.name} (max_model_len {target.max_model_len})"
            )

        tokenize = perplexity.ServerTokenizer(Endpoint.of(server))
        try:
            text = perplexity.heldout_text()[: spec.ppl_tokens * 8]  # ~4 chars a token
            tokens = tokenize.tokens(text)
            if len(tokens.ids) < spec.ppl_tokens:
                text = perplexity.heldout_text()
                tokens = tokenize.tokens(text)
            texts = None
            if tokens.spans is None:
                windows = perplexity.windows(tokens.ids, spec.ppl_tokens, spec.window_tokens)
            else:  # text-only targets can be sent these windows
                windows, texts = perplexity.text_windows(
                    text, tokens, spec.ppl_tokens, spec.window_tokens, tokenize
                )
            items = task_items.select(
                task_items.builtin_items(spec.seed), spec.task_items, spec.seed
            )
            encoded = tasks.encode(items, tokenize, spec.concurrency)
            probe = tuple(tokenize(PROBE_TEXT))
        finally:
            tokenize.close()
        workload = Workload(spec.baseline, tuple(tuple(w) for w in windows), tuple(encoded),
                            probe, None if texts is None else tuple(texts))  # fmt: skip
        self.workloads[spec.baseline] = workload
        return workload

    def _measure(self, server: Server, workload: Workload, spec: AccuracyChecks) -> AccuracyFigures:
        target = server.target
        key = (target.name, workload.baseline)
        if key in self.figures:
            return self.figures[key]
        endpoint = Endpoint.of(server)
        comparable = self._comparable(server, workload)
        say = self.progress or (lambda line: None)
        looks = target.name != workload.baseline and self.verdicts == "sequential"
        up_to = "up to " if looks else ""
        tokens = sum(len(w) for w in workload.windows)
        say(f"accuracy: {target.name}: scoring {up_to}{tokens} tokens and "
            f"{len(workload.items)} task items (token ids of {workload.baseline})")  # fmt: skip

        base = None if target.name == workload.baseline else self.baseline(spec)
        blank = AccuracyFigures(target.name, target.precision_label, workload.baseline, None,
                                None, tasks.TaskRun({}, 0.0), comparable)  # fmt: skip
        # The baseline is scored whole: every candidate pairs with it.
        figures = accuracy_looks.measure(
            endpoint, workload.windows, workload.window_texts, workload.items, spec, base,
            self.verdicts if base else "fixed", blank,
        )  # fmt: skip
        ppl, run = figures.ppl, figures.tasks
        say(f"accuracy: {target.name}: perplexity "
            f"{'n/a' if ppl is None else f'{ppl.tokens} tokens in {ppl.seconds:.0f} s'}, "
            f"tasks {len(run.correct)} items in {run.seconds:.0f} s")  # fmt: skip
        self.figures[key] = figures
        self.memory.setdefault(target.name, self._memory(server))
        return figures

    @staticmethod
    def _comparable(server: Server, workload: Workload) -> str | None:
        if server.target.name == workload.baseline:
            return None
        try:
            probe = server_token_ids(Endpoint.of(server), PROBE_TEXT)
        except Exception as exc:  # a framework without a tokenize endpoint: say so, do not guess
            return f"its tokenizer could not be checked against {workload.baseline}'s: {exc}"
        if tuple(probe) != workload.probe:
            return f"its tokenizer differs from {workload.baseline}'s (another model?)"
        return None

    @staticmethod
    def _memory(server: Server) -> list[Figure]:
        """Memory while the server is up and warm, kept for the comparison table."""
        fp = footprint.measure(server)
        figures = [*footprint.memory_figures(fp), footprint.checkpoint_figure(fp)]
        if server.target.device == "gpu":
            figures.append(footprint.gpu_figure(fp))
        return figures


@dataclass
class AccuracyView:
    """What one target's test sees: its accuracy table, its figures and its baseline's."""

    harness: AccuracyHarness
    server: Server
    spec: AccuracyChecks | None

    @property
    def target(self) -> Target:
        return self.server.target

    @property
    def is_baseline(self) -> bool:
        return self.spec is not None and self.spec.baseline == self.target.name

    def figures(self) -> AccuracyFigures:
        if self.spec is None:
            raise ValueError(f"target {self.target.name} has no checks.accuracy table")
        return self.harness.measure(self.server, self.spec)

    def baseline(self) -> AccuracyFigures:
        if self.spec is None:
            raise ValueError(f"target {self.target.name} has no checks.accuracy table")
        if self.is_baseline:
            return self.figures()
        return self.harness.baseline(self.spec)
