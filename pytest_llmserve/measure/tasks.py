"""Task accuracy through the server: items tokenized once, scored on any target.

Items (``measure.task_items``) are tokenized once by the baseline's server and
sent as token ids, like the perplexity windows, so a candidate is scored on the
very tokens its baseline was (a target that takes text only is sent their text, and
its log-probabilities must come back for those very ids). Multiple choice: the
choice whose tokens have the highest summed log-probability after the context wins
(one request per item, its choices as a batch of prompts). Generation: greedy, stop
at a newline, the stripped text must equal the answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.measure.perplexity import NotMeasurable, check_dialect, prompt_logprobs
from pytest_llmserve.measure.task_items import ChoiceItem, Item

MAX_NEW_TOKENS = 8


@dataclass(frozen=True)
class EncodedChoice:
    """A multiple-choice item as the baseline's ids, with the texts they were made of
    (what a target that takes text only is sent)."""

    id: str
    task: str
    context: tuple[int, ...]
    choices: tuple[tuple[int, ...], ...]
    answer: int
    context_text: str = ""
    choice_texts: tuple[str, ...] = ()

    def texts(self) -> list[str]:
        return [self.context_text + c for c in self.choice_texts]


@dataclass(frozen=True)
class EncodedGen:
    id: str
    task: str
    prompt: tuple[int, ...]
    answer: str
    prompt_text: str = ""


Encoded = EncodedChoice | EncodedGen


@dataclass(frozen=True)
class TaskRun:
    """Per-item correctness (by item id) and what could not be scored, with the time taken."""

    correct: dict[str, bool]
    seconds: float
    not_measured: str | None = None  # e.g. multiple choice on a framework without logprobs

    @property
    def score(self) -> float | None:
        return sum(self.correct.values()) / len(self.correct) if self.correct else None

    def by_task(self) -> dict[str, tuple[int, int]]:
        """(right, total) per task."""
        out: dict[str, tuple[int, int]] = {}
        for item_id, ok in self.correct.items():
            task = item_id.split("/")[0]
            right, total = out.get(task, (0, 0))
            out[task] = (right + int(ok), total + 1)
        return out


def encode(
    items: Sequence[Item], tokenize: Callable[[str], list[int]], concurrency: int = 8
) -> list[Encoded]:
    """Tokenize every distinct string once (context and choice apart, then concatenated)."""
    texts: set[str] = set()
    for it in items:
        if isinstance(it, ChoiceItem):
            texts.add(it.context)
            texts.update(it.choices)
        else:
            texts.add(it.prompt)
    with ThreadPoolExecutor(max(1, concurrency)) as pool:
        ordered = sorted(texts)
        ids = dict(zip(ordered, pool.map(tokenize, ordered), strict=True))
    out: list[Encoded] = []
    for it in items:
        if isinstance(it, ChoiceItem):
            choices = tuple(tuple(ids[c]) for c in it.choices)
            out.append(EncodedChoice(it.id, it.task, tuple(ids[it.context]), choices, it.answer,
                                     it.context, it.choices))  # fmt: skip
        else:
            out.append(EncodedGen(it.id, it.task, tuple(ids[it.prompt]), it.answer, it.prompt))
    return out


def choice_loglik(context: Sequence[int], choices: Sequence[Sequence[int]],
                  logprobs: Sequence[Sequence[float | None]]) -> list[float]:  # fmt: skip
    """Summed log-probability of each choice's tokens, read from its echoed prompt."""
    start = len(context)
    out = []
    for choice, lps in zip(choices, logprobs, strict=True):
        part = lps[start : start + len(choice)]
        if len(part) != len(choice) or any(v is None for v in part):
            raise RuntimeError("a choice's tokens came back without log-probabilities")
        out.append(sum(float(v) for v in part if v is not None))
    return out


def pick(logliks: Sequence[float]) -> int:
    """The most likely choice; a tie goes to the first (deterministic, never to the answer)."""
    return max(range(len(logliks)), key=lambda i: (logliks[i], -i))


def generation_correct(text: str, answer: str) -> bool:
    """The first line of the greedy continuation, stripped, equals the answer exactly."""
    lines = text.strip().splitlines()
    return (lines[0].strip() if lines else "") == answer


def run(
    endpoint: Endpoint,
    items: Sequence[Encoded],
    *,
    concurrency: int = 8,
    timeout_s: float = 600.0,
) -> TaskRun:
    """Score every item on one target (multiple choice needs prompt log-probabilities:
    where the framework, or this server, gives none, those items are left unscored and
    ``not_measured`` says why)."""
    start = time.perf_counter()
    refused: list[str] = []  # why the server gave no prompt log-probabilities
    model, path = endpoint.served_name, endpoint.framework.paths.completions
    as_ids = endpoint.framework.takes_token_ids
    try:
        check_dialect(endpoint.framework)
        scorable: list[Encoded] = list(items)
    except NotMeasurable as exc:
        refused.append(str(exc))
        scorable = [it for it in items if isinstance(it, EncodedGen)]
    with httpx.Client(
        base_url=endpoint.base_url, timeout=timeout_s, headers=endpoint.headers
    ) as http:

        def one(item: Encoded) -> bool | None:
            if isinstance(item, EncodedChoice):
                if refused:  # one refusal is the server's answer to every other
                    return None
                prompts = [list(item.context) + list(c) for c in item.choices]
                try:
                    lps = prompt_logprobs(http, endpoint, prompts, item.texts())
                except NotMeasurable as exc:  # a TGI started without prefill logprobs
                    refused.append(str(exc))
                    return None
                return pick(choice_loglik(item.context, item.choices, lps)) == item.answer
            prompt = list(item.prompt) if as_ids else item.prompt_text
            r = http.post(
                path,
                json={"model": model, "prompt": prompt, "max_tokens": MAX_NEW_TOKENS,
                      "temperature": 0, "stop": ["\n"]},
            )  # fmt: skip
            if r.status_code != 200:
                raise RuntimeError(f"generation: HTTP {r.status_code}: {r.text[:300]}")
            return generation_correct(str(r.json()["choices"][0].get("text", "")), item.answer)

        with ThreadPoolExecutor(max(1, concurrency)) as pool:
            results = list(pool.map(one, scorable))
    correct = {it.id: ok for it, ok in zip(scorable, results, strict=True) if ok is not None}
    not_measured = f"multiple choice not measured: {refused[0]}" if refused else None
    return TaskRun(correct, time.perf_counter() - start, not_measured)
