"""The study's six figures (SPEC section 6), drawn from a run folder's tables alone.

Data flows one way: training writes ``history.parquet`` and ``results.parquet`` into a run
folder; this module reads them and never imports the training code. Every figure function
takes DataFrames (not paths) and returns a :class:`matplotlib.figure.Figure`;
:func:`write_figures` reads a run folder and saves each figure as PNG and SVG into
``RUN/figures/``.

Curves are the mean over seeds; the band around each is ±1 standard deviation over seeds
(``band="sd"``, the default) or the seeds' minimum to maximum (``band="minmax"``). A schedule
with a single seed gets no band. Modalities are never assumed: their names and order come
from ``results.parquet`` (order of first appearance).

Figures are built on :class:`~matplotlib.figure.Figure` with the Agg canvas directly rather
than through ``pyplot``, so drawing them never touches the user's interactive backend and
nothing is left open in pyplot's figure registry.
"""
from __future__ import annotations

import json
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

__all__ = [
    "FIGURES",
    "MEASURES",
    "RunTables",
    "load_run",
    "resolve_windows",
    "default_windows",
    "window_label",
    "schedule_order",
    "modality_order",
    "schedule_colours",
    "seed_summary",
    "window_means",
    "normalised_results",
    "fig1_schedules",
    "fig2_losses",
    "fig3_baseline",
    "fig4_measures",
    "fig5_window_means",
    "fig6_per_modality",
    "fig_active_units",
    "write_figures",
    "figure_paths",
]

# File stem and caption of each figure, in the order of SPEC section 6.
FIGURES: dict[str, str] = {
    "fig1_schedules": "KL weight β against epoch, one panel per schedule (paper Fig. 2).",
    "fig2_losses": (
        "Prediction error, reconstruction loss, latent loss and weighted loss against epoch; "
        "a column per schedule (paper Fig. 4)."
    ),
    "fig3_baseline": "Baseline (everything muted, regarding all) against epoch per schedule (paper Fig. 5).",
    "fig4_measures": (
        "The four measures per modality: columns = measures, rows = schedules, "
        "one line per modality (paper Fig. 6)."
    ),
    "fig5_window_means": (
        "Measures averaged over two epoch windows, modality on the x-axis, one marker per schedule; "
        "light = regarding the modality itself, dark = regarding all (paper Fig. 7)."
    ),
    "fig6_per_modality": (
        "Per modality, single modality error and loss of precision against epoch; "
        "light = regarding the modality itself, dark = regarding all (paper appendix A.1)."
    ),
}
ACTIVE_UNITS_FIGURE = "active_units"
ACTIVE_UNITS_CAPTION = "Active latent units per schedule against epoch (diagnostics; not one of the paper's figures)."

# (quantity, scope, short label, long label) of the four measures, in the paper's order.
MEASURES: list[tuple[str, str, str, str]] = [
    ("single_modality_error", "modality", "SME regarding m", "single modality error, regarding m"),
    ("single_modality_error", "all", "SME regarding all", "single modality error, regarding all"),
    ("loss_of_precision", "modality", "LoP regarding m", "loss of precision, regarding m"),
    ("loss_of_precision", "all", "LoP regarding all", "loss of precision, regarding all"),
]
MEASURE_QUANTITIES = ("single_modality_error", "loss_of_precision")

# Fixed colours for the paper's schedules so a schedule looks the same in every figure and
# every run; other schedules take the remaining hues in the order they are listed.
_KNOWN_SCHEDULE_COLOURS = {
    "constant-1": "#d62728",
    "constant-0": "#1f77b4",
    "dynamic-plateau-0": "#2ca02c",
    "dynamic-plateau-1": "#ff7f0e",
}
_OTHER_SCHEDULE_COLOURS = ["#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#393b79", "#637939"]
# Modalities (lines in Fig. 4) use a palette unlike the schedules' so colour is not read as
# "schedule" there.
_MODALITY_COLOURS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]
_MODALITY_LINESTYLES = ["-", "--", ":", "-."]
_SCHEDULE_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]

BAND_DESCRIPTIONS = {"sd": "band: ±1 sd over seeds", "minmax": "band: min–max over seeds"}
# Beyond this many epochs a curve is drawn from bin means (plus each bin's range), which keeps
# an 80 000-epoch run's SVGs small. 500 bins make each bin two of the paper's β cycles
# (T/1000 epochs each, at any run length T), so the bin means of a cycling curve come out
# smooth; with bins of half a cycle they would alternate and draw a solid block.
MAX_POINTS_PER_CURVE = 500
DPI = 150


# --------------------------------------------------------------------------- run tables
@dataclass
class RunTables:
    """The tables of one run folder, as read from disk."""

    run_dir: Path
    config: dict
    history: pd.DataFrame
    results: pd.DataFrame
    diagnostics: pd.DataFrame | None


