"""Errors the plugin raises on purpose; each carries what a user needs to act on it."""

from __future__ import annotations


class LLMServeError(Exception):
    """Base of every error this plugin raises deliberately."""


class ProfileError(LLMServeError):
    """A profile (or option) is invalid; the message names the field and the valid values.

    The plugin turns it into ``pytest.UsageError`` so the session stops before any
    server starts.
    """


class ServerError(LLMServeError):
    """A server could not be started, or stopped answering; carries its log tail."""

    def __init__(
        self,
        message: str,
        log_tail: str = "",
        log_path: str | None = None,
        first_error: str = "",
    ) -> None:
        self.log_tail = log_tail
        self.log_path = log_path
        self.first_error = first_error
        text = message
        if log_path:
            text += f"\n  server log: {log_path}"
        if first_error and first_error not in log_tail:
            text += "\n  first error in the log:\n" + "\n".join(
                "    " + ln for ln in first_error.splitlines()
            )
        if log_tail:
            text += "\n  last log lines:\n" + "\n".join("    " + ln for ln in log_tail.splitlines())
        super().__init__(text)


class ServerStartError(ServerError):
    """The server exited, or did not become ready in time, during startup."""


class ModelBuildError(LLMServeError):
    """Building an embedded model variant failed; the message carries the builder's output tail."""
