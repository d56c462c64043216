"""A framework's golden /metrics page, its counted families rewritten with what was served.

The page keeps the golden file's order, HELP and TYPE lines, label sets and bucket
bounds; only the samples of the families a ``Wire`` gives a meaning are written
anew from the replay server's counts, so a scrape moves with what it served, as
the real server's would. Families without a meaning stay as recorded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from tests.replay.wire import COUNTERS, GAUGES

_DIRECTIVE = re.compile(r"^# (?:HELP|TYPE) (\S+)")


@dataclass(frozen=True)
class Counts:
    """What the replay server has served, as the page needs it (a snapshot)."""

    counters: Mapping[str, float]  # prompt_tokens, generation_tokens
    finished: Mapping[str, int]  # finished requests by reason ("length", "abort")
    gauges: Mapping[str, float]  # running, waiting, kv_cache
    observed: Mapping[str, Sequence[float]]  # every observation, by meaning


def _blocks(text: str) -> list[tuple[str | None, list[str]]]:
    """The page cut into families: (name from its HELP/TYPE lines, its lines)."""
    out: list[tuple[str | None, list[str]]] = []
    for line in text.splitlines():
        found = _DIRECTIVE.match(line)
        if found and (not out or out[-1][0] != found.group(1)):
            out.append((found.group(1), [line]))
        elif out:
            out[-1][1].append(line)
        else:
            out.append((None, [line]))
    return out


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return "{" + inner + "}"


def _number(v: float) -> str:
    return "+Inf" if math.isinf(v) else repr(float(v))


def _rewrite(
    lines: list[str], meaning: str, counts: Counts, finished_label: str | None
) -> list[str]:
    (family,) = list(text_string_to_metric_families("\n".join(lines) + "\n"))
    heads = [line for line in lines if line.startswith("#")]
    first = family.samples[0] if family.samples else None
    name = first.name if first else family.name
    base = {k: v for k, v in (first.labels if first else {}).items()
            if k not in ("le", "quantile") and k != finished_label}  # fmt: skip
    if meaning in COUNTERS or meaning in GAUGES:
        if meaning == "finished":
            if finished_label is None:
                return [*heads, f"{name}{_labels(base)} {sum(counts.finished.values())}"]
            return [*heads, *(f"{name}{_labels({**base, finished_label: reason})} {n}"
                              for reason, n in counts.finished.items())]  # fmt: skip
        if meaning == "succeeded":  # finished requests that were not aborted
            return [*heads, f"{name}{_labels(base)} {counts.finished.get('length', 0)}"]
        value = counts.gauges[meaning] if meaning in GAUGES else counts.counters[meaning]
        return [*heads, f"{name}{_labels(base)} {_number(value)}"]
    seen = list(counts.observed.get(meaning, ()))
    out = list(heads)
    if family.type == "histogram":
        bounds = sorted({float(s.labels["le"]) for s in family.samples if "le" in s.labels})
        for bound in bounds:
            n = sum(1 for v in seen if v <= bound)
            out.append(f"{family.name}_bucket{_labels({**base, 'le': _number(bound)})} {n}")
    elif family.type == "summary":
        ordered = sorted(seen)
        for q in sorted({float(s.labels["quantile"]) for s in family.samples
                         if "quantile" in s.labels}):  # fmt: skip
            v = ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0
            out.append(f"{family.name}{_labels({**base, 'quantile': repr(q)})} {v}")
    out.append(f"{family.name}_sum{_labels(base)} {sum(seen)!r}")
    out.append(f"{family.name}_count{_labels(base)} {len(seen)}")
    return out


def render(
    golden: str,
    meanings: Mapping[str, str],
    counts: Counts,
    finished_label: str | None = None,
) -> str:
    """The golden page with every family of ``meanings`` counting ``counts``."""
    out: list[str] = []
    for name, lines in _blocks(golden):
        meaning = meanings.get(name) if name is not None else None
        out += _rewrite(lines, meaning, counts, finished_label) if meaning else lines
    return "\n".join(out) + "\n"
