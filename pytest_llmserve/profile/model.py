"""The typed shape of a profile: targets and the vocabulary their fields may take.

Everything here is immutable and validated by ``profile.load``; code further down
the layers can trust these values without checking them again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_llmserve.profile.cost import CostTable

# Framework and launcher names are not listed here: their registries
# (``frameworks.registry``, ``launch.registry``) are the one source of them.

# Weight (and activation) precision of the served model. The quantization method
# (gptq, awq, smoothquant...) is a separate field: `precision_int4` selects every
# 4-bit target whatever its method.
PRECISIONS = ("fp32", "fp16", "bf16", "fp8", "int8", "int4")
QUANT_METHODS = ("gptq", "awq", "smoothquant", "dynamic",
                 # llama.cpp's GGUF quantization types
                 "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_k_s", "q4_0", "q4_1")  # fmt: skip
KV_CACHE_DTYPES = ("auto", "fp8", "fp8_e4m3", "fp8_e5m2")
DEVICES = ("cpu", "gpu")

EMBEDDED_PREFIX = "embedded:"


class Secret(str):
    """A string whose repr is masked: tracebacks with locals (``pytest -l``) never show it.

    It is an ordinary ``str`` everywhere else (f-strings, headers, ``os.environ``).
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"


@dataclass(frozen=True)
class Target:
    """One server configuration: the unit every test runs against."""

    name: str
    framework: str
    model: str
    precision: str
    method: str | None = None
    kv_cache_dtype: str = "auto"
    tp: int = 1
    pp: int = 1
    device: str = "cpu"
    launcher: str = "process"  # launch.registry.DEFAULT
    # The launcher's own typed settings, parsed by it from the keys it owns (the
    # external launcher's ``url``); frozen, so a Target stays hashable.
    launch: Any = None
    served_name: str | None = None
    max_model_len: int | None = None
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    startup_timeout_s: float = 600.0
    slow: bool = False
    # A GPU target leases its own GPUs (``launch.gpu_slots``) unless the profile lets it
    # share the ones it sees with other targets (two small models on one big card).
    share_gpus: bool = False
    # The NAME of an environment variable holding the API key; the key itself never
    # lives in the profile, so it never reaches a repr, a test id or a report.
    api_key_env: str | None = None
    checks: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def is_embedded(self) -> bool:
        return self.model.startswith(EMBEDDED_PREFIX)

    @property
    def embedded_name(self) -> str:
        return self.model[len(EMBEDDED_PREFIX) :]

    @property
    def model_path(self) -> Path:
        return Path(self.model).expanduser()

    @property
    def ranks(self) -> int:
        """Parallel ranks (tp x pp): the devices a layout spreads over, GPUs on a GPU
        target, core groups on a CPU one."""
        return self.tp * self.pp

    @property
    def gpus(self) -> int:
        return self.ranks if self.device == "gpu" else 0

    @property
    def precision_label(self) -> str:
        """Human label, e.g. ``int4-gptq`` or ``bf16+kv-fp8``."""
        label = self.precision + (f"-{self.method}" if self.method else "")
        if self.kv_cache_dtype != "auto":
            label += f"+kv-{self.kv_cache_dtype}"
        return label

    @property
    def layout_label(self) -> str:
        return f"tp{self.tp}pp{self.pp}"

    def env_dict(self) -> dict[str, str]:
        return dict(self.env)

    def api_key(self) -> Secret | None:
        """The key clients must send (read from ``api_key_env`` now), or None: no auth."""
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env)
        return Secret(key) if key else None


@dataclass(frozen=True)
class Profile:
    """A validated profile: where it came from and its targets, in file order."""

    source: str
    name: str
    targets: tuple[Target, ...]
    cost: CostTable | None = None  # prices per device-hour, for cost per token

    def target(self, name: str) -> Target:
        for t in self.targets:
            if t.name == name:
                return t
        raise KeyError(name)

    @property
    def target_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.targets)
