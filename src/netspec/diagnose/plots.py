"""Figures of ``netspec diagnose`` and ``netspec plot bounds`` (matplotlib, the ``plot`` extra, with the
non-interactive Agg backend), written atomically as PNG or SVG, and a self-contained HTML report.

Each figure is built by a function that returns the matplotlib ``Figure`` (so tests read the lines
back from the figure's data) and saved by :func:`save`.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from typing import TYPE_CHECKING, Any

from netspec.errors import NetspecError, UsageError
from netspec.extras import install_hint

if TYPE_CHECKING:
    from netspec.diagnose.stats import Run

SIZE = (12.0, 8.0)
"""Figure size in inches; at :data:`DPI` a PNG is 1200 x 800 pixels."""
DPI = 100
FORMATS = (".png", ".svg")
HISTOGRAM_LAYERS = 6


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend, or a clear error (exit 1) when the extra is missing."""
    try:
        import matplotlib
    except ImportError:
        raise NetspecError(f"plots need matplotlib: {install_hint('plot')}") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def check_path(path: str) -> None:
    """A usage error (exit 2) for an unknown suffix or a missing folder, before any work."""
    if os.path.splitext(path)[1].lower() not in FORMATS:
        raise UsageError(f"{path}: the plot format comes from the suffix: {', '.join(FORMATS)}")
    check_folder(path)


def check_folder(path: str) -> None:
    """A usage error (exit 2) when the folder of an output path does not exist."""
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise UsageError(f"{path}: the folder does not exist")


STYLES = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ((0, (5, 1)), "v"), ((0, (1, 3)), "P")]
"""(line style, marker) per run, so lines that coincide (the spec and the initializer its ``auto`` chose)
stay visible."""
FONT = 10


