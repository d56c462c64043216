"""The precision comparison: framework x precision -> throughput, memory, accuracy, deltas.

Built at session end from the session's results book, so every number is one a
suite measured and recorded this session under its metric name (nothing is
re-measured or copied from a published table). Memory figures the footprint suite
did not record are filled from what the accuracy harness read while each server
was up. Shown in the terminal, saved as JSON, and plotted as Pareto fronts
(accuracy vs throughput, memory vs throughput) when matplotlib is installed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from pytest_llmserve.checklist.results import Figure, ResultBook
from pytest_llmserve.profile.model import Profile

GIB = 2**30
MIB = 2**20
ACCURACY_CHECKS = (
    "test_perplexity_within_budget",
    "test_task_score_within_budget",
    "test_quantization_applied",
)
_ORDER = ("fail", "error", "inconclusive", "pass", "skipped")


@dataclass(frozen=True)
class Row:
    target: str
    framework: str
    precision: str
    baseline: str | None
    output_tok_s: float | None
    host_memory_bytes: float | None
    checkpoint_bytes: float | None
    gpu_memory_bytes: float | None
    ppl: float | None
    ppl_ratio: float | None
    ppl_ratio_interval: tuple[float, float] | None
    task_score: float | None
    task_score_ratio: float | None
    task_score_ratio_interval: tuple[float, float] | None
    accuracy_verdict: str
    checks: dict[str, int]


def rows(book: ResultBook, profile: Profile, memory: Mapping[str, Sequence[Figure]]) -> list[Row]:
    """One row per target the session has results for, in profile order."""
    out = []
    for t in profile.targets:
        res = book.targets.get(t.name)
        if res is None:
            continue
        for f in memory.get(t.name, ()):
            if f.metric not in res.figures:
                res.add(f)
        accuracy = t.checks.get("accuracy")
        baseline = accuracy.get("baseline") if isinstance(accuracy, dict) else None

        def interval(
            metric: str, figures: Mapping[str, Figure] = res.figures
        ) -> tuple[float, float] | None:
            f = figures.get(metric)
            return None if f is None else f.interval

        counts: dict[str, int] = {}
        for c in res.checks:
            counts[c.outcome] = counts.get(c.outcome, 0) + 1
        acc = [c.outcome for c in res.checks if c.check in ACCURACY_CHECKS]
        verdict = next((o for o in _ORDER if o in acc), "not run")
        if baseline == t.name:
            verdict = "baseline"  # its own figures are a report, not a gate
        out.append(Row(
            t.name, t.framework, t.precision_label, baseline if baseline != t.name else None,
            res.value("output_tok_s"), res.value("host_memory_bytes"),
            res.value("checkpoint_bytes"), res.value("gpu_memory_bytes"),
            res.value("ppl"), res.value("ppl_ratio"), interval("ppl_ratio"),
            res.value("task_score"), res.value("task_score_ratio"), interval("task_score_ratio"),
            verdict, counts,
        ))  # fmt: skip
    return out


def _n(x: float | None, fmt: str = "{:.4g}", scale: float = 1.0) -> str:
    return "-" if x is None else fmt.format(x / scale)


def _delta(point: float | None, interval: tuple[float, float] | None) -> str:
    if point is None:
        return "-"
    text = f"{point - 1:+.2%}"
    if interval is not None:
        text += f" [{interval[0] - 1:+.2%}, {interval[1] - 1:+.2%}]"
    return text


def _ratio(point: float | None, interval: tuple[float, float] | None) -> str:
    if point is None:
        return "-"
    text = f"{point:.3f}"
    if interval is not None:
        text += f" [{interval[0]:.3f}, {interval[1]:.3f}]"
    return text


def table_lines(table: Sequence[Row]) -> list[str]:
    """A plain-text table; deltas are candidate vs baseline with their paired 95% intervals."""
    head = (
        "target", "framework", "precision", "out tok/s", "host GiB", "ckpt MiB", "gpu GiB",
        "ppl", "ppl delta [95%]", "task score", "score ratio [95%]", "accuracy", "checks",
    )  # fmt: skip
    body = []
    for r in table:
        checks = " ".join(f"{k} {v}" for k, v in sorted(r.checks.items()))
        body.append((
            r.target, r.framework, r.precision, _n(r.output_tok_s, "{:.1f}"),
            _n(r.host_memory_bytes, "{:.2f}", GIB), _n(r.checkpoint_bytes, "{:.0f}", MIB),
            _n(r.gpu_memory_bytes, "{:.2f}", GIB), _n(r.ppl, "{:.3f}"),
            "baseline" if r.baseline is None and r.ppl is not None
            else _delta(r.ppl_ratio, r.ppl_ratio_interval),
            _n(r.task_score, "{:.3f}"),
            "baseline" if r.baseline is None and r.task_score is not None
            else _ratio(r.task_score_ratio, r.task_score_ratio_interval),
            r.accuracy_verdict, checks or "-",
        ))  # fmt: skip
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]
    return [
        "  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip()
        for line in (head, *body)
    ]


def to_json(table: Sequence[Row]) -> dict[str, object]:
    return {
        "units": {"output_tok_s": "tok/s", "memory": "bytes", "ppl_ratio": "candidate/baseline",
                  "task_score": "fraction right", "intervals": "paired 95% bootstrap"},
        "rows": [asdict(r) for r in table],
    }  # fmt: skip


def pareto_front(points: Sequence[tuple[float, float]], maximize_y: bool) -> list[int]:
    """Indices of points no other point beats on both throughput (x, higher) and y."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(
            (x2 >= x and (y2 >= y if maximize_y else y2 <= y)) and (x2, y2) != (x, y)
            for j, (x2, y2) in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return front


