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

# Prompt log-probability dialects a framework module may declare (Framework.prompt_logprobs).
OPENAI_ECHO = "openai-echo"  # /v1/completions with echo, logprobs, max_tokens=1 (vLLM, SGLang)


class NotMeasurable(Exception):
    """The target cannot return prompt log-probabilities: perplexity is not measurable."""


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
    http: httpx.Client, model: str, prompts: list[list[int]]
) -> list[list[float | None]]:
    """Log-probability of each prompt token (first None), for prompts sent in one request."""
    r = http.post("/v1/completions", json=echo_body(model, prompts))
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


def check_dialect(dialect: str | None, framework: str) -> None:
    if dialect != OPENAI_ECHO:
        raise NotMeasurable(
            f"{framework} cannot return prompt log-probabilities through its API "
            f"(dialect {dialect!r}): perplexity and log-likelihood tasks are not measurable"
        )


def measure(
    base_url: str,
    model: str,
    prompts: list[list[int]],
    *,
    dialect: str | None,
    framework: str,
    concurrency: int = 8,
    timeout_s: float = 600.0,
    headers: dict[str, str] | None = None,
    clock: Callable[[], float] | None = None,
) -> PerplexityRun:
    """Score every window through the server; NLLs of every token after each window's first."""
    import time

    check_dialect(dialect, framework)
    now = clock or time.perf_counter
    start = now()
    with httpx.Client(base_url=base_url, timeout=timeout_s, headers=headers) as http:

        def one(window: list[int]) -> tuple[float, ...]:
            lps = prompt_logprobs(http, model, [window])[0]
            if any(v is None for v in lps[1:]):
                raise RuntimeError("prompt logprobs: a token after the first has no logprob")
            return tuple(-float(v) for v in lps[1:] if v is not None)

        with ThreadPoolExecutor(max(1, concurrency)) as pool:
            nll = tuple(pool.map(one, prompts))
    return PerplexityRun(nll, now() - start)


class ServerTokenizer:
    """The served model's own tokenizer (/tokenize) over one kept-alive connection pool.

    Hundreds of short strings (task items) are tokenized once per baseline; a new
    client per call would spend more on connection setup than on tokenizing.
    """

    def __init__(self, base_url: str, model: str, headers: dict[str, str] | None = None) -> None:
        self.model = model
        self._http = httpx.Client(base_url=base_url, timeout=120.0, headers=headers)

    def __call__(self, text: str) -> list[int]:
        body = {"model": self.model, "prompt": text, "add_special_tokens": False}
        r = self._http.post("/tokenize", json=body)
        r.raise_for_status()
        return [int(t) for t in r.json()["tokens"]]

    def close(self) -> None:
        self._http.close()
