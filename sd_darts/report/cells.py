"""Fig. 4: the normal and reduction cells of a DARTS genotype."""

from __future__ import annotations

from typing import Any

from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from .figures import figure, not_run_axes, png_bytes, style
from .fmt import NOT_RUN


def _draw_cell(ax, edges: list[list[Any]], concat: list[int], title: str) -> None:
    """Draw one DARTS cell as DARTS's own plots do: inputs c_{k-2}, c_{k-1} on the left, the
    intermediate nodes in a column, the output c_{k} (concatenation) on the right."""
    steps = len(edges) // 2
    top = 1.5 * (steps - 1)
    pos: dict[int, tuple[float, float]] = {0: (0.0, top * 0.8), 1: (0.0, top * 0.2)}
    for i in range(steps):
        pos[i + 2] = (4.0, top - 1.5 * i)
    out_pos = (7.6, top / 2)
    names = {0: "c_{k-2}", 1: "c_{k-1}"}
    names.update({i + 2: str(i) for i in range(steps)})

    def node(xy, text, color):
        w, h = (1.3, 0.6) if text.startswith("c_") else (0.6, 0.6)
        ax.add_patch(
            FancyBboxPatch(
                (xy[0] - w / 2, xy[1] - h / 2), w, h, boxstyle="round,pad=0.04", fc=color, ec="black", lw=0.8, zorder=3
            )
        )
        label = f"${text}$" if text.startswith("c_") else text
        ax.text(xy[0], xy[1], label, ha="center", va="center", fontsize=9, zorder=4)

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
        if src in (0, 1):
            rad, t = 0.0, (0.68 if src == 0 else 0.4)  # straight; labels of the two inputs apart
        else:
            rad, t = -0.55 - 0.1 * (dst - src), 0.5  # node-to-node: arcs bowing to the right
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
        # Point at parameter t of the quadratic Bezier curve that arc3 draws.
        cx, cy = (x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1)
        mx = (1 - t) ** 2 * x1 + 2 * (1 - t) * t * cx + t**2 * x2
        my = (1 - t) ** 2 * y1 + 2 * (1 - t) * t * cy + t**2 * y2
        ax.text(
            mx,
            my,
            str(op),
            ha="center",
            va="center",
            fontsize=6.5,
            zorder=5,
            bbox=dict(boxstyle="round,pad=0.12", fc="white", ec="0.8", lw=0.4),
        )
    for n, xy in pos.items():
        node(xy, names[n], "#b7e4c7" if n < 2 else "#a9d6f5")
    node(out_pos, "c_{k}", "#ffe8a3")
    ax.set_xlim(-1.0, out_pos[0] + 1.0)
    ax.set_ylim(-0.8, top + 0.8)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title)


def fig4_cells(genotype: dict[str, Any] | None, source: str) -> tuple[str, bytes]:
    """Fig. 4: the normal and reduction cells of a DARTS genotype (drawn with matplotlib)."""
    with style():
        fig = figure(11.0, 4.6)
        if genotype is None or genotype.get("space") != "darts":
            ax = fig.add_subplot(1, 1, 1)
            status = f"{NOT_RUN} (no DARTS-space genotype selected)"
            not_run_axes(ax, status)
        else:
            ax1 = fig.add_subplot(1, 2, 1)
            ax2 = fig.add_subplot(1, 2, 2)
            _draw_cell(ax1, genotype["normal"], genotype["normal_concat"], "(a) Normal cell")
            _draw_cell(ax2, genotype["reduce"], genotype["reduce_concat"], "(b) Reduction cell")
            status = source
        fig.suptitle(f"Fig. 4: cells of {source}", fontsize=10)
        fig.tight_layout()
        data = png_bytes(fig)
    return status, data
