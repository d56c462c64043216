"""The built-in task set and its scoring rules."""

from __future__ import annotations

import calendar
import collections
import re

import pytest

from pytest_llmserve.measure import tasks
from pytest_llmserve.measure.task_items import ChoiceItem, GenItem, builtin_items, select


def test_several_hundred_items_deterministic_and_unique() -> None:
    items = builtin_items(0)
    assert len(items) >= 400
    assert items == builtin_items(0)
    assert items != builtin_items(1)
    assert len({it.id for it in items}) == len(items)
    kinds = collections.Counter(type(it).__name__ for it in items)
    assert kinds["ChoiceItem"] >= 200
    assert kinds["GenItem"] >= 150


def test_every_choice_item_has_its_answer_among_distinct_choices() -> None:
    for it in builtin_items(0):
        if isinstance(it, ChoiceItem):
            assert len(set(it.choices)) == len(it.choices) >= 2, it
            assert 0 <= it.answer < len(it.choices)


def test_answers_are_right() -> None:
    items = builtin_items(0)
    for it in items:
        if isinstance(it, ChoiceItem) and it.task == "arith_mc":
            a, op, b = re.findall(r"What is (\d+) ([+-]) (\d+)", it.context)[0]
            want = int(a) + int(b) if op == "+" else int(a) - int(b)
            assert it.choices[it.answer] == f" {want}"
        if isinstance(it, GenItem) and it.task == "add_gen":
            a, b = re.findall(r"(\d+) \+ (\d+) =$", it.prompt)[0]
            assert it.answer == str(int(a) + int(b))
    april = next(it for it in items if it.id == "days_in_month_mc/4")
    assert isinstance(april, ChoiceItem)
    assert april.choices[april.answer] == " 30"
    after_dec = next(it for it in items if it.context == "The month after December is")
    assert isinstance(after_dec, ChoiceItem)
    assert after_dec.choices[after_dec.answer] == f" {calendar.month_name[1]}"
    assert not any(isinstance(it, ChoiceItem) and "letter after z" in it.context for it in items)


def test_select_keeps_order_and_size() -> None:
    items = builtin_items(0)
    some = select(items, 100)
    assert len(some) == 100
    assert [items.index(it) for it in some] == sorted(items.index(it) for it in some)
    assert select(items, 0) == items


def test_encode_tokenizes_each_string_once_and_concatenates() -> None:
    calls: list[str] = []

    def tok(text: str) -> list[int]:
        calls.append(text)
        return [len(text), ord(text[-1])]

    items = [ChoiceItem("a/0", "a", "Q", (" x", " yy"), 1), ChoiceItem("a/1", "a", "Q", (" x",), 0),
             GenItem("g/0", "g", "P", "1")]  # fmt: skip
    enc = tasks.encode(items, tok)
    assert sorted(calls) == sorted({"Q", " x", " yy", "P"})
    first = enc[0]
    assert isinstance(first, tasks.EncodedChoice)
    assert first.context == (1, ord("Q"))
    assert first.choices == ((2, ord("x")), (3, ord("y")))


def test_choice_loglik_sums_the_choice_tokens_only() -> None:
    lps: list[list[float | None]] = [[None, -9.0, -1.0, -2.0], [None, -9.0, -0.5]]
    assert tasks.choice_loglik([5, 6], [[7, 8], [7]], lps) == [-3.0, -0.5]
    with pytest.raises(RuntimeError):
        tasks.choice_loglik([5, 6], [[7, 8]], [[None, -1.0]])


def test_pick_breaks_ties_towards_the_first_choice() -> None:
    assert tasks.pick([-1.0, -0.5, -0.5]) == 1
    assert tasks.pick([-2.0, -3.0]) == 0


@pytest.mark.parametrize(
    ("text", "answer", "ok"),
    [(" 21\n4 + 4 = 8", "21", True), (" 21 apples", "21", False), ("", "1", False),
     ("  DOG  ", "DOG", True)],
)  # fmt: skip
def test_generation_is_exact_match_on_the_first_line(text: str, answer: str, ok: bool) -> None:
    assert tasks.generation_correct(text, answer) is ok


def test_task_run_score_and_breakdown() -> None:
    run = tasks.TaskRun({"a/0": True, "a/1": False, "b/0": True}, 1.0)
    assert run.score == pytest.approx(2 / 3)
    assert run.by_task() == {"a": (1, 2), "b": (1, 1)}
    assert tasks.TaskRun({}, 0.0).score is None
