"""Price per device-hour, and what a million output tokens costs at a measured rate.

The profile table (top level, beside ``targets``)::

    [cost]
    currency = "USD"
    device_hour = { gpu = 2.49, cpu = 0.04 }   # price of one device for one hour

A target's hourly price is ``device_hour[device] x devices`` (tp x pp GPUs, or one
CPU host); ``target_overrides = { "llama-tp2" = 5.0 }`` sets one target's hourly
price outright (a reserved instance, an external endpoint billed per hour).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pytest_llmserve.errors import ProfileError
from pytest_llmserve.profile.model import DEVICES, Target


@dataclass(frozen=True)
class CostTable:
    currency: str = "USD"
    device_hour: dict[str, float] = field(default_factory=dict)
    target_overrides: dict[str, float] = field(default_factory=dict)

    def per_hour(self, target: Target) -> float | None:
        if target.name in self.target_overrides:
            return self.target_overrides[target.name]
        price = self.device_hour.get(target.device)
        if price is None:
            return None
        return price * (max(1, target.tp * target.pp) if target.device == "gpu" else 1)


def parse_cost(raw: Any, where: str = "llmserve profile: cost") -> CostTable | None:
    """The ``[cost]`` table; ``ProfileError`` names the field and the valid values."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ProfileError(f"{where}: expected a table, got {type(raw).__name__}")
    valid = ("currency", "device_hour", "target_overrides")
    for key in raw:
        if key not in valid:
            raise ProfileError(f"{where}.{key}: unknown field (valid: {', '.join(valid)})")
    currency = raw.get("currency", "USD")
    if not isinstance(currency, str) or not currency:
        raise ProfileError(f'{where}.currency: expected a currency code like "USD"')
    hours = _prices(raw.get("device_hour", {}), f"{where}.device_hour")
    for device in hours:
        if device not in DEVICES:
            raise ProfileError(
                f"{where}.device_hour.{device}: unknown device (valid: {', '.join(DEVICES)})"
            )
    overrides = _prices(raw.get("target_overrides", {}), f"{where}.target_overrides")
    return CostTable(currency, hours, overrides)


def cost_per_million_tokens(price_per_hour: float, output_tok_s: float) -> float | None:
    """price / (tokens per hour) x 1e6; None when nothing was produced."""
    if output_tok_s <= 0:
        return None
    return price_per_hour / (output_tok_s * 3600) * 1e6


def _prices(raw: Any, where: str) -> dict[str, float]:
    if not isinstance(raw, dict):
        raise ProfileError(f"{where}: expected a table like {{ gpu = 2.49 }}")
    out = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ProfileError(f"{where}.{key}: expected a price >= 0, got {value!r}")
        out[str(key)] = float(value)
    return out
