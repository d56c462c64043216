"""The robustness and footprint tables: typed, defaulted where sensible, bad values named."""

from __future__ import annotations

import pytest

from pytest_llmserve.checklist import footprint as fp
from pytest_llmserve.errors import ProfileError
from pytest_llmserve.measure.memory import ServerMemory
from pytest_llmserve.profile.production import (
    Footprint,
    Robustness,
    footprint_budgets,
    robustness_checks,
)


def test_robustness_defaults_when_absent_and_overrides_field_by_field() -> None:
    assert robustness_checks({}, "t") == Robustness()
    spec = robustness_checks({"robustness": {"burst_requests": 256, "drain_max_s": 5}}, "t")
    assert (spec.burst_requests, spec.drain_max_s, spec.disconnect_streams) == (256, 5, 16)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"burst": 3}, r"checks.robustness.burst: unknown field \(valid: disconnect_streams"),
        ({"burst_requests": 0}, "burst_requests: must be >= 1"),
        ({"burst_requests": 1.5}, "burst_requests: expected int"),
        ({"drain_max_s": 0}, "drain_max_s: must be > 0"),
        ({"kv_tolerance": 5}, "kv_tolerance: a share of the cache, 0..1"),
    ],
)
def test_bad_robustness_values_name_the_field(table: dict[str, object], message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        robustness_checks({"robustness": table}, "t")


def test_footprint_budgets_are_optional_and_positive() -> None:
    assert footprint_budgets({}, "t") == Footprint()
    f = footprint_budgets({"footprint": {"max_startup_s": 120, "max_host_memory_gib": 6.5}}, "t")
    assert (f.max_startup_s, f.max_host_memory_gib, f.max_gpu_memory_gib) == (120, 6.5, None)
    with pytest.raises(ProfileError, match=r"footprint\.max_startup_s: must be > 0"):
        footprint_budgets({"footprint": {"max_startup_s": 0}}, "t")
    with pytest.raises(ProfileError, match=r"footprint.max_rss: unknown field \(valid: max_st"):
        footprint_budgets({"footprint": {"max_rss": 1}}, "t")


def test_budget_verdicts_pass_under_fail_over_and_say_one_measurement() -> None:
    ok = fp.within("startup", 40.0, 120.0, "s")
    over = fp.within("host memory", 7 * fp.GIB, 6.0, "GiB", fp.GIB)
    assert ok.outcome == "pass"
    assert "one measurement" in ok.reason
    assert over.outcome == "fail"
    assert "7.00 GiB > budget 6 GiB" in over.reason
    assert fp.within("x", None, 1.0, "s").outcome == "inconclusive"


def test_memory_figures_put_pss_first_with_rss_and_uss_beside() -> None:
    m = ServerMemory((1, 2), pss_bytes=3 * fp.GIB, rss_bytes=5 * fp.GIB, uss_bytes=2 * fp.GIB)
    figures = {f.metric: f for f in fp.memory_figures(fp.Footprint(30.0, m, None, 10))}
    assert figures["host_memory_bytes"].value == 3 * fp.GIB
    assert "PSS sum over 2 server processes" in figures["host_memory_bytes"].definition
    assert figures["host_memory_rss_bytes"].value == 5 * fp.GIB
    assert figures["host_memory_uss_bytes"].value == 2 * fp.GIB
