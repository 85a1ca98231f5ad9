"""The study's figures (docs/method.md §7): drawing only.

Every figure function takes DataFrames (the tables of :mod:`intermodal.training.runfolder`) and
returns a :class:`matplotlib.figure.Figure`, named after the paper's figure it reproduces
(``fig4_losses`` draws the paper's Fig. 4). :func:`draw_figures` draws all of a run's;
:func:`save_figure` writes one as PNG and SVG, atomically. Reading the run folder is
:mod:`intermodal.training.runfolder`'s job; the report writes the files.

Curves are the mean over seeds; the band around each is the 95% interval of that mean
(Student's t over seeds, ``band="ci"``, the default), ±1 standard deviation over seeds
(``band="sd"``) or the seeds' minimum to maximum (``band="minmax"``). A schedule
with a single seed gets no band. Modalities are never assumed: their names and order come
from the results table (order of first appearance).

Figures are built on :class:`~matplotlib.figure.Figure` with the Agg canvas directly rather
than through ``pyplot``, so drawing them never touches the user's interactive backend and
nothing is left open in pyplot's figure registry.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..errors import ConfigError
from ..evaluation import catalogue
from ..evaluation.catalogue import label_of, with_unit
from ..evaluation.summaries import (
    MEASURE_QUANTITIES,
    active_unit_counts,
    by_condition,
    fusions_of,
    modality_order,
    normalised_results,
    resolve_windows,
    schedule_order,
    seed_summary,
    window_label,
    window_means,
)
from ..training.runfolder import Run, read_run
from .plotting import (
    MAX_POINTS_PER_CURVE,
    SCHEDULE_MARKERS,
    darker,
    figure_title,
    lighter,
    lookup_by_keys,
    modality_style,
    new_figure,
    plot_curve,
    say_no_data,
    schedule_colours,
    schedules_and_colours,
    seed_count,
    shade_windows,
    share_epoch_axis,
    title_with_notes,
)
from .shares_figures import draw_share_figures

__all__ = [
    "FIGURES",
    "MEASURES",
    "ACTIVE_UNITS_FIGURE",
    "ACTIVE_UNITS_CAPTION",
    "FUSIONS_FIGURE",
    "FUSIONS_CAPTION",
    "fig_fusions",
    "schedule_colours",
    "fig2_schedules",
    "fig4_losses",
    "fig5_baseline",
    "fig6_measures",
    "fig7_window_means",
    "figA1_per_modality",
    "fig_active_units",
    "draw_figures",
]

# File stem and caption of each figure, in the order of docs/method.md §7.
FIGURES: dict[str, str] = {
    "fig2_schedules": "KL weight β against epoch, one panel per schedule (paper Fig. 2).",
    "fig4_losses": (
        "Prediction error, reconstruction loss, latent loss and weighted loss against epoch; "
        "a column per schedule (paper Fig. 4)."
    ),
    "fig5_baseline": "Baseline (everything muted, regarding all) against epoch per schedule (paper Fig. 5).",
    "fig6_measures": (
        "The four measures per modality: columns = measures, rows = schedules, one line per modality (paper Fig. 6)."
    ),
    "fig7_window_means": (
        "Measures averaged over two epoch windows, modality on the x-axis, one marker per schedule; "
        "light = regarding the modality itself, dark = regarding all (paper Fig. 7)."
    ),
    "figA1_per_modality": (
        "Per modality, single modality error and loss of precision against epoch; "
        "light = regarding the modality itself, dark = regarding all (paper appendix A.1)."
    ),
}
ACTIVE_UNITS_FIGURE = "active_units"
FUSIONS_FIGURE = "fusions_measures"
FUSIONS_CAPTION = (
    "The fusions side by side: single modality error and loss of precision regarding all per modality over the "
    "last window, one marker per fusion, a column per schedule (not one of the paper's figures)."
)
ACTIVE_UNITS_CAPTION = "Active latent units per schedule against epoch (diagnostics; not one of the paper's figures)."

# (quantity, scope, short label, long label) of the four measures, in the paper's order
# (the catalogue's): "SME regarding m", "single modality error, regarding m", ...
MEASURES: list[tuple[str, str, str, str]] = [
    (quantity, scope, label_of(quantity, scope, short=True), label_of(quantity, scope))
    for quantity in MEASURE_QUANTITIES
    for scope in catalogue.measure(quantity).scopes
]


# --------------------------------------------------------------------------- figures
def fig2_schedules(history: pd.DataFrame, *, schedules=None, colours=None, windows=None) -> Figure:
    """Paper Fig. 2: β against epoch, one panel per schedule (shared epoch axis)."""
    schedules, colours = schedules_and_colours(schedules, colours, history)
    figure, axes = new_figure(max(len(schedules), 1), 1, (7.5, 1.5), sharey=True)
    # β is the same for every seed of a schedule, so the seed summary has no band.
    summary = seed_summary(history, ["schedule"], "beta")
    thinned = False
    for ax, name in zip(axes[:, 0], schedules or [None]):
        shade_windows(ax, windows)
        curve = summary[summary["schedule"] == name] if name is not None else summary.iloc[0:0]
        if curve.empty:
            say_no_data(ax, "no β in history")
        thinned |= plot_curve(ax, curve, colours.get(name, "k"), linewidth=1.2)
        ax.set_ylabel("β")
        if name is not None:
            ax.set_title(name, fontsize=9, loc="left", color=colours[name])
    top = float(summary["mean"].max()) if len(summary) else 1.0
    axes[0, 0].set_ylim(-0.05, max(1.05, 1.05 * top))
    axes[-1, 0].set_xlabel("epoch")
    share_epoch_axis(axes, history)
    notes = ["one panel per schedule"]
    if windows:
        notes.append("grey: averaging windows of Fig. 7")
    if thinned:
        notes.append(f"dense curves: means over ≤{MAX_POINTS_PER_CURVE} epoch bins, fill = range within a bin")
    title_with_notes(figure, "Fig. 2 — KL weight schedules", notes)
    return figure


def fig4_losses(
    history: pd.DataFrame, results: pd.DataFrame, *, schedules=None, colours=None, band="ci", windows=None
) -> Figure:
    """Paper Fig. 4: prediction error (results) and reconstruction, latent and weighted loss
    (history) against epoch; a column per schedule, a row per quantity, y shared per row."""
    results = normalised_results(results)
    schedules, colours = schedules_and_colours(schedules, colours, history, results)
    quantities = [
        (
            label_of(catalogue.PREDICTION_ERROR),
            seed_summary(results[results["quantity"] == catalogue.PREDICTION_ERROR], ["schedule"], "value", band),
        ),
        (
            label_of(catalogue.RECONSTRUCTION_LOSS),
            seed_summary(history, ["schedule"], catalogue.RECONSTRUCTION_LOSS, band),
        ),
        (with_unit(catalogue.LATENT_LOSS), seed_summary(history, ["schedule"], catalogue.LATENT_LOSS, band)),
        (label_of(catalogue.LOSS), seed_summary(history, ["schedule"], catalogue.LOSS, band)),
    ]
    figure, axes = new_figure(len(quantities), max(len(schedules), 1), (3.0, 1.9), sharey="row")
    thinned = False
    for col, name in enumerate(schedules or [None]):
        for row, (label, summary) in enumerate(quantities):
            ax = axes[row, col]
            shade_windows(ax, windows)
            curve = summary[summary["schedule"] == name] if name is not None else summary.iloc[0:0]
            if curve.empty:
                say_no_data(ax)
            thinned |= plot_curve(ax, curve, colours.get(name, "k"))
            if col == 0:
                ax.set_ylabel(label, fontsize=9)
            if row == 0 and name is not None:
                ax.set_title(name, fontsize=9, color=colours[name])
        axes[-1, col].set_xlabel("epoch")
    share_epoch_axis(axes, history, results)
    figure_title(figure, "Fig. 4 — prediction error and the loss terms", band, seed_count(history, results), thinned)
    return figure


def fig5_baseline(results: pd.DataFrame, *, schedules=None, colours=None, band="ci", windows=None) -> Figure:
    """Paper Fig. 5: the baseline (everything muted, regarding all) against epoch, a panel per
    schedule with a shared y-axis so the schedules' levels compare directly."""
    results = normalised_results(results)
    schedules, colours = schedules_and_colours(schedules, colours, results)
    baseline = results[results["quantity"] == catalogue.BASELINE]
    summary = seed_summary(baseline, ["schedule"], "value", band)
    figure, axes = new_figure(1, max(len(schedules), 1), (3.0, 2.4), sharey="row")
    thinned = False
    for col, name in enumerate(schedules or [None]):
        ax = axes[0, col]
        shade_windows(ax, windows)
        curve = summary[summary["schedule"] == name] if name is not None else summary.iloc[0:0]
        if curve.empty:
            say_no_data(ax, "no baseline evaluations")
        thinned |= plot_curve(ax, curve, colours.get(name, "k"))
        if name is not None:
            ax.set_title(name, fontsize=9, color=colours[name])
        ax.set_xlabel("epoch")
    axes[0, 0].set_ylabel(with_unit(catalogue.BASELINE))
    share_epoch_axis(axes, baseline)
    figure_title(figure, "Fig. 5 — baseline", band, seed_count(baseline), thinned)
    return figure


