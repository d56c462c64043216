"""What every OpenAI-compatible server shares, so a framework module declares only its
differences (vLLM, SGLang, TensorRT-LLM and llama.cpp all speak this API; TGI too,
beside its native one).

Defaults, each overridable by a subclass attribute or method:

- paths: ``/health``, ``/v1/models``, ``/v1/completions``, ``/v1/chat/completions``,
  ``/tokenize``, ``/version``;
- streaming: ``/v1/completions`` with ``stream_options.include_usage``;
- prompts as token ids, tokenized by ``/tokenize`` → ``{"tokens": [...]}``;
- readiness: a one-token greedy completion;
- errors: OpenAI's ``{"error": {"message", "type", "param", "code"}}`` body (and the
  older flat ``{"object": "error", ...}``);
- the version from ``GET /version`` → ``{"version": ...}``;
- the first error of a log: the first Python traceback, or the first line at ERROR
  or CRITICAL level.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Callable
from typing import Any

import httpx

from pytest_llmserve.frameworks.base import ApiPaths, EngineFacts, LaunchSpec, Tokens
from pytest_llmserve.frameworks.contract import ErrorExpectation, MetricContract
from pytest_llmserve.profile.model import Target

TRACEBACK = "Traceback (most recent call last):"
_ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL|FATAL)\b|^\w*(Error|Exception): ")
FIRST_ERROR_MAX_LINES = 40


class OpenAICompatible:
    """Defaults for an OpenAI-compatible server; subclasses set ``name`` and ``launch_spec``."""

    name = "openai-compatible"
    paths = ApiPaths()
    prompt_logprobs: str | None = None
    stream_dialect = "openai-completions"
    takes_token_ids = True
    finished_label: str | None = None
    open_paths: tuple[str, ...] = ("/health", "/metrics", "/v1/models", "/tokenize")
    model_format = "hf"
    lists_served_model = True
    error_schema = "openai"
    # Python distributions that provide the framework, for ``version()``.
    distributions: tuple[str, ...] = ()
    # A prefix each log line may carry (e.g. the worker that wrote it), stripped before
    # the first-error rule reads the line.
    log_line_prefix: re.Pattern[str] | None = None

    def version(self) -> str | None:
        for dist in self.distributions:
            try:
                return f"{importlib.metadata.version(dist)} ({dist})"
            except importlib.metadata.PackageNotFoundError:
                continue
        return None

    def server_version(self, base_url: str, headers: dict[str, str]) -> str | None:
        if self.paths.version is None:
            return None
        try:
            r = httpx.get(base_url + self.paths.version, headers=headers, timeout=10.0,
                          trust_env=False)  # fmt: skip
            version = r.json().get("version") if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        return str(version) if version else None

    def unsupported_here(self, target: Target) -> str | None:
        return None

    def prepare(self, target: Target, progress: Callable[[str], None]) -> None:
        return None

    def tokenize_body(self, served_name: str, text: str) -> dict[str, Any]:
        # vLLM's and SGLang's /tokenize.
        return {"model": served_name, "prompt": text, "add_special_tokens": False}

    def read_tokens(self, answer: Any, text: str) -> Tokens:
        # {"tokens": [ids...]} (vLLM's, SGLang's and llama.cpp's /tokenize)
        ids = answer.get("tokens") if isinstance(answer, dict) else None
        if not isinstance(ids, list):
            raise ValueError(f"{self.name} tokenize: no 'tokens' list in {str(answer)[:200]}")
        return Tokens(tuple(int(t) for t in ids))

    def readiness_request(self, served_name: str) -> tuple[str, dict[str, Any]]:
        body = {"model": served_name, "prompt": "Hello", "max_tokens": 1, "temperature": 0}
        return self.paths.completions, body

    def launch_spec(
        self, target: Target, model_path: str, host: str, port: int, *, container: bool = False
    ) -> LaunchSpec:
        raise NotImplementedError(f"{self.name} cannot be launched by pytest-llmserve")

    def engine_facts(self, log_text: str) -> EngineFacts:
        return EngineFacts()

    def precision_problems(self, target: Target, facts: EngineFacts) -> list[str]:
        return [f"{self.name} reports nothing about the precision it applied: cannot confirm"]

    def first_error(self, log_text: str) -> str:
        lines = [self._strip(line) for line in log_text.splitlines()]
        for i, line in enumerate(lines):
            if line.startswith(TRACEBACK):
                return "\n".join(traceback_block(lines, i))
            if _ERROR_LINE.search(line):
                return line
        return ""

    def _strip(self, line: str) -> str:
        line = line.rstrip()
        if self.log_line_prefix is not None:
            line = self.log_line_prefix.sub("", line, count=1)
        return line

    def metric_contract(self) -> MetricContract | None:
        return None

    def error_expectations(self) -> dict[str, ErrorExpectation]:
        return {}

    def error_body_problems(self, body: Any) -> list[str]:
        return openai_error_body_problems(body)


def traceback_block(lines: list[str], start: int) -> list[str]:
    """From the traceback header at ``lines[start]`` through its exception line (the first
    unindented one). A longer one than ``FIRST_ERROR_MAX_LINES`` keeps its start and its
    exception line, the one that matters most."""
    block = [lines[start]]
    for line in lines[start + 1 :]:
        block.append(line)
        if line and not line[0].isspace():
            break
    if len(block) > FIRST_ERROR_MAX_LINES:
        block = [*block[: FIRST_ERROR_MAX_LINES - 2], "  ...", block[-1]]
    return block


def openai_error_body_problems(body: Any, *, param: bool = True) -> list[str]:
    """``{"error": {"message", "type", "param", "code"}}``, or the older flat
    ``{"object": "error", "message", "type", "param", "code"}`` (``param=False``: a
    dialect that leaves ``param`` out, such as llama.cpp's)."""
    if not isinstance(body, dict):
        return [f"expected a JSON object, got {type(body).__name__}"]
    if isinstance(body.get("error"), dict):
        info, where = body["error"], "error."
    elif body.get("object") == "error":
        info, where = body, ""
    else:
        keys = ", ".join(sorted(map(str, body))) or "none"
        return [f'neither {{"error": {{...}}}} nor {{"object": "error", ...}} (keys: {keys})']
    out = []
    if not isinstance(info.get("message"), str) or not info["message"]:
        out.append(f"{where}message missing or empty")
    if not isinstance(info.get("type"), str):
        out.append(f"{where}type missing")
    if param and "param" not in info:
        out.append(f"{where}param missing")
    code = info.get("code")
    if not isinstance(code, int) or isinstance(code, bool):
        out.append(f"{where}code missing or not an integer")
    return out
