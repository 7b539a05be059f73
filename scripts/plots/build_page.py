"""Write ``scripts/plots/page.html``, the HTML template of ``dvc plots show`` (``.dvc/config``'s
``plots.html_template``): DVC's page with Vega, Vega-Lite and Vega-Embed inlined from
``scripts/plots/vendor/`` (versions and licences there), so that the page renders offline.

DVC fills ``{plot_divs}`` with one ``<div>`` per plot that calls ``vegaEmbed``; the page leaves
out DVC's ``{scripts}`` placeholder, which would add ``<script src=...>`` tags for a CDN.
Usage: ``python scripts/plots/build_page.py [--check]`` (``--check``: fail if the page differs).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENDOR = HERE / "vendor"
PAGE = HERE / "page.html"
#: Load order: Vega-Embed needs the globals of the other two.
BUNDLES = ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js")
#: Placeholders that DVC's dvc_render replaces anywhere in the page.
PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")

HEAD = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>sd-darts: DVC plots</title>
    <!-- Vega, Vega-Lite and Vega-Embed inlined from scripts/plots/vendor/ (BSD-3-Clause; versions,
         sources and licences in scripts/plots/vendor/README.md): the page needs no network. -->
"""
TAIL = """    <style>
        body { font-family: sans-serif; }
        table { border-spacing: 15px; }
    </style>
</head>
<body>
{plot_divs}
</body>
</html>
"""


def bundle(name: str) -> str:
    """A vendored bundle as inline script text (its source-map comment dropped: no map is shipped)."""
    text = (VENDOR / name).read_text(encoding="utf8")
    lines = [line for line in text.splitlines() if not line.startswith("//# sourceMappingURL=")]
    body = "\n".join(lines)
    for bad in ("</script", "<!--", *PLACEHOLDERS):
        if bad in body:
            raise SystemExit(
                f"error: {VENDOR / name} contains {bad!r}, which cannot be inlined in the page; vendor another build"
            )
    return f"    <script>/* {name} */\n{body}\n    </script>\n"


def page() -> str:
    return HEAD + "".join(bundle(name) for name in BUNDLES) + TAIL


def main(argv: list[str]) -> int:
    text = page()
    if argv == ["--check"]:
        if not PAGE.is_file() or PAGE.read_text(encoding="utf8") != text:
            print(
                f"error: {PAGE} is not what {VENDOR} gives; run 'python scripts/plots/build_page.py'", file=sys.stderr
            )
            return 1
        return 0
    if argv:
        print("usage: python scripts/plots/build_page.py [--check]", file=sys.stderr)
        return 2
    PAGE.write_text(text, encoding="utf8")
    print(f"wrote {PAGE} ({len(text)} characters)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
