"""Readiness as composed probes, raced against the server's exit.

"Connection refused" means "still starting"; a process that exited means "failed".
Ready = every probe passed in order: process alive → health 200 → the model is
listed → a one-token generation succeeds. Each probe's pass time is recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from pytest_llmserve.frameworks.base import Framework


class NotReady(Exception):
    """Startup failed or timed out; the message says at which probe and why."""


@dataclass(frozen=True)
class Probe:
    """One readiness step; ``check`` returns None when passed, else why not yet."""

    name: str
    check: Callable[[httpx.Client], str | None]


@dataclass
class ReadyReport:
    """Seconds from launch at which each probe first passed."""

    passed_at: dict[str, float] = field(default_factory=dict)

    @property
    def ready_s(self) -> float:
        return max(self.passed_at.values(), default=0.0)


def http_ok(path: str) -> Probe:
    def check(http: httpx.Client) -> str | None:
        r = http.get(path)
        return None if r.status_code == 200 else f"GET {path} → {r.status_code}"

    return Probe(f"GET {path} 200", check)


def model_listed(models_path: str, served_name: str) -> Probe:
    def check(http: httpx.Client) -> str | None:
        r = http.get(models_path)
        if r.status_code != 200:
            return f"GET {models_path} → {r.status_code}"
        ids = [m.get("id") for m in _json(r).get("data", [])]
        return None if served_name in ids else f"{served_name!r} not in {ids}"

    return Probe(f"{served_name} listed", check)


def one_token(path: str, body: dict[str, Any]) -> Probe:
    """The framework's smallest real generation (``Framework.readiness_request``)."""

    def check(http: httpx.Client) -> str | None:
        r = http.post(path, json=body)
        if r.status_code != 200:
            return f"POST {path} → {r.status_code}: {r.text[:200]}"
        answer = _json(r)
        if not answer or "error" in answer:
            return f"POST {path} → 200 without an answer: {r.text[:200]}"
        if "choices" in answer and not answer["choices"]:
            return "completion had no choices"
        return None

    return Probe("1-token generation", check)


def standard_probes(framework: Framework, served_name: str) -> list[Probe]:
    """Process alive (asked by ``wait_ready``) → health → model listed (where the framework
    lists the model it serves) → one token."""
    paths = framework.paths
    listed = [model_listed(paths.models, served_name)] if framework.lists_served_model else []
    return [http_ok(paths.health), *listed, one_token(*framework.readiness_request(served_name))]


def _json(r: httpx.Response) -> dict[str, Any]:
    try:
        data = r.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def wait_ready(
    base_url: str,
    probes: list[Probe],
    exited: Callable[[], str | None],
    timeout_s: float,
    started_at: float,
    poll_s: float = 0.5,
    headers: dict[str, str] | None = None,
) -> ReadyReport:
    """Run ``probes`` in order until all pass; raise ``NotReady`` on exit or timeout.

    ``exited`` returns None while the server lives, else why it is gone; it is asked
    before every attempt, so a crash is reported within one poll interval.
    """
    report = ReadyReport()
    deadline = started_at + timeout_s
    pending = list(probes)
    with httpx.Client(base_url=base_url, timeout=30.0, headers=headers) as http:
        while pending:
            gone = exited()
            if gone is not None:
                raise NotReady(f"server {gone} during startup (waiting for: {pending[0].name})")
            try:
                why = pending[0].check(http)
            except httpx.TransportError as exc:
                why = f"{type(exc).__name__}: {exc}"
            if why is None:
                report.passed_at[pending.pop(0).name] = time.monotonic() - started_at
                continue
            # Checked after an attempt, so every probe reached is asked at least once
            # and the timeout names its real answer.
            if time.monotonic() > deadline:
                raise NotReady(
                    f"server not ready after {timeout_s:g} s "
                    f"(stuck at: {pending[0].name}; last answer: {why})"
                )
            time.sleep(poll_s)
    return report
