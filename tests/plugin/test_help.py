"""``pytest --help`` works with the plugin installed and lists every llmserve option."""

from __future__ import annotations

import pytest

from pytest_llmserve import options


def test_help_exits_0_and_lists_every_option_and_its_ini_twin(pytester: pytest.Pytester) -> None:
    # A subprocess: the same entry-point loading and argparse formatting a user gets.
    result = pytester.runpytest_subprocess("--help")
    assert result.ret == 0, result.stderr.str()
    out = result.stdout.str()
    for opt in options.OPTIONS:
        assert opt.flag in out, f"{opt.flag} missing from pytest --help"
        assert f"{opt.ini} (" in out, f"ini {opt.ini} missing from pytest --help"
    flat = " ".join(out.split())
    # A literal % in a help text shows as written: escaped for argparse, not doubled.
    assert "output_tok_s:-5% or ttft_p99_s:+10%" in flat
    assert "%%" not in flat


@pytest.mark.parametrize("opt", options.OPTIONS, ids=lambda o: o.name)
def test_every_help_text_survives_argparse_formatting(opt: options._Option) -> None:
    # argparse expands %(name)s and %-escapes in help; a bare % raises or corrupts it.
    assert options.argparse_help(opt.help) % {} == opt.help
