"""``python -m pytest_llmserve.models``: build the embedded variants ahead of a test run.

CI can warm the cache in a separate step (and cache the directory), so that the
first test that needs a quantized model does not spend minutes building it.
"""

from __future__ import annotations

import argparse
import sys

from pytest_llmserve.errors import LLMServeError
from pytest_llmserve.models import catalog, embedded


def _say(line: str) -> None:
    print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_llmserve.models")
    sub = parser.add_subparsers(dest="command", required=True)
    keys = [v.key for v in catalog.VARIANTS]
    build = sub.add_parser("build", help="build variants (default: all) unless already built")
    build.add_argument("--variant", action="append", choices=keys, help="repeatable")
    path = sub.add_parser("path", help="print a built variant's directory; exit 1 if not built")
    path.add_argument("--variant", required=True, choices=keys)
    for p in (build, path):
        p.add_argument("--model", default="smollm2", choices=sorted(catalog.MODELS))
        p.add_argument("--cache-dir", help="default: $LLMSERVE_CACHE_DIR or ~/.cache/...")
        p.add_argument("--builder-python", help="default: $LLMSERVE_BUILDER_PYTHON or a venv")
    args = parser.parse_args(argv)

    try:
        if args.command == "path":
            variant = catalog.variant(args.variant, args.model)
            found = embedded.variant_path_if_built(variant, args.cache_dir, args.builder_python)
            if found is None:
                print(f"{args.model} {args.variant}: not built", file=sys.stderr)
                return 1
            print(found)
            return 0
        wanted = args.variant or [v.key for v in catalog.VARIANTS if v.model == args.model]
        results = []
        for key in wanted:
            variant = catalog.variant(key, args.model)
            target = embedded.ensure_variant(variant, args.cache_dir, _say, args.builder_python)
            results.append((key, target, embedded.build_info(target)["build_seconds"]))
    except LLMServeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print()
    for key, target, seconds in results:
        print(f"{key:<12} {seconds:>8.1f}s  {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
