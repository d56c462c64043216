"""The external launcher: an already-running endpoint. Nothing to start or stop, but
readiness is still checked, and the key must be given (it cannot be made up)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from pytest_llmserve.errors import ProfileError, ServerStartError
from pytest_llmserve.frameworks.base import EngineFacts, Framework
from pytest_llmserve.launch import auth
from pytest_llmserve.launch.launcher import StartContext
from pytest_llmserve.launch.readiness import ReadyReport
from pytest_llmserve.measure.memory import ServerMemory
from pytest_llmserve.profile.model import Target


@dataclass(frozen=True)
class ExternalSettings:
    url: str


class ExternalLauncher:
    name = "external"
    keys: tuple[str, ...] = ("url",)
    launches = False
    runs_here = False

    def settings(self, values: Mapping[str, Any], where: str) -> ExternalSettings:
        url = values.get("url")
        if not url:
            raise ProfileError(f"{where}: url: required when launcher is {self.name!r}")
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            raise ProfileError(f"{where}: url: expected an http:// or https:// URL, got {url!r}")
        return ExternalSettings(url=url.rstrip("/"))

    def spawn(self, target: Target, framework: Framework, ctx: StartContext) -> ExternalServer:
        return ExternalServer(target, framework)

    def retry_after(self, log_tail: str) -> bool:
        return False

    def sweep_orphans(self) -> list[str]:
        return []  # nothing of it runs here


class ExternalServer:
    """A target served elsewhere; its log and processes are not ours to read."""

    launched_here = False
    local_model: Path | None = None
    log_path: Path | None = None

    def __init__(self, target: Target, framework: Framework) -> None:
        settings = target.launch
        assert isinstance(settings, ExternalSettings), "external target without its settings"
        self.target = target
        self.framework = framework
        self.base_url = settings.url
        self.model_path = target.model
        self.started_at = time.monotonic()
        self.ready = ReadyReport()
        self.facts = EngineFacts()
        self.version: str | None = None
        self.served_name = target.served_name or self._only_model()

    def _only_model(self) -> str:
        """The served model name when the endpoint serves exactly one and the profile named none."""
        path = self.framework.paths.models
        try:
            r = httpx.get(self.base_url + path, timeout=30.0, trust_env=False,
                          headers=auth.auth_headers(self.target))  # fmt: skip
            r.raise_for_status()
            ids = [m["id"] for m in r.json().get("data", [])]
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ServerStartError(
                f"{self.target.name}: external server {auth.redact_url(self.base_url)}: "
                f"GET {path} to find the served model: {type(exc).__name__}: {exc}"
            ) from None
        if len(ids) != 1:
            raise ServerStartError(
                f"{self.target.name}: external server {auth.redact_url(self.base_url)} serves "
                f"{ids}: set served_name in the profile to pick one"
            )
        return str(ids[0])

    def exited(self) -> str | None:
        return None

    def startup_log(self) -> str:
        return ""

    def log_tail(self, lines: int = 40) -> str:
        return ""

    def pids(self) -> list[int]:
        return []

    def memory(self) -> ServerMemory | None:
        return None

    def stop(self) -> None:
        return None
