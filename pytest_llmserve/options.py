"""Command-line options, each with an ini twin, parsed into one typed ``Settings``.

Parsing happens in ``pytest_configure``: a bad value (a missing profile, an unknown
target name) stops the session with a ``UsageError`` before any server starts.
The command line wins over the ini file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_llmserve.errors import ProfileError
from pytest_llmserve.history.compare import CompareSpec, Rule, parse_compare, parse_rule
from pytest_llmserve.history.store import HistoryStore, open_store
from pytest_llmserve.launch.gpu_slots import GPUS_FORM, parse_gpus
from pytest_llmserve.measure.sequential import MODES as VERDICT_MODES
from pytest_llmserve.profile import shards
from pytest_llmserve.profile.default import BASELINES, embedded_default
from pytest_llmserve.profile.load import load_profile, pyproject_profile
from pytest_llmserve.profile.model import Profile, Target
from pytest_llmserve.profile.shards import Shard, parse_shard

INCONCLUSIVE_MODES = ("skip", "fail")
CHECKLISTS = ("full", "quick")
BASELINE_ENV = "LLMSERVE_EMBEDDED_BASELINE"
NO_COMPARE = CompareSpec("none")
# Where CI systems put the id of the run a job belongs to (GitHub adds the attempt).
RUN_GROUP_ENV = ("GITHUB_RUN_ID", "CI_PIPELINE_ID", "BUILDKITE_BUILD_ID", "CIRCLE_WORKFLOW_ID")


@dataclass(frozen=True)
class _Option:
    name: str  # --llmserve-<name>, ini llmserve_<name with _>
    help: str
    default: str | None = None
    repeatable: bool = False

    @property
    def flag(self) -> str:
        return f"--llmserve-{self.name}"

    @property
    def ini(self) -> str:
        return "llmserve_" + self.name.replace("-", "_")

    @property
    def dest(self) -> str:
        return self.ini


OPTIONS = (
    _Option(
        "profile",
        "profile TOML listing targets (default: [tool.llmserve] in pyproject.toml, "
        "else the embedded default: SmolLM2-135M on vLLM CPU at a float baseline, int8 "
        "and int4, and on llama.cpp at F16, Q8_0 and Q4_K_M)",
    ),
    _Option("target", "run only against this target name (repeatable)", repeatable=True),
    _Option(
        "cache-dir",
        "where built models and the builder environment live "
        "(default: $LLMSERVE_CACHE_DIR, else the user cache dir)",
    ),
    _Option("log-dir", "where server logs are written", default=".llmserve/logs"),
    _Option(
        "inconclusive",
        "what an inconclusive check does to its test: skip (reported with the reason) or fail",
        default="skip",
    ),
    _Option(
        "builder-python",
        "python that has llmcompressor, for building embedded variants "
        "(default: a virtualenv made once in the cache dir)",
    ),
    _Option(
        "history",
        "where run records are kept: a folder, sqlite:///file.db, "
        "postgresql://user@host/db?password_env=VAR (shared by many runners), or none",
        default=".llmserve/history",
    ),
    _Option(
        "compare",
        "what each target's run is compared with: last, last:N, baseline:NAME, or none",
        default="last",
    ),
    _Option(
        "fail-on",
        "a regression rule, e.g. output_tok_s:-5% or ttft_p99_s:+10% (repeatable); "
        "the session fails when a figure is worse by more, beyond both runs' noise",
        repeatable=True,
    ),
    _Option(
        "report",
        "the HTML report to write (default: report.html in the session's log folder; none: off)",
    ),
    _Option(
        "checklist",
        "full: every suite; quick: the smoke suite, a short throughput floor and the "
        "metrics contract on every target, for pull requests (the rest is deselected)",
        default="full",
    ),
    _Option(
        "verdicts",
        "sequential: a load run is looked at before its end and stops once every bound "
        "it serves is decided (the error rate split over the looks); fixed: every run "
        "sends all its requests",
        default="sequential",
    ),
    _Option(
        "embedded-baseline",
        "the embedded default's baseline precision: auto (bf16 where the CPU computes bf16 "
        "natively, AVX512-BF16 or AMX; else fp32), bf16 or fp32 "
        f"(default: ${BASELINE_ENV}, else auto)",
    ),
    _Option(
        "gpus",
        f"the GPUs this session may use, {GPUS_FORM} (default: the session's "
        "CUDA_VISIBLE_DEVICES, else every GPU NVML sees); each GPU target's server "
        "leases tp x pp of them for itself",
    ),
    _Option(
        "shard",
        "K/N: run only share K of the profile's N shares (a CI matrix of N jobs covers the "
        "profile once; targets judged together stay together, GPU needs are balanced)",
    ),
    _Option(
        "run-group",
        "the id that joins the shards of one run in the history (default: the CI run's id "
        f"from {', '.join(RUN_GROUP_ENV)}, else this session's run id)",
    ),
)


@dataclass(frozen=True)
class Settings:
    profile: Profile
    profile_explicit: bool
    selected: tuple[Target, ...]
    cache_dir: Path | None
    log_dir: Path
    builder_python: str | None
    inconclusive: str
    history: HistoryStore | None = None
    compare: CompareSpec = NO_COMPARE
    fail_on: tuple[Rule, ...] = ()
    report: Path | None = None
    report_off: bool = False
    checklist: str = "full"
    verdicts: str = "sequential"
    gpus: tuple[int, ...] | None = None  # --llmserve-gpus; None: the default set
    shard: Shard | None = None  # --llmserve-shard; None: the whole profile
    run_group: str | None = None  # None: the session's own run id


def argparse_help(text: str) -> str:
    """``text`` as argparse help: argparse %-formats it, so a literal ``%`` is doubled.

    Ini help is printed as written, so only the command-line twin is escaped.
    """
    return text.replace("%", "%%")


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmserve", "LLM serving readiness (pytest-llmserve)")
    for opt in OPTIONS:
        cli_help = argparse_help(opt.help)
        if opt.repeatable:
            group.addoption(opt.flag, action="append", dest=opt.dest, default=None, help=cli_help)
            parser.addini(opt.ini, f"{opt.help} (one per line)", type="linelist", default=[])
        else:
            group.addoption(opt.flag, dest=opt.dest, default=None, help=cli_help)
            parser.addini(opt.ini, opt.help, default=opt.default)


def _value(config: pytest.Config, opt: _Option) -> tuple[str | None, Path]:
    """The option's value and the folder a relative path in it is relative to."""
    cli = config.getoption(opt.dest)
    if cli is not None:
        return str(cli), config.invocation_params.dir
    ini = config.getini(opt.ini)
    base = config.inipath.parent if config.inipath else config.rootpath
    return (str(ini) if ini else None), base


