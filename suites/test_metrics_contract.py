"""Metrics endpoint contract: Prometheus text, the required families with their types,
labelled with the served model, counting exactly what a load run of ours did, and
back to idle afterwards.

Counters are cumulative and other tests move them too, so every count is a delta
of two scrapes taken around one small load run whose requests and tokens the
client counted itself (from each request's ``usage``). llama.cpp counts only the
prompt tokens it evaluated, not a prefix it reused from its prompt cache: its usage
says how long that prefix was, and the expected count is short by as much. The
run's prompts are new to the server in every session all the same (an external
server, or one serving both runs of a benchmark, keeps earlier sessions' prompts),
so that the counter is still tested on almost every token.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest

from pytest_llmserve.checklist import metrics_contract as mc
from pytest_llmserve.checklist.performance import PerfHarness
from pytest_llmserve.checklist.results import Figure, TargetResults
from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.frameworks.contract import MetricContract
from pytest_llmserve.load.runner import Schedule, run_sync
from pytest_llmserve.measure.prometheus import Scrape
from pytest_llmserve.profile.checks import Workload, perf_checks
from pytest_llmserve.profile.contract_checks import MetricsChecks, metrics_checks
from pytest_llmserve.profile.model import Target

Judge = Callable[..., None]
pytestmark = pytest.mark.llmserve_quick


@dataclass(frozen=True)
class AroundRun:
    """Two scrapes around one load run, and what the client counted in it."""

    before: Scrape
    after: Scrape
    client: mc.ClientTally
    spec: MetricsChecks
    idle: mc.Idle


_RUNS: dict[str, AroundRun] = {}
_SESSION_NONCE = secrets.token_hex(4)  # mixed into the run's prompt seed


@pytest.fixture
def contract(llm_endpoint: Endpoint) -> MetricContract:
    found = llm_endpoint.framework.metric_contract()
    return found or pytest.skip(f"{llm_endpoint.framework.name} has no metrics endpoint")


@pytest.fixture
def metrics_page(llm_endpoint: Endpoint, contract: MetricContract) -> mc.Endpoint:
    """One GET of the framework's metrics endpoint."""
    return mc.fetch(llm_endpoint.base_url, contract.path, auth=llm_endpoint.headers)


@pytest.fixture
def around_run(
    llm_target: Target, llm_endpoint: Endpoint, llm_perf: PerfHarness, contract: MetricContract
) -> AroundRun:
    """The load run for this target, done once: scrape, run, scrape, wait for idle."""
    name = llm_target.name
    if name not in _RUNS:
        spec = metrics_checks(llm_target.checks, f"target {name}")
        workload = Workload(input_tokens=spec.input_tokens, output_tokens=spec.output_tokens)
        own = perf_checks(llm_target.checks, f"target {name}").workload
        if llm_perf.not_measurable(workload) and own.kind == "prompt_set":
            # A framework that cannot tokenize: the target's own text prompts, which it can.
            workload = replace(own, output_tokens=spec.output_tokens)
        if why := llm_perf.not_measurable(workload):
            pytest.skip(why)
        prompts = llm_perf.prompts(
            workload, spec.requests, run=f"metrics contract {_SESSION_NONCE}"
        )

        def scrape() -> mc.Endpoint:
            return mc.fetch(llm_endpoint.base_url, contract.path, auth=llm_endpoint.headers)

        # Settled first: an earlier test's counters landing late would count as ours.
        before = mc.settled(scrape, contract, spec.idle_timeout_s)
        if before.scrape is None:
            pytest.fail(f"cannot scrape before the run: {before.problem}", pytrace=False)
        run = run_sync(llm_endpoint, prompts, Schedule(spec.requests, spec.concurrency))
        idle = mc.wait_idle(scrape, contract, llm_endpoint.served_name, spec.idle_timeout_s)
        after = mc.settled(scrape, contract, spec.idle_timeout_s)
        if after.scrape is None:
            pytest.fail(f"cannot scrape after the run: {after.problem}", pytrace=False)
        _RUNS[name] = AroundRun(before.scrape, after.scrape, mc.tally(run.measured), spec, idle)
    return _RUNS[name]


def test_metrics_endpoint_serves_prometheus_text(metrics_page: mc.Endpoint) -> None:
    problems = mc.endpoint_problems(metrics_page)
    assert not problems, "; ".join(problems)


def test_required_families_exist_with_their_types(
    metrics_page: mc.Endpoint, contract: MetricContract
) -> None:
    assert metrics_page.scrape is not None, metrics_page.problem
    problems = mc.family_problems(metrics_page.scrape, contract)
    assert not problems, "\n".join(problems)


def test_metrics_name_the_served_model(
    metrics_page: mc.Endpoint, contract: MetricContract, llm_endpoint: Endpoint
) -> None:
    assert metrics_page.scrape is not None, metrics_page.problem
    if contract.model_label is None:
        pytest.skip(f"{llm_endpoint.framework.name} labels no metric with the model")
    problems = mc.label_problems(metrics_page.scrape, contract, llm_endpoint.served_name)
    assert not problems, "\n".join(problems)


def test_counters_count_what_was_served(
    around_run: AroundRun,
    contract: MetricContract,
    llm_endpoint: Endpoint,
    llm_results: TargetResults,
    llm_judge: Judge,
) -> None:
    moved = mc.movements(around_run.before, around_run.after, contract, llm_endpoint.served_name,
                         around_run.client, around_run.spec.token_tolerance)  # fmt: skip
    if not moved:
        pytest.fail("no counter or per-request histogram of the contract was found", pytrace=False)
    for m in moved:
        llm_results.add(
            Figure(f"metrics_{m.signal}_delta", m.observed, "count", definition=(
                f"{m.metric} after - before a run of {around_run.client.sent} requests; "
                f"the client counted {m.expected:g}"))
        )  # fmt: skip
    llm_judge(*(mc.movement_verdict(m, around_run.client) for m in moved))


def test_gauges_return_to_idle(
    around_run: AroundRun,
    llm_results: TargetResults,
    contract: MetricContract,
    llm_endpoint: Endpoint,
) -> None:
    if not any(contract.family(signal) for signal in ("running", "waiting")):
        pytest.skip(f"not measurable: {llm_endpoint.framework.name} exposes no running or "
                    "waiting gauge")  # fmt: skip
    idle = around_run.idle
    llm_results.add(
        Figure("metrics_idle_s", idle.seconds if idle.ok else None, "s", better="lower",
               definition="end of the load run -> running and waiting gauges read 0",
               note=idle.problem)
    )  # fmt: skip
    assert idle.ok, idle.problem
