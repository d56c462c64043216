"""Workloads: length distributions, seeded token-id prompts, prompt files, the tokenizer call."""

from __future__ import annotations

import json
import random
import threading
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.frameworks.base import ApiPaths
from pytest_llmserve.frameworks.vllm import VLLM
from pytest_llmserve.load.workload import (
    Lengths,
    as_text,
    corpus_text,
    prompt_set,
    server_token_ids,
    shared_prefix,
    synthetic,
)
from pytest_llmserve.measure.perplexity import NotMeasurable

# Distinct ids, so a prompt's first id tells where in the corpus it was cut.
CORPUS = list(range(1000, 1600))


def offset_of(prompt: list[int], corpus: list[int] = CORPUS) -> int:
    start = corpus.index(prompt[0])
    assert prompt == corpus[start : start + len(prompt)], "not one contiguous slice"
    return start


# --- Lengths -------------------------------------------------------------------------------


def test_lengths_reject_an_unknown_distribution_naming_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"'zipf'.*fixed, uniform, normal"):
        Lengths(100, "zipf")


@pytest.mark.parametrize(("mean", "spread"), [(0, 0), (-5, 0), (10, -1)])
def test_lengths_reject_mean_below_one_or_negative_spread(mean: int, spread: int) -> None:
    with pytest.raises(ValueError, match="mean >= 1"):
        Lengths(mean, "uniform", spread)


def test_fixed_lengths_are_exactly_the_mean() -> None:
    rng = random.Random(1)
    assert {Lengths(128).sample(rng) for _ in range(50)} == {128}


def test_uniform_lengths_stay_within_mean_plus_minus_spread_and_reach_both_ends() -> None:
    rng = random.Random(2)
    values = [Lengths(100, "uniform", 10).sample(rng) for _ in range(2000)]
    assert min(values) == 90
    assert max(values) == 110
    assert len(set(values)) == 21


def test_normal_lengths_are_clamped_to_at_least_one() -> None:
    rng = random.Random(3)
    values = [Lengths(3, "normal", 20).sample(rng) for _ in range(2000)]
    assert all(isinstance(v, int) and v >= 1 for v in values)
    assert values.count(1) > 500  # about half of normal(3, 20) is below 1
    assert max(values) > 30


def test_length_samples_are_deterministic_for_a_seed() -> None:
    lengths = Lengths(64, "normal", 16)

    def draw(seed: int) -> list[int]:
        rng = random.Random(seed)
        return [lengths.sample(rng) for _ in range(100)]

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)


# --- synthetic and shared-prefix prompts ---------------------------------------------------


def test_synthetic_prompts_have_exactly_the_requested_lengths_as_corpus_slices() -> None:
    prompts = synthetic(CORPUS, 30, Lengths(64, "uniform", 32), Lengths(16, "uniform", 8), seed=1)
    assert len(prompts) == 30
    for p in prompts:
        assert isinstance(p.prompt, list)
        assert len(p.prompt) == p.prompt_tokens
        assert 32 <= p.prompt_tokens <= 96
        assert 8 <= p.max_tokens <= 24
        assert p.ignore_eos
        offset_of(p.prompt)
    assert len({p.prompt_tokens for p in prompts}) > 1


def test_synthetic_prompts_start_at_different_offsets() -> None:
    prompts = synthetic(CORPUS, 20, Lengths(64), Lengths(8), seed=0)
    offsets = [offset_of(p.prompt) for p in prompts]  # type: ignore[arg-type]
    assert len(set(offsets)) > 15  # a few collisions by chance at most, never one offset


def test_synthetic_prompts_are_reproducible_for_a_seed_and_change_with_it() -> None:
    def make(seed: int) -> list[Any]:
        return synthetic(CORPUS, 10, Lengths(32, "normal", 8), Lengths(16), seed=seed)

    assert make(5) == make(5)
    assert make(5) != make(6)


def test_synthetic_prompt_longer_than_the_corpus_wraps_around() -> None:
    corpus = list(range(50))
    prompts = synthetic(corpus, 3, Lengths(130), Lengths(4), seed=2)
    for p in prompts:
        assert isinstance(p.prompt, list)
        assert len(p.prompt) == p.prompt_tokens == 130
        # consecutive ids of the repeated corpus
        assert all(b == (a + 1) % 50 for a, b in zip(p.prompt, p.prompt[1:], strict=False))


def test_shared_prefix_prompts_share_exactly_the_prefix_and_differ_after() -> None:
    corpus = list(range(10_000))
    prompts = shared_prefix(corpus, 8, 32, Lengths(16), Lengths(8), seed=4)
    heads = [tuple(p.prompt[:32]) for p in prompts]  # type: ignore[index]
    tails = [tuple(p.prompt[32:]) for p in prompts]  # type: ignore[index]
    assert len(set(heads)) == 1
    assert len(set(tails)) == len(prompts)
    firsts_after = {tail[0] for tail in tails}
    assert len(firsts_after) == len(prompts)  # they diverge at the first token after the prefix
    for p in prompts:
        assert len(p.prompt) == p.prompt_tokens == 48
        assert p.max_tokens == 8


def test_shared_prefix_is_reproducible_for_a_seed() -> None:
    def make(seed: int) -> list[Any]:
        return shared_prefix(CORPUS, 4, 20, Lengths(10, "uniform", 5), Lengths(8), seed=seed)

    assert make(1) == make(1)
    assert make(1) != make(2)


# --- prompt files --------------------------------------------------------------------------


