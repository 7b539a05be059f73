"""Fig. 4: the normal and reduction cells of the paper's genotype and of the searched one.

The paper's own cells (:data:`sd_darts.genotypes.SD_DARTS`, as read from its Fig. 4) are drawn
in every profile, labelled as the paper's; the genotype this pipeline selected is drawn below
them (or "not run").  Cells are drawn with matplotlib: the nodes at fixed places, then each
edge's operation label at the first place along its edge where it overlaps no label and no node
already drawn (checked on the renderer's text extents), so no label hides another.
"""

from __future__ import annotations

import math
from typing import Any

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from matplotlib.transforms import Bbox

from ..genotypes import SD_DARTS, genotype_to_dict
from .figures import figure, not_run_axes, png_bytes, style
from .fmt import NOT_RUN

#: Where along its edge a label may sit (Bézier parameter), tried in this order, and the
#: sideways shifts (points) tried at each when none fits on the edge itself.
_ALONG = (0.5, 0.4, 0.6, 0.32, 0.68, 0.25, 0.75, 0.45, 0.55, 0.2, 0.8)
_ASIDE = (0.0, 7.0, -7.0, 14.0, -14.0, 21.0, -21.0)
#: Room kept around each label (pixels at the figure's dpi).
_PAD = 2.0

PAPER_TITLE = "The paper's cells (SD_DARTS)"


def _bezier(p1, c, p2, t):
    """Point at parameter ``t`` of the quadratic Bézier curve that ``arc3`` draws."""
    (x1, y1), (cx, cy), (x2, y2) = p1, c, p2
    return (
        (1 - t) ** 2 * x1 + 2 * (1 - t) * t * cx + t**2 * x2,
        (1 - t) ** 2 * y1 + 2 * (1 - t) * t * cy + t**2 * y2,
    )


def _overlaps(box: Bbox, taken: list[Bbox]) -> float:
    """Total area of ``box`` covered by the boxes in ``taken``."""
    area = 0.0
    for other in taken:
        w = min(box.x1, other.x1) - max(box.x0, other.x0)
        h = min(box.y1, other.y1) - max(box.y0, other.y0)
        if w > 0 and h > 0:
            area += w * h
    return area


def _draw_cell(ax, edges: list[list[Any]], concat: list[int], title: str) -> None:
    """Draw one DARTS cell as DARTS's own plots do: inputs c_{k-2}, c_{k-1} on the left, the
    intermediate nodes in a column, the output c_{k} (concatenation) on the right."""
    steps = len(edges) // 2
    top = 1.6 * (steps - 1)
    pos: dict[int, tuple[float, float]] = {0: (0.0, top * 0.8), 1: (0.0, top * 0.2)}
    for i in range(steps):
        pos[i + 2] = (4.2, top - 1.6 * i)
    out_pos = (7.8, top / 2)
    names = {0: "c_{k-2}", 1: "c_{k-1}"}
    names.update({i + 2: str(i) for i in range(steps)})
    ax.set_xlim(-1.0, out_pos[0] + 1.0)
    ax.set_ylim(-0.9, top + 0.9)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title)
    ax.apply_aspect()  # the final data-to-pixel transform, before labels are placed by their extents

    renderer = ax.figure.canvas.get_renderer()
    taken: list[Bbox] = []

    def node(xy, text, color):
        w, h = (1.3, 0.6) if text.startswith("c_") else (0.6, 0.6)
        box = FancyBboxPatch(
            (xy[0] - w / 2, xy[1] - h / 2), w, h, boxstyle="round,pad=0.04", fc=color, ec="black", lw=0.8, zorder=3
        )
        ax.add_patch(box)
        label = f"${text}$" if text.startswith("c_") else text
        ax.text(xy[0], xy[1], label, ha="center", va="center", fontsize=9, zorder=4)
        taken.append(box.get_window_extent(renderer).padded(_PAD))

    for n, xy in pos.items():
        node(xy, names[n], "#b7e4c7" if n < 2 else "#a9d6f5")
    node(out_pos, "c_{k}", "#ffe8a3")
    for n in concat:
        ax.add_patch(
            FancyArrowPatch(
                pos[int(n)],
                out_pos,
                arrowstyle="-|>",
                mutation_scale=9,
                lw=0.6,
                shrinkA=11,
                shrinkB=22,
                color="0.65",
                zorder=1,
            )
        )
    for k, (op, src) in enumerate(edges):
        src, dst = int(src), k // 2 + 2
        (x1, y1), (x2, y2) = pos[src], pos[dst]
        rad = 0.0 if src in (0, 1) else -0.55 - 0.1 * (dst - src)  # inputs straight; node-to-node arcs
        ax.add_patch(
            FancyArrowPatch(
                (x1, y1),
                (x2, y2),
                arrowstyle="-|>",
                mutation_scale=10,
                lw=0.9,
                connectionstyle=f"arc3,rad={rad}",
                shrinkA=12,
                shrinkB=12,
                color="0.2",
                zorder=2,
            )
        )
        control = ((x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1))
        label = ax.text(0, 0, str(op), ha="center", va="center", fontsize=6.5, zorder=5)
        _place(ax, label, renderer, taken, (x1, y1), control, (x2, y2))