def fig6_measures(
    results: pd.DataFrame, *, schedules=None, modalities=None, band="ci", windows=None, colours=None
) -> Figure:
    """Paper Fig. 6: the four measures; columns = measures, rows = schedules, a line per modality.
    The y-axis is shared within a schedule's row so its measures compare directly."""
    results = normalised_results(results)
    schedules, colours = schedules_and_colours(schedules, colours, results)
    modalities = list(modalities) if modalities is not None else modality_order(results)
    measures = results[results["quantity"].isin(MEASURE_QUANTITIES)]
    summary = seed_summary(measures, ["schedule", "quantity", "scope", "modality"], "value", band)
    figure, axes = new_figure(max(len(schedules), 1), len(MEASURES), (3.0, 2.0), sharey="row")
    curve_of = lookup_by_keys(summary, ["schedule", "quantity", "scope", "modality"])
    thinned = False
    for row, name in enumerate(schedules or [None]):
        for col, (quantity, scope, short, _) in enumerate(MEASURES):
            ax = axes[row, col]
            shade_windows(ax, windows)
            curves = [curve_of(name, quantity, scope, modality) for modality in modalities]
            if all(c.empty for c in curves):
                say_no_data(ax)
            for index, (modality, curve) in enumerate(zip(modalities, curves)):
                style = modality_style(index)
                thinned |= plot_curve(ax, curve, style["color"], label=modality, linestyle=style["linestyle"])
            if row == 0:
                ax.set_title(short, fontsize=9)
            if col == 0:
                ax.set_ylabel(f"{name}\n(nats)" if name is not None else "", fontsize=9, color=colours.get(name, "k"))
    for ax in axes[-1, :]:
        ax.set_xlabel("epoch")
    share_epoch_axis(axes, measures)
    handles = [Line2D([], [], label=m, linewidth=1.6, **modality_style(i)) for i, m in enumerate(modalities)]
    if handles:
        figure.legend(
            handles=handles,
            loc="outside lower center",
            ncols=min(len(handles), 8),
            fontsize=9,
            title="modality",
            title_fontsize=9,
            frameon=False,
        )
    figure_title(
        figure,
        "Fig. 6 — single modality error (SME) and loss of precision (LoP) per modality",
        band,
        seed_count(measures),
        thinned,
    )
    return figure


