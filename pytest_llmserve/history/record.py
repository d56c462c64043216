"""The run record: what one session measured for one target, versioned and secret-free.

A record is plain JSON (``to_json`` / ``from_json``) so that it outlives this
code: ``SCHEMA_VERSION`` goes up on any change a reader must know about, and a
reader skips (never guesses at) a record from a newer version.

Nothing secret enters a record: environment variables are kept by name only,
server arguments that follow a flag naming a key, token, secret, password or
auth have their value replaced, and credentials in a URL are dropped. A record
is meant to be cached in CI and attached to reports.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pytest_llmserve.checklist.results import CheckOutcome, Figure, TargetResults
from pytest_llmserve.launch.auth import redact_argv, redact_url
from pytest_llmserve.profile.model import Profile, Target

SCHEMA = "pytest-llmserve/run-record"
SCHEMA_VERSION = 1
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
_MODEL_CONFIGS = ("config.json", "generation_config.json", "quantization_config.json")


class RecordError(ValueError):
    """A file or row is not a run record this code can read; the message says why."""


@dataclass(frozen=True)
class RunRecord:
    run_id: str  # one session; shared by its targets' records
    target: str  # the target's name: the key runs are compared by
    created: float  # unix time
    target_info: dict[str, Any]
    machine: dict[str, Any]
    project: dict[str, Any]
    profile: dict[str, Any]
    server: dict[str, Any]
    figures: dict[str, Figure]
    checks: tuple[CheckOutcome, ...] = ()
    cost: dict[str, Any] = field(default_factory=dict)
    # The gate's outcome: "compared_with" (run ids) and "regressed" (metrics). A run
    # that regressed is kept but never becomes the "last" run later runs compare with.
    gate: dict[str, Any] = field(default_factory=dict)

    @property
    def regressed(self) -> bool:
        return bool(self.gate.get("regressed"))

    @property
    def run_group(self) -> str:
        """The CI run this record's session belonged to (older records: their own run)."""
        return str(self.profile.get("run_group") or self.run_id)

    @property
    def record_id(self) -> str:
        return f"{self.run_id}.{self.target}"

    @property
    def when(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.gmtime(self.created))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "target": self.target,
            "created": self.created,
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created)),
            "target_info": self.target_info,
            "machine": self.machine,
            "project": self.project,
            "profile": self.profile,
            "server": self.server,
            "figures": {k: figure_to_dict(f) for k, f in self.figures.items()},
            "checks": [asdict(c) for c in self.checks],
            "cost": self.cost,
            "gate": self.gate,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)


def from_json(text: str) -> RunRecord:
    """Parse a record; ``RecordError`` for anything that is not a readable record."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecordError(f"not JSON ({exc.__class__.__name__}: {exc})") from None
    return from_dict(data)


def from_dict(data: Any) -> RunRecord:
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise RecordError(f'not a run record (no "schema": "{SCHEMA}")')
    version = data.get("version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise RecordError(
            f"record schema version {version!r} is newer than this pytest-llmserve reads "
            f"({SCHEMA_VERSION}); upgrade pytest-llmserve to read it"
        )
    try:
        figures = {k: figure_from_dict(v) for k, v in data["figures"].items()}
        checks = tuple(
            CheckOutcome(c["check"], c["outcome"], c.get("reason", "")) for c in data["checks"]
        )
        return RunRecord(
            run_id=str(data["run_id"]),
            target=str(data["target"]),
            created=float(data["created"]),
            target_info=dict(data["target_info"]),
            machine=dict(data["machine"]),
            project=dict(data["project"]),
            profile=dict(data["profile"]),
            server=dict(data["server"]),
            figures=figures,
            checks=checks,
            cost=dict(data.get("cost") or {}),
            gate=dict(data.get("gate") or {}),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RecordError(f"malformed run record ({exc.__class__.__name__}: {exc})") from None


def new_run_id(now: float | None = None) -> str:
    """Sortable by time, unique across hosts and xdist workers: ``20260101T120000Z-1a2b3c4d``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now if now is not None else time.time()))
    return f"{stamp}-{uuid.uuid4().hex[:8]}"


