"""Figures 2, 5, 6 and the search curves (matplotlib, Agg, deterministic bytes)."""

from __future__ import annotations

import io

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .fmt import NOT_RUN, mean_std
from .labels import stamp, stamp_text
from .read import AblationPoint, Metrics, Run


def figure(width: float, height: float) -> Figure:
    """A figure drawn by the Agg backend (no display, no global pyplot state)."""
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def style():
    """Fixed style for every figure."""
    # Ignore any user matplotlibrc: the same inputs give the same pixels everywhere.
    params = dict(matplotlib.rcParamsDefault)
    params.update(
        {
            "font.size": 9,
            "axes.titlesize": 10,
            "svg.hashsalt": "sd-darts",
            "path.simplify": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
        }
    )
    return matplotlib.rc_context(params)


def png_bytes(fig, title: str, stamped: dict[str, str]) -> bytes:
    """The figure as PNG bytes with ``title`` and the ``stamped`` profile and dataset as PNG text
    chunks, without the ``Software`` metadata (no version in the bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None, "Title": title, **stamped})
    return buf.getvalue()


def stamped_title(title: str, stamped: dict[str, str]) -> str:
    """A figure's title with the profile and dataset of what it shows on its second line."""
    return f"{title}\n{stamp_text(stamped)}"


def not_run_axes(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


METHOD_COLORS = {"darts": "tab:blue", "sd-darts": "tab:red"}
_LINESTYLES = ("-", "--", ":", "-.")


def _linestyle(seed: int | None) -> str:
    return _LINESTYLES[(seed or 0) % len(_LINESTYLES)]


def _integer_epochs(ax) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def fig2_hessian(metrics: Metrics) -> tuple[str, bytes]:
    """Fig. 2: dominant eigenvalue of the alpha Hessian per epoch, DARTS vs SD-DARTS."""
    with style():
        fig = figure(6.0, 3.6)
        ax = fig.add_subplot(1, 1, 1)
        plotted = 0
        for r in metrics.searches:
            c = r.curves
            if c is None or "hessian/eigenvalue" not in c.columns:
                continue
            d = c[["epoch", "hessian/eigenvalue"]].dropna()
            if d.empty:
                continue
            method = str(r.summary["method"])
            ax.plot(
                d["epoch"] + 1,
                d["hessian/eigenvalue"],
                marker="o",
                ms=3,
                lw=1.2,
                color=METHOD_COLORS.get(method),
                linestyle=_linestyle(r.seed),
                label=f"{method} (seed {r.seed})",
            )
            plotted += 1
        if plotted:
            _integer_epochs(ax)
            ax.set_xlabel("Epoch")
            ax.set_ylabel("Dominant eigenvalue of the Hessian (alphas)")
            ax.legend(fontsize=7)
            status = f"{plotted} search run(s)"
        else:
            status = NOT_RUN + " (no search run recorded hessian/eigenvalue; set search.hessian_every)"
            not_run_axes(ax, status)
        title = "Fig. 2: sharpness of the supernet, DARTS vs SD-DARTS"
        stamped = stamp(metrics, metrics.searches)
        ax.set_title(stamped_title(title, stamped))
        fig.tight_layout()
        data = png_bytes(fig, title, stamped)
    return status, data


def ablation_figure(
    points: list[AblationPoint], title: str, xlabel: str, paper_note: str, stamped: dict[str, str]
) -> tuple[str, bytes]:
    """Fig. 5 or 6: test accuracy per swept value (mean ± std over seeds; "one seed" when each
    value has one)."""
    with style():
        fig = figure(5.6, 3.6)
        ax = fig.add_subplot(1, 1, 1)
        done = [p for p in points if p.eval is not None]
        if done:
            by_value: dict[int, list[float]] = {}
            for p in done:
                by_value.setdefault(p.value, []).append(100.0 - p.eval.summary["test_error"])
            xs = sorted(by_value)
            stats = [mean_std(by_value[x]) for x in xs]
            ax.errorbar(
                xs,
                [s[0] for s in stats],
                yerr=[s[1] or 0.0 for s in stats],
                marker="o",
                capsize=3,
                color="tab:red",
                label=spread_label(by_value),
            )
            for p in done:
                ax.scatter([p.value], [100.0 - p.eval.summary["test_error"]], s=8, color="0.4", zorder=3)
            ax.set_xticks(xs)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("Test accuracy (%)")
            ax.legend(fontsize=7)
            missing = len(points) - len(done)
            status = f"{len(done)} point(s)" + (f", {missing} without evaluation" if missing else "")
        else:
            status = NOT_RUN
            not_run_axes(ax, NOT_RUN)
        ax.set_title(stamped_title(title, stamped))
        fig.text(0.01, 0.01, f"paper: {paper_note}", fontsize=6.5, color="0.35")
        fig.tight_layout(rect=(0, 0.04, 1, 1))
        data = png_bytes(fig, title, stamped)
    return status, data


def spread_label(by_value: dict) -> str:
    """The legend of an ablation curve: what its points are over (one seed, or mean ± std)."""
    counts = sorted({len(v) for v in by_value.values()})
    if counts == [1]:
        return "this pipeline (one seed)"
    seeds = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return f"this pipeline (mean ± std over {seeds} seeds)"


CURVE_PANELS = [
    ("valid/acc", "supernet validation accuracy (%)"),
    ("train/loss", "training loss"),
    ("kd_loss", "KD loss (λ-free)"),
    ("num_skip_connect", "skip_connect in the genotype"),
]


def search_curves(runs: list[Run], title: str, stamped: dict[str, str]) -> tuple[str, bytes]:
    with style():
        fig = figure(9.0, 6.0)
        axes = [fig.add_subplot(2, 2, i + 1) for i in range(4)]
        with_curves = [r for r in runs if r.curves is not None]
        for ax, (col, label) in zip(axes, CURVE_PANELS):
            for r in with_curves:
                if col in r.curves.columns:
                    method = str(r.summary["method"])
                    ax.plot(
                        r.curves["epoch"] + 1,
                        r.curves[col],
                        lw=1.0,
                        color=METHOD_COLORS.get(method),
                        linestyle=_linestyle(r.seed),
                        alpha=0.85,
                        label=f"{method} s{r.seed}",
                    )
            ax.set_title(label)
            ax.set_xlabel("Epoch")
            _integer_epochs(ax)
        if with_curves:
            axes[0].legend(fontsize=6)
            status = f"{len(with_curves)} run(s)"
        else:
            status = NOT_RUN
            for ax in axes:
                not_run_axes(ax, NOT_RUN)
        fig.suptitle(stamped_title(title, stamped), fontsize=10)
        fig.tight_layout()
        data = png_bytes(fig, title, stamped)
    return status, data