def test_prompt_set_reads_text_prompts_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "prompts.toml"
    path.write_text(
        'prompts = ["Name three primes.", """Explain\nrecursion briefly."""]\n', encoding="utf-8"
    )
    prompts = prompt_set(path, Lengths(20))
    assert [p.prompt for p in prompts] == ["Name three primes.", "Explain\nrecursion briefly."]
    assert [p.prompt_tokens for p in prompts] == [3, 3]  # word counts until usage says
    assert all(p.max_tokens == 20 for p in prompts)


@pytest.mark.parametrize(
    "text",
    [
        'questions = ["a"]\n',  # wrong key
        "prompts = []\n",  # empty
        'prompts = ["a", 3]\n',  # not all strings
        'prompts = "just one"\n',  # not an array
    ],
)
def test_prompt_set_with_the_wrong_shape_names_the_file_and_the_form(
    tmp_path: Path, text: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.toml: expected prompts = "):
        prompt_set(path, Lengths(8))


def test_prompt_set_with_invalid_toml_raises_a_value_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('prompts = ["unterminated\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 1"):  # tomllib.TOMLDecodeError is a ValueError
        prompt_set(path, Lengths(8))


# --- corpus and tokenizer ------------------------------------------------------------------


def test_corpus_text_is_deterministic_and_long() -> None:
    first = corpus_text()
    assert first == corpus_text()
    assert len(first) > 100_000
    assert len(first.split()) > 10_000  # prose, not one long token


def test_corpus_text_works_when_warnings_are_errors() -> None:
    # a project with filterwarnings = error must still get its corpus (typing.io warns)
    expected = corpus_text()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert corpus_text() == expected


class _Tokenizer(BaseHTTPRequestHandler):
    bodies: list[dict[str, Any]]
    paths: list[str]
    status: int

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        body = json.loads(self.rfile.read(length))
        self.paths.append(self.path)
        self.bodies.append(body)
        if self.status != 200:
            self.send_response(self.status)
            self.end_headers()
            return
        tokens = [len(word) for word in body["prompt"].split()]
        payload = json.dumps({"tokens": tokens, "count": len(tokens), "max_model_len": 2048})
        data = payload.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def tokenizer_server() -> Iterator[tuple[str, type[_Tokenizer]]]:
    handler = type("Handler", (_Tokenizer,), {"bodies": [], "paths": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_server_token_ids_posts_the_text_without_special_tokens(
    tokenizer_server: tuple[str, type[_Tokenizer]],
) -> None:
    url, handler = tokenizer_server
    ids = server_token_ids(Endpoint(url, "served-model", VLLM()), "one three seven")
    assert ids == [3, 5, 5]
    assert handler.paths == [VLLM().paths.tokenize]
    assert handler.bodies == [
        {"model": "served-model", "prompt": "one three seven", "add_special_tokens": False}
    ]


def test_server_token_ids_raises_when_the_server_has_no_tokenize_endpoint(
    tokenizer_server: tuple[str, type[_Tokenizer]],
) -> None:
    url, handler = tokenizer_server
    handler.status = 404
    with pytest.raises(httpx.HTTPStatusError):
        server_token_ids(Endpoint(url, "m", VLLM()), "text")


class _OwnTokenize(VLLM):
    paths = ApiPaths(tokenize="/extra/tokenize")


class _NoTokenize(VLLM):
    name = "no-tokenize"
    paths = ApiPaths(tokenize=None)


def test_server_token_ids_uses_the_frameworks_tokenize_path(
    tokenizer_server: tuple[str, type[_Tokenizer]],
) -> None:
    url, handler = tokenizer_server
    server_token_ids(Endpoint(url, "m", _OwnTokenize()), "a b")
    assert handler.paths == ["/extra/tokenize"]


def test_a_framework_without_tokenize_is_not_measurable_not_a_guess() -> None:
    with pytest.raises(NotMeasurable, match="no-tokenize has no tokenize endpoint"):
        server_token_ids(Endpoint("http://127.0.0.1:9", "m", _NoTokenize()), "text")


# --- prompts as text, for a framework that takes text only --------------------------------


def _words(text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """A word tokenizer's ids and byte spans, leading spaces left out as TGI's are."""
    spans, at = [], 0
    for word in text.split(" "):
        spans.append((at, at + len(word.encode())))
        at += len(word.encode()) + 1
    return list(range(len(spans))), spans


def test_prompts_of_token_positions_become_the_text_of_those_tokens() -> None:
    text = "zero one two three four five six seven"
    ids, spans = _words(text)
    prompts = synthetic(ids, 20, Lengths(3), Lengths(4), seed=3)
    for p, t in zip(prompts, as_text(prompts, text, spans), strict=True):
        assert isinstance(p.prompt, list)
        assert isinstance(t.prompt, str)
        words = text.split(" ")[p.prompt[0] : p.prompt[-1] + 1]
        # a word keeps its leading space, as in the text (the first word has none)
        assert t.prompt == (" " if p.prompt[0] else "") + " ".join(words)
        assert (t.prompt_tokens, t.max_tokens) == (p.prompt_tokens, p.max_tokens)


def test_a_shared_prefix_as_text_is_its_prefix_then_its_tail() -> None:
    text = "zero one two three four five six seven"
    ids, spans = _words(text)
    prompts = as_text(shared_prefix(ids, 6, 2, Lengths(2), Lengths(4), seed=5), text, spans)
    prefixes = {" ".join(str(p.prompt).split()[:2]) for p in prompts}
    assert len(prefixes) == 1  # every prompt starts with the same two words
    assert all(len(str(p.prompt).split()) == 4 for p in prompts)
