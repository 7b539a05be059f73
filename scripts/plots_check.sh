#!/usr/bin/env bash
# The `dvc plots show` page renders offline in a real browser:
#   1. `dvc plots show` for the committed smoke profile (params-smoke.yaml, metrics/smoke/plots/)
#      in a temporary repository, or in the DVC repository given as $1 (its params.yaml's profile);
#   2. the page loads no script from the network (Vega, Vega-Lite, Vega-Embed are inlined from
#      scripts/plots/vendor/ by .dvc/config's plots.html_template);
#   3. headless Chromium without network (a network namespace of its own, else a dead proxy)
#      renders it; the check fails unless the Fig. 2 plot drew one line per search run and every
#      other plot drew lines.
# Chromium: Debian's `chromium`, installed with apt-get when missing; when it cannot be installed
# the check is skipped with a message (exit 0), or fails with SD_DARTS_REQUIRE_BROWSER=1.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
if [ -x "$REPO/.venv/bin/python" ]; then
    export PATH="$REPO/.venv/bin:$PATH"
fi
start=$SECONDS
say() { printf '== plots check: %s\n' "$*" >&2; }
fail() { echo "plots check FAILED: $*" >&2; exit 1; }
skip() {
    [ "${SD_DARTS_REQUIRE_BROWSER:-0}" = 1 ] && fail "$* (SD_DARTS_REQUIRE_BROWSER=1)"
    echo "plots check SKIPPED: $*" >&2
    exit 0
}
find_browser() { command -v chromium || command -v chromium-browser; }

if ! BROWSER=$(find_browser); then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        say "installing Debian's chromium (apt-get install -y chromium)"
        apt-get install -y -q chromium >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } || true
    fi
    BROWSER=$(find_browser) || skip "no chromium, and 'apt-get install -y chromium' (as root) could not install it"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sd-darts-plots.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
if [ $# -ge 1 ]; then
    [ -f "$1/dvc.yaml" ] || fail "$1 is not a DVC repository with a dvc.yaml; give the folder of a checkout (or no argument)"
    SITE=$(cd "$1" && pwd)
else
    SITE="$WORK/repo"
    mkdir -p "$SITE/.dvc" "$SITE/metrics/smoke" "$SITE/scripts/plots"
    cp "$REPO/dvc.yaml" "$SITE/"
    cp "$REPO/params-smoke.yaml" "$SITE/params.yaml"
    cp -r "$REPO/.dvc/config" "$REPO/.dvc/plots" "$SITE/.dvc/"
    cp -r "$REPO/metrics/smoke/plots" "$SITE/metrics/smoke/"
    cp "$REPO/scripts/plots/page.html" "$SITE/scripts/plots/"
    git -C "$SITE" init -q
fi

say "dvc plots show in $SITE"
(cd "$SITE" && dvc plots show -o "$WORK/page" >"$WORK/dvc.log" 2>&1) || fail "dvc plots show failed: $(cat "$WORK/dvc.log")"
! grep -q "failed to load" "$WORK/dvc.log" || fail "dvc plots show failed to load some plots: $(cat "$WORK/dvc.log")"
PAGE="$WORK/page/index.html"
test -s "$PAGE" || fail "dvc plots show wrote no $PAGE"
! grep -qi '<script[^>]*src=' "$PAGE" || fail "the page loads scripts from elsewhere: $(grep -oi '<script[^>]*src=[^>]*>' "$PAGE" | head -3)"

say "rendering in headless $("$BROWSER" --version 2>/dev/null | head -1) without network"
offline=(env)
if unshare -rn true 2>/dev/null; then
    offline=(unshare -rn)
fi
"${offline[@]}" timeout 120 "$BROWSER" --headless --no-sandbox --disable-gpu --no-first-run \
    --proxy-server=127.0.0.1:9 --proxy-bypass-list='<-loopback>' --user-data-dir="$WORK/profile" \
    --virtual-time-budget=10000 --dump-dom "file://$PAGE" >"$WORK/dom.html" 2>"$WORK/browser.log" \
    || fail "chromium could not render the page: $(tail -3 "$WORK/browser.log")"

python - "$WORK/dom.html" "$SITE" <<'PY' || fail "the page did not render the plots (see above)"
"""Count the line marks Vega drew (SVG paths, aria-roledescription="line mark") in each plot's div."""
import csv
import sys
from html.parser import HTMLParser
from pathlib import Path

import yaml


class Marks(HTMLParser):
    def __init__(self, ids):
        super().__init__()
        self.ids, self.current, self.lines = ids, None, {i: 0 for i in ids}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "div" and a.get("id") in self.ids:
            self.current = a["id"]  # the plot divs follow one another: marks belong to the last one opened
        elif tag == "path" and self.current and a.get("aria-roledescription") == "line mark" and a.get("d"):
            self.lines[self.current] += 1


dom, site = Path(sys.argv[1]).read_text(), Path(sys.argv[2])
params = yaml.safe_load((site / "params.yaml").read_text())
plots = [next(iter(p)) for p in yaml.safe_load((site / "dvc.yaml").read_text())["plots"]]
marks = Marks(plots)
marks.feed(dom)
search = site / "metrics" / params["profile"] / "plots" / "search.tsv"
runs = {row["run"] for row in csv.DictReader(search.open(), delimiter="\t")}
for plot in plots:
    print(f"  {plot}: {marks.lines[plot]} lines", file=sys.stderr)
fig2 = marks.lines["fig2_hessian_eigenvalue"]
assert fig2 == len(runs), f"Fig. 2 drew {fig2} lines, expected one per search run ({len(runs)}: {sorted(runs)})"
empty = [p for p in plots if not marks.lines[p]]
assert not empty, f"plots without lines: {empty}"
PY
echo "plots check passed: the page rendered every plot offline ($((SECONDS - start)) s)"
