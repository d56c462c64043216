"""One self-contained HTML page per session (or from history): read at a glance.

Order follows the questions a reader has: did anything regress or fail (tiles and
the regression table first), which target should I run (recommendations), how do
the targets compare (table, Pareto plots), how did we get here (trends), and the
detail (each check's verdict, logs of failed targets). Inline CSS and SVG only:
the file can be attached to a CI run and opened offline.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from html import escape
from pathlib import Path

from pytest_llmserve.history.compare import Comparison, Row
from pytest_llmserve.history.record import RunRecord
from pytest_llmserve.report import scaling, svg
from pytest_llmserve.report.recommend import recommend
from pytest_llmserve.report.style import CSS

TREND_METRICS = (
    "output_tok_s",
    "request_rps",
    "ttft_p99_s",
    "tpot_p99_s",
    "goodput_rps",
    "scaling_ratio",
    "layout_efficiency",
    "ppl",
    "task_score",
    "host_memory_bytes",
    "startup_s",
)
TABLE = (
    ("output_tok_s", "output tok/s"),
    ("ttft_p99_s", "TTFT p99"),
    ("tpot_p99_s", "TPOT p99"),
    ("goodput_rps", "goodput"),
    ("scaling_ratio", "batching gain"),
    ("ppl", "perplexity"),
    ("ppl_ratio", "ppl / baseline"),
    ("task_score", "task score"),
    ("task_score_ratio", "score / baseline"),
    ("host_memory_bytes", "host memory"),
    ("gpu_memory_bytes", "GPU memory"),
    ("startup_s", "startup"),
)
PARETO = (
    ("output_tok_s", "ttft_p99_s", "higher", "lower"),
    ("output_tok_s", "tpot_p99_s", "higher", "lower"),
    ("output_tok_s", "ppl", "higher", "lower"),
    ("output_tok_s", "task_score", "higher", "higher"),
    ("output_tok_s", "host_memory_bytes", "higher", "lower"),
)
PILL = {
    "pass": "ok",
    "fail": "bad",
    "error": "bad",
    "regression": "bad",
    "inconclusive": "warn",
    "xfail": "warn",
    "skipped": "mute",
    "info": "mute",
}


def render(
    current: Sequence[RunRecord],
    history: Sequence[RunRecord],
    comparisons: Sequence[Comparison] = (),
    title: str = "LLM serving readiness",
) -> str:
    if not current and history:
        last = history[-1].run_id
        current = [r for r in history if r.run_id == last]
    colors = {r.target: svg.PALETTE[i % len(svg.PALETTE)] for i, r in enumerate(current)}
    run_id = current[0].run_id if current else "-"
    parts = [
        _header(current, title, run_id),
        _tiles(current, comparisons),
        _regressions(comparisons),
        _recommendations(current),
        _targets_table(current, colors),
        _pareto(current, colors),
        scaling.batching(current, colors),
        scaling.layouts(current, colors),
        _trends(current, history, colors),
        _checks(current),
        _failed_logs(current),
    ]
    body = "".join(p for p in parts if p)
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8>"
        f'<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)} · {escape(run_id)}</title><style>{CSS}</style></head>"
        f"<body><main>{body}<footer>pytest-llmserve · run record schema v1 · "
        f"generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}</footer>"
        "</main></body></html>"
    )


def _header(current: Sequence[RunRecord], title: str, run_id: str) -> str:
    if not current:
        return f"<header><h1>{escape(title)}</h1><p>No runs recorded yet.</p></header>"
    r = current[0]
    m, p = r.machine, r.project
    gpus = ", ".join(m.get("gpu_names") or []) or "no GPU"
    commit = (p.get("commit") or "no git")[:10] + (" (dirty)" if p.get("dirty") else "")
    facts = [
        ("run", run_id),
        ("when", r.when + " UTC"),
        ("profile", r.profile.get("name", "")),
        ("commit", commit),
        ("CPU", f"{m.get('cpu_model')} · {m.get('cpus_usable')} usable"),
        ("GPU", gpus),
    ]
    dl = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(str(v))}</dd></div>" for k, v in facts)
    return f"<header><h1>{escape(title)}</h1><dl class=facts>{dl}</dl></header>"


def _tiles(current: Sequence[RunRecord], comparisons: Sequence[Comparison]) -> str:
    outcomes = [c.outcome for r in current for c in r.checks]
    regress = sum(len(c.regressions) for c in comparisons)
    failed_start = sum(1 for r in current if r.server.get("error"))
    tiles = [
        (
            "targets",
            str(len(current)),
            "bad" if failed_start else "plain",
            f"{failed_start} failed to start" if failed_start else "all started",
        ),
        ("checks passed", str(outcomes.count("pass")), "ok", f"of {len(outcomes)}"),
        (
            "failed",
            str(outcomes.count("fail") + outcomes.count("error")),
            "bad" if {"fail", "error"} & set(outcomes) else "plain",
            "checks",
        ),
        (
            "inconclusive",
            str(outcomes.count("inconclusive")),
            "warn" if "inconclusive" in outcomes else "plain",
            "measure longer",
        ),
        (
            "regressions",
            str(regress),
            "bad" if regress else "ok",
            "beyond noise" if comparisons else "no comparison",
        ),
    ]
    html = "".join(
        f'<div class="tile {k}"><b>{escape(v)}</b><span>{escape(t)}</span>'
        f"<small>{escape(s)}</small></div>"
        for t, v, k, s in tiles
    )
    return f"<section class=tiles>{html}</section>"


def _pill(outcome: str) -> str:
    return f'<span class="pill {PILL.get(outcome, "mute")}">{escape(outcome)}</span>'


def _regressions(comparisons: Sequence[Comparison]) -> str:
    rows = [r for c in comparisons for r in c.rows]
    if not rows:
        return ""
    order = ("regression", "inconclusive", "pass", "info")
    ruled = sorted((r for r in rows if r.rule), key=lambda r: order.index(r.verdict))
    other = [r for r in rows if not r.rule]
    head = (
        "<thead><tr><th>target<th>metric<th class=num>earlier<th class=num>now"
        "<th class=num>Δ<th>verdict<th>why</thead>"
    )
    against = "; ".join(sorted({f"{c.target} vs {c.against}" for c in comparisons if c.against}))
    html = f"<section><h2>Compared with earlier runs</h2><p class=sub>{escape(against)}</p>"
    if ruled:
        html += f"<table>{head}<tbody>{''.join(_row(r) for r in ruled)}</tbody></table>"
    else:
        html += "<p>No <code>--llmserve-fail-on</code> rule: changes are shown, not judged.</p>"
    if other:
        html += (
            f"<details><summary>{len(other)} other figure(s) without a rule</summary>"
            f"<table>{head}<tbody>{''.join(_row(r) for r in other)}</tbody></table>"
            "</details>"
        )
    return html + "</section>"


def _row(r: Row) -> str:
    delta = r.delta
    cls = "" if delta is None else ("up" if delta > 0 else "down")
    why = (f"<code>{escape(r.rule.text)}</code> " if r.rule else "") + escape(r.reason)
    return (
        f"<tr><td class=nowrap>{escape(r.target)}</td><td><code>{escape(r.metric)}</code></td>"
        f"<td class=num>{_val(r.old, r.old_range)}</td><td class=num>{_val(r.new, r.new_range)}"
        f"</td><td class='num {cls}'>{'-' if delta is None else f'{delta * 100:+.1f}%'}</td>"
        f"<td>{_pill(r.verdict)}</td><td class=why>{why}</td></tr>"
    )


def _val(v: float | None, rng: tuple[float, float] | None) -> str:
    if v is None:
        return "&ndash;"
    text = svg.fmt(v)
    if rng is not None:
        text += f"<br><small>{svg.fmt(rng[0])} &ndash; {svg.fmt(rng[1])}</small>"
    return text


def _recommendations(current: Sequence[RunRecord]) -> str:
    if len(current) < 2:
        return ""  # one target: nothing to choose between
    cards = []
    for rec in recommend(current):
        who = escape(rec.target) if rec.target else "—"
        cards.append(
            f"<div class=card><span>{escape(rec.objective)}</span><b>{who}</b>"
            f"<em>{escape(rec.value)}</em><small>{escape(rec.note)}</small></div>"
        )
    return (
        f"<section><h2>Which target, for what</h2><div class=cards>{''.join(cards)}</div></section>"
    )


def _targets_table(current: Sequence[RunRecord], colors: dict[str, str]) -> str:
    metrics = [m for m, _ in TABLE if any(m in r.figures for r in current)]
    label = dict(TABLE)
    head = "".join(f"<th class=num title='{escape(m)}'>{escape(label[m])}" for m in metrics)
    rows = []
    for r in current:
        ti = r.target_info
        cells = "".join(f"<td class=num>{_fig(r, m)}</td>" for m in metrics)
        cost = r.cost.get("per_million_output_tokens")
        cost_cell = f"{cost:.3g} {escape(r.cost.get('currency', ''))}" if cost else "&ndash;"
        outcomes = [c.outcome for c in r.checks]
        ready = r.server.get("ready_s")
        rows.append(
            f"<tr><td class=nowrap><i class=dot style='background:{colors[r.target]}'></i>"
            f"<b>{escape(r.target)}</b><br><small>{escape(str(ti.get('framework')))} "
            f"{escape(str(ti.get('framework_version') or '?'))} · "
            f"{escape(str(ti.get('precision_label')))} · tp{ti.get('tp')}pp{ti.get('pp')} · "
            f"{escape(str(ti.get('device')))} · checks {outcomes.count('pass')}/{len(outcomes)}"
            f"{'' if ready is None else f' · ready in {ready:.0f} s'}</small></td>{cells}"
            f"<td class=num>{cost_cell}</td></tr>"
        )
    return (
        f"<section><h2>Targets</h2><div class=scroll><table><thead><tr><th>target{head}"
        "<th class=num>cost / M out tok</thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
        "<p class=sub>value, its 95% interval below; &ndash; not measured</p></section>"
    )


def _fig(r: RunRecord, metric: str) -> str:
    f = r.figures.get(metric)
    if f is None or f.value is None:
        return "&ndash;"
    if f.unit == "B":
        return f"{f.value / 2**30:.2f}<small> GiB</small>"
    return _val(f.value, f.interval) + f"<small> {escape(f.unit)}</small>"


def _pareto(current: Sequence[RunRecord], colors: dict[str, str]) -> str:
    charts = []
    for x, y, xb, yb in PARETO:
        pts = [
            (r.target, colors[r.target], r.figures[x].value, r.figures[y].value)
            for r in current
            if x in r.figures and y in r.figures
        ]
        pts2 = [(a, b, float(c), float(d)) for a, b, c, d in pts if c is not None and d is not None]
        if len(pts2) >= 2:
            chart = svg.scatter(pts2, x, y, xb, yb)
            charts.append(
                f"<figure>{chart}<figcaption>{escape(y)} vs {escape(x)} — big dots: "
                "Pareto-optimal (no target beats them on both)</figcaption></figure>"
            )
    if not charts:
        return ""
    return (
        f"<section><h2>Trade-offs</h2><p class=legend>{_legend(colors)}</p>"
        f"<div class=grid>{''.join(charts)}</div></section>"
    )


def _trends(
    current: Sequence[RunRecord], history: Sequence[RunRecord], colors: dict[str, str]
) -> str:
    names = {r.target for r in current}
    runs = sorted({(r.created, r.run_id) for r in history if r.target in names})
    runs += [(r.created, r.run_id) for r in current[:1] if (r.created, r.run_id) not in runs]
    runs = sorted(runs)[-30:]
    if len(runs) < 2:
        return ""
    index = {rid: i for i, (_, rid) in enumerate(runs)}
    days = [time.strftime("%m-%d", time.gmtime(c)) for c, _ in runs]
    labels = (
        days
        if len(set(days)) == len(days)
        else [time.strftime("%d %H:%M", time.gmtime(c)) for c, _ in runs]
    )
    all_recs = {(r.run_id, r.target): r for r in [*history, *current]}
    charts = []
    for metric in TREND_METRICS:
        series = []
        for name in colors:
            pts = []
            for (rid, tgt), r in all_recs.items():
                f = r.figures.get(metric)
                if tgt != name or rid not in index or f is None or f.value is None:
                    continue
                lo, hi = f.interval if f.interval else (None, None)
                pts.append(
                    svg.Point(
                        index[rid],
                        f.value,
                        lo,
                        hi,
                        f"{svg.fmt(f.value)} {f.unit} ({rid})",
                        flagged=metric in r.gate.get("regressed", ()),
                    )
                )
            if pts:
                series.append(svg.Series(name, colors[name], pts))
        if series and sum(len(s.points) for s in series) >= 2:
            chart = svg.trend(series, labels, metric)
            charts.append(
                f"<figure>{chart}<figcaption>{escape(metric)} over the last "
                f"{len(runs)} runs; bands: 95% interval; red: flagged as a regression"
                "</figcaption></figure>"
            )
    if not charts:
        return ""
    legend = _legend(colors)
    return (
        f"<section><h2>Trends</h2><p class=legend>{legend}</p>"
        f"<div class=grid>{''.join(charts)}</div></section>"
    )


_WORST_FIRST = ("fail", "error", "inconclusive", "xfail", "pass", "skipped")
_SEVERITY = {outcome: i for i, outcome in enumerate(_WORST_FIRST)}


def _checks(current: Sequence[RunRecord]) -> str:
    checks = list(dict.fromkeys(c.check for r in current for c in r.checks))
    if not checks:
        return ""
    head = "".join(f"<th>{escape(r.target)}" for r in current)
    rows = []
    for check in checks:
        cells = []
        for r in current:
            hit = [c for c in r.checks if c.check == check]
            if not hit:
                cells.append("<td>&ndash;</td>")
                continue
            # A parametrized check (one test per bad input...) shows its worst case.
            worst = min(hit, key=lambda c: _SEVERITY.get(c.outcome, len(_SEVERITY)))
            counts = Counter(c.outcome for c in hit)
            tally = ", ".join(f"{n} {o}" for o, n in counts.most_common()) if len(hit) > 1 else ""
            why = "; ".join(x for x in (tally, worst.reason[:140]) if x)
            cells.append(
                f"<td title='{escape(worst.reason)}'>{_pill(worst.outcome)}"
                f"<small class=why>{escape(why)}</small></td>"
            )
        rows.append(f"<tr><td><code>{escape(check)}</code></td>{''.join(cells)}</tr>")
    return (
        f"<section><h2>Every check</h2><div class=scroll><table class=checks><thead><tr>"
        f"<th>check{head}</thead><tbody>{''.join(rows)}</tbody></table></div></section>"
    )


def _failed_logs(current: Sequence[RunRecord]) -> str:
    items = []
    for r in current:
        bad = r.server.get("error") or any(c.outcome in ("fail", "error") for c in r.checks)
        log = r.server.get("log_path")
        if bad and log:
            uri = Path(log).resolve().as_uri()
            why = r.server.get("error") or "a check failed"
            items.append(
                f"<li><b>{escape(r.target)}</b>: {escape(str(why))} — "
                f"<a href='{escape(uri)}'>{escape(log)}</a></li>"
            )
    if not items:
        return ""
    return f"<section><h2>Server logs of failed targets</h2><ul>{''.join(items)}</ul></section>"


def _legend(colors: dict[str, str]) -> str:
    return "".join(
        f"<span><i class=dot style='background:{c}'></i>{escape(n)}</span>"
        for n, c in colors.items()
    )