def plots(table: Sequence[Row], folder: Path) -> list[str]:
    """Pareto PNGs in ``folder``; lines saying what was written or why not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [
            "plots skipped: matplotlib is not installed (pip install 'pytest-llmserve[report]')"
        ]
    have = [r for r in table if r.output_tok_s is not None]
    if not have:
        return [
            "plots skipped: no output tok/s was measured this session (the performance "
            "suite records it: run suites/test_performance.py in the same session)"
        ]
    panels = {
        "pareto_accuracy_throughput.png": [("task_score", "task score (fraction right)", True),
                                           ("ppl", "perplexity (lower is better)", False)],
        "pareto_memory_throughput.png": [("host_memory_bytes", "host memory, PSS sum (GiB)",
                                          False)],
    }  # fmt: skip
    lines = []
    for name, specs in panels.items():
        fig, axes = plt.subplots(1, len(specs), figsize=(6 * len(specs), 4.5), squeeze=False)
        drawn = 0
        for ax, (metric, label, maximize) in zip(axes[0], specs, strict=True):
            scale = GIB if "bytes" in metric else 1
            pts = [(r, float(r.output_tok_s), float(getattr(r, metric)) / scale) for r in have
                   if r.output_tok_s is not None and getattr(r, metric) is not None]  # fmt: skip
            if not pts:
                ax.set_title(f"{label}: not measured")
                continue
            drawn += 1
            xy = [(x, y) for _, x, y in pts]
            front = pareto_front(xy, maximize)
            ax.scatter([p[0] for p in xy], [p[1] for p in xy])
            for r, x, y in pts:
                ax.annotate(r.target, (x, y), fontsize=8, xytext=(4, 4),
                            textcoords="offset points")  # fmt: skip
            line = sorted(xy[i] for i in front)
            ax.plot([p[0] for p in line], [p[1] for p in line], "--", label="Pareto front")
            ax.set_xlabel("output tok/s (higher is better)")
            ax.set_ylabel(label)
            ax.legend()
        if drawn:
            fig.tight_layout()
            path = folder / name
            fig.savefig(path, dpi=100)
            lines.append(f"plot: {path}")
        plt.close(fig)
    return lines


def write(
    book: ResultBook, profile: Profile, memory: Mapping[str, Sequence[Figure]], folder: Path
) -> list[str]:
    """Terminal lines for the table; JSON and PNGs written into ``folder``."""
    table = rows(book, profile, memory)
    if not table:
        return ["no target recorded results this session"]
    lines = table_lines(table)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "comparison.json"
    path.write_text(json.dumps(to_json(table), indent=2) + "\n", encoding="utf-8")
    lines.append(f"json: {path}")
    lines += plots(table, folder)
    return lines