def fig7_window_means(
    results: pd.DataFrame, windows=None, *, schedules=None, modalities=None, colours=None, band="ci", yscale="auto"
) -> Figure:
    """Paper Fig. 7: measures averaged over each window; rows = SME / LoP, columns = windows,
    modality on the x-axis, a marker per schedule; regarding all is the darker marker.
    Error bars: ±1 sd (or min–max) over seeds of each seed's window mean.

    ``yscale``: "linear", "log", or "auto" (log when a row's positive means span more than
    three decades, as when one schedule's measures dwarf a collapsed one's)."""
    if yscale not in ("auto", "linear", "log"):
        raise ConfigError(f"yscale must be 'auto', 'linear' or 'log', not {yscale!r}")
    results = normalised_results(results)
    schedules, colours = schedules_and_colours(schedules, colours, results)
    modalities = list(modalities) if modalities is not None else modality_order(results)
    if windows is None:
        windows = resolve_windows(None, results=results)
    windows = list(windows)
    means = window_means(results, windows, MEASURE_QUANTITIES)
    families = [(quantity, with_unit(quantity)) for quantity in MEASURE_QUANTITIES]
    figure, axes = new_figure(2, max(len(windows), 1), (max(3.6, 0.75 * len(modalities) + 1.2), 2.6), sharey="row")
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
                say_no_data(ax, f"no evaluations in {window_label(window)}")
                continue
            for s_index, name in enumerate(schedules):
                marker = SCHEDULE_MARKERS[s_index % len(SCHEDULE_MARKERS)]
                for scope, shade in (("modality", lighter(colours[name])), ("all", darker(colours[name]))):
                    rows = inside[(inside["schedule"] == name) & (inside["scope"] == scope)].set_index("modality")
                    rows = rows.reindex(modalities)
                    mean = rows["mean"].to_numpy(float)
                    # On a log axis mean − sd (or the interval's low end) is often ≤ 0 and would
                    # draw a bar to the axis edge; the seeds' min–max stays positive, so log
                    # rows use it.
                    if band in ("sd", "ci") and row not in log_rows:
                        spread = rows["sd"] if band == "sd" else rows["high"] - rows["mean"]
                        low = high = spread.fillna(0.0).to_numpy(float)
                    else:
                        low = mean - rows["min"].to_numpy(float)
                        high = rows["max"].to_numpy(float) - mean
                    ax.errorbar(
                        x + offsets[s_index],
                        mean,
                        yerr=np.vstack([low, high]),
                        fmt=marker,
                        color=shade,
                        markersize=5,
                        elinewidth=0.9,
                        capsize=2,
                        markeredgecolor=darker(colours[name], 0.5),
                        markeredgewidth=0.5,
                    )
    handles = [
        Line2D(
            [],
            [],
            linestyle="none",
            marker=SCHEDULE_MARKERS[i % len(SCHEDULE_MARKERS)],
            color=colours[name],
            markersize=6,
            label=name,
        )
        for i, name in enumerate(schedules)
    ]
    handles += [
        Line2D(
            [], [], linestyle="none", marker="o", color=lighter("#777777"), markersize=6, label="regarding m (light)"
        ),
        Line2D(
            [], [], linestyle="none", marker="o", color=darker("#777777"), markersize=6, label="regarding all (dark)"
        ),
    ]
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6), fontsize=8, frameon=False)
    n_seeds = seed_count(results[results["quantity"].isin(MEASURE_QUANTITIES)])
    notes = [
        f"mean over {n_seeds} seed{'s' if n_seeds != 1 else ''} of each seed's window mean"
        if n_seeds
        else "no measure evaluations"
    ]
    if n_seeds and n_seeds > 1:
        spread_text = {"sd": "±1 sd over seeds", "ci": "95% interval of the mean over seeds"}.get(
            band, "min–max over seeds"
        )
        if band != "minmax" and len(log_rows) == len(families):
            notes.append("error bars: min–max over seeds")
        else:
            notes.append(
                f"error bars: {spread_text}" + (" (min–max on log-scale rows)" if band != "minmax" and log_rows else "")
            )
    if log_rows:
        notes.append("log scale: " + ", ".join(log_rows.values()))
    title_with_notes(figure, "Fig. 7 — measures averaged over epoch windows", notes)
    return figure


