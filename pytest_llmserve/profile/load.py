"""Read a profile (a TOML file, or ``[tool.llmserve]`` in pyproject) into a ``Profile``.

Every problem becomes one ``ProfileError`` line naming the file, the field and the
valid values, so a typo stops the session before any server starts.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_llmserve.errors import ProfileError
from pytest_llmserve.frameworks import registry as frameworks
from pytest_llmserve.launch import registry as launchers
from pytest_llmserve.models import catalog
from pytest_llmserve.profile.cost import parse_cost
from pytest_llmserve.profile.layouts import check_references
from pytest_llmserve.profile.model import (
    DEVICES,
    EMBEDDED_PREFIX,
    KV_CACHE_DTYPES,
    PRECISIONS,
    QUANT_METHODS,
    Profile,
    Target,
)
from pytest_llmserve.profile.validate import validate_checks

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class _Field:
    kind: type | tuple[type, ...]
    choices: Callable[[], tuple[str, ...]] | None = None
    required: bool = False


def _const(values: tuple[str, ...]) -> Callable[[], tuple[str, ...]]:
    return lambda: values


_FIELDS: dict[str, _Field] = {
    "name": _Field(str, required=True),
    "framework": _Field(str, frameworks.names, required=True),
    "model": _Field(str, required=True),
    "precision": _Field(str, _const(PRECISIONS), required=True),
    "method": _Field(str, _const(QUANT_METHODS)),
    "kv_cache_dtype": _Field(str, _const(KV_CACHE_DTYPES)),
    "tp": _Field(int),
    "pp": _Field(int),
    "device": _Field(str, _const(DEVICES)),
    "launcher": _Field(str, launchers.names),
    "served_name": _Field(str),
    "max_model_len": _Field(int),
    "args": _Field(list),
    "env": _Field(dict),
    "startup_timeout_s": _Field((int, float)),
    "slow": _Field(bool),
    "share_gpus": _Field(bool),
    "checks": _Field(dict),
    "api_key_env": _Field(str),
}
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def load_profile(path: Path) -> Profile:
    """Load a ``.toml`` profile, or the ``[tool.llmserve]`` table of a ``pyproject.toml``."""
    if not path.is_file():
        raise ProfileError(f"llmserve profile {path}: file not found")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"llmserve profile {path}: not valid TOML: {exc}") from None
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("llmserve")
        if data is None:
            raise ProfileError(f"llmserve profile {path}: no [tool.llmserve] table")
    return parse_profile(data, source=str(path), base_dir=path.parent)


def pyproject_profile(rootdir: Path) -> Profile | None:
    """The ``[tool.llmserve]`` profile of the project under test, if it declares one."""
    pyproject = rootdir / "pyproject.toml"
    if not pyproject.is_file():
        return None
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None  # pytest itself reports a broken pyproject
    section = data.get("tool", {}).get("llmserve")
    if section is None:
        return None
    return parse_profile(section, source=f"{pyproject} [tool.llmserve]", base_dir=rootdir)


def parse_profile(data: Mapping[str, Any], source: str, base_dir: Path) -> Profile:
    """Validate a profile's mapping; ``base_dir`` anchors relative model paths."""
    where = f"llmserve profile {source}"
    unknown = sorted(set(data) - {"name", "defaults", "targets", "cost"})
    if unknown:
        raise ProfileError(
            f"{where}: unknown key {unknown[0]!r} (valid: name, defaults, targets, cost)"
        )
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise ProfileError(f"{where}: defaults: expected a table, got {type(defaults).__name__}")
    raw_targets = data.get("targets")
    if not isinstance(raw_targets, list) or not raw_targets:
        raise ProfileError(f"{where}: targets: expected a non-empty array of tables [[targets]]")
    targets: list[Target] = []
    labels: list[str] = []
    for i, raw in enumerate(raw_targets):
        if not isinstance(raw, dict):
            raise ProfileError(f"{where}: targets[{i}]: expected a table")
        merged = _merge(defaults, raw)
        labels.append(f"{where}: targets[{i}]" + (f" ({raw['name']})" if "name" in raw else ""))
        targets.append(_target(merged, labels[-1], base_dir))
    seen: set[str] = set()
    for t in targets:
        if t.name in seen:
            raise ProfileError(f"{where}: target name {t.name!r} is used twice")
        seen.add(t.name)
    names = [t.name for t in targets]
    for t, label in zip(targets, labels, strict=True):
        validate_checks(t.checks, label, names)
    check_references(targets, labels)
    name = data.get("name", Path(source.split(" ")[0]).stem)
    cost = parse_cost(data.get("cost"), f"{where}: cost")
    return Profile(source=source, name=str(name), targets=tuple(targets), cost=cost)


def _merge(defaults: Mapping[str, Any], raw: Mapping[str, Any]) -> dict[str, Any]:
    """Target values over defaults; ``env`` merges key by key, ``checks`` table by table."""
    merged = {**defaults, **raw}
    for table in ("checks", "env"):
        if isinstance(defaults.get(table), dict) and isinstance(raw.get(table), dict):
            merged[table] = _deep_merge(defaults[table], raw[table])
    return merged


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key] = _deep_merge(base[key], value)
        else:
            merged[key] = value
    return merged


