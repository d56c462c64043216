"""Sequential verdicts: look at a run a few times and stop once every bound is decided.

A fixed request count is chosen for the worst case, so a server far from its
bounds is measured far longer than its verdict needs. Looking at the data as it
comes and stopping at the first decisive look is only honest with a rule made for
it: with an ordinary 95% interval at every look, each look is another chance for
noise to cross the bound, and the error rate climbs with the number of looks.

The rule here is alpha spending over looks planned in advance, split evenly
(Bonferroni): with K looks each interval is at level 1 - (1 - level) / K. The
chance that the interval of *any* look misses the truth is then at most
1 - level, whatever the dependence between looks, so a verdict taken at whichever
look stopped the run is wrong no more often than a fixed-size one at ``level``;
and the same holds for every other figure read from that look at that level, not
only the ones that decided when to stop. The price is wider intervals at each
look; a look that could not decide anything (fewer samples than its statistic
needs for an interval) is not planned, so it spends nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

MODES = ("sequential", "fixed")
LEVEL = 0.95
# Where the looks fall, as fractions of a run's request count. Two looks: a third
# look would narrow every interval further for a small chance of stopping sooner.
FRACTIONS = (0.6, 1.0)


@dataclass(frozen=True)
class Plan:
    """The request counts a run is looked at (the last is its whole count) and their level."""

    sizes: tuple[int, ...]
    level: float = LEVEL

    @property
    def each_level(self) -> float:
        """Every look's interval level: the error rate split evenly over the looks."""
        return 1 - (1 - self.level) / len(self.sizes)

    @property
    def early(self) -> tuple[int, ...]:
        """The looks before the last: where a decided run may stop."""
        return self.sizes[:-1]

    def describe(self, n: int, unit: str = "requests") -> str:
        """Which look decided, on how many ``unit``, at what level (for a verdict)."""
        if len(self.sizes) == 1:
            return f"{n} {unit}, one look"
        k = self.sizes.index(n) + 1 if n in self.sizes else len(self.sizes)
        return (
            f"look {k} of {len(self.sizes)}: {n} of {self.sizes[-1]} {unit}, each look "
            f"at {self.each_level:.1%}: the {self.level:.0%} split over {len(self.sizes)} looks"
        )


def plan(
    requests: int,
    mode: str = "sequential",
    level: float = LEVEL,
    fractions: tuple[float, ...] = FRACTIONS,
    needs: Callable[[float], int] | None = None,
) -> Plan:
    """The looks for a run of ``requests``; ``needs(level)``: samples a look must have.

    A look with fewer requests than its statistics need for an interval at the
    looks' level could only ever be inconclusive, so it is dropped before the
    error rate is split. ``fixed`` (or a run too short to split) is one look.
    """
    if mode not in MODES:
        raise ValueError(f"verdict mode {mode!r} is not valid (valid: {', '.join(MODES)})")
    if mode == "fixed":
        return Plan((requests,), level)
    sizes = sorted({min(requests, max(1, round(f * requests))) for f in fractions} | {requests})
    strictest = 1 - (1 - level) / len(sizes)
    floor = needs(strictest) if needs is not None else 1
    kept = (*(n for n in sizes[:-1] if n >= floor), requests)
    return Plan(kept, level)
