"""pytest wiring: options, markers, target parametrization, fixtures, header, summary.

No measurement or lifecycle logic lives here; see ``launch``, ``profile``, ``models``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from pytest_llmserve import options
from pytest_llmserve.checklist.accuracy_harness import AccuracyHarness, AccuracyView
from pytest_llmserve.checklist.benchmark import REPLAY
from pytest_llmserve.checklist.benchmark import record as benchmark_record
from pytest_llmserve.checklist.gate import Verdict
from pytest_llmserve.checklist.performance import Measured, PerfHarness
from pytest_llmserve.checklist.results import CheckOutcome, ResultBook, TargetResults
from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.client.openai import OpenAIClient
from pytest_llmserve.errors import ProfileError
from pytest_llmserve.frameworks import registry as framework_registry
from pytest_llmserve.history import wiring as history
from pytest_llmserve.launch import registry as launcher_registry
from pytest_llmserve.launch.pool import ServerPool
from pytest_llmserve.launch.server import Server
from pytest_llmserve.measure import gpus
from pytest_llmserve.models import catalog
from pytest_llmserve.profile.accuracy import accuracy_checks
from pytest_llmserve.profile.checks import PerfChecks, perf_checks
from pytest_llmserve.profile.markers import marker_lines, marks_for
from pytest_llmserve.profile.model import Target


@dataclass
class LLMServeState:
    """Everything the plugin keeps for one session (in ``config.stash``)."""

    settings: options.Settings
    pool: ServerPool
    swept: list[str] = field(default_factory=list)
    verdicts: list[tuple[str, Verdict]] = field(default_factory=list)
    results: ResultBook = field(default_factory=ResultBook)
    _gpus: gpus.GpuInventory | None = None

    def gpus(self) -> gpus.GpuInventory:
        if self._gpus is None:
            self._gpus = gpus.inventory()
        return self._gpus


STATE = pytest.StashKey[LLMServeState]()
_PREVIOUS_SIGTERM = pytest.StashKey[Any]()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_llmserve import hookspec

    pluginmanager.add_hookspecs(hookspec)


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    # Before markers and the profile: both name what the registries hold.
    framework_registry.install(_flatten(config.hook.pytest_llmserve_frameworks(config=config)))
    launcher_registry.install(_flatten(config.hook.pytest_llmserve_launchers(config=config)))
    for line in marker_lines():
        config.addinivalue_line("markers", line)
    try:
        settings = options.parse_settings(config)
    except ProfileError as exc:
        raise pytest.UsageError(str(exc)) from None
    session_dir = settings.log_dir / time.strftime(f"%Y%m%d-%H%M%S-{os.getpid()}")
    pool = ServerPool(session_dir, _embedded_resolver(config, settings))
    config.stash[STATE] = LLMServeState(settings, pool)
    atexit.register(pool.stop_all)
    _stop_servers_on_sigterm(config)


def _flatten(answers: list[Any]) -> list[Any]:
    return [item for answer in answers for item in answer]


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is not None:
        state.pool.stop_all()
        atexit.unregister(state.pool.stop_all)
    previous = config.stash.get(_PREVIOUS_SIGTERM, None)
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def _stop_servers_on_sigterm(config: pytest.Config) -> None:
    """CI runners stop jobs with SIGTERM; turn it into an interrupt so teardown stops servers."""
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return
        config.stash[_PREVIOUS_SIGTERM] = signal.SIG_DFL

        def interrupt(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")

        signal.signal(signal.SIGTERM, interrupt)
    except ValueError:
        pass  # not the main thread: leave signals alone


def _embedded_resolver(
    config: pytest.Config, settings: options.Settings
) -> Callable[[catalog.Variant], Path]:
    def resolve(variant: catalog.Variant) -> Path:
        from pytest_llmserve.models.embedded import ensure_variant

        return ensure_variant(
            variant,
            cache_dir=settings.cache_dir,
            progress=_live_line(config),
            builder_python=settings.builder_python,
        )

    return resolve


def _live_line(config: pytest.Config) -> Callable[[str], None]:
    """Write a progress line to the terminal now, past output capture (builds take minutes)."""

    def write(line: str) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        capture = config.pluginmanager.get_plugin("capturemanager")
        if reporter is None:
            return
        quiet = capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
        with quiet:
            reporter.write_line(f"llmserve: {line}")

    return write


def pytest_sessionstart(session: pytest.Session) -> None:
    state = session.config.stash[STATE]
    if not hasattr(session.config, "workerinput"):  # xdist workers: the controller sweeps
        state.swept = launcher_registry.sweep_orphans()


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash[STATE]
    s = state.settings
    lines = [
        f"llmserve: profile {s.profile.name} ({s.profile.source}); "
        f"{len(s.selected)} of {len(s.profile.targets)} targets selected",
    ]
    for t in s.selected:
        lines.append(
            f"llmserve:   {t.name}: {t.framework} {t.precision_label} {t.layout_label} "
            f"{t.device} via {t.launcher} ({t.model})"
        )
    versions = []
    for name in sorted({t.framework for t in s.selected}):
        versions.append(f"{name} {framework_registry.get(name).version() or 'not installed'}")
    if versions:
        lines.append("llmserve: frameworks: " + ", ".join(versions))
    if state.swept:
        lines.append(f"llmserve: swept {len(state.swept)} leftover(s) of killed earlier sessions:")
        lines += [f"llmserve:   {line}" for line in state.swept]
    lines.append(history.header_line(s))
    return lines


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "llm_target" not in metafunc.fixturenames:
        return
    selected = metafunc.config.stash[STATE].settings.selected
    params = [pytest.param(t, id=t.name, marks=marks_for(t)) for t in selected]
    metafunc.parametrize("llm_target", params, indirect=True, scope="session")


@pytest.fixture(scope="session")
def llm_target(request: pytest.FixtureRequest) -> Target:
    """The target this test runs against (tests are parametrized over the selected targets)."""
    target: Target = request.param
    return target


@pytest.fixture(scope="session")
def llm_server(llm_target: Target, request: pytest.FixtureRequest) -> Iterator[Server]:
    """The ready server of this target, started once and shared until its tests are done."""
    state = request.config.stash[STATE]
    if llm_target.device == "gpu":
        inv = state.gpus()
        needed = max(1, llm_target.gpus)
        if inv.count < needed:
            pytest.skip(
                f"target {llm_target.name} needs {needed} GPU(s); "
                f"{inv.why_none or f'this machine has {inv.count}'}"
            )
    server = state.pool.get(llm_target)
    try:
        yield server
    finally:
        state.pool.release(llm_target)


@pytest.fixture(scope="session")
def llm_endpoint(llm_server: Server) -> Endpoint:
    """Base URL, served model name, auth headers and framework of this target's server."""
    return Endpoint.of(llm_server)