def diagnose_figure(runs: list[Run]) -> Any:
    """Activation std per layer, gradient std per weights tensor (one line per run; the gradient panel
    only when gradients were computed) and histograms of up to :data:`HISTOGRAM_LAYERS` layers' outputs
    (one per run, overlaid; Glorot and Bengio 2010), on one shared x axis with a logarithmic count axis
    so a ReLU layer's zeros do not flatten the rest.

    The spec's run is drawn on top; a run whose statistics equal the spec's is labelled ``(= spec)``."""
    plt = pyplot()
    fig = plt.figure(figsize=SIZE, dpi=DPI)
    grid = fig.add_gridspec(2, HISTOGRAM_LAYERS)
    gradients = any(run.parameters for run in runs)
    std_ax = fig.add_subplot(grid[0, : HISTOGRAM_LAYERS // 2] if gradients else grid[0, :])
    grad_ax = fig.add_subplot(grid[0, HISTOGRAM_LAYERS // 2 :]) if gradients else None
    for i, run in enumerate(runs):
        style, marker = STYLES[i % len(STYLES)]
        same = i > 0 and [s.std for s in run.layers] == [s.std for s in runs[0].layers]
        line = {"linestyle": style, "marker": marker, "label": run.initializer + (" (= spec)" if same else ""),
                "zorder": 3 if i == 0 else 2, "linewidth": 2.5 if i == 0 else 1.5,
                "markersize": 8 if i == 0 else 5, "markerfacecolor": "none" if i == 0 else None}  # fmt: skip
        std_ax.plot(range(1, len(run.layers) + 1), [s.std for s in run.layers], **line)
        if grad_ax is not None:
            weights = [p for p in run.parameters if p.name.endswith("weights")]
            grad_ax.plot(range(1, len(weights) + 1), [p.grad_std for p in weights], **line)
    _label(std_ax, "activation std per layer", "layer", "std of the output")
    if grad_ax is not None:
        _label(grad_ax, "gradient std per weights tensor", "weights tensor", "std of the gradient")
    _histograms(fig, grid, runs)
    fig.tight_layout()
    return fig


def _histograms(fig: Any, grid: Any, runs: list[Run]) -> None:
    """Output histograms of up to :data:`HISTOGRAM_LAYERS` layers, evenly spread over the depth."""
    import numpy as np

    layers = runs[0].layers if runs else []
    if not layers:
        return
    chosen = sorted({round(i * (len(layers) - 1) / max(HISTOGRAM_LAYERS - 1, 1)) for i in range(HISTOGRAM_LAYERS)})
    values = np.concatenate([np.ravel(run.layers[i].sample) for run in runs for i in chosen])
    values = values[np.isfinite(values)]
    low, high = (float(values.min()), float(values.max())) if values.size else (-1.0, 1.0)
    bins = np.linspace(low, high if high > low else low + 1.0, 41)
    first = None
    for col, index in enumerate(chosen[:HISTOGRAM_LAYERS]):
        ax = fig.add_subplot(grid[1, col], sharex=first, sharey=first)
        first = first or ax
        for i, run in enumerate(runs):
            ax.hist(run.layers[index].sample, bins=bins, histtype="step",
                    linestyle=STYLES[i % len(STYLES)][0], linewidth=2 if i == 0 else 1.2,
                    label=run.initializer)  # fmt: skip
        ax.set_yscale("log")
        stats = layers[index]
        zeros = float(np.mean(np.asarray(stats.sample) == 0)) if stats.sample is not None else 0.0
        title = stats.name + (f"\n{zeros:.0%} zeros" if stats.activation == "relu" else "")
        ax.set_title(title, fontsize=FONT)
        ax.tick_params(labelsize=FONT - 1)
        if col == 0:
            ax.set_ylabel("count (log)", fontsize=FONT)
        ax.set_xlabel("output value", fontsize=FONT - 1)


def _label(ax: Any, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=FONT + 1)
    ax.set_xlabel(xlabel, fontsize=FONT)
    ax.set_ylabel(ylabel, fontsize=FONT)
    ax.tick_params(labelsize=FONT - 1)
    if xlabel in ("layer", "weights tensor"):  # positions 1, 2, ...: whole numbers only
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if any(line.get_ydata().size and min(line.get_ydata()) > 0 for line in ax.get_lines()):
        ax.set_yscale("log")
    if ax.get_lines():
        ax.legend(fontsize=FONT)


def bounds_figure(inits: list[str], fan_in: range, fan_out: int | None) -> Any:
    """Brownlee's bound-versus-inputs plots ("Weight Initialization for Deep Learning Neural
    Networks"), with the right formulas: each initializer's bound (uniform, truncated) or std
    (normal) against the number of inputs, at a fixed number of outputs (``None``: equal to the inputs)."""
    from netspec.init.fans import Fans
    from netspec.init.initializers import get_initializer

    plt = pyplot()
    fig, ax = plt.subplots(figsize=SIZE, dpi=DPI)
    xs = list(fan_in)
    for name in inits:
        init = get_initializer(name)
        ys = []
        for n in xs:
            dist = init.declared((n, fan_out or n), Fans(n, fan_out or n))
            ys.append(dist.support[1] if math.isfinite(dist.support[1]) else dist.std)
        kind = "bound" if math.isfinite(init.declared((2, 2)).support[1]) else "std"
        ax.plot(xs, ys, label=f"{name} ({kind})")
    outputs = "outputs = inputs" if fan_out is None else f"{fan_out} outputs"
    _label(ax, f"initializer bound or std against the number of inputs ({outputs})", "inputs (fan_in)",
           "bound of U(-b, b), or std of N(0, s^2)")  # fmt: skip
    fig.tight_layout()
    return fig


def save(fig: Any, path: str) -> None:
    """Write ``fig`` to ``path`` (PNG or SVG by the suffix) atomically: a temporary file, then a rename."""
    from netspec.io.weights import atomic_write

    buffer = io.BytesIO()
    fig.savefig(buffer, format=os.path.splitext(path)[1][1:].lower(), dpi=DPI)
    pyplot().close(fig)
    with atomic_write(path) as fh:
        fh.write(buffer.getvalue())


def html_report(title: str, sections: list[tuple[str, Any]], tables: list[tuple[str, str]]) -> str:
    """A self-contained HTML page: each figure embedded as a base64 PNG, each table as preformatted text."""
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1250px;margin:auto}pre{font-size:12px}</style>",
             f"<h1>{html.escape(title)}</h1>"]  # fmt: skip
    for heading, fig in sections:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI)
        pyplot().close(fig)
        data = base64.b64encode(buffer.getvalue()).decode()
        parts.append(f"<h2>{html.escape(heading)}</h2><img alt='{html.escape(heading)}' "
                     f"src='data:image/png;base64,{data}'>")  # fmt: skip
    for heading, text in tables:
        parts.append(f"<h2>{html.escape(heading)}</h2><pre>{html.escape(text)}</pre>")
    return "\n".join(parts) + "\n"