def load_run(run_dir: str | Path) -> RunTables:
    """Read ``config.json``, ``history.parquet``, ``results.parquet`` and, if present,
    ``diagnostics.parquet`` from a run folder."""
    run_dir = Path(run_dir)
    missing = [n for n in ("config.json", "history.parquet", "results.parquet") if not (run_dir / n).is_file()]
    if missing:
        raise FileNotFoundError(f"run folder {run_dir} lacks {', '.join(missing)}")
    config = json.loads((run_dir / "config.json").read_text())
    history = _clean_history(pd.read_parquet(run_dir / "history.parquet"))
    results = _clean_results(pd.read_parquet(run_dir / "results.parquet"))
    diagnostics_path = run_dir / "diagnostics.parquet"
    diagnostics = pd.read_parquet(diagnostics_path) if diagnostics_path.is_file() else None
    return RunTables(run_dir, config, history, results, diagnostics)


def _clean_history(history: pd.DataFrame) -> pd.DataFrame:
    # Cleans in place: called only on a frame just read from disk (a paper-scale history has
    # millions of rows, so a copy would double the memory).
    history["schedule"] = history["schedule"].astype(str)
    return history


def _clean_results(results: pd.DataFrame) -> pd.DataFrame:
    for column in ("schedule", "quantity"):
        results[column] = results[column].astype(str)
    # Missing modality/scope mean "does not apply"; "" is the table's spelling of that.
    for column in ("modality", "scope"):
        results[column] = results[column].fillna("").astype(str)
    results["value"] = results["value"].astype(float)
    return results


