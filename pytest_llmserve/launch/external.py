"""An already-running endpoint: nothing to start or stop, but readiness still checked."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from pytest_llmserve.errors import ServerStartError
from pytest_llmserve.frameworks.base import EngineFacts, Framework
from pytest_llmserve.launch import auth
from pytest_llmserve.launch.readiness import NotReady, ReadyReport, standard_probes, wait_ready
from pytest_llmserve.profile.model import Target


class ExternalServer:
    """A target served elsewhere; its log and processes are not ours to read."""

    def __init__(self, target: Target, framework: Framework) -> None:
        assert target.url is not None
        self.target = target
        self.base_url = target.url.rstrip("/")
        self.served_name = target.served_name or ""
        self.model_path = target.model
        self.log_path: Path | None = None
        self.ready = ReadyReport()
        self.facts = EngineFacts()
        self._framework = framework

    @classmethod
    def start(cls, target: Target, framework: Framework) -> ExternalServer:
        server = cls(target, framework)
        started = time.monotonic()
        auth.ensure_api_key(target)  # raises ServerStartError when the variable is unset
        try:
            if not server.served_name:
                server.served_name = _only_model(
                    server.base_url, framework.models_path, auth.auth_headers(target)
                )
            probes = standard_probes(
                framework.health_path, framework.models_path, server.served_name
            )
            server.ready = wait_ready(
                server.base_url,
                probes,
                lambda: None,
                target.startup_timeout_s,
                started,
                headers=auth.auth_headers(target),
            )
        except (NotReady, httpx.HTTPError, ValueError) as exc:
            raise ServerStartError(
                f"{target.name}: external server {server.base_url}: {exc}"
            ) from None
        return server

    def exited(self) -> str | None:
        return None

    def log_tail(self, lines: int = 40) -> str:
        return ""

    def pids(self) -> list[int]:
        return []

    def stop(self) -> None:
        return None


def _only_model(base_url: str, models_path: str, headers: dict[str, str]) -> str:
    """The served model name when the endpoint serves exactly one and the profile named none."""
    r = httpx.get(base_url + models_path, timeout=30.0, headers=headers)
    r.raise_for_status()
    ids = [m["id"] for m in r.json().get("data", [])]
    if len(ids) != 1:
        raise ValueError(f"serves {ids}: set served_name in the profile to pick one")
    return str(ids[0])
