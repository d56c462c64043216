"""Workloads: seeded prompts with chosen input and output lengths.

Synthetic prompts are slices of real text tokenized once by the server itself (its
framework's tokenize endpoint) and sent as token ids, so each prompt has exactly the
input length asked for, whatever the tokenizer; each request starts at a different
offset so prefix caching cannot serve one prompt from another. A framework that takes
text only is sent the text of those tokens, where its tokenizer says where they lie.
Output length is held by ``ignore_eos``/``min_tokens`` where the framework supports
them; elsewhere the shortfall shows in the run's token accounting.
"""

from __future__ import annotations

import importlib
import inspect
import random
import tomllib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from pytest_llmserve.client.dialects import Prompt
from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.frameworks.base import Tokens
from pytest_llmserve.measure.perplexity import tokenize_path

DISTRIBUTIONS = ("fixed", "uniform", "normal")


@dataclass(frozen=True)
class Lengths:
    """A token-length distribution: fixed ``mean``; uniform mean±spread; normal(mean, spread)."""

    mean: int
    kind: str = "fixed"
    spread: int = 0

    def __post_init__(self) -> None:
        if self.kind not in DISTRIBUTIONS:
            raise ValueError(
                f"length distribution {self.kind!r} (valid: {', '.join(DISTRIBUTIONS)})"
            )
        if self.mean < 1 or self.spread < 0:
            raise ValueError(f"lengths need mean >= 1 and spread >= 0, got {self}")

    def sample(self, rng: random.Random) -> int:
        if self.kind == "uniform":
            value = rng.randint(self.mean - self.spread, self.mean + self.spread)
        elif self.kind == "normal":
            value = round(rng.gauss(self.mean, self.spread))
        else:
            value = self.mean
        return max(1, value)


# Modules whose import has no side effects; their docstrings are the corpus.
_CORPUS_MODULES = (
    "argparse", "asyncio", "calendar", "collections", "contextlib", "csv", "dataclasses",
    "datetime", "decimal", "difflib", "email", "enum", "fractions", "functools", "gettext",
    "heapq", "html", "inspect", "ipaddress", "itertools", "json", "logging", "mailbox",
    "pathlib", "pickle", "queue", "random", "shutil", "socket", "sqlite3", "statistics",
    "string", "subprocess", "tarfile", "tempfile", "textwrap", "threading", "typing",
    "unittest", "urllib.parse", "uuid", "zipfile",
)  # fmt: skip


def corpus_text() -> str:
    """Real English prose from the installed standard library's docstrings (no download).

    Deterministic for a Python version: a fixed module list, members in name order.
    """
    parts: list[str] = []
    # Reading some members warns (typing.io/typing.re on 3.11); under a project's
    # filterwarnings = error that would abort the load run.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for name in _CORPUS_MODULES:
            module = importlib.import_module(name)
            for obj in [module, *(v for _, v in sorted(vars(module).items()))]:
                doc = inspect.getdoc(obj) if callable(obj) or obj is module else None
                if doc and len(doc) > 200 and doc not in parts:
                    parts.append(doc)
    return "\n\n".join(parts)


def server_token_ids(endpoint: Endpoint, text: str) -> list[int]:
    """Tokenize with the served model's own tokenizer (its framework's tokenize endpoint;
    ``perplexity.NotMeasurable`` when it has none)."""
    return list(server_tokens(endpoint, text).ids)


def server_tokens(endpoint: Endpoint, text: str) -> Tokens:
    """As ``server_token_ids``, with each id's span in ``text`` where the framework says."""
    r = httpx.post(
        endpoint.url(tokenize_path(endpoint.framework)),
        json=endpoint.framework.tokenize_body(endpoint.served_name, text),
        timeout=120,
        headers=endpoint.headers or None,
    )
    r.raise_for_status()
    return endpoint.framework.read_tokens(r.json(), text)


def synthetic(
    corpus_ids: list[int], n: int, inputs: Lengths, outputs: Lengths, seed: int = 0
) -> list[Prompt]:
    """``n`` token-id prompts cut from ``corpus_ids`` at seeded offsets."""
    rng = random.Random(seed)
    prompts = []
    for _ in range(n):
        length = inputs.sample(rng)
        prompts.append(Prompt(_slice(corpus_ids, length, rng), length, outputs.sample(rng)))
    return prompts


def shared_prefix(
    corpus_ids: list[int], n: int, prefix: int, suffixes: Lengths, outputs: Lengths, seed: int = 0
) -> list[Prompt]:
    """Prompts that share their first ``prefix`` tokens (the system-prompt pattern)."""
    rng = random.Random(seed)
    common = _slice(corpus_ids, prefix, rng)
    prompts = []
    for _ in range(n):
        tail = _slice(corpus_ids, suffixes.sample(rng), rng)
        prompts.append(Prompt(common + tail, prefix + len(tail), outputs.sample(rng)))
    return prompts


def prompt_set(path: Path, outputs: Lengths, seed: int = 0) -> list[Prompt]:
    """Fixed text prompts from a TOML file (``prompts = ["...", ...]``); lengths as tokenized."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    texts = data.get("prompts")
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts) or not texts:
        raise ValueError(f'{path}: expected prompts = ["...", ...]')
    rng = random.Random(seed)
    # Text prompts: their token count is known only after the server tokenizes them;
    # the word count stands in until usage reports the real one.
    return [Prompt(t, len(t.split()), outputs.sample(rng), ignore_eos=True) for t in texts]


def as_text(prompts: list[Prompt], text: str, spans: Sequence[tuple[int, int]]) -> list[Prompt]:
    """Prompts cut by token position, as the text those tokens were, for a framework that
    takes text only: ``synthetic`` and ``shared_prefix`` over ``range(len(spans))``
    give each prompt's positions, and each run of consecutive ones becomes its text
    (from the end of the token before it, so a word keeps its leading space).

    The framework reads each back as about as many tokens (a cut may merge at its
    edges); what it counted is what the run records where it reports it.
    """
    data = text.encode()
    out = []
    for p in prompts:
        assert isinstance(p.prompt, list)
        runs: list[list[int]] = []
        for pos in p.prompt:
            if runs and pos == runs[-1][-1] + 1:
                runs[-1].append(pos)
            else:
                runs.append([pos])
        pieces = [data[spans[r[0] - 1][1] if r[0] else spans[0][0] : spans[r[-1]][1]]
                  for r in runs]  # fmt: skip
        out.append(replace(p, prompt=b"".join(pieces).decode("utf-8", errors="ignore")))
    return out


def _slice(ids: list[int], length: int, rng: random.Random) -> list[int]:
    if length > len(ids):
        repeats = length // len(ids) + 1
        ids = ids * repeats
    start = rng.randrange(0, len(ids) - length + 1)
    return ids[start : start + length]
