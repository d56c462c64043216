"""One verdict for the shards of a run: every target against its own earlier history."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_llmserve.cli import main
from pytest_llmserve.history.store import FolderStore
from tests.unit.history_helpers import record

NIGHT1, NIGHT2 = "night-1", "night-2"


@pytest.fixture
def hist(tmp_path: Path) -> str:
    """Two nights of two shards: target a (shard 1) holds, target b (shard 2) slows down."""
    store = FolderStore(tmp_path / "h")
    store.write(record("r1", 100.0, 2.0, name="a", created=1.0, group=NIGHT1, shard="1/2"))
    store.write(record("r2", 100.0, 2.0, name="b", created=1.5, group=NIGHT1, shard="2/2"))
    store.write(record("r3", 101.0, 2.0, name="a", created=2.0, group=NIGHT2, shard="1/2"))
    store.write(record("r4", 60.0, 2.0, name="b", created=2.5, group=NIGHT2, shard="2/2"))
    return str(tmp_path / "h")


def _compare(hist: str, group: str, *rules: str) -> int:
    args = ["--history", hist, "history", "compare", "--group", group]
    return main([*args, *(x for r in rules for x in ("--fail-on", r))])


def test_the_group_verdict_catches_the_shard_that_regressed(
    hist: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _compare(hist, NIGHT2, "output_tok_s:-5%") == 1
    out = capsys.readouterr().out
    assert "run group night-2: 2 target(s) from shard(s) 1/2, 2/2" in out
    [b_row] = [line for line in out.splitlines() if line.startswith("b ")]
    assert "REGRESSION" in b_row
    [a_row] = [line for line in out.splitlines() if line.startswith("a ")]
    assert "REGRESSION" not in a_row
    assert "1 regression(s)" in out


def test_the_first_night_has_nothing_to_regress_from(
    hist: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _compare(hist, NIGHT1, "output_tok_s:-5%") == 0
    assert "0 regression(s)" in capsys.readouterr().out


def test_a_shard_that_wrote_nothing_makes_the_verdict_incomplete(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = FolderStore(tmp_path / "h")
    store.write(record("r1", 100.0, 2.0, name="a", created=1.0, group="g", shard="1/3"))
    store.write(record("r2", 100.0, 2.0, name="c", created=1.0, group="g", shard="3/3"))
    assert _compare(str(tmp_path / "h"), "g") == 1
    assert "INCOMPLETE: shard 2/3 wrote no record" in capsys.readouterr().out


def test_an_unknown_group_is_an_error_naming_it(
    hist: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _compare(hist, "night-9") == 2
    assert "no records of run group 'night-9'" in capsys.readouterr().err


def test_runs_and_a_group_are_not_given_together(
    hist: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--history", hist, "history", "compare", "r1", "--group", NIGHT1]) == 2
    assert "not both" in capsys.readouterr().err


def test_the_group_report_shows_every_shards_targets(hist: str, tmp_path: Path) -> None:
    out = tmp_path / "night2.html"
    assert main(["--history", hist, "report", "--group", NIGHT2, "--out", str(out)]) == 0
    html = out.read_text()
    assert "r3" in html  # shard 1's run
    assert "r4" in html  # shard 2's run


def test_list_names_each_runs_group_and_shard(
    hist: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--history", hist, "history", "list"]) == 0
    out = capsys.readouterr().out
    assert "group night-2 shard 2/2" in out


def test_a_store_that_fails_at_session_end_loses_the_record_not_the_session(
    tmp_path: Path,
) -> None:
    from pytest_llmserve.checklist.results import ResultBook
    from pytest_llmserve.errors import ProfileError
    from pytest_llmserve.history.compare import CompareSpec
    from pytest_llmserve.history.session import finish
    from pytest_llmserve.launch.pool import StartRecord
    from pytest_llmserve.profile.model import Profile
    from tests.unit.history_helpers import target

    class GoneStore(FolderStore):
        def records(self, target: str | None = None) -> list:  # type: ignore[type-arg]
            raise ProfileError("postgresql://u@db:5432/h: server closed the connection")

    t = target("a")
    hist = finish(store=GoneStore(tmp_path / "h"), profile=Profile("p", "p", (t,)), selected=(t,),
                  book=ResultBook(), starts={"a": StartRecord("a")}, spec=CompareSpec("last"),
                  rules=(), rootdir=tmp_path, run_group="g", shard="1/2")  # fmt: skip
    assert [r.target for r in hist.records] == ["a"]
    assert hist.written == []
    assert any("the run record of a was not kept in" in w and "server closed" in w
               for w in hist.warnings)  # fmt: skip
    assert hist.records[0].profile["run_group"] == "g"
    assert hist.records[0].profile["shard"] == "1/2"
