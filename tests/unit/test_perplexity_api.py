"""Perplexity and task scoring through an OpenAI-style server (a stub), and what they refuse."""

from __future__ import annotations

import math

import pytest

from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.frameworks.base import ApiPaths, Tokens
from pytest_llmserve.frameworks.openai_compat import OpenAICompatible
from pytest_llmserve.frameworks.tgi import TGI
from pytest_llmserve.frameworks.vllm import VLLM
from pytest_llmserve.measure import perplexity, tasks
from pytest_llmserve.measure.task_items import ChoiceItem, GenItem
from tests.replay.server import serve as serve_replay
from tests.replay.wires import WIRES
from tests.stubs.logprob_model import Behaviour, serve, token_logprob


class NoLogprobs(OpenAICompatible):
    """An OpenAI-compatible server that cannot echo a prompt's log-probabilities."""

    name = "llamacpp"


class NoTokenizer(VLLM):
    name = "no-tokenizer"
    paths = ApiPaths(tokenize=None)


def at(url: str, framework: object = None) -> Endpoint:
    return Endpoint(url, "stub", framework or VLLM())  # type: ignore[arg-type]


def test_windows_are_consecutive_and_no_longer_than_asked() -> None:
    ids = list(range(10))
    assert perplexity.windows(ids, 10, 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert perplexity.windows(ids, 9, 4) == [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
    ]  # a 1-token tail scores nothing
    with pytest.raises(ValueError, match="has 10 tokens, 11 were asked for"):
        perplexity.windows(ids, 11, 4)


def test_heldout_text_is_the_language_reference() -> None:
    text = perplexity.heldout_text()
    assert len(text) > 100_000
    assert "the" in text


def test_nll_of_every_token_after_the_first_of_each_window() -> None:
    b = Behaviour()
    with serve(b) as url:
        run = perplexity.measure(at(url), [[1, 2, 3], [4, 5]], concurrency=2)
    assert run.tokens == 3
    assert run.nll[0] == pytest.approx((-token_logprob(1, 2, b), -token_logprob(2, 3, b)))
    assert run.nll[1] == pytest.approx((-token_logprob(4, 5, b),))
    assert math.isfinite(sum(run.nll[0]))


def test_a_framework_without_prompt_logprobs_is_not_measurable() -> None:
    with pytest.raises(perplexity.NotMeasurable, match="not measurable"):
        perplexity.measure(at("http://127.0.0.1:9", NoLogprobs()), [[1, 2]])


def test_a_server_that_does_not_echo_logprobs_is_an_error_not_a_zero() -> None:
    with serve(Behaviour(echo=False)) as url, pytest.raises(RuntimeError, match="did not echo"):
        perplexity.measure(at(url), [[1, 2, 3]])


def test_tasks_score_choices_by_loglik_and_generation_by_exact_match() -> None:
    b = Behaviour()
    ctx = (10,)
    choices = ((20,), (30,))
    best = max(range(2), key=lambda i: token_logprob(10, choices[i][0], b))
    items = [
        tasks.EncodedChoice("mc/0", "mc", ctx, choices, best),
        tasks.EncodedChoice("mc/1", "mc", ctx, choices, 1 - best),
        tasks.EncodedGen("gen/0", "gen", (1, 2), "x"),  # the stub always answers "x"
        tasks.EncodedGen("gen/1", "gen", (1, 2), "y"),
    ]
    with serve(b) as url:
        run = tasks.run(at(url), items)
        gen_only = tasks.run(at(url, NoLogprobs()), items)
    assert run.correct == {"mc/0": True, "mc/1": False, "gen/0": True, "gen/1": False}
    assert gen_only.correct == {"gen/0": True, "gen/1": False}
    assert gen_only.not_measured is not None
    assert "multiple choice not measured" in gen_only.not_measured


def test_server_tokenizer_and_encode() -> None:
    with serve(Behaviour()) as url:
        tok = perplexity.ServerTokenizer(at(url))
        enc = tasks.encode([ChoiceItem("a/0", "a", "Q", (" x",), 0), GenItem("g/0", "g", "P", "1")],
                           tok)  # fmt: skip
        tok.close()
    assert enc[0] == tasks.EncodedChoice("a/0", "a", (ord("Q"),), ((32, ord("x")),), 0,
                                         "Q", (" x",))  # fmt: skip
    assert enc[1] == tasks.EncodedGen("g/0", "g", (ord("P"),), "1", "P")


def test_a_framework_without_a_tokenize_endpoint_is_not_measurable() -> None:
    with pytest.raises(perplexity.NotMeasurable, match="no-tokenizer has no tokenize endpoint"):
        perplexity.ServerTokenizer(at("http://127.0.0.1:9", NoTokenizer()))


def test_text_windows_are_cut_at_the_token_spans_and_tokenized_again() -> None:
    text = "naïve café and more"
    data = text.encode()
    # word tokens, their spans as TGI gives them (UTF-8 byte offsets, spaces left out)
    spans = [(0, 6), (7, 12), (13, 16), (17, len(data))]
    tokens = Tokens((1, 2, 3, 4), tuple(spans))
    ids, pieces = perplexity.text_windows(text, tokens, 4, 2, lambda s: list(s.encode()))
    assert pieces == ["naïve café", "and more"]
    assert ids == [list(p.encode()) for p in pieces]  # the ids are the piece's own
    with pytest.raises(ValueError, match="spans"):
        perplexity.text_windows(text, Tokens((1, 2)), 2, 2, lambda s: [])


def test_tgi_prefill_scores_the_same_tokens_as_the_echo() -> None:
    """One toy model behind both dialects: the text sent to TGI's /generate gives the
    NLLs the echo gives for its ids (the BOS TGI's tokenizer adds is not scored)."""
    ids = [list(b"Some text"), list(b"more")]
    with serve(Behaviour()) as url:
        echoed = perplexity.measure(at(url), ids)
    with serve_replay(WIRES["tgi"], "stub") as url:
        prefilled = perplexity.measure(at(url, TGI()), ids, ["Some text", "more"])
        with pytest.raises(perplexity.NotMeasurable, match="text prompts only"):
            perplexity.measure(at(url, TGI()), ids)
    assert [pytest.approx(w) for w in echoed.nll] == list(prefilled.nll)
