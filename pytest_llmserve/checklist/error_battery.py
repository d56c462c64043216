"""The error battery: bad requests any OpenAI-compatible server must refuse cleanly.

A production server meets malformed and hostile input every day. Each case here is
the raw request (bytes and headers, so broken JSON and bad encodings can be sent) in
the OpenAI dialect, to the paths the framework serves it at (``Framework.paths``,
through the case's ``Context``); what the framework answers is declared in its own
module (``Framework.error_expectations``), never here, so one battery serves every
framework. A case passes when the answer is that documented 4xx (never a 5xx, never
a hang), the body is an error in the framework's schema, and the server still
answers its health path and a good request afterwards.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.frameworks.base import ApiPaths

JSON = {"Content-Type": "application/json"}
OVERSIZED_BYTES = 64 * 1024 * 1024  # far above any real prompt; below what a host cannot hold
DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class BadRequest:
    """One raw request: sent as given, whatever its body holds."""

    method: str
    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))

    def describe(self, limit: int = 160) -> str:
        head = self.body[:limit].decode("utf-8", errors="backslashreplace")
        more = f"… ({len(self.body):,} bytes)" if len(self.body) > limit else ""
        return f"{self.method} {self.path} {self.headers.get('Content-Type', '-')} {head}{more}"


@dataclass(frozen=True)
class Context:
    """What a case needs to know about the target: its served name, context length and
    the paths its framework serves (``Framework.paths``)."""

    model: str
    max_model_len: int
    paths: ApiPaths


@dataclass(frozen=True)
class Case:
    """A named bad input; ``build`` makes its request for one target."""

    id: str
    what: str
    build: Callable[[Context], BadRequest]
    timeout_factor: float = 1.0  # x the hang timeout: a huge body takes longer to send

    def timeout_s(self, base_s: float = DEFAULT_TIMEOUT_S) -> float:
        return base_s * self.timeout_factor


def _json(path: str, body: Any) -> BadRequest:
    return BadRequest("POST", path, json.dumps(body).encode())


def _completion(ctx: Context, **params: Any) -> BadRequest:
    body = {"model": ctx.model, "prompt": "Hello", "max_tokens": 4}
    return _json(ctx.paths.completions, {**body, **params})


def _chat(ctx: Context, **params: Any) -> BadRequest:
    body = {"model": ctx.model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    return _json(ctx.paths.chat, {**body, **params})


def _too_long(ctx: Context) -> BadRequest:
    # One token per word for every tokenizer seen; twice the context leaves no doubt.
    return _completion(ctx, prompt=" hello" * (2 * ctx.max_model_len + 64))


def _oversized(ctx: Context) -> BadRequest:
    head = json.dumps({"model": ctx.model, "prompt": "Hello", "max_tokens": 1, "user": ""})
    pad = OVERSIZED_BYTES - len(head)
    return BadRequest("POST", ctx.paths.completions, (head[:-2] + "x" * pad + '"}').encode())


def _raw(path: str, body: bytes, content_type: str | None = "application/json") -> BadRequest:
    headers = {"Content-Type": content_type} if content_type else {}
    return BadRequest("POST", path, body, headers)


CASES: tuple[Case, ...] = (
    Case("prompt_longer_than_context", "prompt of twice the context length in tokens", _too_long),
    Case("max_tokens_zero", "max_tokens = 0", lambda c: _completion(c, max_tokens=0)),
    Case("max_tokens_negative", "max_tokens = -5", lambda c: _completion(c, max_tokens=-5)),
    Case("temperature_negative", "temperature = -1", lambda c: _completion(c, temperature=-1.0)),
    Case("top_p_above_one", "top_p = 1.5", lambda c: _completion(c, top_p=1.5)),
    Case("top_p_negative", "top_p = -0.5", lambda c: _completion(c, top_p=-0.5)),
    Case("malformed_json", "body cut off mid-JSON",
         lambda c: _raw(c.paths.completions,
                        b'{"model": "' + c.model.encode() + b'", "prompt": ')),
    Case("wrong_content_type", "valid JSON body sent as text/plain",
         lambda c: _raw(c.paths.completions, _completion(c).body, "text/plain")),
    Case("form_encoded_body", "form-encoded body instead of JSON",
         lambda c: _raw(c.paths.completions, f"model={c.model}&prompt=Hi".encode(),
                        "application/x-www-form-urlencoded")),
    Case("missing_prompt", "completion without the required prompt",
         lambda c: _json(c.paths.completions, {"model": c.model, "max_tokens": 4})),
    Case("missing_messages", "chat completion without the required messages",
         lambda c: _json(c.paths.chat, {"model": c.model, "max_tokens": 4})),
    Case("unknown_model", "a model name the server does not serve",
         lambda c: _completion(c, model=c.model + "-no-such-model")),
    Case("oversized_body", f"{OVERSIZED_BYTES // 2**20} MiB JSON body (a huge ignored field)",
         _oversized, timeout_factor=4.0),
    Case("invalid_utf8", "JSON body with bytes that are not UTF-8",
         lambda c: _raw(c.paths.completions, b'{"model": "' + c.model.encode()
                        + b'", "prompt": "\xff\xfe\xc3\x28", "max_tokens": 4}')),
    Case("n_absurd", "n = 100000", lambda c: _completion(c, n=100_000)),
    Case("logprobs_absurd", "logprobs = 100000", lambda c: _completion(c, logprobs=100_000)),
    Case("max_tokens_wrong_type", 'max_tokens = "ten"', lambda c: _completion(c, max_tokens="ten")),
    Case("prompt_wrong_type", "prompt is an object", lambda c: _completion(c, prompt={"a": 1})),
    Case("body_not_an_object", "JSON array as the body",
         lambda c: _raw(c.paths.completions, b"[1, 2, 3]")),
    Case("empty_body", "no body at all", lambda c: _raw(c.paths.completions, b"")),
    Case("chat_empty_messages", "chat with messages = []", lambda c: _chat(c, messages=[])),
    Case("chat_message_without_role", "chat message with content but no role",
         lambda c: _chat(c, messages=[{"content": "Hi"}])),
)  # fmt: skip


def case(case_id: str) -> Case:
    """The case called ``case_id``; a clear error names the valid ones."""
    for c in CASES:
        if c.id == case_id:
            return c
    raise KeyError(f"no error case {case_id!r} (valid: {', '.join(c.id for c in CASES)})")


@dataclass(frozen=True)
class Answer:
    """What the server did with one bad request: status and body, or why there was none."""

    status: int | None  # None: no response (timeout, dropped connection)
    body: Any
    seconds: float
    error: str | None = None  # transport failure, e.g. "timed out after 30 s"
    raw: str = ""


def send(endpoint: Endpoint, request: BadRequest, timeout_s: float) -> Answer:
    """Send ``request`` as is; a timeout or dropped connection is an answer, not an exception."""
    start = time.perf_counter()
    try:
        with httpx.Client(base_url=endpoint.base_url, timeout=timeout_s, trust_env=False) as http:
            r = http.request(request.method, request.path, content=request.body,
                             headers={**endpoint.headers, **request.headers})  # fmt: skip
    except httpx.TimeoutException:
        took = time.perf_counter() - start
        return Answer(None, None, took, f"no answer within {timeout_s:g} s (hung)")
    except httpx.HTTPError as exc:
        took = time.perf_counter() - start
        return Answer(None, None, took, f"{type(exc).__name__}: {exc}")
    took = time.perf_counter() - start
    try:
        body: Any = r.json()
    except ValueError:
        body = None
    return Answer(r.status_code, body, took, raw=r.text[:500])


BodyCheck = Callable[[Any], list[str]]


def problems(answer: Answer, expected: tuple[int, ...], body_problems: BodyCheck) -> list[str]:
    """Why ``answer`` is not a clean refusal with one of the ``expected`` statuses ([] = fine)."""
    if answer.status is None:
        return [answer.error or "no response"]
    out: list[str] = []
    if answer.status >= 500:
        out.append(f"server error {answer.status} for bad input (a 4xx was expected)")
    elif answer.status not in expected:
        want = " or ".join(map(str, expected))
        out.append(f"status {answer.status}, documented {want}")
    if 400 <= answer.status < 600:
        if answer.body is None:
            out.append(f"error body is not JSON: {answer.raw[:200]!r}")
        else:
            out += [f"error body: {p}" for p in body_problems(answer.body)]
    return out


def server_still_serves(endpoint: Endpoint, timeout_s: float = 30.0) -> list[str]:
    """After a bad request: health answers 200 and a one-token completion succeeds."""
    out: list[str] = []
    health = endpoint.framework.paths.health
    path, body = endpoint.framework.readiness_request(endpoint.served_name)  # one token, greedy
    try:
        with httpx.Client(
            base_url=endpoint.base_url, timeout=timeout_s, trust_env=False, headers=endpoint.headers
        ) as http:
            h = http.get(health)
            if h.status_code != 200:
                out.append(f"{health} answered {h.status_code} afterwards")
            r = http.post(path, json=body)
            if r.status_code != 200:
                out.append(f"a good request afterwards got {r.status_code}: {r.text[:200]}")
    except httpx.HTTPError as exc:
        out.append(f"server unreachable afterwards: {type(exc).__name__}: {exc}")
    return out
