"""The HTML report's two scaling sections: batching (one server, more concurrent
requests) and layouts (one model over more devices), each a bar chart with
interval whiskers against 1x, the layouts with their table beside it."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from pytest_llmserve.history.record import RunRecord
from pytest_llmserve.report import svg


def batching(current: Sequence[RunRecord], colors: dict[str, str]) -> str:
    items = _bars(current, colors, "scaling_ratio")
    if not items:
        return ""
    return (
        "<section><h2>Batching scales</h2><figure class=bars>"
        + svg.bars(items, "x", reference=1.0)
        + "<figcaption>output tok/s at "
        "high concurrency ÷ at low; 1x = no gain from batching</figcaption></figure></section>"
    )


def layouts(current: Sequence[RunRecord], colors: dict[str, str]) -> str:
    """Every target that ran the layout scaling load: its devices, tok/s and efficiency."""
    measured = [r for r in current if "layout_output_tok_s" in r.figures]
    if not measured:
        return ""
    rows = "".join(
        f"<tr><td class=nowrap><i class=dot style='background:{colors[r.target]}'></i>"
        f"<b>{escape(r.target)}</b><br><small>tp{r.target_info.get('tp')}"
        f"pp{r.target_info.get('pp')} · {escape(str(r.target_info.get('device')))}</small></td>"
        + "".join(f"<td class=num>{_cell(r, m)}</td>" for m in _COLUMNS)
        + "</tr>"
        for r in measured
    )
    head = "".join(f"<th class=num>{escape(label)}" for label in _COLUMNS.values())
    items = _bars(measured, colors, "layout_efficiency")
    chart = (
        "<figure class=bars>" + svg.bars(items, "x", reference=1.0) + "<figcaption>tok/s(layout)"
        " ÷ (n x tok/s(reference)); 1x = linear scaling</figcaption></figure>"
        if items
        else ""
    )
    return (
        "<section><h2>Layouts scale</h2><div class=scroll><table><thead><tr><th>layout"
        f"{head}</thead><tbody>{rows}</tbody></table></div>{chart}"
        "<p class=sub>value, its 95% interval below (efficiency: 90%, from two 95% "
        "intervals); &ndash; not measured</p></section>"
    )


_COLUMNS = {
    "layout_devices": "devices",
    "layout_output_tok_s": "output tok/s",
    "layout_efficiency": "efficiency",
    "layout_gpus_in_use": "GPUs in use",
    "gpu_memory_per_device_peak_bytes": "peak GiB / GPU",
    "layout_cores_used": "cores used",
}


def _cell(r: RunRecord, metric: str) -> str:
    f = r.figures.get(metric)
    if f is None or f.value is None:
        return "&ndash;"
    value = f.value / 2**30 if f.unit in ("B", "bytes") else f.value
    text = svg.fmt(value)
    if f.interval is not None:
        text += f"<br><small>{svg.fmt(f.interval[0])} &ndash; {svg.fmt(f.interval[1])}</small>"
    return text


def _bars(
    current: Sequence[RunRecord], colors: dict[str, str], metric: str
) -> list[tuple[str, str, float, tuple[float, float] | None]]:
    return [
        (r.target, colors[r.target], float(f.value), f.interval)
        for r in current
        if (f := r.figures.get(metric)) is not None and f.value is not None
    ]