def _path(config: pytest.Config, opt: _Option) -> Path | None:
    value, base = _value(config, opt)
    if value is None:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def parse_settings(config: pytest.Config) -> Settings:
    """Every llmserve option as a typed value; raises ``ProfileError`` on a bad one."""
    profile_opt, target_opt, cache_opt, log_opt, inconclusive_opt, builder_opt = OPTIONS[:6]
    opts = {o.name: o for o in OPTIONS}
    profile_path = _path(config, profile_opt)
    if profile_path is not None:
        profile = load_profile(profile_path)
    else:
        profile = pyproject_profile(config.rootpath) or embedded_default(
            _choice(config, opts["embedded-baseline"], BASELINES, env=BASELINE_ENV)
        )

    wanted: list[str] = config.getoption(target_opt.dest) or list(config.getini(target_opt.ini))
    unknown = [n for n in wanted if n not in profile.target_names]
    if unknown:
        raise ProfileError(
            f"{target_opt.flag}: unknown target {unknown[0]!r} in profile {profile.name} "
            f"(valid: {', '.join(profile.target_names)})"
        )
    selected = tuple(t for t in profile.targets if not wanted or t.name in wanted)
    shard_text, _ = _value(config, opts["shard"])
    shard = parse_shard(shard_text, opts["shard"].flag) if shard_text else None
    if shard is not None:
        share = {t.name for t in shards.select(profile.targets, shard)}
        selected = tuple(t for t in selected if t.name in share)
    log_dir = _path(config, log_opt)
    assert log_dir is not None  # it has a default
    builder, _ = _value(config, builder_opt)
    inconclusive = _choice(config, inconclusive_opt, INCONCLUSIVE_MODES)
    checklist = _choice(config, opts["checklist"], CHECKLISTS)
    verdicts = _choice(config, opts["verdicts"], VERDICT_MODES)
    history, compare_spec, rules, report, report_off = _history_settings(config)
    return Settings(
        profile=profile,
        profile_explicit=profile_path is not None,
        selected=selected,
        cache_dir=_path(config, cache_opt),
        log_dir=log_dir,
        builder_python=builder,
        inconclusive=inconclusive,
        history=history,
        compare=compare_spec,
        fail_on=rules,
        report=report,
        report_off=report_off,
        checklist=checklist,
        verdicts=verdicts,
        gpus=_gpus(config, opts["gpus"]),
        shard=shard,
        run_group=_run_group(config, opts["run-group"]),
    )


