# What the GPU scripts share (sourced, from the repository root): the wheels that travel
# in .whl/ installed into one folder on the GPU machine, and the figures of a suites run
# printed from its run records.
SITE=/tmp/site

install_wheels() {
  [ -d "$SITE/gguf" ] && [ -d "$SITE/fastapi" ] && return 0
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" .whl/*.whl
}

# print_figures TARGET_PREFIX FIGURE_PREFIX...: each run record's figures whose names
# start with one of the prefixes, one line each.
print_figures() {
  python3 - "$@" <<'PY'
import glob, json, sys
target, prefixes = sys.argv[1], tuple(sys.argv[2:])
for path in sorted(glob.glob(f".llmserve/history/runs/{target}*/*.json")):
    record = json.load(open(path))
    for key, figure in record["figures"].items():
        if key.startswith(prefixes):
            print(record["target"], key, figure.get("value"), figure.get("unit"),
                  figure.get("note") or "")
PY
}