@pytest.fixture(scope="session")
def llm_perf(llm_server: Server, request: pytest.FixtureRequest) -> PerfHarness:
    """Load runs against this target's server, cached for the session."""
    return PerfHarness(llm_server, progress=_live_line(request.config))


@pytest.fixture(scope="session")
def llm_checks(llm_target: Target) -> PerfChecks:
    """This target's performance checks from the profile (validated when it loaded)."""
    return perf_checks(llm_target.checks, f"target {llm_target.name}")


_ACCURACY = pytest.StashKey[AccuracyHarness]()


@pytest.fixture
def llm_accuracy(llm_server: Server, request: pytest.FixtureRequest) -> AccuracyView:
    """This target's accuracy figures and its baseline's, each measured once per session.

    The baseline's server is started through the pool only when its figures are not
    cached yet, and stopped again unless a later test of this session needs it.
    """
    config = request.config
    state = config.stash[STATE]
    profile = state.settings.profile
    if _ACCURACY not in config.stash:
        config.stash[_ACCURACY] = AccuracyHarness(
            profile.target, state.pool.get, state.pool.release, progress=_live_line(config)
        )
    harness = config.stash[_ACCURACY]
    items, here = request.session.items, request.node

    def still_needed(name: str) -> bool:
        later = items[items.index(here) + 1 :] if here in items else items
        return any(_target_name(i) == name for i in later)

    harness.still_needed = still_needed
    where = f"target {llm_server.target.name}"
    spec = accuracy_checks(llm_server.target.checks, where, profile.target_names)
    return AccuracyView(harness, llm_server, spec)


def _item_target(item: pytest.Item) -> Target | None:
    """The target a collected test runs against (None: not a target test)."""
    callspec = getattr(item, "callspec", None)
    target = callspec.params.get("llm_target") if callspec is not None else None
    return target if isinstance(target, Target) else None


def _target_name(item: pytest.Item) -> str | None:
    target = _item_target(item)
    return None if target is None else target.name


