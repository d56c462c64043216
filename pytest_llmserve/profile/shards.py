"""Shards: a CI matrix of N jobs covers a profile once, each job a stable share of it.

``--llmserve-shard K/N`` keeps the targets of share K. Targets that are judged
against each other in one session (an accuracy baseline and its candidates, a
layout and its one-device reference) form one unit and stay together: split, a
shard would start the other target again just to compare with it. Units go, the
largest GPU need first, to the share with the least GPU need so far (then the
fewest targets, then the lowest K), so GPU shards come out balanced, CPU targets
spread by count, and the split depends only on the profile: every job of the
matrix computes the same one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pytest_llmserve.errors import ProfileError
from pytest_llmserve.profile.model import Target

_FORM = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int  # K, from 1
    count: int  # N

    @property
    def text(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str, where: str = "--llmserve-shard") -> Shard:
    m = _FORM.match(text)
    if not m:
        raise ProfileError(f"{where}: {text!r} is not valid (valid: K/N, e.g. 2/4)")
    index, count = int(m.group(1)), int(m.group(2))
    if not 1 <= index <= count:
        raise ProfileError(f"{where}: {text!r}: K must be between 1 and N")
    return Shard(index, count)


def gpu_need(target: Target) -> int:
    return target.tp * target.pp if target.device == "gpu" else 0


def units(targets: Sequence[Target]) -> list[list[Target]]:
    """Targets joined by the references a session judges them by, in profile order."""
    by_name = {t.name: t for t in targets}
    parent = {t.name: t.name for t in targets}

    def root(name: str) -> str:
        while parent[name] != name:
            name = parent[name]
        return name

    for t in targets:
        for table, key in (("accuracy", "baseline"), ("layout_scaling", "reference")):
            ref = (t.checks.get(table) or {}).get(key)
            if isinstance(ref, str) and ref in by_name:
                parent[root(t.name)] = root(ref)
    groups: dict[str, list[Target]] = {}
    for t in targets:
        groups.setdefault(root(t.name), []).append(t)
    return list(groups.values())


def assign(targets: Sequence[Target], count: int) -> list[list[Target]]:
    """Every target in exactly one of ``count`` shares (index 0 is shard 1/N)."""
    shares: list[list[Target]] = [[] for _ in range(count)]
    load = [0] * count
    ordered = sorted(units(targets), key=lambda u: (-sum(map(gpu_need, u)), -len(u), u[0].name))
    for unit in ordered:
        k = min(range(count), key=lambda i: (load[i], len(shares[i]), i))
        shares[k].extend(unit)
        load[k] += sum(map(gpu_need, unit))
    order = {t.name: i for i, t in enumerate(targets)}
    return [sorted(share, key=lambda t: order[t.name]) for share in shares]


def select(targets: Sequence[Target], shard: Shard) -> tuple[Target, ...]:
    """The targets of ``shard``, in profile order."""
    return tuple(assign(targets, shard.count)[shard.index - 1])