def build_record(
    *,
    run_id: str,
    target: Target,
    results: TargetResults | None,
    server: dict[str, Any],
    framework_version: str | None,
    model_path: str | None,
    machine: dict[str, Any],
    project: dict[str, Any],
    profile: Profile,
    cost: dict[str, Any] | None = None,
    created: float | None = None,
    run_group: str | None = None,
    shard: str | None = None,
) -> RunRecord:
    """One target's record from what the session kept about it (secrets left out).

    ``run_group`` joins the shards of one CI run (None: the session is its own group).
    """
    info = target_info(target)
    info["framework_version"] = framework_version
    info.update(model_identity(target, model_path))
    return RunRecord(
        run_id=run_id,
        target=target.name,
        created=created if created is not None else time.time(),
        target_info=info,
        machine=machine,
        project=project,
        profile={
            "name": profile.name,
            "hash": profile_hash(profile),
            "run_group": run_group or run_id,
            "shard": shard,
        },
        server={k: server.get(k) for k in ("ready_s", "model_seconds", "log_path", "error")},
        figures=dict(results.figures) if results else {},
        checks=tuple(results.checks) if results else (),
        cost=dict(cost or {}),
    )


def target_info(target: Target) -> dict[str, Any]:
    """The target's identity with secrets removed; ``config_hash`` tells configurations apart."""
    info: dict[str, Any] = {
        "framework": target.framework,
        "model": redact_url(target.model),
        "precision": target.precision,
        "method": target.method,
        "precision_label": target.precision_label,
        "kv_cache_dtype": target.kv_cache_dtype,
        "tp": target.tp,
        "pp": target.pp,
        "device": target.device,
        "launcher": target.launcher,
        # where an external server answers (credentials cut); None when launched here
        "url": redact_url(url) if (url := getattr(target.launch, "url", None)) else None,
        "max_model_len": target.max_model_len,
        "args": redact_argv(target.args),
        "env_names": sorted(k for k, _ in target.env),
        # the variable's name only; the key is read at run time and never kept
        "api_key_env": getattr(target, "api_key_env", None),
    }
    info["config_hash"] = _sha(json.dumps(info, sort_keys=True))[:16]
    return info


def model_identity(target: Target, model_path: str | None) -> dict[str, Any]:
    """A hash that changes when the served weights change, and how it was computed.

    Embedded variants already live under a content hash of everything that shaped
    them (the build marker's key). For a local checkpoint, hashing gigabytes at
    every session end is too slow, so the hash covers the config files' bytes and
    the weight files' names and sizes: a re-quantized or re-exported checkpoint
    changes it; an in-place edit of weights keeping every size does not.
    ``model_path`` is the served checkpoint as this machine sees it (None: the
    server's model is not here, e.g. served elsewhere, or it was never resolved).
    """
    path = Path(model_path) if model_path else None
    if path is None or not path.exists():
        return {"model_hash": None, "model_hash_method": "not visible from here"}
    # A GGUF variant is served as the one file inside its build folder.
    marker = (path if path.is_dir() else path.parent) / "llmserve-build.json"
    if marker.is_file():
        try:
            key = json.loads(marker.read_text(encoding="utf-8"))["key"]
            return {"model_hash": str(key)[:32], "model_hash_method": "embedded build key"}
        except (OSError, ValueError, KeyError, TypeError):
            pass
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for p in files:
        rel = p.name if path.is_file() else str(p.relative_to(path))
        if p.name in _MODEL_CONFIGS:
            h.update(rel.encode() + b"\0" + p.read_bytes())
        elif p.suffix in _WEIGHT_SUFFIXES:
            h.update(f"{rel}\0{p.stat().st_size}".encode())
    return {
        "model_hash": h.hexdigest()[:32],
        "model_hash_method": "config bytes + weight names/sizes",
    }


def profile_hash(profile: Profile) -> str:
    """Hash of the profile's (secret-free) targets: two runs of one profile match."""
    parts = [{**target_info(t), "name": t.name, "checks": t.checks} for t in profile.targets]
    return _sha(json.dumps(parts, sort_keys=True, default=str))[:16]


def git_state(root: Path) -> dict[str, Any]:
    """The project's commit and whether tracked files differ from it (None outside git)."""

    def git(*argv: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(root), *argv], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def figure_to_dict(f: Figure) -> dict[str, Any]:
    d = asdict(f)
    d["interval"] = list(f.interval) if f.interval is not None else None
    return d


def figure_from_dict(d: Any) -> Figure:
    interval = d.get("interval")
    return Figure(
        metric=str(d["metric"]),
        value=None if d.get("value") is None else float(d["value"]),
        unit=str(d.get("unit", "")),
        n=d.get("n"),
        interval=(float(interval[0]), float(interval[1])) if interval else None,
        better=d.get("better"),
        definition=str(d.get("definition", "")),
        note=d.get("note"),
    )


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
