"""The session object: everything pytest-llmserve keeps for one pytest session.

``plugin.py`` makes one in ``pytest_configure``, keeps it in ``config.stash[SESSION]``
(fixtures reach it with ``LLMServeSession.of(config)``) and registers it as the
plugin ``llmserve-session``, as pytest-xdist registers its ``DSession``. It owns
the settings, the server pool, the GPU inventory, the accuracy harness, the
verdicts and the result book, and implements the session-level hooks itself:
orphan sweep at start, report header, check outcomes and JUnit properties per
test, history at the end, the xdist merge, and the terminal summary.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import time
from collections.abc import Generator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from pytest_llmserve.checklist.accuracy_harness import AccuracyHarness, AccuracyView
from pytest_llmserve.checklist.gate import Verdict
from pytest_llmserve.checklist.judge import Judge, check_outcome
from pytest_llmserve.checklist.layout_scaling import LayoutScalingView
from pytest_llmserve.checklist.performance import Measured, PerfHarness
from pytest_llmserve.checklist.results import ResultBook
from pytest_llmserve.frameworks import registry as framework_registry
from pytest_llmserve.history import wiring as history
from pytest_llmserve.history.session import SessionHistory
from pytest_llmserve.launch import gpu_slots
from pytest_llmserve.launch import registry as launcher_registry
from pytest_llmserve.launch.pool import ServerPool
from pytest_llmserve.launch.server import Server
from pytest_llmserve.load.runner import Schedule
from pytest_llmserve.measure import gpus as gpu_info
from pytest_llmserve.models import catalog
from pytest_llmserve.models.cache import ENV_CACHE_DIR
from pytest_llmserve.options import Settings
from pytest_llmserve.profile.accuracy import accuracy_checks
from pytest_llmserve.profile.checks import QUICK_WAVES, Workload, perf_checks
from pytest_llmserve.profile.layouts import layout_scaling
from pytest_llmserve.profile.markers import QUICK
from pytest_llmserve.profile.model import Target
from pytest_llmserve.report import terminal

PLUGIN_NAME = "llmserve-session"


def item_target(item: pytest.Item) -> Target | None:
    """The target a collected test runs against (None: not a target test)."""
    callspec = getattr(item, "callspec", None)
    target = callspec.params.get("llm_target") if callspec is not None else None
    return target if isinstance(target, Target) else None


class LLMServeSession:
    """One pytest session's servers, results and verdicts, and the hooks that use them."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        if settings.cache_dir is not None:
            # One cache for everything this session builds or finds, also where a
            # framework module looks on its own (a llama-server build at launch).
            os.environ[ENV_CACHE_DIR] = str(settings.cache_dir)
        session_dir = settings.log_dir / time.strftime(f"%Y%m%d-%H%M%S-{os.getpid()}")
        slots = gpu_slots.GpuSlots(lambda: self.allowed_gpus().indices)
        self.pool = ServerPool(session_dir, self._resolve_embedded, slots, self.progress)
        self.swept: list[str] = []  # leftovers of killed sessions, stopped at start
        self.verdicts: list[tuple[str, Verdict]] = []  # (nodeid, verdict), as judged
        self.results = ResultBook()
        self.history: SessionHistory | None = None  # set at session end (not on a worker)
        self.accuracy: AccuracyHarness | None = None  # made by the first accuracy test
        self._gpus: gpu_info.GpuInventory | None = None
        self._allowed: gpu_slots.Allowed | None = None
        self._perf: dict[str, PerfHarness] = {}  # by target name: its runs outlive a restart
        self._previous_sigterm: Any = None

    @classmethod
    def of(cls, config: pytest.Config) -> LLMServeSession:
        return config.stash[SESSION]

    # -- lifetime -----------------------------------------------------------------

    def open(self) -> None:
        """Stop the servers however the process ends: at exit, and on SIGTERM (CI cancels)."""
        atexit.register(self.pool.stop_all)
        try:
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                signal.signal(signal.SIGTERM, _interrupt)
                self._previous_sigterm = signal.SIG_DFL
        except ValueError:
            pass  # not the main thread: leave signals alone

    def close(self) -> None:
        self.pool.stop_all()
        atexit.unregister(self.pool.stop_all)
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None

    # -- what fixtures ask ----------------------------------------------------------

    def progress(self, line: str) -> None:
        """Write a progress line to the terminal now, past output capture (builds take minutes)."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None:
            return
        quiet = capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
        with quiet:
            reporter.write_line(f"llmserve: {line}")

    def gpus(self) -> gpu_info.GpuInventory:
        if self._gpus is None:
            self._gpus = gpu_info.inventory()
        return self._gpus

    def allowed_gpus(self) -> gpu_slots.Allowed:
        """The GPUs this session's targets may lease (``--llmserve-gpus``, else the default)."""
        if self._allowed is None:
            self._allowed = gpu_slots.allowed_gpus(self.settings.gpus, self.gpus())
        return self._allowed

    def cannot_serve(self, target: Target) -> str | None:
        """Why this machine cannot run ``target`` (None: it can, as far as is known).

        Only for a launcher that runs the server here: a server elsewhere has its own
        GPUs and CPU.
        """
        if not launcher_registry.get(target.launcher).runs_here:
            return None
        if target.device == "gpu" and (why := gpu_slots.shortfall(target, self.allowed_gpus())):
            return why
        return framework_registry.get(target.framework).unsupported_here(target)

    def accuracy_view(self, server: Server, item: pytest.Item) -> AccuracyView:
        """``server``'s accuracy figures and its baseline's, for the test ``item``."""
        profile = self.settings.profile
        if self.accuracy is None:
            self.accuracy = AccuracyHarness(
                profile.target, self.pool.get, self.pool.release, progress=self.progress,
                verdicts=self.settings.verdicts,
            )  # fmt: skip
        items = item.session.items

        def still_needed(name: str) -> bool:
            later = items[items.index(item) + 1 :] if item in items else items
            return any((t := item_target(i)) is not None and t.name == name for i in later)

        self.accuracy.still_needed = still_needed
        where = f"target {server.target.name}"
        spec = accuracy_checks(server.target.checks, where, profile.target_names)
        return AccuracyView(self.accuracy, server, spec)

    def perf(self, server: Server) -> PerfHarness:
        """The load runs of ``server``'s target, shared by every check that reads them (a
        layout's reference included) and kept if its server is started again."""
        harness = self._perf.get(server.target.name)
        if harness is None:
            harness = PerfHarness(server, self.progress, self.settings.verdicts)
            self._perf[server.target.name] = harness
        harness.server = server
        return harness

    def layout_view(self, server: Server) -> LayoutScalingView | None:
        """``server``'s layout scaling check (None: its profile sets none)."""
        target = server.target
        spec = layout_scaling(target.checks, f"target {target.name}")
        if spec is None:
            return None
        workload = perf_checks(target.checks, f"target {target.name}").workload
        reference = self.settings.profile.target(spec.reference)
        return LayoutScalingView(spec, reference, workload, self.perf(server), self._reference_run)

    def _reference_run(self, name: str, workload: Workload, schedule: Schedule) -> Measured:
        """A reference layout's run of this shape: the one it measured for its own check
        when it has it, else measured now on its server, started for it if it must be
        (and stopped after, so it holds no cores or memory while other layouts run)."""
        cached = self._perf.get(name)
        if cached is not None and (
            cached.has_run(workload, schedule) or not cached.server.exited()
        ):
            return cached.run(workload, schedule)
        ref = self.settings.profile.target(name)
        if why := self.cannot_serve(ref):
            pytest.skip(f"the reference layout cannot run here: {why}")
        try:
            return self.perf(self.pool.get(ref)).run(workload, schedule)
        finally:
            self.pool.release(ref)

    def judge(self, item: pytest.Item) -> Judge:
        return Judge(item, inconclusive=self.settings.inconclusive, log=self.verdicts)

    def _resolve_embedded(self, variant: catalog.Variant) -> Path:
        from pytest_llmserve.models.embedded import ensure_variant

        return ensure_variant(
            variant,
            cache_dir=self.settings.cache_dir,
            progress=self.progress,
            builder_python=self.settings.builder_python,
        )

    # -- hooks ----------------------------------------------------------------------

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if not hasattr(session.config, "workerinput"):  # xdist workers: the controller sweeps
            self.swept = launcher_registry.sweep_orphans()

    def pytest_report_header(self) -> list[str]:
        s = self.settings
        lines = [
            f"llmserve: profile {s.profile.name} ({s.profile.source}); "
            f"{len(s.selected)} of {len(s.profile.targets)} targets selected",
        ]
        for t in s.selected:
            lines.append(
                f"llmserve:   {t.name}: {t.framework} {t.precision_label} {t.layout_label} "
                f"{t.device} via {t.launcher} ({t.model})"
            )
        versions = [
            f"{name} {framework_registry.get(name).version() or 'not installed'}"
            for name in sorted({t.framework for t in s.selected})
        ]
        if versions:
            lines.append("llmserve: frameworks: " + ", ".join(versions))
        if self.swept:
            lines.append(
                f"llmserve: swept {len(self.swept)} leftover(s) of killed earlier sessions:"
            )
            lines += [f"llmserve:   {line}" for line in self.swept]
        if s.shard is not None:
            names = ", ".join(t.name for t in s.selected) or "none (fewer units than shards)"
            lines.append(
                f"llmserve: shard {s.shard.text} of run group {s.run_group or 'this session'}: "
                f"{names}"
            )
        if s.checklist == "quick":
            lines.append(
                "llmserve: quick checklist: the smoke suite, a short throughput floor "
                f"({QUICK_WAVES} waves) and the metrics contract; the rest is deselected"
            )
        if s.gpus is not None or any(t.device == "gpu" for t in s.selected):
            allowed = self.allowed_gpus()
            ids = ",".join(map(str, allowed.indices)) or "none"
            lines.append(f"llmserve: GPU slots from GPUs {ids} ({allowed.limit})")
        lines.append(history.header_line(s))
        return lines

    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        """The quick checklist: a target test not marked for it is deselected (a test
        that runs against no target is the user's own, and stays)."""
        if self.settings.checklist != "quick":
            return
        kept: list[pytest.Item] = []
        dropped: list[pytest.Item] = []
        for item in items:
            out = item_target(item) is not None and item.get_closest_marker(QUICK) is None
            (dropped if out else kept).append(item)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """Keep each target test's outcome (inconclusive kept apart from skipped)."""
        report = yield
        target = item_target(item)
        if target is not None and (
            report.when == "call" or (report.when == "setup" and not report.passed)
        ):
            self.results.of(target.name).checks.append(check_outcome(item, report))
        return report

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        """Each figure a target test recorded goes into JUnit XML as a property, for CI."""
        target = item_target(item)
        if target is None:
            return (yield)
        results = self.results.of(target.name)
        before = dict(results.figures)
        try:
            return (yield)
        finally:
            item.user_properties.extend(history.figure_properties(results, before))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Keep a run record per target, compare with history; a regression fails the session."""
        history.at_session_end(session, self)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any) -> None:
        """xdist: a worker's figures reach the controller, which writes the records."""
        history.merge_worker(node, self)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        terminal.servers(terminalreporter, self.pool.records.values())
        terminal.checks(terminalreporter, self.verdicts)
        terminal.regressions(terminalreporter, self.history)
        if self.accuracy is not None:  # accuracy was measured: the precision comparison
            from pytest_llmserve.report.comparison import write

            folder = self.pool.log_dir
            lines = write(self.results, self.settings.profile, self.accuracy.memory, folder)
            terminal.comparison(terminalreporter, lines)


SESSION = pytest.StashKey[LLMServeSession]()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")