def figA1_per_modality(
    results: pd.DataFrame, *, schedules=None, modalities=None, colours=None, band="ci", windows=None
) -> Figure:
    """Paper appendix Fig. A.1: for every modality two rows, single modality error then loss
    of precision, against epoch; a column per schedule; regarding all is the darker line.
    The y-axis is shared along each row so schedules compare directly."""
    results = normalised_results(results)
    schedules, colours = schedules_and_colours(schedules, colours, results)
    modalities = list(modalities) if modalities is not None else modality_order(results)
    measures = results[results["quantity"].isin(MEASURE_QUANTITIES)]
    summary = seed_summary(measures, ["schedule", "quantity", "scope", "modality"], "value", band)
    families = [(quantity, label_of(quantity, short=True)) for quantity in MEASURE_QUANTITIES]
    n_rows = max(2 * len(modalities), 1)
    figure, axes = new_figure(n_rows, max(len(schedules), 1), (3.0, 1.7), sharey="row")
    curve_of = lookup_by_keys(summary, ["schedule", "quantity", "scope", "modality"])
    thinned = False
    if not modalities:
        say_no_data(axes[0, 0], "no measure evaluations")
    for m_index, modality in enumerate(modalities):
        for f_index, (quantity, short) in enumerate(families):
            row = 2 * m_index + f_index
            for col, name in enumerate(schedules):
                ax = axes[row, col]
                shade_windows(ax, windows)
                own = curve_of(name, quantity, "modality", modality)
                every = curve_of(name, quantity, "all", modality)
                if own.empty and every.empty:
                    say_no_data(ax)
                thinned |= plot_curve(ax, own, lighter(colours[name]))
                thinned |= plot_curve(ax, every, darker(colours[name]))
                if row == 0:
                    ax.set_title(name, fontsize=9, color=colours[name])
                if col == 0:
                    ax.set_ylabel(f"{modality}\n{short} (nats)", fontsize=8)
    for ax in axes[-1, :]:
        ax.set_xlabel("epoch")
    share_epoch_axis(axes, measures)
    handles = [
        Line2D([], [], color=lighter("#777777"), linewidth=2, label="regarding the modality (light)"),
        Line2D([], [], color=darker("#777777"), linewidth=2, label="regarding all (dark)"),
    ]
    figure.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    figure_title(
        figure, "Fig. A.1 — measures per modality (two rows each: SME, LoP)", band, seed_count(measures), thinned
    )
    return figure


