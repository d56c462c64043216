"""The start sequence every launcher shares, written once.

API key → spawn (the launcher) → readiness probes raced against the server's
exit → engine facts from its startup log → the version it reports. Any
exception on the way, KeyboardInterrupt included, stops what was started before
it propagates; a start that failed quotes the log's first error (found by the
framework's own rule) beside its last lines.
"""

from __future__ import annotations

from pytest_llmserve.errors import ServerStartError
from pytest_llmserve.frameworks.base import Framework
from pytest_llmserve.launch import auth
from pytest_llmserve.launch.launcher import Launcher, StartContext
from pytest_llmserve.launch.readiness import NotReady, standard_probes, wait_ready
from pytest_llmserve.launch.server import Server
from pytest_llmserve.profile.model import Target

ATTEMPTS = 2  # a second one only where the launcher says the failure was transient


def start_server(
    launcher: Launcher, target: Target, framework: Framework, ctx: StartContext
) -> Server:
    """A ready server for ``target``; raises ``ServerStartError`` (or what interrupted it)."""
    auth.ensure_api_key(target, generate=launcher.launches)
    headers = auth.auth_headers(target)
    for attempt in range(1, ATTEMPTS + 1):
        server = launcher.spawn(target, framework, ctx)
        try:
            server.ready = wait_ready(
                server.base_url,
                standard_probes(framework, server.served_name),
                server.exited,
                target.startup_timeout_s,
                started_at=server.started_at,
                headers=headers,
            )
        except NotReady as exc:
            log, tail = server.startup_log(), server.log_tail()
            server.stop()
            if attempt < ATTEMPTS and launcher.retry_after(tail):
                continue
            raise ServerStartError(
                f"{target.name}: {exc}",
                tail,
                None if server.log_path is None else str(server.log_path),
                first_error=auth.redact(framework.first_error(log), target.api_key()),
            ) from None
        except BaseException:
            server.stop()
            raise
        try:
            server.facts = framework.engine_facts(server.startup_log())
            server.version = framework.server_version(server.base_url, headers)
        except BaseException:
            server.stop()
            raise
        return server
    raise AssertionError("unreachable: the last attempt returns or raises")
