"""Small inline-SVG charts (no JavaScript, no external files): trends, scatter, bars.

Each function returns one ``<svg>`` element sized by its viewBox, so the page scales
it; native ``<title>`` elements give hover tooltips with exact values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2", "#dc2626", "#4b5563")
W, H = 520, 260
L, R, T, B = 56, 16, 18, 40  # margins


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    lo: float | None = None
    hi: float | None = None
    tip: str = ""
    flagged: bool = False  # e.g. a run that regressed: drawn filled red


@dataclass(frozen=True)
class Series:
    label: str
    color: str
    points: Sequence[Point]


def fmt(v: float) -> str:
    a = abs(v)
    if a >= 1e9:
        return f"{v / 1e9:.3g}G"
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e4:
        return f"{v / 1e3:.3g}k"
    return f"{v:.3g}"


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    if hi <= lo:
        return [lo]
    return [lo + (hi - lo) * i / n for i in range(n + 1)]


def _bounds(values: Sequence[float], zero: bool = True) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if zero:
        lo = min(0.0, lo)
    if hi == lo:
        hi, lo = hi + (abs(hi) * 0.1 or 1.0), lo - (0 if zero else abs(lo) * 0.1)
    pad = (hi - lo) * (0.08 if zero else 0.18)
    return (lo if zero and lo == 0 else lo - pad), hi + pad


def _frame(
    x_ticks: list[tuple[float, str]], y_ticks: list[tuple[float, str]], xlabel: str, ylabel: str
) -> list[str]:
    out = [f'<rect x="{L}" y="{T}" width="{W - L - R}" height="{H - T - B}" class="plot"/>']
    for y, text in y_ticks:
        out.append(f'<line x1="{L}" x2="{W - R}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(
            f'<text x="{L - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">'
            f"{escape(text)}</text>"
        )
    for x, text in x_ticks:
        out.append(
            f'<text x="{x:.1f}" y="{H - B + 16}" class="tick" text-anchor="middle">'
            f"{escape(text)}</text>"
        )
    out.append(
        f'<text x="{(L + W - R) / 2}" y="{H - 6}" class="axis" text-anchor="middle">'
        f"{escape(xlabel)}</text>"
    )
    out.append(
        f'<text x="14" y="{(T + H - B) / 2}" class="axis" text-anchor="middle" '
        f'transform="rotate(-90 14 {(T + H - B) / 2})">{escape(ylabel)}</text>'
    )
    return out


def _svg(body: list[str], label: str) -> str:
    return (
        f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{escape(label)}">'
        + "".join(body)
        + "</svg>"
    )


def trend(series: Sequence[Series], x_labels: Sequence[str], ylabel: str) -> str:
    """One line per target over runs (x = run index); whiskers show each run's interval."""
    values = [v for s in series for p in s.points for v in (p.y, p.lo, p.hi) if v is not None]
    if not values:
        return ""
    y0, y1 = _bounds(values)
    n = max(1, len(x_labels) - 1)

    def sx(i: float) -> float:
        return L + 14 + (W - L - R - 28) * (i / n if len(x_labels) > 1 else 0.5)

    def sy(v: float) -> float:
        return T + (H - T - B) * (1 - (v - y0) / (y1 - y0))

    step = max(1, -(-len(x_labels) // (5 if max(map(len, x_labels)) > 6 else 8)))
    xt = [(sx(i), x_labels[i]) for i in range(0, len(x_labels), step)]
    body = _frame(xt, [(sy(v), fmt(v)) for v in _ticks(y0, y1)], "run", ylabel)
    for s in series:
        pts = sorted(s.points, key=lambda p: p.x)
        if len(pts) > 1:
            path = " ".join(f"{sx(p.x):.1f},{sy(p.y):.1f}" for p in pts)
            body.append(
                f'<polyline points="{path}" fill="none" stroke="{s.color}" '
                'stroke-width="2.2" stroke-linejoin="round"/>'
            )
        for p in pts:
            if p.lo is not None and p.hi is not None:
                body.append(
                    f'<line x1="{sx(p.x):.1f}" x2="{sx(p.x):.1f}" y1="{sy(p.lo):.1f}" '
                    f'y2="{sy(p.hi):.1f}" stroke="{s.color}" stroke-width="5" '
                    'stroke-opacity="0.25" stroke-linecap="round"/>'
                )
            fill, ring = ("#dc2626", "#dc2626") if p.flagged else ("white", s.color)
            body.append(
                f'<circle cx="{sx(p.x):.1f}" cy="{sy(p.y):.1f}" r="{5 if p.flagged else 4}" '
                f'fill="{fill}" stroke="{ring}" stroke-width="2.2"><title>{escape(s.label)}: '
                f"{escape(p.tip)}</title></circle>"
            )
    return _svg(body, f"trend of {ylabel}")


def scatter(
    points: Sequence[tuple[str, str, float, float]],
    xlabel: str,
    ylabel: str,
    x_better: str,
    y_better: str,
) -> str:
    """Targets as labelled dots; the Pareto-optimal ones are joined by a dashed frontier."""
    if not points:
        return ""
    x0, x1 = _bounds([p[2] for p in points], zero=False)
    y0, y1 = _bounds([p[3] for p in points], zero=False)

    def sx(v: float) -> float:
        return L + (W - L - R) * (v - x0) / (x1 - x0)

    def sy(v: float) -> float:
        return T + (H - T - B) * (1 - (v - y0) / (y1 - y0))

    body = _frame(
        [(sx(v), fmt(v)) for v in _ticks(x0, x1)],
        [(sy(v), fmt(v)) for v in _ticks(y0, y1)],
        xlabel,
        ylabel,
    )
    front = pareto(points, x_better, y_better)
    if len(front) > 1:
        line = " ".join(f"{sx(p[2]):.1f},{sy(p[3]):.1f}" for p in sorted(front, key=lambda p: p[2]))
        body.append(
            f'<polyline points="{line}" fill="none" stroke="#94a3b8" '
            'stroke-dasharray="5 4" stroke-width="1.5"/>'
        )
    for label, color, x, y in points:
        star = any(p[0] == label for p in front)
        body.append(
            f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="{7 if star else 5}" '
            f'fill="{color}" fill-opacity="{0.95 if star else 0.5}">'
            f"<title>{escape(label)}: {fmt(x)}, {fmt(y)}</title></circle>"
        )
    return _svg(body, f"{ylabel} against {xlabel}")


def pareto(
    points: Sequence[tuple[str, str, float, float]], x_better: str, y_better: str
) -> list[tuple[str, str, float, float]]:
    """Points no other point beats on both axes (``better``: "higher" or "lower")."""

    def at_least_as_good(a: float, b: float, better: str) -> bool:
        return a >= b if better == "higher" else a <= b

    out = []
    for p in points:
        dominated = any(
            q is not p
            and at_least_as_good(q[2], p[2], x_better)
            and at_least_as_good(q[3], p[3], y_better)
            and (q[2], q[3]) != (p[2], p[3])
            for q in points
        )
        if not dominated:
            out.append(p)
    return out


def bars(
    items: Sequence[tuple[str, str, float, tuple[float, float] | None]],
    unit: str,
    reference: float | None = None,
) -> str:
    """Horizontal bars with interval whiskers; ``reference`` draws a dashed line (e.g. 1x)."""
    if not items:
        return ""
    hi = max([v for _, _, v, _ in items] + [i[1] for *_, i in items if i] + [reference or 0])
    hi = hi * 1.1 or 1.0
    row, top = 30, 12
    height = top + row * len(items) + 30
    left, right = 190, W - 24

    def sx(v: float) -> float:
        return left + (right - left) * max(0.0, v) / hi

    body = []
    for k, (label, color, v, interval) in enumerate(items):
        y = top + k * row
        body.append(
            f'<text x="{left - 8}" y="{y + 18}" class="lbl" text-anchor="end">'
            f"{escape(label)}</text>"
        )
        body.append(
            f'<rect x="{left}" y="{y + 5}" width="{sx(v) - left:.1f}" height="18" '
            f'rx="4" fill="{color}" fill-opacity="0.85"><title>{fmt(v)} {escape(unit)}'
            "</title></rect>"
        )
        if interval:
            body.append(
                f'<line x1="{sx(interval[0]):.1f}" x2="{sx(interval[1]):.1f}" '
                f'y1="{y + 14}" y2="{y + 14}" stroke="#0f172a" stroke-width="1.5"/>'
            )
        end = max(sx(v), sx(interval[1]) if interval else 0.0)
        body.append(
            f'<text x="{end + 6:.1f}" y="{y + 18}" class="tick">{fmt(v)} {escape(unit)}</text>'
        )
    if reference is not None:
        x = sx(reference)
        body.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{height - 24}" '
            'stroke="#64748b" stroke-dasharray="4 3"/>'
        )
        body.append(
            f'<text x="{x:.1f}" y="{height - 10}" class="tick" text-anchor="middle">'
            f"{fmt(reference)}{escape(unit)}</text>"
        )
    return (
        f'<svg viewBox="0 0 {W} {height}" role="img" aria-label="bars">' + "".join(body) + "</svg>"
    )
