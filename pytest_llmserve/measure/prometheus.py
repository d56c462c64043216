"""Prometheus scrapes, parsed by prometheus_client's own parser, and their differences.

A server's histograms are cumulative since it started; what one load run did is
the difference of two scrapes taken around it. Means come out exact (sum/count);
percentiles only to the bucket bounds, interpolated linearly inside a bucket as
Prometheus's ``histogram_quantile`` does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

# (metric name, frozenset of label items) -> value
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass(frozen=True)
class Scrape:
    """One scrape: every sample, plus each family's declared type."""

    samples: Samples
    types: dict[str, str]

    def value(self, name: str, **labels: str) -> float:
        """Sum of the samples called ``name`` whose labels include ``labels``."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= ls)


def parse(text: str) -> Scrape:
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = float(s.value)
    return Scrape(samples, types)


def scrape(base_url: str, path: str, timeout_s: float = 30.0) -> Scrape:
    """One scrape of ``path`` (a framework's ``MetricContract.path``)."""
    r = httpx.get(base_url + path, timeout=timeout_s)
    r.raise_for_status()
    return parse(r.text)


@dataclass(frozen=True)
class HistogramDelta:
    """What a histogram recorded between two scrapes."""

    name: str
    count: float
    sum: float
    buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count), ascending

    @property
    def mean(self) -> float | None:
        return self.sum / self.count if self.count else None

    def quantile(self, q: float) -> float | None:
        """Linear interpolation inside the bucket holding rank q*count (histogram_quantile)."""
        if not self.count:
            return None
        rank = q * self.count
        lower_bound, lower_count = 0.0, 0.0
        for bound, cumulative in self.buckets:
            if cumulative >= rank:
                if bound == float("inf"):
                    return lower_bound
                span = cumulative - lower_count
                frac = (rank - lower_count) / span if span else 1.0
                return lower_bound + (bound - lower_bound) * frac
            lower_bound, lower_count = bound, cumulative
        return lower_bound


def histogram_delta(before: Scrape, after: Scrape, name: str, **labels: str) -> HistogramDelta:
    """``name``'s histogram (base name, without _bucket/_sum/_count) between two scrapes."""
    want = set(labels.items())

    def buckets(scrape_: Scrape) -> dict[float, float]:
        out: dict[float, float] = {}
        for (n, ls), v in scrape_.samples.items():
            if n == f"{name}_bucket" and want <= ls:
                bound = float(dict(ls)["le"])
                out[bound] = out.get(bound, 0.0) + v
        return out

    old, new = buckets(before), buckets(after)
    rows = tuple((b, new[b] - old.get(b, 0.0)) for b in sorted(new))
    count = after.value(f"{name}_count", **labels) - before.value(f"{name}_count", **labels)
    total = after.value(f"{name}_sum", **labels) - before.value(f"{name}_sum", **labels)
    return HistogramDelta(name, count, total, rows)


def first_present(scrape_: Scrape, names: Iterable[str]) -> str | None:
    """The first of several spellings (metrics get renamed across versions) that exists."""
    present = {n for (n, _) in scrape_.samples} | set(scrape_.types)
    return next((n for n in names if n in present), None)
