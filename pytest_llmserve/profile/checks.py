"""The ``checks`` table of a target, typed: floors, SLOs and the load shape behind them.

Parsed for every target when the profile loads, so a typo in a floor fails the
session before any server starts. A check left out of the profile is not run
(its test skips and says so); it is never judged against a made-up default.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields, replace
from typing import Any, TypeVar

from pytest_llmserve.errors import ProfileError

PERCENTILES = ("p50", "p90", "p95", "p99")
DISTRIBUTIONS = ("fixed", "uniform", "normal")
WORKLOAD_KINDS = ("synthetic", "shared_prefix", "prompt_set")


@dataclass(frozen=True)
class Workload:
    """The prompts every load run of a target sends.

    ``synthetic``: token-id slices of real text, exact input length; ``shared_prefix``:
    the same, all starting with the same ``prefix_tokens`` (the system-prompt case);
    ``prompt_set``: the text prompts of a TOML file (``prompts = [...]``). Output
    length is held with ignore_eos.
    """

    input_tokens: int = 128
    output_tokens: int = 64
    distribution: str = "fixed"
    spread: int = 0
    seed: int = 0
    kind: str = "synthetic"
    prefix_tokens: int = 0
    prompts_file: str | None = None


@dataclass(frozen=True)
class Throughput:
    """Output tok/s at ``concurrency`` must be at least ``min_output_tok_s``."""

    min_output_tok_s: float
    concurrency: int = 16
    # A throughput interval needs >= 5 windows, each >= one median E2E: a closed
    # loop needs about 10 x concurrency requests.
    requests: int = 160
    warmup: int = 4


@dataclass(frozen=True)
class Latency:
    """TTFT and TPOT at ``percentile`` must stay within the bounds (MLPerf style: p99)."""

    concurrency: int = 4
    requests: int = 500
    warmup: int = 4
    output_tokens: int = 16
    percentile: str = "p99"
    max_ttft_s: float | None = None
    max_tpot_s: float | None = None


@dataclass(frozen=True)
class Scaling:
    """Batching works: output tok/s at ``high`` concurrency ≥ ``min_ratio`` x at ``low``."""

    min_ratio: float
    low: int = 1
    high: int = 16
    requests_low: int = 16
    requests_high: int = 160


@dataclass(frozen=True)
class Goodput:
    """Requests/s meeting every bound, on the latency run's load, must reach ``min_rps``."""

    min_rps: float
    max_ttft_s: float | None = None
    max_tpot_s: float | None = None
    max_e2e_s: float | None = None


@dataclass(frozen=True)
class Sweep:
    """A report, not a gate: figures at each concurrency, or each Poisson rate (req/s)."""

    concurrency: tuple[int, ...] = ()
    rate_rps: tuple[float, ...] = ()
    requests: int = 32
    warmup: int = 2


@dataclass(frozen=True)
class PerfChecks:
    workload: Workload
    throughput: Throughput | None
    latency: Latency | None
    scaling: Scaling | None
    goodput: Goodput | None
    sweep: Sweep | None = None


# The quick checklist's throughput run: closed-loop waves of ``concurrency`` requests.
# Six is the fewest that still gives the interval its 5 windows of one median
# request each (``rate_interval``), so the short floor is judged, not guessed; a
# sequential run's early look needs as many (``checklist.performance``).
QUICK_WAVES = 6


def quick_checks(checks: PerfChecks) -> PerfChecks:
    """``checks`` with the throughput run cut to ``QUICK_WAVES`` waves (never lengthened)."""
    t = checks.throughput
    if t is None:
        return checks
    return replace(
        checks, throughput=replace(t, requests=min(t.requests, QUICK_WAVES * t.concurrency))
    )


