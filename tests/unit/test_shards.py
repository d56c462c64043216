"""Shards: every target in exactly one share, stable, balanced, references kept together."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_llmserve.errors import ProfileError
from pytest_llmserve.profile.model import Target
from pytest_llmserve.profile.shards import Shard, assign, parse_shard, select


def _t(name: str, gpus: int = 0, **checks: Any) -> Target:
    gpu = {"device": "gpu", "tp": gpus} if gpus else {}
    return Target(name=name, framework="vllm", model="m", precision="bf16", checks=checks, **gpu)


@pytest.mark.parametrize(("text", "shard"), [("1/4", Shard(1, 4)), (" 4 / 4 ", Shard(4, 4))])
def test_k_of_n(text: str, shard: Shard) -> None:
    assert parse_shard(text) == shard


@pytest.mark.parametrize("text", ["0/4", "5/4", "2", "a/b", "1/0", ""])
def test_a_bad_shard_names_the_form(text: str) -> None:
    with pytest.raises(ProfileError, match=r"--llmserve-shard: .* \(valid: K/N|K must be"):
        parse_shard(text)


def test_every_target_lands_in_exactly_one_share_and_the_split_is_stable() -> None:
    targets = [_t(f"t{i}", gpus=(i % 3) + 1) for i in range(8)]
    shares = assign(targets, 3)
    names = [t.name for share in shares for t in share]
    assert sorted(names) == sorted(t.name for t in targets)
    # The same split whatever the order the profile lists them in.
    reordered = assign(list(reversed(targets)), 3)
    assert [{t.name for t in s} for s in reordered] == [{t.name for t in s} for s in shares]


def test_gpu_needs_are_balanced() -> None:
    targets = [_t("tp8", 8), _t("tp4a", 4), _t("tp4b", 4), _t("tp2", 2), _t("tp1a", 1),
               _t("tp1b", 1)]  # fmt: skip
    loads = sorted(sum(t.tp for t in share) for share in assign(targets, 2))
    assert loads == [10, 10]


def test_cpu_targets_spread_by_count() -> None:
    shares = assign([_t(f"c{i}") for i in range(5)], 2)
    assert sorted(len(s) for s in shares) == [2, 3]


def test_a_baseline_and_its_candidates_stay_together() -> None:
    base = _t("base")
    int8 = _t("int8", accuracy={"baseline": "base"})
    int4 = _t("int4", accuracy={"baseline": "base"})
    tp2 = _t("tp2", 2, layout_scaling={"reference": "tp1"})
    tp1 = _t("tp1", 1)
    for k in (1, 2, 3):
        share = {t.name for t in select([base, int8, int4, tp2, tp1], Shard(k, 3))}
        assert {"base", "int8", "int4"} <= share or not share & {"base", "int8", "int4"}
        assert {"tp1", "tp2"} <= share or not share & {"tp1", "tp2"}


def test_more_shards_than_units_leaves_some_empty() -> None:
    shares = assign([_t("a"), _t("b")], 4)
    assert [len(s) for s in shares] == [1, 1, 0, 0]