def _place(ax, label, renderer, taken: list[Bbox], p1, control, p2) -> None:
    """Put ``label`` at the first candidate place of its edge that overlaps nothing in ``taken``
    (else at the least covered one), and add its extent to ``taken``."""
    to_px = ax.transData
    best = None
    for dx in _ASIDE:
        for t in _ALONG:
            x, y = _bezier(p1, control, p2, t)
            # shift sideways: perpendicular to the edge's chord, in pixels
            (px, py), (qx, qy) = to_px.transform([p1, p2])
            length = max(math.hypot(qx - px, qy - py), 1e-9)
            shift = dx * ax.figure.dpi / 72.0
            sx, sy = to_px.transform((x, y))
            sx, sy = sx - shift * (qy - py) / length, sy + shift * (qx - px) / length
            label.set_position(tuple(to_px.inverted().transform((sx, sy))))
            box = label.get_window_extent(renderer).padded(_PAD)
            cover = _overlaps(box, taken)
            if best is None or cover < best[0]:
                best = (cover, label.get_position(), box)
            if cover == 0:
                break
        if best[0] == 0:
            break
    label.set_position(best[1])
    label.set_bbox(dict(boxstyle="round,pad=0.12", fc="white", ec="0.8", lw=0.4))
    taken.append(best[2])


def fig4_figure(selected: dict[str, Any] | None, selected_title: str, reason: str) -> Figure:
    """The figure: the paper's cells on top, ``selected`` (a DARTS genotype dict, or None:
    ``reason`` is drawn instead) below."""
    fig = figure(11.0, 8.8)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.9, bottom=0.01, wspace=0.04, hspace=0.22)
    paper = genotype_to_dict(SD_DARTS)
    ax1, ax2 = fig.add_subplot(2, 2, 1), fig.add_subplot(2, 2, 2)
    _draw_cell(ax1, paper["normal"], paper["normal_concat"], f"{PAPER_TITLE}: (a) normal cell")
    _draw_cell(ax2, paper["reduce"], paper["reduce_concat"], f"{PAPER_TITLE}: (b) reduction cell")
    if selected is None:
        not_run_axes(fig.add_subplot(2, 1, 2), f"{selected_title}: {reason}")
    else:
        ax3, ax4 = fig.add_subplot(2, 2, 3), fig.add_subplot(2, 2, 4)
        _draw_cell(ax3, selected["normal"], selected["normal_concat"], f"{selected_title}: (c) normal cell")
        _draw_cell(ax4, selected["reduce"], selected["reduce_concat"], f"{selected_title}: (d) reduction cell")
    return fig


def fig4_cells(genotype: dict[str, Any] | None, source: str, stamped: dict[str, str]) -> tuple[str, bytes]:
    """Fig. 4 as (status, PNG bytes): the paper's cells and those of ``genotype`` (the selected
    genotype dict, ``source``: where it comes from; ``stamped``: profile and dataset)."""
    with style():
        darts = genotype is not None and genotype.get("space") == "darts"
        searched = f"Searched on {stamped['Dataset']} ({stamped['Profile']} profile)"
        reason = f"{NOT_RUN} (no DARTS-space genotype selected)"
        fig = fig4_figure(genotype if darts else None, searched, reason)
        title = "Fig. 4: normal and reduction cells"
        fig.suptitle(f"{title}: the paper's (top), {source} (bottom)", fontsize=10)
        status = "the paper's SD_DARTS cells; searched cells: " + (source if darts else reason)
        data = png_bytes(fig, title, stamped)
    return status, data


def baseline_cells(genotype: dict[str, Any], source: str, stamped: dict[str, str]) -> tuple[str, bytes]:
    """The DARTS baseline's cells as (status, PNG bytes): the genotype the pipeline trains as
    DARTS's (``source``: the search it comes from)."""
    with style():
        fig = figure(11.0, 4.6)
        fig.subplots_adjust(left=0.01, right=0.99, top=0.84, bottom=0.01, wspace=0.04)
        searched = f"DARTS, searched on {stamped['Dataset']} ({stamped['Profile']} profile)"
        ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
        _draw_cell(ax1, genotype["normal"], genotype["normal_concat"], f"{searched}: normal cell")
        _draw_cell(ax2, genotype["reduce"], genotype["reduce_concat"], f"{searched}: reduction cell")
        title = "Cells of the DARTS baseline"
        fig.suptitle(f"{title}: {source}", fontsize=10)
        data = png_bytes(fig, title, stamped)
    return f"the DARTS baseline's cells: {source}", data