def fig_active_units(diagnostics: pd.DataFrame, *, schedules=None, colours=None, band="ci", windows=None) -> Figure:
    """Active latent units (diagnostics) per schedule against epoch, one axes."""
    schedules, colours = schedules_and_colours(schedules, colours, diagnostics)
    counts = active_unit_counts(diagnostics)
    summary = seed_summary(counts, ["schedule"], catalogue.ACTIVE_UNITS, band)
    figure, axes = new_figure(1, 1, (7.0, 3.0))
    ax = axes[0, 0]
    shade_windows(ax, windows)
    thinned = False
    for name in schedules:
        thinned |= plot_curve(ax, summary[summary["schedule"] == name], colours[name], label=name)
    if summary.empty:
        say_no_data(ax)
    else:
        ax.legend(fontsize=8, frameon=False)
    ax.set_xlabel("epoch")
    ax.set_ylabel(label_of(catalogue.ACTIVE_UNITS))
    if "latent_dim" in diagnostics and len(diagnostics):
        ax.set_ylim(-0.5, diagnostics["latent_dim"].nunique() + 0.5)
    figure_title(figure, "Active latent units", band, seed_count(counts), thinned)
    return figure


# --------------------------------------------------------------------------- all of them
def draw_figures(run: Run | str | Path, band: str = "ci") -> dict[str, Figure]:
    """Every figure of a run (a run folder's path, one read with ``im.load_run``, or what
    ``im.train`` returned): the six of the paper, and the active units where the run has
    diagnostics, by file stem, drawn from the run's tables alone. ``band``: ``"ci"`` (the 95%
    interval of the mean over seeds, default), ``"sd"`` (±1 sd) or ``"minmax"``. A run with
    the lattice's shares gets :data:`~intermodal.outputs.shares_figures.SHARE_FIGURES` too."""
    if isinstance(run, (str, Path)):
        run = read_run(run)
    raw_config = run.config.to_dict()
    fusions = fusions_of(run.history, run.results, config=raw_config)
    config, (history, results, diagnostics) = by_condition(raw_config, run.history, run.results, run.diagnostics)
    schedules = schedule_order(history, results, config=config)
    colours = schedule_colours(schedules)
    modalities = modality_order(results)
    windows = resolve_windows(config, history, results)
    common = {"schedules": schedules, "colours": colours}
    figures = {
        "fig2_schedules": fig2_schedules(history, windows=windows, **common),
        "fig4_losses": fig4_losses(history, results, band=band, windows=windows, **common),
        "fig5_baseline": fig5_baseline(results, band=band, windows=windows, **common),
        "fig6_measures": fig6_measures(results, modalities=modalities, band=band, windows=windows, **common),
        "fig7_window_means": fig7_window_means(results, windows, modalities=modalities, band=band, **common),
        "figA1_per_modality": figA1_per_modality(results, modalities=modalities, band=band, windows=windows, **common),
    }
    if diagnostics is not None:
        figures[ACTIVE_UNITS_FIGURE] = fig_active_units(
            diagnostics,
            schedules=schedule_order(diagnostics, config=config),
            colours=colours,
            band=band,
            windows=windows,
        )
    if len(fusions) > 1:
        figures[FUSIONS_FIGURE] = fig_fusions(run.results, windows[-1], fusions=fusions, config=raw_config)
    # The lattice's shares, where the results have them (docs/method.md §5d).
    figures.update(draw_share_figures(results, band=band, **common))
    return figures


