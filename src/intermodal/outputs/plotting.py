"""Drawing helpers shared by the study's figures and the prediction figures: fixed colours
per schedule and modality, curves with seed bands, epoch axes, titles, and saving a figure
as PNG and SVG. Figures are built on :class:`~matplotlib.figure.Figure` with the Agg canvas
directly rather than through ``pyplot``, so drawing never touches the user's interactive
backend and nothing is left open in pyplot's figure registry.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from ..evaluation.summaries import BAND_DESCRIPTIONS, schedule_order
from ..files import atomic_write

# Fixed colours for the paper's schedules so a schedule looks the same in every figure and
# every run; other schedules take the remaining hues in the order they are listed.
KNOWN_SCHEDULE_COLOURS = {
    "constant-1": "#d62728",
    "constant-0": "#1f77b4",
    "dynamic-plateau-0": "#2ca02c",
    "dynamic-plateau-1": "#ff7f0e",
}
OTHER_SCHEDULE_COLOURS = ["#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#393b79", "#637939"]
# Modalities (lines in Fig. 6) use a palette unlike the schedules' so colour is not read as
# "schedule" there.
MODALITY_COLOURS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]
MODALITY_LINESTYLES = ["-", "--", ":", "-."]
SCHEDULE_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]

# Beyond this many epochs a curve is drawn from bin means (plus each bin's range), which keeps
# an 80 000-epoch run's SVGs small. 500 bins make each bin two of the paper's β cycles
# (T/1000 epochs each, at any run length T), so the bin means of a cycling curve come out
# smooth; with bins of half a cycle they would alternate and draw a solid block.
MAX_POINTS_PER_CURVE = 500
DPI = 150


# --------------------------------------------------------------------------- orders, colours
def schedule_colours(schedules: list[str]) -> dict[str, str]:
    """A fixed colour per schedule: the paper's schedules always get the same hue."""
    colours: dict[str, str] = {}
    spare = iter(OTHER_SCHEDULE_COLOURS * (1 + len(schedules) // len(OTHER_SCHEDULE_COLOURS)))
    for name in schedules:
        colours[name] = KNOWN_SCHEDULE_COLOURS.get(name) or next(spare)
    return colours


def modality_style(index: int) -> dict:
    return {
        "color": MODALITY_COLOURS[index % len(MODALITY_COLOURS)],
        "linestyle": MODALITY_LINESTYLES[(index // len(MODALITY_COLOURS)) % len(MODALITY_LINESTYLES)],
    }


def lighter(colour: str, amount: float = 0.45) -> str:
    rgb = np.array(to_rgb(colour))
    return to_hex(rgb + (1.0 - rgb) * amount)  # type: ignore[arg-type]  # an array is a colour; the stubs omit it


def darker(colour: str, amount: float = 0.35) -> str:
    return to_hex(np.array(to_rgb(colour)) * (1.0 - amount))  # type: ignore[arg-type]  # as in lighter()


def thin(curve: pd.DataFrame, max_points: int = MAX_POINTS_PER_CURVE) -> pd.DataFrame:
    """Bin means of a long curve (sorted by epoch) so at most ``max_points`` remain; also
    each bin's range of the mean (``range_low``/``range_high``), to show fast oscillation."""
    if len(curve) <= max_points:
        return curve
    width = math.ceil(len(curve) / max_points)
    bins = np.arange(len(curve)) // width
    return curve.groupby(bins).agg(
        epoch=("epoch", "mean"),
        mean=("mean", "mean"),
        low=("low", "mean"),
        high=("high", "mean"),
        n_seeds=("n_seeds", "min"),
        range_low=("mean", "min"),
        range_high=("mean", "max"),
    )


# --------------------------------------------------------------------------- drawing helpers
def new_figure(n_rows: int, n_cols: int, panel_size: tuple[float, float], **subplot_kw):
    figure = Figure(figsize=(panel_size[0] * n_cols + 0.6, panel_size[1] * n_rows + 1.1), layout="constrained")
    FigureCanvasAgg(figure)  # explicit Agg canvas: no interactive backend involved
    axes = figure.subplots(n_rows, n_cols, squeeze=False, **subplot_kw)
    return figure, axes


def plot_curve(
    ax, curve: pd.DataFrame, colour: str, label: str | None = None, linestyle: str = "-", linewidth: float = 1.4
) -> bool:
    """Mean line and band; returns whether the curve was thinned."""
    if curve.empty:
        return False
    curve = curve.sort_values("epoch")
    thinned = len(curve) > MAX_POINTS_PER_CURVE
    curve = thin(curve)
    x = curve["epoch"].to_numpy(float)
    if thinned:
        ax.fill_between(
            x,
            curve["range_low"].to_numpy(float),
            curve["range_high"].to_numpy(float),
            color=colour,
            alpha=0.3,
            linewidth=0,
        )
    # Few evaluations: markers so a single point (or a sparse series) is still visible.
    marker = "o" if len(curve) <= 30 else None
    ax.plot(
        x,
        curve["mean"].to_numpy(float),
        color=colour,
        label=label,
        linestyle=linestyle,
        linewidth=linewidth,
        marker=marker,
        markersize=3.5,
    )
    if (curve["n_seeds"] > 1).any() and len(curve) > 1:
        ax.fill_between(
            x, curve["low"].to_numpy(float), curve["high"].to_numpy(float), color=colour, alpha=0.18, linewidth=0
        )
    return thinned


def shade_windows(ax, windows) -> None:
    # Windows are usually contiguous, so a dotted edge marks where one ends and the next begins.
    for start, end in windows or []:
        ax.axvspan(start, end, color="0.5", alpha=0.08, linewidth=0, zorder=0)
        ax.axvline(start, color="0.6", linewidth=0.6, linestyle=":", zorder=0)


def share_epoch_axis(axes, *tables: pd.DataFrame | None) -> None:
    """One epoch range for every panel, tick labels only on the bottom row.

    Set explicitly rather than with ``sharex``: on figures with dozens of panels the shared
    autoscaling dominated the drawing time.
    """
    epochs = [t["epoch"] for t in tables if t is not None and len(t)]
    low = float(min(e.min() for e in epochs)) if epochs else 0.0
    high = float(max(e.max() for e in epochs)) if epochs else 1.0
    pad = 0.03 * (high - low) if high > low else 0.5
    for ax in axes.flat:
        ax.set_xlim(low - pad, high + pad)
        # Few ticks, thousands as "6k": long runs' labels would otherwise run together.
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        ax.xaxis.set_major_formatter(EPOCH_FORMATTER)
    for ax in axes[:-1, :].flat:
        ax.tick_params(labelbottom=False)


def epoch_label(value: float, _position=None) -> str:
    """Tick label of an epoch: 6000 -> "6k", 1500 -> "1.5k", 250 -> "250"."""
    if abs(value) >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


EPOCH_FORMATTER = FuncFormatter(epoch_label)


def lookup_by_keys(summary: pd.DataFrame, keys: list[str]):
    """Look-up of a summary's rows by key tuple (one pass instead of a mask per panel)."""
    groups = {key: frame for key, frame in summary.groupby(keys, sort=False)} if len(summary) else {}
    empty = summary.iloc[0:0]
    return lambda *key: groups.get(tuple(key), empty)


def say_no_data(ax, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=9, color="0.35", wrap=True)


def figure_title(figure: Figure, number_and_name: str, band: str | None, n_seeds: int | None, thinned: bool) -> None:
    notes = []
    if n_seeds is not None:
        notes.append(f"mean over {n_seeds} seed{'s' if n_seeds != 1 else ''}")
        if n_seeds > 1 and band:
            notes.append(BAND_DESCRIPTIONS[band])
    if thinned:
        notes.append(f"long curves: means over ≤{MAX_POINTS_PER_CURVE} epoch bins, faint fill = range within a bin")
    title_with_notes(figure, number_and_name, notes)


def title_with_notes(figure: Figure, title: str, notes: list[str]) -> None:
    """Title with the notes in brackets below it, wrapped to the figure's width."""
    text = title
    if notes:
        # About 11 characters of 11-point text fit in an inch.
        width = max(40, int(figure.get_figwidth() * 11))
        text += "\n" + textwrap.fill("(" + "; ".join(notes) + ")", width)
    figure.suptitle(text, fontsize=11)


def seed_count(*tables: pd.DataFrame | None) -> int | None:
    counts = [t.groupby("schedule")["seed"].nunique().max() for t in tables if t is not None and len(t)]
    return int(max(counts)) if counts else None


def schedules_and_colours(schedules, colours, *tables):
    schedules = list(schedules) if schedules is not None else schedule_order(*tables)
    colours = dict(colours) if colours is not None else {}
    missing = [s for s in schedules if s not in colours]
    if missing:
        fallback = schedule_colours(schedules)
        colours.update({s: fallback[s] for s in missing})
    return schedules, colours


def save_figure(figure: Figure, png: Path, svg: Path) -> None:
    """Save a figure as PNG and SVG, each atomically, and release it."""
    # Fixed hash salt and no date make SVGs byte-identical across reruns (clean diffs);
    # text stays text in the SVG so it is small and searchable.
    with matplotlib.rc_context({"svg.hashsalt": "intermodal", "svg.fonttype": "none"}):
        atomic_write(png, lambda p: figure.savefig(p, format="png", dpi=DPI, metadata={"Software": None}))
        # The constrained layout solved while drawing the PNG holds for the SVG too; freezing
        # it saves a second solve, which dominates the time on figures with many panels.
        figure.set_layout_engine("none")
        atomic_write(svg, lambda p: figure.savefig(p, format="svg", metadata={"Date": None}))
    figure.clear()
