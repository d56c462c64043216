"""``llmserve``: look at and curate the run history outside a pytest session.

    llmserve history list [--target NAME]
    llmserve history show RUN [--target NAME]
    llmserve history compare A B [--fail-on RULE ...]
    llmserve history compare --group ID [--against last:N|baseline:NAME] [--fail-on RULE ...]
    llmserve history accept RUN --as NAME
    llmserve report [--out report.html] [--run RUN | --group ID]

RUN is a run id, a unique prefix of one, ``last``, or a baseline name. The store
is ``--history`` (same forms as ``--llmserve-history``; default
``.llmserve/history``). ``compare`` exits 1 when a rule finds a regression, so it
can gate a pipeline on its own; with ``--group`` it judges every target of a run
group (the shards of one CI run) against its history from before the group, and
exits 1 too when a shard of the group wrote nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_llmserve.errors import ProfileError
from pytest_llmserve.history.compare import compare, parse_compare, parse_rule, table
from pytest_llmserve.history.group import judge_group
from pytest_llmserve.history.record import RunRecord
from pytest_llmserve.history.store import HistoryStore, open_store, resolve_run


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        store = open_store(args.history, Path.cwd())
        if store is None:
            raise ProfileError("--history none: there is no history to read")
        code = int(args.func(store, args))
    except (ProfileError, KeyError, ValueError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"llmserve: {message}", file=sys.stderr)
        return 2
    for warning in store.warnings:
        print(f"llmserve: WARNING: {warning}", file=sys.stderr)
    return code


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llmserve", description=__doc__.split("\n")[0])
    p.add_argument(
        "--history",
        default=".llmserve/history",
        help="store URI (a folder, sqlite:///FILE, postgresql://USER@HOST/DB?password_env=VAR)",
    )
    sub = p.add_subparsers(dest="command", required=True)
    hist = sub.add_parser("history", help="list, show, compare and accept runs")
    hs = hist.add_subparsers(dest="action", required=True)
    ls = hs.add_parser("list", help="one line per run")
    ls.add_argument("--target")
    ls.set_defaults(func=_list)
    show = hs.add_parser("show", help="a run's records as JSON")
    show.add_argument("run")
    show.add_argument("--target")
    show.set_defaults(func=_show)
    cmp_ = hs.add_parser(
        "compare",
        help="compare run B with run A, or a run group with its history (exit 1 on a regression)",
    )
    cmp_.add_argument("a", nargs="?")
    cmp_.add_argument("b", nargs="?")
    cmp_.add_argument("--group", help="judge every target of this run group (the shards)")
    cmp_.add_argument("--against", default="last", help="with --group: last, last:N, baseline:NAME")
    cmp_.add_argument("--fail-on", action="append", default=[], metavar="RULE")
    cmp_.set_defaults(func=_compare)
    acc = hs.add_parser(
        "accept", help="name a run as a baseline (--llmserve-compare baseline:NAME)"
    )
    acc.add_argument("run")
    acc.add_argument("--as", dest="name", required=True)
    acc.set_defaults(func=_accept)
    rep = sub.add_parser("report", help="render the HTML report from stored runs")
    rep.add_argument("--out", default="llmserve-report.html")
    rep.add_argument("--run", help="the run to feature (default: the latest)")
    rep.add_argument("--group", help="feature every shard's targets of this run group")
    rep.set_defaults(func=_report)
    return p


def _runs(store: HistoryStore, run: str, target: str | None = None) -> list[RunRecord]:
    records = store.records(target)
    if run == "last":
        if not records:
            raise KeyError(f"no runs in {store.location}")
        run = records[-1].run_id
    run_id = resolve_run(store, run)
    return [r for r in records if r.run_id == run_id]


def _list(store: HistoryStore, args: argparse.Namespace) -> int:
    records = store.records(args.target)
    by_run: dict[str, list[RunRecord]] = {}
    for r in records:
        by_run.setdefault(r.run_id, []).append(r)
    names = {run: name for name, run in store.baselines().items()}
    print(f"{len(by_run)} run(s) in {store.location}")
    for run_id, recs in by_run.items():
        commit = (recs[0].project.get("commit") or "-")[:10]
        checks = [c.outcome for r in recs for c in r.checks]
        tag = f"  [baseline {names[run_id]}]" if run_id in names else ""
        group = recs[0].run_group
        shard = recs[0].profile.get("shard")
        where = f"  group {group}" + (f" shard {shard}" if shard else "") if group != run_id else ""
        print(
            f"{run_id}  {recs[0].when}  {commit}  targets: {', '.join(r.target for r in recs)}"
            f"  checks: {checks.count('pass')}/{len(checks)} passed{where}{tag}"
        )
    return 0


def _show(store: HistoryStore, args: argparse.Namespace) -> int:
    records = _runs(store, args.run, args.target)
    print(json.dumps([r.to_dict() for r in records], indent=1, sort_keys=True))
    return 0


def _compare(store: HistoryStore, args: argparse.Namespace) -> int:
    if args.group:
        if args.a or args.b:
            raise ValueError("history compare: give runs A and B, or --group, not both")
        return _compare_group(store, args)
    if not (args.a and args.b):
        raise ValueError("history compare: give runs A and B (or --group ID)")
    old = {r.target: r for r in _runs(store, args.a)}
    new = _runs(store, args.b)
    rules = tuple(parse_rule(t) for t in args.fail_on)
    comparisons = [
        compare(r, [old[r.target]], rules, old[r.target].run_id) for r in new if r.target in old
    ]
    if not comparisons:
        print("the two runs share no target")
        return 0
    for line in table(comparisons):
        print(line)
    for c in comparisons:
        for w in c.warnings:
            print(f"WARNING: {w}")
    regressions = sum(len(c.regressions) for c in comparisons)
    print(f"{regressions} regression(s)")
    return 1 if regressions else 0


def _compare_group(store: HistoryStore, args: argparse.Namespace) -> int:
    rules = tuple(parse_rule(t) for t in args.fail_on)
    verdict = judge_group(store, args.group, parse_compare(args.against), rules)
    if not verdict.records:
        raise KeyError(f"no records of run group {args.group!r} in {store.location}")
    shards = sorted({str(r.profile.get("shard") or "-") for r in verdict.records})
    print(f"run group {args.group}: {len(verdict.records)} target(s) from shard(s) "
          f"{', '.join(shards)}, each against its history ({args.against})")  # fmt: skip
    for line in table(verdict.comparisons):
        print(line)
    for w in verdict.warnings:
        print(f"WARNING: {w}")
    for k in verdict.missing_shards:
        print(f"INCOMPLETE: shard {k} wrote no record (its job failed or never ran)")
    print(f"{verdict.regressions} regression(s)")
    return 0 if verdict.passed else 1


def _accept(store: HistoryStore, args: argparse.Namespace) -> int:
    run_id = resolve_run(store, args.run) if args.run != "last" else _runs(store, "last")[0].run_id
    count = store.accept(run_id, args.name)
    print(f"baseline {args.name} = {run_id} ({count} target record(s))")
    return 0


def _report(store: HistoryStore, args: argparse.Namespace) -> int:
    from pytest_llmserve.report.html import render

    history = store.records()
    if args.group and args.run:
        raise ValueError("report: give --run or --group, not both")
    if args.group:
        current = store.records_in_group(args.group)
        if not current:
            raise KeyError(f"no records of run group {args.group!r} in {store.location}")
    else:
        current = _runs(store, args.run) if args.run else []
    out = Path(args.out)
    out.write_text(render(current, history), encoding="utf-8")
    print(f"report: {out.resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
