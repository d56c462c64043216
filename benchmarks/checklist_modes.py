"""The embedded default's whole checklist with fixed sizes and with sequential verdicts,
on the same servers, in one run: the same verdicts, and the wall times side by side.

For the targets of one framework (and the accuracy baseline they are judged
against), it starts each server once, as the plugin does (``ServerPool``), then runs
``pytest suites`` twice against those servers through the external launcher: once
with ``--llmserve-verdicts=fixed`` (every load run and accuracy measurement at the
profile's full size) and once with ``sequential`` (the default: looks before the
end, stopping once every bound is decided). ``--first`` says which session runs
first (fixed by default: run it both ways to see the order's effect), and each
sends load of its own workload seed, so neither finds the other's prompts in a
prompt cache; vLLM's prefix cache is also turned off (``--no-enable-prefix-caching``)
because the accuracy windows are the same token ids in both sessions.

It prints each verdict of both sessions side by side with the samples it took, the
wall time of each session, the servers' start time, and the full checklist's time
as a user runs it (starts + session). Verdicts that read the server's own
processes or log (cold start, host memory, precision evidence) are "not measurable"
through the external launcher, alike in both sessions; the starts are timed here.
A pass in one session and a fail in the other fails the benchmark (exit 1); a
verdict may differ only towards inconclusive.

From the repository root, in the environment ``tox -e tests`` makes:

    .tox/embedded/bin/python -m benchmarks.checklist_modes --framework vllm
    .tox/embedded/bin/python -m benchmarks.checklist_modes --framework llamacpp -- -k smoke
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_llmserve.frameworks import registry as frameworks
from pytest_llmserve.launch.pool import ServerPool
from pytest_llmserve.models.embedded import ensure_variant
from pytest_llmserve.profile.default import embedded_spec
from pytest_llmserve.profile.load import parse_profile
from tests.live.targets import toml_value

SUITES = Path(__file__).resolve().parents[1] / "suites"
MODES = ("fixed", "sequential")
_VERDICT = re.compile(r"^(PASS|FAIL|INCONCLUSIVE|XFAIL|NOT MEASURABLE)\s+(\S+): (.*)$")
_SAMPLES = re.compile(r"look (\d+) of (\d+): (\d+) of (\d+) (\w+)|\(n=(\d+)\)")


@dataclass
class Session:
    mode: str
    wall_s: float
    exit_code: int
    verdicts: dict[tuple[str, int], tuple[str, str]]  # (test id, nth) -> (outcome, samples)


def _profile_toml(spec: dict[str, Any]) -> str:
    lines = [f"name = {toml_value(spec['name'])}", "", "[defaults]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in spec["defaults"].items()]
    for target in spec["targets"]:
        lines += ["", "[[targets]]", *(f"{k} = {toml_value(v)}" for k, v in target.items())]
    return "\n".join(lines) + "\n"


def _selected(spec: dict[str, Any], framework: str) -> dict[str, Any]:
    """``spec`` cut to ``framework``'s targets that can run here, and their baseline."""
    profile = parse_profile(spec, source="embedded default", base_dir=Path.cwd())
    baseline = spec["defaults"]["checks"]["accuracy"]["baseline"]
    keep = []
    for raw, target in zip(spec["targets"], profile.targets, strict=True):
        why = frameworks.get(target.framework).unsupported_here(target)
        if why is not None:
            print(f"{target.name}: left out: {why}")
        elif target.framework == framework or target.name == baseline:
            keep.append(dict(raw))
    for raw in keep:
        if raw["framework"] == "vllm":
            raw["args"] = [*raw.get("args", []), "--no-enable-prefix-caching"]
    return {**spec, "targets": keep}


def _external(spec: dict[str, Any], urls: dict[str, str], seed: int) -> dict[str, Any]:
    defaults = dict(spec["defaults"])
    checks = dict(defaults["checks"])
    checks["workload"] = {**checks["workload"], "seed": seed}
    defaults["checks"] = checks
    targets = [{**t, "launcher": "external", "url": urls[t["name"]]} for t in spec["targets"]]
    return {**spec, "defaults": defaults, "targets": targets}