def _target(values: dict[str, Any], where: str, base_dir: Path) -> Target:
    owners: dict[str, list[str]] = {}
    for each in launchers.all_launchers():
        for key in each.keys:
            owners.setdefault(key, []).append(each.name)
    for key in values:
        if key not in _FIELDS and key not in owners:
            valid = ", ".join(sorted({*_FIELDS, *owners}))
            raise ProfileError(f"{where}: unknown field {key!r} (valid: {valid})")
    for key, spec in _FIELDS.items():
        if key not in values:
            if spec.required:
                raise ProfileError(f"{where}: missing required field {key!r}")
            continue
        _check_field(where, key, values[key], spec)

    name = values["name"]
    if not _NAME_RE.match(name):
        raise ProfileError(
            f"{where}: name: {name!r} must be letters, digits, '.', '_' or '-' (used in test ids)"
        )
    for key in ("tp", "pp", "max_model_len"):
        if key in values and values[key] < 1:
            raise ProfileError(f"{where}: {key}: must be >= 1, got {values[key]}")
    if values.get("startup_timeout_s", 1) <= 0:
        raise ProfileError(f"{where}: startup_timeout_s: must be > 0")
    args = values.get("args", [])
    if not all(isinstance(a, str) for a in args):
        raise ProfileError(f"{where}: args: expected an array of strings")
    env = values.get("env", {})
    if not all(isinstance(v, str) for v in env.values()):
        raise ProfileError(f"{where}: env: every value must be a string")

    key_env = values.get("api_key_env")
    if key_env is not None and not _ENV_NAME_RE.match(key_env):
        raise ProfileError(
            f"{where}: api_key_env: {key_env!r} must be the NAME of an environment variable "
            "(letters, digits, '_'), never the key itself"
        )

    launcher = launchers.get(values.get("launcher", launchers.DEFAULT))
    for key, names in owners.items():
        if key not in values or launcher.name in names:
            continue
        if key in names:
            # A launcher's own table (``docker = {...}``) may stay while the target launches
            # another way, so switching is one line; it is still checked now.
            launchers.get(key).settings({key: values[key]}, where)
            continue
        allowed = " or ".join(repr(n) for n in names)
        raise ProfileError(f"{where}: {key}: only valid with launcher = {allowed}")
    settings = launcher.settings({k: values[k] for k in launcher.keys if k in values}, where)
    model = _model(values["model"], values, where, base_dir, local=launcher.runs_here)
    return Target(
        name=name,
        framework=values["framework"],
        model=model,
        precision=values["precision"],
        method=values.get("method"),
        kv_cache_dtype=values.get("kv_cache_dtype", "auto"),
        tp=values.get("tp", 1),
        pp=values.get("pp", 1),
        device=values.get("device", "cpu"),
        launcher=launcher.name,
        launch=settings,
        served_name=values.get("served_name"),
        max_model_len=values.get("max_model_len"),
        args=tuple(args),
        env=tuple(sorted(env.items())),
        startup_timeout_s=float(values.get("startup_timeout_s", 600.0)),
        slow=values.get("slow", False),
        share_gpus=values.get("share_gpus", False),
        checks=_anchored(dict(values.get("checks", {})), where, base_dir),
        api_key_env=key_env,
    )


def _check_field(where: str, key: str, value: Any, spec: _Field) -> None:
    kinds = spec.kind if isinstance(spec.kind, tuple) else (spec.kind,)
    # bool is an int in Python; a profile saying `tp = true` is still a mistake.
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        expected = " or ".join(k.__name__ for k in kinds)
        raise ProfileError(
            f"{where}: {key}: expected {expected}, got {type(value).__name__} {value!r}"
        )
    if spec.choices is not None:
        valid = spec.choices()
        if value not in valid:
            raise ProfileError(
                f"{where}: {key}: {value!r} is not valid (valid: {', '.join(valid)})"
            )


def _local_path(given: str, base_dir: Path) -> Path:
    """A path a profile names: ``~`` expanded, a relative one taken from the profile's folder."""
    path = Path(given).expanduser()
    return path if path.is_absolute() else base_dir / path


def _anchored(checks: dict[str, Any], where: str, base_dir: Path) -> dict[str, Any]:
    """``checks`` with a prompt_set's file found where the profile is, like its model
    paths, not in whichever folder pytest runs from; one that is not there fails now."""
    workload = checks.get("workload")
    if not isinstance(workload, dict) or not isinstance(workload.get("prompts_file"), str):
        return checks  # no file, or a mistyped one: the workload table's own check says so
    path = _local_path(workload["prompts_file"], base_dir)
    if not path.is_file():
        raise ProfileError(f"{where}: checks.workload.prompts_file: {str(path)!r} is not a file")
    return {**checks, "workload": {**workload, "prompts_file": str(path)}}


def _model(model: str, values: dict[str, Any], where: str, base_dir: Path, *, local: bool) -> str:
    if model.startswith(EMBEDDED_PREFIX):
        try:
            fmt = frameworks.get(values["framework"]).model_format
            catalog.variant_for(
                model[len(EMBEDDED_PREFIX) :], values["precision"], values.get("method"), fmt
            )
        except KeyError as exc:
            raise ProfileError(f"{where}: model: {exc.args[0]}") from None
        return model
    if not local:
        return model  # the model lives where the server runs
    path = _local_path(model, base_dir)
    if not path.exists():
        raise ProfileError(
            f"{where}: model: path {str(path)!r} does not exist "
            f"(give a local checkpoint, or one of: {', '.join(catalog.embedded_models())})"
        )
    return str(path)
