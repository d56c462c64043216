"""One target's accuracy measurements on one workload, and how much of it was scored.

Kept apart from the harness that measures them (``accuracy_harness``) and the gates
that judge them (``accuracy``), which both read them: the harness asks the gates
whether a look has decided before it scores the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_llmserve.measure import perplexity, sequential, tasks


@dataclass(frozen=True)
class AccuracyFigures:
    """One target measured on one workload: per-token NLLs and per-item correctness."""

    target: str
    precision: str  # the declared precision label, e.g. int4-gptq
    workload: str  # the baseline whose token ids were used
    ppl: perplexity.PerplexityRun | None
    ppl_note: str | None  # why there is no perplexity (not measurable)
    tasks: tasks.TaskRun
    comparable: str | None = None  # why it cannot be compared with its baseline
    # The looks a candidate's windows and items were scored in (None: all at once).
    ppl_plan: sequential.Plan | None = None
    task_plan: sequential.Plan | None = None

    def level(self, kind: str) -> float:
        """The interval level its ``ppl`` or ``tasks`` comparison is judged at."""
        plan = self.ppl_plan if kind == "ppl" else self.task_plan
        return plan.each_level if plan is not None else sequential.LEVEL

    def sampling(self, kind: str) -> str | None:
        """Which look its ``ppl`` or ``tasks`` comparison was decided on (several planned)."""
        plan = self.ppl_plan if kind == "ppl" else self.task_plan
        if plan is None or len(plan.sizes) == 1:
            return None
        if kind == "ppl":
            windows = sum(1 for w in self.ppl.nll if w) if self.ppl is not None else 0
            return plan.describe(windows, "windows")
        return plan.describe(len(self.tasks.correct), "items")