def _verdicts(output: str) -> dict[tuple[str, int], tuple[str, str]]:
    section = output.split("llmserve checks", 1)[-1].split("\n=", 1)[0]
    out: dict[tuple[str, int], tuple[str, str]] = {}
    for line in section.splitlines():
        m = _VERDICT.match(line)
        if m is None:
            continue
        outcome, test, reason = m.groups()
        nth = sum(1 for key in out if key[0] == test)
        s = _SAMPLES.search(reason)
        if s is None:
            samples = "-"
        elif s.group(6):
            samples = f"n={s.group(6)}"
        else:
            samples = f"{s.group(3)}/{s.group(4)} {s.group(5)}"
        out[(test, nth)] = (outcome, samples)
    return out


def _run(mode: str, profile: Path, markers: str, work: Path, extra: list[str]) -> Session:
    cmd = [
        sys.executable, "-m", "pytest", str(SUITES), "-m", markers, "-p", "no:randomly",
        "-p", "no:cacheprovider", "-q", f"--llmserve-profile={profile}",
        f"--llmserve-verdicts={mode}", f"--llmserve-history={work / f'history-{mode}'}",
        f"--llmserve-log-dir={work / f'logs-{mode}'}", "--llmserve-report=none", *extra,
    ]  # fmt: skip
    print(f"\n== {mode}: {' '.join(cmd[1:])}", flush=True)
    began = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.monotonic() - began
    (work / f"{mode}.out").write_text(done.stdout + done.stderr)
    print(f"   {mode}: exit {done.returncode} in {wall:.0f} s ({work / f'{mode}.out'})")
    return Session(mode, wall, done.returncode, _verdicts(done.stdout))


def _table(a: Session, b: Session) -> tuple[list[str], list[str]]:
    lines = [f"{'verdict':<64} {a.mode:<26} {b.mode:<26}"]
    clashes = []
    for key in sorted(a.verdicts.keys() | b.verdicts.keys()):
        va, vb = a.verdicts.get(key, ("-", "")), b.verdicts.get(key, ("-", ""))
        name = key[0] + (f" #{key[1] + 1}" if key[1] else "")
        mark = "" if va[0] == vb[0] else "  <- differs"
        if {va[0], vb[0]} == {"PASS", "FAIL"}:
            clashes.append(name)
            mark = "  <- PASS/FAIL CLASH"
        lines.append(f"{name:<64} {va[0] + ' ' + va[1]:<26} {vb[0] + ' ' + vb[1]:<26}{mark}")
    return lines, clashes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", default="vllm", help="whose targets: vllm, llamacpp")
    parser.add_argument("--first", choices=MODES, default="fixed", help="the session run first")
    parser.add_argument("--work", type=Path, default=None, help="where outputs go (a temp dir)")
    parser.add_argument("pytest_args", nargs="*", help="after --: more pytest arguments (-k ...)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="checklist-modes-"))
    work.mkdir(parents=True, exist_ok=True)

    spec = _selected(embedded_spec(), args.framework)
    profile = parse_profile(spec, source="embedded default", base_dir=Path.cwd())
    pool = ServerPool(work / "servers", lambda v: ensure_variant(v, progress=print))
    starts: dict[str, float] = {}
    try:
        for target in profile.targets:
            began = time.monotonic()
            server = pool.get(target)
            starts[target.name] = time.monotonic() - began
            print(f"{target.name}: ready in {starts[target.name]:.1f} s at {server.base_url}")
        urls = {t.name: pool.get(t).base_url for t in profile.targets}
        markers = " or ".join(sorted({t.framework for t in profile.targets}))
        order = MODES if args.first == "fixed" else MODES[::-1]
        sessions = {}
        for seed, mode in enumerate(order, start=1):
            path = work / f"{mode}.toml"
            path.write_text(_profile_toml(_external(spec, urls, seed)))
            sessions[mode] = _run(mode, path, markers, work, args.pytest_args)
    finally:
        pool.stop_all()

    fixed, seq = sessions["fixed"], sessions["sequential"]
    lines, clashes = _table(fixed, seq)
    start_s = sum(starts.values())
    print("\n" + "\n".join(lines))
    print(
        f"\nservers started once, in {start_s:.0f} s "
        f"({', '.join(f'{k} {v:.0f} s' for k, v in starts.items())}); order: {', '.join(order)}"
    )
    for s in (fixed, seq):
        print(
            f"{s.mode:<10} session {s.wall_s:6.0f} s; with the starts {s.wall_s + start_s:6.0f} s "
            f"({(s.wall_s + start_s) / 60:.1f} min); exit {s.exit_code}"
        )
    print(f"sequential / fixed (sessions) = {seq.wall_s / fixed.wall_s:.2f}")
    if clashes:
        print(f"PASS in one mode and FAIL in the other: {clashes}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
