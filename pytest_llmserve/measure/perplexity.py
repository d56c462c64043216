"""Perplexity through the serving API: the prompt's own log-probabilities, per token.

The held-out text is the installed Python's language reference
(``pydoc_data.topics``): real technical English, present everywhere, never
downloaded and never committed, and disjoint from the docstrings the embedded
variants were calibrated on. It is tokenized once (by the baseline's server) and
the same token ids are sent to every target, so every target is scored on the
same tokens whatever its own tokenizer does with the text.

Each window is one prompt no longer than the context; its first token has no
context and is not scored. Per-token NLLs are kept per window, so a paired gate
can compare two targets token by token (``measure.paired``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.frameworks.base import Framework

# Prompt log-probability dialects a framework module may declare (Framework.prompt_logprobs).
# "openai-echo": its completions path with echo, logprobs, max_tokens=1 (vLLM, SGLang).
OPENAI_ECHO = "openai-echo"


class NotMeasurable(Exception):
    """The target cannot return what a figure needs (prompt log-probabilities, its own
    token ids): the figure is not measurable, never a made-up number."""


@dataclass(frozen=True)
class PerplexityRun:
    """Per-token negative log-likelihoods (nats), one list per window, and how long it took."""

    nll: tuple[tuple[float, ...], ...]
    seconds: float

    @property
    def tokens(self) -> int:
        return sum(len(w) for w in self.nll)


def heldout_text() -> str:
    """The language reference of the running Python, in a fixed (sorted-topic) order."""
    from pydoc_data import topics

    return "\n\n".join(topics.topics[k] for k in sorted(topics.topics))


def windows(ids: Sequence[int], tokens: int, window: int) -> list[list[int]]:
    """``tokens`` ids cut into consecutive windows of ``window`` (the last may be shorter)."""
    if len(ids) < tokens:
        raise ValueError(f"the held-out text has {len(ids)} tokens, {tokens} were asked for")
    used = ids[:tokens]
    return [list(used[i : i + window]) for i in range(0, tokens, window) if i + 1 < tokens]


def echo_body(model: str, prompt: list[int] | list[list[int]]) -> dict[str, Any]:
    """The request that returns a prompt's log-probabilities and generates one token."""
    return {
        "model": model,
        "prompt": prompt,
        "echo": True,
        "logprobs": 1,
        "max_tokens": 1,
        "temperature": 0,
    }


def prompt_logprobs(
    http: httpx.Client, endpoint: Endpoint, prompts: list[list[int]]
) -> list[list[float | None]]:
    """Log-probability of each prompt token (first None), for prompts sent in one request."""
    path = endpoint.framework.paths.completions
    r = http.post(path, json=echo_body(endpoint.served_name, prompts))
    if r.status_code != 200:
        raise RuntimeError(f"prompt logprobs: HTTP {r.status_code}: {r.text[:300]}")
    choices = sorted(r.json()["choices"], key=lambda c: int(c.get("index", 0)))
    if len(choices) != len(prompts):
        raise RuntimeError(f"prompt logprobs: {len(choices)} choices for {len(prompts)} prompts")
    out: list[list[float | None]] = []
    for prompt, choice in zip(prompts, choices, strict=True):
        logprobs = (choice.get("logprobs") or {}).get("token_logprobs")
        if not isinstance(logprobs, list) or len(logprobs) < len(prompt):
            raise RuntimeError(
                "prompt logprobs: the server did not echo the prompt's log-probabilities"
            )
        out.append([None if v is None else float(v) for v in logprobs[: len(prompt)]])
    return out


def check_dialect(framework: Framework) -> None:
    dialect = framework.prompt_logprobs
    if dialect != OPENAI_ECHO:
        raise NotMeasurable(
            f"{framework.name} cannot return prompt log-probabilities through its API "
            f"(dialect {dialect!r}): perplexity and log-likelihood tasks are not measurable"
        )


def tokenize_path(framework: Framework) -> str:
    """Where ``framework`` tokenizes text; ``NotMeasurable`` when it has no such endpoint."""
    path = framework.paths.tokenize
    if path is None:
        raise NotMeasurable(
            f"{framework.name} has no tokenize endpoint: the served model's own token ids "
            "cannot be read, so workloads made of token ids are not measurable"
        )
    return path


def measure(
    endpoint: Endpoint,
    prompts: list[list[int]],
    *,
    concurrency: int = 8,
    timeout_s: float = 600.0,
    clock: Callable[[], float] | None = None,
) -> PerplexityRun:
    """Score every window through the server; NLLs of every token after each window's first."""
    import time

    check_dialect(endpoint.framework)
    now = clock or time.perf_counter
    start = now()
    with httpx.Client(
        base_url=endpoint.base_url, timeout=timeout_s, headers=endpoint.headers
    ) as http:

        def one(window: list[int]) -> tuple[float, ...]:
            lps = prompt_logprobs(http, endpoint, [window])[0]
            if any(v is None for v in lps[1:]):
                raise RuntimeError("prompt logprobs: a token after the first has no logprob")
            return tuple(-float(v) for v in lps[1:] if v is not None)

        with ThreadPoolExecutor(max(1, concurrency)) as pool:
            nll = tuple(pool.map(one, prompts))
    return PerplexityRun(nll, now() - start)


class ServerTokenizer:
    """The served model's own tokenizer (its framework's tokenize endpoint) over one
    kept-alive connection pool; ``NotMeasurable`` when the framework has none.

    Hundreds of short strings (task items) are tokenized once per baseline; a new
    client per call would spend more on connection setup than on tokenizing.
    """

    def __init__(self, endpoint: Endpoint) -> None:
        self.model = endpoint.served_name
        self.framework = endpoint.framework
        self.path = tokenize_path(endpoint.framework)
        self._http = httpx.Client(base_url=endpoint.base_url, timeout=120.0,
                                  headers=endpoint.headers)  # fmt: skip

    def __call__(self, text: str) -> list[int]:
        r = self._http.post(self.path, json=self.framework.tokenize_body(self.model, text))
        r.raise_for_status()
        return [int(t) for t in r.json()["tokens"]]

    def close(self) -> None:
        self._http.close()