def normalised_results(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` with missing modality/scope spelled "" (a copy only if any is missing), so
    the public functions accept a table built in memory as well as one read by load_run."""
    if results["modality"].isna().any() or results["scope"].isna().any():
        results = results.assign(modality=results["modality"].fillna(""), scope=results["scope"].fillna(""))
    return results


def default_windows(epochs: int) -> list[tuple[float, float]]:
    """The paper's two windows (60–70 k and 70–80 k of 80 k epochs) scaled to ``epochs``.

    Windows are half-open ``[start, end)``; the last one ends at ``epochs + 1`` so that an
    evaluation written at epoch ``epochs`` (after the last training epoch) still counts.
    """
    epochs = int(epochs)
    return [(int(0.75 * epochs), int(0.875 * epochs)), (int(0.875 * epochs), epochs + 1)]


def resolve_windows(config: dict | None, history: pd.DataFrame | None = None,
                    results: pd.DataFrame | None = None) -> list[tuple[float, float]]:
    """``config["windows"]`` if given, else :func:`default_windows` for the run's length
    (``config["epochs"]``, else one past the last epoch found in the tables)."""
    config = config or {}
    if config.get("windows"):
        try:
            windows = [(float(a), float(b)) for a, b in config["windows"]]
        except (TypeError, ValueError) as error:
            raise ValueError(f"config 'windows' must be a list of [start, end] epoch pairs, got "
                             f"{config['windows']!r}") from error
        backwards = [w for w in windows if not w[0] < w[1]]
        if backwards:
            raise ValueError(f"config 'windows': each window needs start < end; not so for {backwards}")
        return [(_int_if_whole(a), _int_if_whole(b)) for a, b in windows]
    epochs = config.get("epochs")
    if epochs is None:
        last = [int(t["epoch"].max()) for t in (history, results) if t is not None and len(t)]
        epochs = max(last) + 1 if last else 1
    return default_windows(int(epochs))


def _int_if_whole(x: float):
    return int(x) if float(x).is_integer() else x


def window_label(window: tuple[float, float]) -> str:
    """Human-readable range of a half-open window; integer epochs are shown inclusively."""
    start, end = window
    if float(start).is_integer() and float(end).is_integer():
        last = int(end) - 1
        return f"epochs {int(start)}–{last}" if last > int(start) else f"epoch {int(start)}"
    return f"epochs [{start:g}, {end:g})"


def in_window(epochs: pd.Series, window: tuple[float, float]) -> pd.Series:
    """Which epochs fall in a half-open window ``[start, end)``."""
    start, end = window
    return (epochs >= start) & (epochs < end)


# --------------------------------------------------------------------------- orders, colours
def schedule_order(*tables: pd.DataFrame | None, config: dict | None = None) -> list[str]:
    """Schedules in the config's order, then any others in order of first appearance."""
    names: list[str] = []
    for name in (config or {}).get("schedules") or []:
        if str(name) not in names:
            names.append(str(name))
    present: set[str] = set()
    for table in tables:
        if table is not None and "schedule" in table:
            for name in pd.unique(table["schedule"].astype(str)):
                present.add(name)
                if name not in names:
                    names.append(name)
    # A configured schedule with no rows (e.g. a crashed run) would only draw empty panels.
    return [n for n in names if n in present] if present else names


def modality_order(results: pd.DataFrame) -> list[str]:
    """Modality names in order of first appearance among the measure rows."""
    rows = results[results["quantity"].isin(MEASURE_QUANTITIES)]
    rows = rows[rows["modality"].notna() & (rows["modality"] != "")]
    return [str(m) for m in pd.unique(rows["modality"])]


def schedule_colours(schedules: list[str]) -> dict[str, str]:
    """A fixed colour per schedule: the paper's schedules always get the same hue."""
    colours: dict[str, str] = {}
    spare = iter(_OTHER_SCHEDULE_COLOURS * (1 + len(schedules) // len(_OTHER_SCHEDULE_COLOURS)))
    for name in schedules:
        colours[name] = _KNOWN_SCHEDULE_COLOURS.get(name) or next(spare)
    return colours


def _modality_style(index: int) -> dict:
    return {
        "color": _MODALITY_COLOURS[index % len(_MODALITY_COLOURS)],
        "linestyle": _MODALITY_LINESTYLES[(index // len(_MODALITY_COLOURS)) % len(_MODALITY_LINESTYLES)],
    }


def _lighter(colour: str, amount: float = 0.45) -> str:
    rgb = np.array(to_rgb(colour))
    return to_hex(rgb + (1.0 - rgb) * amount)


def _darker(colour: str, amount: float = 0.35) -> str:
    return to_hex(np.array(to_rgb(colour)) * (1.0 - amount))


# --------------------------------------------------------------------------- aggregation
def seed_summary(frame: pd.DataFrame, keys: list[str], value: str, band: str = "sd") -> pd.DataFrame:
    """Mean over seeds per ``keys`` + epoch, with the band's ``low``/``high`` and ``n_seeds``."""
    if band not in BAND_DESCRIPTIONS:
        raise ValueError(f"band must be one of {sorted(BAND_DESCRIPTIONS)}, not {band!r}")
    columns = keys + ["epoch", "mean", "low", "high", "n_seeds"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    stats = (
        frame.groupby(keys + ["epoch"], sort=True, observed=True)[value]
        .agg(["mean", "std", "min", "max", "count"])
        .reset_index()
    )
    if band == "sd":
        spread = stats["std"].fillna(0.0)
        stats["low"], stats["high"] = stats["mean"] - spread, stats["mean"] + spread
    else:
        stats["low"], stats["high"] = stats["min"], stats["max"]
    stats["n_seeds"] = stats["count"]
    return stats[columns]


def _thin(curve: pd.DataFrame, max_points: int = MAX_POINTS_PER_CURVE) -> pd.DataFrame:
    """Bin means of a long curve (sorted by epoch) so at most ``max_points`` remain; also
    each bin's range of the mean (``range_low``/``range_high``), to show fast oscillation."""
    if len(curve) <= max_points:
        return curve
    width = math.ceil(len(curve) / max_points)
    bins = np.arange(len(curve)) // width
    return curve.groupby(bins).agg(epoch=("epoch", "mean"), mean=("mean", "mean"), low=("low", "mean"),
                                   high=("high", "mean"), n_seeds=("n_seeds", "min"),
                                   range_low=("mean", "min"), range_high=("mean", "max"))


def window_means(results: pd.DataFrame, windows: list[tuple[float, float]],
                 quantities: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Per window: each seed's mean over the window's evaluations, then mean and sd over seeds.

    Returns one row per (window, schedule, quantity, modality, scope) with columns
    ``window`` (index into ``windows``), ``start``, ``end``, ``mean``, ``sd`` (sample sd,
    NaN for one seed), ``min``, ``max``, ``n_seeds``, ``n_epochs``.
    """
    keys = ["schedule", "quantity", "modality", "scope"]
    results = normalised_results(results)
    if quantities is not None:
        results = results[results["quantity"].isin(quantities)]
    parts = []
    for index, window in enumerate(windows):
        inside = results[in_window(results["epoch"], window)]
        if inside.empty:
            continue
        per_seed = inside.groupby(keys + ["seed"], sort=False).agg(
            value=("value", "mean"), n_epochs=("epoch", "nunique")).reset_index()
        stats = per_seed.groupby(keys, sort=False).agg(
            mean=("value", "mean"), sd=("value", "std"), min=("value", "min"), max=("value", "max"),
            n_seeds=("seed", "nunique"), n_epochs=("n_epochs", "max")).reset_index()
        stats.insert(0, "end", window[1])
        stats.insert(0, "start", window[0])
        stats.insert(0, "window", index)
        parts.append(stats)
    columns = ["window", "start", "end"] + keys + ["mean", "sd", "min", "max", "n_seeds", "n_epochs"]
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns]


# --------------------------------------------------------------------------- drawing helpers
def _new_figure(n_rows: int, n_cols: int, panel_size: tuple[float, float], **subplot_kw):
    figure = Figure(figsize=(panel_size[0] * n_cols + 0.6, panel_size[1] * n_rows + 1.1), layout="constrained")
    FigureCanvasAgg(figure)  # explicit Agg canvas: no interactive backend involved
    axes = figure.subplots(n_rows, n_cols, squeeze=False, **subplot_kw)
    return figure, axes


def _plot_curve(ax, curve: pd.DataFrame, colour: str, label: str | None = None, linestyle: str = "-",
                linewidth: float = 1.4) -> bool:
    """Mean line and band; returns whether the curve was thinned."""
    if curve.empty:
        return False
    curve = curve.sort_values("epoch")
    thinned = len(curve) > MAX_POINTS_PER_CURVE
    curve = _thin(curve)
    x = curve["epoch"].to_numpy(float)
    if thinned:
        ax.fill_between(x, curve["range_low"].to_numpy(float), curve["range_high"].to_numpy(float), color=colour,
                        alpha=0.3, linewidth=0)
    # Few evaluations: markers so a single point (or a sparse series) is still visible.
    marker = "o" if len(curve) <= 30 else None
    ax.plot(x, curve["mean"].to_numpy(float), color=colour, label=label, linestyle=linestyle,
            linewidth=linewidth, marker=marker, markersize=3.5)
    if (curve["n_seeds"] > 1).any() and len(curve) > 1:
        ax.fill_between(x, curve["low"].to_numpy(float), curve["high"].to_numpy(float), color=colour,
                        alpha=0.18, linewidth=0)
    return thinned


def _shade_windows(ax, windows) -> None:
    # Windows are usually contiguous, so a dotted edge marks where one ends and the next begins.
    for start, end in windows or []:
        ax.axvspan(start, end, color="0.5", alpha=0.08, linewidth=0, zorder=0)
        ax.axvline(start, color="0.6", linewidth=0.6, linestyle=":", zorder=0)


def _share_epoch_axis(axes, *tables: pd.DataFrame | None) -> None:
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
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    for ax in axes[:-1, :].flat:
        ax.tick_params(labelbottom=False)


def _by_keys(summary: pd.DataFrame, keys: list[str]):
    """Look-up of a summary's rows by key tuple (one pass instead of a mask per panel)."""
    groups = {key: frame for key, frame in summary.groupby(keys, sort=False)} if len(summary) else {}
    empty = summary.iloc[0:0]
    return lambda *key: groups.get(tuple(key), empty)


def _say_no_data(ax, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=9, color="0.35",
            wrap=True)


def _title(figure: Figure, number_and_name: str, band: str | None, n_seeds: int | None, thinned: bool) -> None:
    notes = []
    if n_seeds is not None:
        notes.append(f"mean over {n_seeds} seed{'s' if n_seeds != 1 else ''}")
        if n_seeds > 1 and band:
            notes.append(BAND_DESCRIPTIONS[band])
    if thinned:
        notes.append(f"long curves: means over ≤{MAX_POINTS_PER_CURVE} epoch bins, faint fill = range within a bin")
    _suptitle(figure, number_and_name, notes)


def _suptitle(figure: Figure, title: str, notes: list[str]) -> None:
    """Title with the notes in brackets below it, wrapped to the figure's width."""
    text = title
    if notes:
        # About 11 characters of 11-point text fit in an inch.
        width = max(40, int(figure.get_figwidth() * 11))
        text += "\n" + textwrap.fill("(" + "; ".join(notes) + ")", width)
    figure.suptitle(text, fontsize=11)


def _n_seeds(*tables: pd.DataFrame | None) -> int | None:
    counts = [t.groupby("schedule")["seed"].nunique().max() for t in tables if t is not None and len(t)]
    return int(max(counts)) if counts else None


def _resolve(schedules, colours, *tables):
    schedules = list(schedules) if schedules is not None else schedule_order(*tables)
    colours = dict(colours) if colours is not None else {}
    missing = [s for s in schedules if s not in colours]
    if missing:
        fallback = schedule_colours(schedules)
        colours.update({s: fallback[s] for s in missing})
    return schedules, colours


# --------------------------------------------------------------------------- figures
def fig1_schedules(history: pd.DataFrame, *, schedules=None, colours=None, windows=None) -> Figure:
    """Fig. 1: β against epoch, one panel per schedule (shared epoch axis)."""
    schedules, colours = _resolve(schedules, colours, history)
    figure, axes = _new_figure(max(len(schedules), 1), 1, (7.5, 1.5), sharey=True)
    # β is the same for every seed of a schedule, so the seed summary has no band.
    summary = seed_summary(history, ["schedule"], "beta")
    thinned = False
    for ax, name in zip(axes[:, 0], schedules or [None]):
        _shade_windows(ax, windows)
        curve = summary[summary["schedule"] == name] if name is not None else summary.iloc[0:0]
        if curve.empty:
            _say_no_data(ax, "no β in history")
        thinned |= _plot_curve(ax, curve, colours.get(name, "k"), linewidth=1.2)
        ax.set_ylabel("β")
        if name is not None:
            ax.set_title(name, fontsize=9, loc="left", color=colours[name])
    top = float(summary["mean"].max()) if len(summary) else 1.0
    axes[0, 0].set_ylim(-0.05, max(1.05, 1.05 * top))
    axes[-1, 0].set_xlabel("epoch")
    _share_epoch_axis(axes, history)
    notes = ["one panel per schedule"]
    if windows:
        notes.append("grey: averaging windows of Fig. 5")
    if thinned:
        notes.append(f"dense curves: means over ≤{MAX_POINTS_PER_CURVE} epoch bins, fill = range within a bin")
    _suptitle(figure, "Fig. 1 — KL weight schedules", notes)
    return figure


def fig2_losses(history: pd.DataFrame, results: pd.DataFrame, *, schedules=None, colours=None, band="sd",
                windows=None) -> Figure:
    """Fig. 2: prediction error (results) and reconstruction, latent and weighted loss
    (history) against epoch; a column per schedule, a row per quantity, y shared per row."""
    results = normalised_results(results)
    schedules, colours = _resolve(schedules, colours, history, results)
    quantities = [
        ("prediction error", seed_summary(results[results["quantity"] == "prediction_error"], ["schedule"],
                                          "value", band)),
        ("reconstruction loss", seed_summary(history, ["schedule"], "reconstruction_loss", band)),
        ("latent loss (nats)", seed_summary(history, ["schedule"], "latent_loss", band)),
        ("weighted loss", seed_summary(history, ["schedule"], "loss", band)),
    ]
    figure, axes = _new_figure(len(quantities), max(len(schedules), 1), (3.0, 1.9), sharey="row")
    thinned = False
    for col, name in enumerate(schedules or [None]):
        for row, (label, summary) in enumerate(quantities):
            ax = axes[row, col]
            _shade_windows(ax, windows)
            curve = summary[summary["schedule"] == name] if name is not None else summary.iloc[0:0]
            if curve.empty:
                _say_no_data(ax)
            thinned |= _plot_curve(ax, curve, colours.get(name, "k"))
            if col == 0:
                ax.set_ylabel(label, fontsize=9)
            if row == 0 and name is not None:
                ax.set_title(name, fontsize=9, color=colours[name])
        axes[-1, col].set_xlabel("epoch")
    _share_epoch_axis(axes, history, results)
    _title(figure, "Fig. 2 — prediction error and the loss terms", band, _n_seeds(history, results), thinned)
    return figure


def fig3_baseline(results: pd.DataFrame, *, schedules=None, colours=None, band="sd", windows=None) -> Figure:
    """Fig. 3: the baseline (everything muted, regarding all) against epoch, a panel per
    schedule with a shared y-axis so the schedules' levels compare directly."""
    results = normalised_results(results)
    schedules, colours = _resolve(schedules, colours, results)
    baseline = results[results["quantity"] == "baseline"]
    summary = seed_summary(baseline, ["schedule"], "value", band)
    figure, axes = _new_figure(1, max(len(schedules), 1), (3.0, 2.4), sharey="row")
    thinned = False
    for col, name in enumerate(schedules or [None]):
        ax = axes[0, col]
        _shade_windows(ax, windows)
        curve = summary[summary["schedule"] == name] if name is not None else summary.iloc[0:0]
        if curve.empty:
            _say_no_data(ax, "no baseline evaluations")
        thinned |= _plot_curve(ax, curve, colours.get(name, "k"))
        if name is not None:
            ax.set_title(name, fontsize=9, color=colours[name])
        ax.set_xlabel("epoch")
    axes[0, 0].set_ylabel("baseline (nats)")
    _share_epoch_axis(axes, baseline)
    _title(figure, "Fig. 3 — baseline", band, _n_seeds(baseline), thinned)
    return figure


def fig4_measures(results: pd.DataFrame, *, schedules=None, modalities=None, band="sd", windows=None,
                  colours=None) -> Figure:
    """Fig. 4: the four measures; columns = measures, rows = schedules, a line per modality.
    The y-axis is shared within a schedule's row so its measures compare directly."""
    results = normalised_results(results)
    schedules, colours = _resolve(schedules, colours, results)
    modalities = list(modalities) if modalities is not None else modality_order(results)
    measures = results[results["quantity"].isin(MEASURE_QUANTITIES)]
    summary = seed_summary(measures, ["schedule", "quantity", "scope", "modality"], "value", band)
    figure, axes = _new_figure(max(len(schedules), 1), len(MEASURES), (3.0, 2.0), sharey="row")
    curve_of = _by_keys(summary, ["schedule", "quantity", "scope", "modality"])
    thinned = False
    for row, name in enumerate(schedules or [None]):
        for col, (quantity, scope, short, _) in enumerate(MEASURES):
            ax = axes[row, col]
            _shade_windows(ax, windows)
            curves = [curve_of(name, quantity, scope, modality) for modality in modalities]
            if all(c.empty for c in curves):
                _say_no_data(ax)
            for index, (modality, curve) in enumerate(zip(modalities, curves)):
                style = _modality_style(index)
                thinned |= _plot_curve(ax, curve, style["color"], label=modality, linestyle=style["linestyle"])
            if row == 0:
                ax.set_title(short, fontsize=9)
            if col == 0:
                ax.set_ylabel(f"{name}\n(nats)" if name is not None else "", fontsize=9,
                              color=colours.get(name, "k"))
    for ax in axes[-1, :]:
        ax.set_xlabel("epoch")
    _share_epoch_axis(axes, measures)
    handles = [Line2D([], [], label=m, linewidth=1.6, **_modality_style(i)) for i, m in enumerate(modalities)]
    if handles:
        figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 8), fontsize=9,
                      title="modality", title_fontsize=9, frameon=False)
    _title(figure, "Fig. 4 — single modality error (SME) and loss of precision (LoP) per modality", band,
           _n_seeds(measures), thinned)
    return figure


def fig5_window_means(results: pd.DataFrame, windows=None, *, schedules=None, modalities=None, colours=None,
                      band="sd", yscale="auto") -> Figure:
    """Fig. 5: measures averaged over each window; rows = SME / LoP, columns = windows,
    modality on the x-axis, a marker per schedule; regarding all is the darker marker.
    Error bars: ±1 sd (or min–max) over seeds of each seed's window mean.

    ``yscale``: "linear", "log", or "auto" (log when a row's positive means span more than
    three decades, as when one schedule's measures dwarf a collapsed one's)."""
    if yscale not in ("auto", "linear", "log"):
        raise ValueError(f"yscale must be 'auto', 'linear' or 'log', not {yscale!r}")
    results = normalised_results(results)
    schedules, colours = _resolve(schedules, colours, results)
    modalities = list(modalities) if modalities is not None else modality_order(results)
    if windows is None:
        windows = resolve_windows(None, results=results)
    windows = list(windows)
    means = window_means(results, windows, MEASURE_QUANTITIES)
    families = [("single_modality_error", "single modality error (nats)"),
                ("loss_of_precision", "loss of precision (nats)")]
    figure, axes = _new_figure(2, max(len(windows), 1), (max(3.6, 0.75 * len(modalities) + 1.2), 2.6),
                               sharey="row")
    log_rows: dict[int, str] = {}
    for row, (quantity, label) in enumerate(families):
        positive = means.loc[(means["quantity"] == quantity) & (means["mean"] > 0), "mean"]
        wide = len(positive) > 1 and positive.max() / positive.min() > 1e3
        if yscale == "log" or (yscale == "auto" and wide):
            log_rows[row] = label.split(" (")[0]
            for ax in axes[row, :]:
                ax.set_yscale("log", nonpositive="clip")
    x = np.arange(len(modalities), dtype=float)
    # Schedules sit side by side around each modality's tick so their markers do not overlap.
    spread = 0.7
    offsets = (np.arange(len(schedules)) - (len(schedules) - 1) / 2) * (spread / max(len(schedules), 1))
    for col, window in enumerate(windows):
        for row, (quantity, ylabel) in enumerate(families):
            ax = axes[row, col]
            inside = means[(means["window"] == col) & (means["quantity"] == quantity)]
            if row == 0:
                ax.set_title(window_label(window), fontsize=9)
            if col == 0:
                ax.set_ylabel(ylabel, fontsize=9)
            ax.set_xticks(x, modalities, fontsize=8, rotation=30 if len(modalities) > 6 else 0)
            ax.set_xlim(-0.6, len(modalities) - 0.4)
            if inside.empty:
                _say_no_data(ax, f"no evaluations in {window_label(window)}")
                continue
            for s_index, name in enumerate(schedules):
                marker = _SCHEDULE_MARKERS[s_index % len(_SCHEDULE_MARKERS)]
                for scope, shade in (("modality", _lighter(colours[name])), ("all", _darker(colours[name]))):
                    rows = inside[(inside["schedule"] == name) & (inside["scope"] == scope)].set_index("modality")
                    rows = rows.reindex(modalities)
                    mean = rows["mean"].to_numpy(float)
                    # On a log axis mean − sd is often ≤ 0 and would draw a bar to the axis
                    # edge; the seeds' min–max stays positive, so log rows use it.
                    if band == "sd" and row not in log_rows:
                        sd = rows["sd"].fillna(0.0).to_numpy(float)
                        low, high = sd, sd
                    else:
                        low = mean - rows["min"].to_numpy(float)
                        high = rows["max"].to_numpy(float) - mean
                    ax.errorbar(x + offsets[s_index], mean, yerr=np.vstack([low, high]), fmt=marker, color=shade,
                                markersize=5, elinewidth=0.9, capsize=2, markeredgecolor=_darker(colours[name], 0.5),
                                markeredgewidth=0.5)
    handles = [Line2D([], [], linestyle="none", marker=_SCHEDULE_MARKERS[i % len(_SCHEDULE_MARKERS)],
                      color=colours[name], markersize=6, label=name) for i, name in enumerate(schedules)]
    handles += [Line2D([], [], linestyle="none", marker="o", color=_lighter("#777777"), markersize=6,
                       label="regarding m (light)"),
                Line2D([], [], linestyle="none", marker="o", color=_darker("#777777"), markersize=6,
                       label="regarding all (dark)")]
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6), fontsize=8,
                  frameon=False)
    n_seeds = _n_seeds(results[results["quantity"].isin(MEASURE_QUANTITIES)])
    notes = [f"mean over {n_seeds} seed{'s' if n_seeds != 1 else ''} of each seed's window mean" if n_seeds
             else "no measure evaluations"]
    if n_seeds and n_seeds > 1:
        if band == "sd" and len(log_rows) == len(families):
            notes.append("error bars: min–max over seeds")
        else:
            notes.append("error bars: " + ("±1 sd" if band == "sd" else "min–max") + " over seeds"
                         + (" (min–max on log-scale rows)" if band == "sd" and log_rows else ""))
    if log_rows:
        notes.append("log scale: " + ", ".join(log_rows.values()))
    _suptitle(figure, "Fig. 5 — measures averaged over epoch windows", notes)
    return figure


def fig6_per_modality(results: pd.DataFrame, *, schedules=None, modalities=None, colours=None, band="sd",
                      windows=None) -> Figure:
    """Fig. 6 (appendix A.1): for every modality two rows, single modality error then loss
    of precision, against epoch; a column per schedule; regarding all is the darker line.
    The y-axis is shared along each row so schedules compare directly."""
    results = normalised_results(results)
    schedules, colours = _resolve(schedules, colours, results)
    modalities = list(modalities) if modalities is not None else modality_order(results)
    measures = results[results["quantity"].isin(MEASURE_QUANTITIES)]
    summary = seed_summary(measures, ["schedule", "quantity", "scope", "modality"], "value", band)
    families = [("single_modality_error", "SME"), ("loss_of_precision", "LoP")]
    n_rows = max(2 * len(modalities), 1)
    figure, axes = _new_figure(n_rows, max(len(schedules), 1), (3.0, 1.7), sharey="row")
    curve_of = _by_keys(summary, ["schedule", "quantity", "scope", "modality"])
    thinned = False
    if not modalities:
        _say_no_data(axes[0, 0], "no measure evaluations")
    for m_index, modality in enumerate(modalities):
        for f_index, (quantity, short) in enumerate(families):
            row = 2 * m_index + f_index
            for col, name in enumerate(schedules):
                ax = axes[row, col]
                _shade_windows(ax, windows)
                own = curve_of(name, quantity, "modality", modality)
                every = curve_of(name, quantity, "all", modality)
                if own.empty and every.empty:
                    _say_no_data(ax)
                thinned |= _plot_curve(ax, own, _lighter(colours[name]))
                thinned |= _plot_curve(ax, every, _darker(colours[name]))
                if row == 0:
                    ax.set_title(name, fontsize=9, color=colours[name])
                if col == 0:
                    ax.set_ylabel(f"{modality}\n{short} (nats)", fontsize=8)
    for ax in axes[-1, :]:
        ax.set_xlabel("epoch")
    _share_epoch_axis(axes, measures)
    handles = [Line2D([], [], color=_lighter("#777777"), linewidth=2, label="regarding the modality (light)"),
               Line2D([], [], color=_darker("#777777"), linewidth=2, label="regarding all (dark)")]
    figure.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    _title(figure, "Fig. 6 — measures per modality (two rows each: SME, LoP)", band, _n_seeds(measures), thinned)
    return figure


def active_unit_counts(diagnostics: pd.DataFrame) -> pd.DataFrame:
    """Number of active latent units per (schedule, seed, model, epoch)."""
    keys = [k for k in ("schedule", "seed", "model", "epoch") if k in diagnostics]
    counts = diagnostics.assign(active=diagnostics["active"].astype(float)).groupby(keys, sort=True)["active"].sum()
    return counts.reset_index(name="active_units")


def fig_active_units(diagnostics: pd.DataFrame, *, schedules=None, colours=None, band="sd", windows=None) -> Figure:
    """Active latent units (diagnostics) per schedule against epoch, one axes."""
    schedules, colours = _resolve(schedules, colours, diagnostics)
    counts = active_unit_counts(diagnostics)
    summary = seed_summary(counts, ["schedule"], "active_units", band)
    figure, axes = _new_figure(1, 1, (7.0, 3.0))
    ax = axes[0, 0]
    _shade_windows(ax, windows)
    thinned = False
    for name in schedules:
        thinned |= _plot_curve(ax, summary[summary["schedule"] == name], colours[name], label=name)
    if summary.empty:
        _say_no_data(ax)
    else:
        ax.legend(fontsize=8, frameon=False)
    ax.set_xlabel("epoch")
    ax.set_ylabel("active latent units")
    if "latent_dim" in diagnostics and len(diagnostics):
        ax.set_ylim(-0.5, diagnostics["latent_dim"].nunique() + 0.5)
    _title(figure, "Active latent units", band, _n_seeds(counts), thinned)
    return figure


# --------------------------------------------------------------------------- saving
def figure_paths(run_dir: str | Path, diagnostics: bool = False) -> dict[str, tuple[Path, Path]]:
    """Where :func:`write_figures` puts each figure: stem -> (PNG path, SVG path)."""
    folder = Path(run_dir) / "figures"
    stems = list(FIGURES) + ([ACTIVE_UNITS_FIGURE] if diagnostics else [])
    return {stem: (folder / f"{stem}.png", folder / f"{stem}.svg") for stem in stems}


def _save(figure: Figure, png: Path, svg: Path) -> None:
    # Fixed hash salt and no date make SVGs byte-identical across reruns (clean diffs);
    # text stays text in the SVG so it is small and searchable.
    with matplotlib.rc_context({"svg.hashsalt": "intermodal", "svg.fonttype": "none"}):
        figure.savefig(png, dpi=DPI, metadata={"Software": None})
        # The constrained layout solved while drawing the PNG holds for the SVG too; freezing
        # it saves a second solve, which dominates the time on figures with many panels.
        figure.set_layout_engine("none")
        figure.savefig(svg, metadata={"Date": None})
    figure.clear()


def write_figures(run_dir: str | Path, band: str = "sd") -> list[Path]:
    """Draw the six figures (and the active-units figure if the run has diagnostics) from a
    run folder and save each as PNG and SVG into ``RUN/figures/``; returns the paths."""
    run = load_run(run_dir)
    schedules = schedule_order(run.history, run.results, config=run.config)
    colours = schedule_colours(schedules)
    modalities = modality_order(run.results)
    windows = resolve_windows(run.config, run.history, run.results)
    paths = figure_paths(run.run_dir, diagnostics=run.diagnostics is not None)
    next(iter(paths.values()))[0].parent.mkdir(parents=True, exist_ok=True)
    common = {"schedules": schedules, "colours": colours}
    makers = {
        "fig1_schedules": lambda: fig1_schedules(run.history, windows=windows, **common),
        "fig2_losses": lambda: fig2_losses(run.history, run.results, band=band, windows=windows, **common),
        "fig3_baseline": lambda: fig3_baseline(run.results, band=band, windows=windows, **common),
        "fig4_measures": lambda: fig4_measures(run.results, modalities=modalities, band=band, windows=windows,
                                               **common),
        "fig5_window_means": lambda: fig5_window_means(run.results, windows, modalities=modalities, band=band,
                                                       **common),
        "fig6_per_modality": lambda: fig6_per_modality(run.results, modalities=modalities, band=band,
                                                       windows=windows, **common),
    }
    if run.diagnostics is not None:
        diagnostic_schedules = schedule_order(run.diagnostics, config=run.config)
        makers[ACTIVE_UNITS_FIGURE] = lambda: fig_active_units(
            run.diagnostics, schedules=diagnostic_schedules, colours=colours, band=band, windows=windows)
    written: list[Path] = []
    for stem, make in makers.items():
        png, svg = paths[stem]
        _save(make(), png, svg)
        written += [png, svg]
    return written