T = TypeVar("T")
_TABLES: dict[str, type] = {
    "workload": Workload,
    "throughput": Throughput,
    "latency": Latency,
    "scaling": Scaling,
    "goodput": Goodput,
    "sweep": Sweep,
}
# Other issues' tables (accuracy, history...) are validated by their own modules.
OTHER_TABLES = ("accuracy", "metrics", "errors", "robustness", "footprint", "layout_scaling")


def perf_checks(checks: dict[str, Any], where: str) -> PerfChecks:
    """Typed performance checks of one target; ``ProfileError`` names the field and fix."""
    for key in checks:
        if key not in _TABLES and key not in OTHER_TABLES:
            valid = ", ".join([*_TABLES, *OTHER_TABLES])
            raise ProfileError(f"{where}: checks.{key}: unknown check (valid: {valid})")
    parsed = {name: parse_table(checks.get(name), cls, f"{where}: checks.{name}")
              for name, cls in _TABLES.items()}  # fmt: skip
    workload = parsed["workload"] or Workload()
    return PerfChecks(workload, parsed["throughput"], parsed["latency"], parsed["scaling"],
                      parsed["goodput"], parsed["sweep"])  # fmt: skip


def parse_table(raw: Any, cls: type[T], where: str) -> T | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ProfileError(f"{where}: expected a table, got {type(raw).__name__}")
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    for key, value in raw.items():
        if key not in known:
            raise ProfileError(f"{where}.{key}: unknown field (valid: {', '.join(known)})")
        kind = str(known[key].type)
        if kind.startswith("tuple["):
            number = int if kind.startswith("tuple[int") else (int, float)
            if not isinstance(value, list) or not all(
                isinstance(v, number) and not isinstance(v, bool) and v > 0 for v in value
            ):
                raise ProfileError(
                    f"{where}.{key}: expected an array of numbers > 0, got {value!r}"
                )
            raw = {**raw, key: tuple(value)}
            continue
        ok = (
            (isinstance(value, str) if "str" in kind else False)
            or (isinstance(value, int) and not isinstance(value, bool) and "int" in kind)
            or (isinstance(value, (int, float)) and not isinstance(value, bool) and "float" in kind)
        )
        if not ok:
            raise ProfileError(f"{where}.{key}: expected {kind}, got {value!r}")
        if isinstance(value, (int, float)) and value < 0:
            raise ProfileError(f"{where}.{key}: must be >= 0, got {value}")
    try:
        obj = cls(**raw)
    except TypeError as exc:  # a required field is missing
        missing = [n for n, f in known.items() if n not in raw and f.default is MISSING]
        raise ProfileError(f"{where}: missing {', '.join(missing) or exc}") from None
    _validate(obj, where)
    return obj


def _validate(obj: Any, where: str) -> None:
    """Rules across fields and value sets, once the table has its types right."""
    if isinstance(obj, Sweep) and bool(obj.concurrency) == bool(obj.rate_rps):
        raise ProfileError(f"{where}: give exactly one of concurrency = [...] or rate_rps = [...]")
    if isinstance(obj, Workload):
        if obj.kind == "shared_prefix" and obj.prefix_tokens < 1:
            raise ProfileError(f"{where}.prefix_tokens: a shared_prefix workload needs >= 1")
        if obj.kind == "prompt_set" and not obj.prompts_file:
            raise ProfileError(f"{where}.prompts_file: a prompt_set workload needs a file")
    for name, valid in (
        ("percentile", PERCENTILES),
        ("distribution", DISTRIBUTIONS),
        ("kind", WORKLOAD_KINDS),
    ):
        value = getattr(obj, name, None)
        if value is not None and value not in valid:
            raise ProfileError(
                f"{where}.{name}: {value!r} is not valid (valid: {', '.join(valid)})"
            )
    for name in ("concurrency", "requests", "low", "high", "requests_low", "requests_high",
                 "input_tokens", "output_tokens"):  # fmt: skip
        value = getattr(obj, name, None)
        if isinstance(value, int) and value < 1:
            raise ProfileError(f"{where}.{name}: must be >= 1, got {value}")