@pytest.fixture
def llm_judge(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Record verdicts and turn the worst into the test's outcome.

    Fail fails; inconclusive skips with its reason (or fails, with
    ``--llmserve-inconclusive=fail``); only all-pass passes.
    """
    state = request.config.stash[STATE]

    def judge(*verdicts: Verdict) -> None:
        state.verdicts.extend((request.node.nodeid, v) for v in verdicts)
        failed = [v.reason for v in verdicts if v.outcome == "fail"]
        if failed:
            pytest.fail("\n".join(failed), pytrace=False)
        unsure = [v.reason for v in verdicts if v.outcome == "inconclusive"]
        if unsure and state.settings.inconclusive == "fail":
            pytest.fail("INCONCLUSIVE: " + "\n".join(unsure), pytrace=False)
        if unsure:
            pytest.skip("INCONCLUSIVE: " + "\n".join(unsure))

    return judge


@pytest.fixture
def llm_results(llm_target: Target, request: pytest.FixtureRequest) -> TargetResults:
    """Where a test records the figures it measured for this target (see ``results``)."""
    return request.config.stash[STATE].results.of(llm_target.name)


@pytest.fixture
def llm_record() -> Callable[[Any, Measured], None]:
    """Record a load run as this test's pytest-benchmark entry."""
    return benchmark_record


@pytest.fixture
def llm_client(llm_server: Server) -> Iterator[OpenAIClient]:
    """A client for this target's served model; fails at once if the server has died."""
    gone = llm_server.exited()
    if gone is not None:
        pytest.fail(
            f"server of {llm_server.target.name} {gone}\n"
            f"log: {llm_server.log_path}\n{llm_server.log_tail()}",
            pytrace=False,
        )
    key = llm_server.target.api_key()
    with OpenAIClient(llm_server.base_url, llm_server.served_name, api_key=key) as client:
        yield client


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        target = _item_target(item)
        if target is None or "benchmark" not in getattr(item, "fixturenames", ()):
            continue
        if item.get_closest_marker("benchmark") is None:
            group = f"llmserve {target.name}"
            item.add_marker(pytest.mark.benchmark(timer=REPLAY, group=group))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each target test's outcome (inconclusive kept apart from skipped) for the results."""
    report = yield
    target = _item_target(item)
    if target is None:
        return report
    if report.when == "call" or (report.when == "setup" and not report.passed):
        outcome, reason = _outcome(report)
        check = getattr(item, "originalname", item.name)
        state = item.config.stash[STATE]
        state.results.of(target.name).checks.append(CheckOutcome(check, outcome, reason))
    return report


def _outcome(report: pytest.TestReport) -> tuple[str, str]:
    if hasattr(report, "wasxfail"):
        return "xfail", str(report.wasxfail).removeprefix("reason: ")
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
        reason = reason.removeprefix("Skipped: ")
        if reason.startswith("INCONCLUSIVE: "):
            return "inconclusive", reason.removeprefix("INCONCLUSIVE: ")
        return "skipped", reason
    if report.failed:
        kind = "fail" if report.when == "call" else "error"
        text = getattr(report.longrepr, "reprcrash", None)
        message = text.message if text is not None else str(report.longrepr)
        return kind, message.removeprefix("Failed: ").splitlines()[0] if message else ""
    return "pass", ""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """Each figure a target test recorded goes into JUnit XML as a property, for CI."""
    target = _item_target(item)
    if target is None:
        return (yield)
    results = item.config.stash[STATE].results.of(target.name)
    before = dict(results.figures)
    try:
        return (yield)
    finally:
        item.user_properties.extend(history.figure_properties(results, before))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Keep a run record per target, compare with history; a regression fails the session."""
    state = session.config.stash.get(STATE, None)
    if state is not None:
        history.at_session_end(session, state)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist: a worker's figures reach the controller, which writes the records."""
    state = node.config.stash.get(STATE, None)
    if state is not None:
        history.merge_worker(node, state)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None:
        return
    if state.pool.records:
        terminalreporter.section("llmserve servers")
    for rec in state.pool.records.values():
        if rec.error:
            terminalreporter.write_line(f"{rec.target}: FAILED TO START: {rec.error}")
        else:
            terminalreporter.write_line(
                f"{rec.target}: ready in {rec.ready_s:.1f} s "
                f"(model resolved in {rec.model_seconds:.1f} s)"
            )
        if rec.log_path:
            terminalreporter.write_line(f"    log: {rec.log_path}")
    if state.verdicts:
        terminalreporter.section("llmserve checks")
        for nodeid, v in state.verdicts:
            terminalreporter.write_line(
                f"{v.outcome.upper():12} {nodeid.split('::')[-1]}: {v.reason}"
            )
    history.summary(terminalreporter, config)
    _comparison(terminalreporter, config, state)


def _comparison(terminalreporter: Any, config: pytest.Config, state: LLMServeState) -> None:
    """The precision comparison table (terminal, JSON, Pareto PNGs) when accuracy was measured."""
    from pytest_llmserve.report.comparison import write as write_comparison

    harness = config.stash.get(_ACCURACY, None)
    if harness is None:
        return
    lines = write_comparison(state.results, state.settings.profile, harness.memory,
                             state.pool.log_dir)  # fmt: skip
    terminalreporter.section("llmserve comparison")
    for line in lines:
        terminalreporter.write_line(line)
