"""Perplexity through the serving API: the prompt's own log-probabilities, per token.

The held-out text is the installed Python's language reference
(``pydoc_data.topics``): real technical English, present everywhere, never
downloaded and never committed, and disjoint from the docstrings the embedded
variants were calibrated on. It is tokenized once (by the baseline's server) and
the same token ids are sent to every target, so every target is scored on the
same tokens whatever its own tokenizer does with the text. A target that takes
text only (TGI) is sent each window's text instead, cut where the baseline's
tokenizer says its tokens lie, and must answer with the window's ids.

Each window is one prompt no longer than the context; its first token has no
context and is not scored. Per-token NLLs are kept per window, so a paired gate
can compare two targets token by token (``measure.paired``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.frameworks.base import Framework, Tokens

# Prompt log-probability dialects a framework module may declare (Framework.prompt_logprobs).
# "openai-echo": its completions path with echo, logprobs, max_tokens=1 (vLLM, SGLang);
# "tgi-prefill": TGI's /generate with decoder_input_details, one text prompt a request.
OPENAI_ECHO = "openai-echo"
TGI_PREFILL = "tgi-prefill"
DIALECTS = (OPENAI_ECHO, TGI_PREFILL)


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


def text_windows(
    text: str, tokens: Tokens, count: int, window: int, tokenize: Callable[[str], list[int]]
) -> tuple[list[list[int]], list[str]]:
    """The windows as text too, for targets that take text prompts only (TGI).

    ``text`` is cut where its tokenizer's spans put the windows' first and last
    tokens, and each piece is tokenized again on its own: its ids are then exactly
    what that text is, whichever way a target is sent it (a piece alone may not
    tokenize as it did in the whole text, at its edges).
    """
    if tokens.spans is None:
        raise ValueError("text windows need the tokenizer's spans")
    data = text.encode()
    pieces = []
    for w in windows(range(len(tokens.ids)), count, window):
        start, stop = tokens.spans[w[0]][0], tokens.spans[w[-1]][1]
        pieces.append(data[start:stop].decode("utf-8", errors="ignore"))
    return [tokenize(p) for p in pieces], pieces


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
    http: httpx.Client,
    endpoint: Endpoint,
    prompts: list[list[int]],
    texts: Sequence[str] | None = None,
) -> list[list[float | None]]:
    """Log-probability of each prompt token (first None).

    ``texts``: each prompt's text, which a framework taking text only is sent (and
    must answer with the prompt's own ids); the others get the ids, in one request.
    """
    if endpoint.framework.prompt_logprobs == TGI_PREFILL:
        if texts is None:
            raise NotMeasurable(
                f"{endpoint.framework.name} takes text prompts only, and these token ids "
                "came without their text: not measurable"
            )
        return [prefill_logprobs(http, endpoint.framework, ids, text)
                for ids, text in zip(prompts, texts, strict=True)]  # fmt: skip
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


def prefill_logprobs(
    http: httpx.Client, framework: Framework, ids: list[int], text: str
) -> list[float | None]:
    """TGI's prompt log-probabilities of ``text``, whose tokens must be ``ids``.

    Its prefill starts with the special tokens its tokenizer adds (their first has no
    log-probability); the first of ``ids`` is given None like the echo's, so both
    dialects score the same tokens.
    """
    params = {"max_new_tokens": 1, "details": True, "decoder_input_details": True,
              "do_sample": False}  # fmt: skip
    path = framework.paths.generate
    if path is None:
        raise NotMeasurable(f"{framework.name} declares prefill log-probabilities but no route")
    r = http.post(path, json={"inputs": text, "parameters": params})
    if r.status_code != 200:
        raise RuntimeError(f"prompt logprobs: HTTP {r.status_code}: {r.text[:300]}")
    prefill = (r.json().get("details") or {}).get("prefill")
    if not prefill:
        raise NotMeasurable(
            f"{framework.name} returned no prompt log-probabilities (TGI returns them only when "
            "started with --enable-prefill-logprobs): perplexity and log-likelihood tasks "
            "are not measurable"
        )
    got = [int(t["id"]) for t in prefill]
    extra = len(got) - len(ids)
    if extra < 0 or got[extra:] != ids:
        raise RuntimeError(
            f"prompt logprobs: {framework.name} read the text as other tokens than its ids "
            f"({len(got)} tokens, its special ones included, for {len(ids)}): not comparable"
        )
    values = [t.get("logprob") for t in prefill[extra + 1 :]]
    return [None, *(None if v is None or math.isnan(v) else float(v) for v in values)]


def check_dialect(framework: Framework) -> None:
    dialect = framework.prompt_logprobs
    if dialect not in DIALECTS:
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
    texts: Sequence[str] | None = None,
    *,
    concurrency: int = 8,
    timeout_s: float = 600.0,
    clock: Callable[[], float] | None = None,
) -> PerplexityRun:
    """Score every window through the server; NLLs of every token after each window's first.

    ``texts``: each window's text, for a framework that takes text prompts only.
    """
    import time

    check_dialect(endpoint.framework)
    now = clock or time.perf_counter
    start = now()
    with httpx.Client(
        base_url=endpoint.base_url, timeout=timeout_s, headers=endpoint.headers
    ) as http:

        def one(k: int) -> tuple[float, ...]:
            text = None if texts is None else [texts[k]]
            lps = prompt_logprobs(http, endpoint, [prompts[k]], text)[0]
            if any(v is None for v in lps[1:]):
                raise RuntimeError("prompt logprobs: a token after the first has no logprob")
            return tuple(-float(v) for v in lps[1:] if v is not None)

        with ThreadPoolExecutor(max(1, concurrency)) as pool:
            nll = tuple(pool.map(one, range(len(prompts))))
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
        return list(self.tokens(text).ids)

    def tokens(self, text: str) -> Tokens:
        r = self._http.post(self.path, json=self.framework.tokenize_body(self.model, text))
        r.raise_for_status()
        return self.framework.read_tokens(r.json(), text)

    def close(self) -> None:
        self._http.close()