def fig_fusions(results: pd.DataFrame, window, *, fusions: list[str], config: dict | None = None) -> Figure:
    """The fusions side by side: over the last window, single modality error and loss of
    precision regarding all (rows) per modality (x-axis), one marker per fusion, a column
    per schedule; error bars the 95% interval of the mean over seeds of each seed's window mean."""
    results = normalised_results(results)
    schedules = schedule_order(results, config=config)
    modalities = modality_order(results)
    means = window_means(results, [window], MEASURE_QUANTITIES)
    means = means[means["scope"] == "all"]
    figure, axes = new_figure(2, max(len(schedules), 1), (max(3.4, 0.7 * len(modalities) + 1.2), 2.6), sharey="row")
    x = np.arange(len(modalities), dtype=float)
    offsets = (np.arange(len(fusions)) - (len(fusions) - 1) / 2) * (0.7 / max(len(fusions), 1))
    families = [(quantity, with_unit(quantity, "all", short=True)) for quantity in MEASURE_QUANTITIES]
    for col, schedule in enumerate(schedules):
        for row, (quantity, label) in enumerate(families):
            ax = axes[row, col]
            if row == 0:
                ax.set_title(schedule, fontsize=9)
            if col == 0:
                ax.set_ylabel(label, fontsize=9)
            ax.set_xticks(x, modalities, fontsize=8, rotation=30 if len(modalities) > 6 else 0)
            inside = means[(means["schedule"] == schedule) & (means["quantity"] == quantity)]
            if inside.empty:
                say_no_data(ax, f"no evaluations in {window_label(window)}")
                continue
            for k, fusion in enumerate(fusions):
                rows = inside[inside["fusion"] == fusion].set_index("modality").reindex(modalities)
                style = modality_style(k)
                ax.errorbar(
                    x + offsets[k],
                    rows["mean"].to_numpy(float),
                    yerr=(rows["high"] - rows["mean"]).fillna(0.0).to_numpy(float),
                    fmt=SCHEDULE_MARKERS[k % len(SCHEDULE_MARKERS)],
                    color=style["color"],
                    markersize=5,
                    elinewidth=0.9,
                    capsize=2,
                )
            positive = inside["mean"][inside["mean"] > 0]
            if len(positive) > 1 and positive.max() / positive.min() > 1e3:
                ax.set_yscale("log", nonpositive="clip")
    handles = [
        Line2D([], [], linestyle="none", marker=SCHEDULE_MARKERS[k % len(SCHEDULE_MARKERS)], label=f, **_colour(k))
        for k, f in enumerate(fusions)
    ]
    figure.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)
    title_with_notes(
        figure,
        "Fusions side by side — measures regarding all, per modality",
        [window_label(window), "error bars: 95% interval of the mean over seeds"],
    )
    return figure


def _colour(k: int) -> dict:
    return {"color": modality_style(k)["color"], "markersize": 6}