def _run_group(config: pytest.Config, opt: _Option) -> str | None:
    """The option's value, else the CI run's id, so the shards of one CI run share it."""
    given, _ = _value(config, opt)
    if given is not None:
        if not given.strip() or any(c.isspace() for c in given.strip()):
            raise ProfileError(f"{opt.flag}: {given!r}: expected an id without spaces")
        return given.strip()
    for var in RUN_GROUP_ENV:
        if value := os.environ.get(var):
            attempt = os.environ.get("GITHUB_RUN_ATTEMPT") if var == "GITHUB_RUN_ID" else None
            return f"{value}-{attempt}" if attempt else value
    return None


def _gpus(config: pytest.Config, opt: _Option) -> tuple[int, ...] | None:
    """``--llmserve-gpus`` as indices; a bad list fails here, before any server starts."""
    value, _ = _value(config, opt)
    if value is None:
        return None
    try:
        return parse_gpus(value)
    except ValueError as exc:
        raise ProfileError(f"{opt.flag}: {exc}") from None


def _choice(
    config: pytest.Config, opt: _Option, valid: tuple[str, ...], env: str | None = None
) -> str:
    """The option's value (else ``$env``, else the first valid one), checked against
    ``valid``; a bad value names where it came from and the valid ones."""
    given, _ = _value(config, opt)
    value = given or (os.environ.get(env) if env else None) or valid[0]
    if value not in valid:
        where = opt.flag if given or env is None else f"${env}"
        raise ProfileError(f"{where}: {value!r} is not valid (valid: {', '.join(valid)})")
    return value


def _history_settings(
    config: pytest.Config,
) -> tuple[HistoryStore | None, CompareSpec, tuple[Rule, ...], Path | None, bool]:
    """The history options as typed objects: a bad URI, mode or rule fails here."""
    opts = {o.name: o for o in OPTIONS}
    uri, base = _value(config, opts["history"])
    store = open_store(uri or "none", base)
    mode, _ = _value(config, opts["compare"])
    spec = parse_compare(mode or "none")
    fail_on = opts["fail-on"]
    texts: list[str] = config.getoption(fail_on.dest) or list(config.getini(fail_on.ini))
    rules = tuple(parse_rule(t) for t in texts)
    if rules and store is None:
        raise ProfileError(f"{fail_on.flag}: needs a history store (--llmserve-history is none)")
    report_value, _ = _value(config, opts["report"])
    off = report_value is not None and report_value.strip().lower() == "none"
    return store, spec, rules, None if off else _path(config, opts["report"]), off
