"""pytest wiring: hook specs, options, markers, target parametrization, fixtures.

``pytest_configure`` installs the frameworks and launchers other plugins add,
declares the markers, parses the options and registers the session object
(``session.LLMServeSession``), which owns the servers and results and implements
the session-level hooks (orphan sweep, report header, check outcomes, history,
the xdist merge, terminal summary). Judging lives in ``checklist/judge.py``, the
terminal tables in ``report/terminal.py``. No measurement or lifecycle logic here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

# httpx imports httpcore lazily and caches its exception classes: imported here, before
# any in-process pytester run can drop and re-import it, an httpcore error always maps
# to its httpx twin (otherwise a ConnectError escapes unmapped in the outer session).
import httpcore  # noqa: F401
import pytest

from pytest_llmserve import options
from pytest_llmserve.checklist.accuracy_harness import AccuracyView
from pytest_llmserve.checklist.benchmark import REPLAY
from pytest_llmserve.checklist.benchmark import record as benchmark_record
from pytest_llmserve.checklist.judge import Judge
from pytest_llmserve.checklist.layout_scaling import LayoutScalingView
from pytest_llmserve.checklist.performance import Measured, PerfHarness
from pytest_llmserve.checklist.results import TargetResults
from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.client.openai import OpenAIClient
from pytest_llmserve.errors import ProfileError
from pytest_llmserve.frameworks import registry as framework_registry
from pytest_llmserve.launch import registry as launcher_registry
from pytest_llmserve.launch.server import Server
from pytest_llmserve.profile.checks import PerfChecks, perf_checks, quick_checks
from pytest_llmserve.profile.markers import marker_lines, marks_for
from pytest_llmserve.profile.model import Target
from pytest_llmserve.session import PLUGIN_NAME, SESSION, LLMServeSession, item_target


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
    llm = config.stash[SESSION] = LLMServeSession(config, settings)
    llm.open()
    config.pluginmanager.register(llm, PLUGIN_NAME)


def _flatten(answers: list[Any]) -> list[Any]:
    return [item for answer in answers for item in answer]


def pytest_unconfigure(config: pytest.Config) -> None:
    llm = config.stash.get(SESSION, None)
    if llm is not None:
        llm.close()
        if config.pluginmanager.is_registered(llm):
            config.pluginmanager.unregister(llm)
        del config.stash[SESSION]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "llm_target" not in metafunc.fixturenames:
        return
    selected = LLMServeSession.of(metafunc.config).settings.selected
    params = [pytest.param(t, id=t.name, marks=marks_for(t)) for t in selected]
    metafunc.parametrize("llm_target", params, indirect=True, scope="session")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A target test that uses ``benchmark`` gets its target's benchmark group."""
    for item in items:
        target = item_target(item)
        if target is None or "benchmark" not in getattr(item, "fixturenames", ()):
            continue
        if item.get_closest_marker("benchmark") is None:
            group = f"llmserve {target.name}"
            item.add_marker(pytest.mark.benchmark(timer=REPLAY, group=group))


@pytest.fixture(scope="session")
def llm_target(request: pytest.FixtureRequest) -> Target:
    """The target this test runs against (tests are parametrized over the selected targets)."""
    target: Target = request.param
    return target


@pytest.fixture(scope="session")
def llm_server(llm_target: Target, request: pytest.FixtureRequest) -> Iterator[Server]:
    """The ready server of this target, started once and shared until its tests are done."""
    llm = LLMServeSession.of(request.config)
    why = llm.cannot_serve(llm_target)
    if why is not None:
        pytest.skip(why)
    server = llm.pool.get(llm_target)
    try:
        yield server
    finally:
        llm.pool.release(llm_target)


@pytest.fixture(scope="session")
def llm_endpoint(llm_server: Server) -> Endpoint:
    """Base URL, served model name, auth headers and framework of this target's server."""
    return Endpoint.of(llm_server)


@pytest.fixture(scope="session")
def llm_perf(llm_server: Server, request: pytest.FixtureRequest) -> PerfHarness:
    """Load runs against this target's server, cached for the session."""
    return LLMServeSession.of(request.config).perf(llm_server)


@pytest.fixture(scope="session")
def llm_layout(llm_server: Server, request: pytest.FixtureRequest) -> LayoutScalingView | None:
    """This layout's scaling check and its reference's runs (None: the profile sets none)."""
    return LLMServeSession.of(request.config).layout_view(llm_server)


@pytest.fixture(scope="session")
def llm_checks(llm_target: Target, request: pytest.FixtureRequest) -> PerfChecks:
    """This target's performance checks from the profile (validated when it loaded); in
    the quick checklist, with the short throughput run."""
    checks = perf_checks(llm_target.checks, f"target {llm_target.name}")
    if LLMServeSession.of(request.config).settings.checklist == "quick":
        return quick_checks(checks)
    return checks


@pytest.fixture
def llm_accuracy(llm_server: Server, request: pytest.FixtureRequest) -> AccuracyView:
    """This target's accuracy figures and its baseline's, each measured once per session.

    The baseline's server is started through the pool only when its figures are not
    cached yet, and stopped again unless a later test of this session needs it.
    """
    return LLMServeSession.of(request.config).accuracy_view(llm_server, request.node)


@pytest.fixture
def llm_judge(request: pytest.FixtureRequest) -> Judge:
    """Record verdicts and turn the worst into the test's outcome.

    Fail fails; inconclusive skips with its reason (or fails, with
    ``--llmserve-inconclusive=fail``); only all-pass passes.
    """
    return LLMServeSession.of(request.config).judge(request.node)


@pytest.fixture
def llm_results(llm_target: Target, request: pytest.FixtureRequest) -> TargetResults:
    """Where a test records the figures it measured for this target (see ``results``)."""
    return LLMServeSession.of(request.config).results.of(llm_target.name)


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
    with OpenAIClient(
        llm_server.base_url, llm_server.served_name, api_key=key, paths=llm_server.framework.paths
    ) as client:
        yield client
