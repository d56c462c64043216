"""``--llmserve-shard`` and ``--llmserve-run-group`` as a CI matrix job meets them."""

from __future__ import annotations

import textwrap

import pytest

TEST = "def test_uses_target(llm_target):\n    assert llm_target.name\n"
PROFILE = """
    name = "four"
    [defaults]
    framework = "vllm"
    model = "ckpt"
    precision = "bf16"
    [[targets]]
    name = "base"
    [[targets]]
    name = "int8"
    precision = "int8"
    checks = { accuracy = { baseline = "base" } }
    [[targets]]
    name = "gpu-tp2"
    device = "gpu"
    tp = 2
    [[targets]]
    name = "other"
"""


@pytest.fixture
def profile(pytester: pytest.Pytester) -> None:
    (pytester.path / "ckpt").mkdir()
    pytester.makefile(".toml", profile=textwrap.dedent(PROFILE))
    pytester.makepyfile(test_t=TEST)


@pytest.mark.usefixtures("profile")
def test_the_shards_of_a_matrix_cover_the_profile_once(pytester: pytest.Pytester) -> None:
    seen: list[str] = []
    for k in (1, 2):
        result = pytester.runpytest("--collect-only", "-q", "--llmserve-profile=profile.toml",
                                    f"--llmserve-shard={k}/2")  # fmt: skip
        seen += [line.split("[")[1].rstrip("]") for line in result.outlines if "::" in line]
    assert sorted(seen) == ["base", "gpu-tp2", "int8", "other"]
    # the baseline and the target judged against it run in one shard
    result = pytester.runpytest("--collect-only", "-q", "--llmserve-profile=profile.toml",
                                "--llmserve-shard=2/2")  # fmt: skip
    names = {line.split("[")[1].rstrip("]") for line in result.outlines if "::" in line}
    assert {"base", "int8"} <= names or not {"base", "int8"} & names


@pytest.mark.usefixtures("profile")
def test_the_header_names_the_shard_its_targets_and_the_run_group(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    monkeypatch.setenv("GITHUB_RUN_ATTEMPT", "2")
    result = pytester.runpytest("--collect-only", "--llmserve-profile=profile.toml",
                                "--llmserve-shard=1/2")  # fmt: skip
    result.stdout.fnmatch_lines(["llmserve: shard 1/2 of run group 4242-2: *"])


@pytest.mark.usefixtures("profile")
def test_the_ini_twins(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nllmserve_shard = 2/2\nllmserve_run_group = nightly-7\n")
    result = pytester.runpytest("--collect-only", "--llmserve-profile=profile.toml")
    result.stdout.fnmatch_lines(["llmserve: shard 2/2 of run group nightly-7: *"])


@pytest.mark.usefixtures("profile")
@pytest.mark.parametrize(
    ("value", "message"),
    [("3/2", "K must be between 1 and N"), ("half", "(valid: K/N, e.g. 2/4)")],
)
def test_a_bad_shard_stops_the_session_naming_the_form(
    pytester: pytest.Pytester, value: str, message: str
) -> None:
    result = pytester.runpytest("--llmserve-profile=profile.toml", f"--llmserve-shard={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--llmserve-shard: '{value}'*{message}*"])
