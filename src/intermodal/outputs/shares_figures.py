"""The lattice of modalities in the outputs: the Shapley shares of the baseline and the
interactions of two parts (the catalogue's ``share`` and ``interaction`` rows of a results
table), drawn from the last epoch that has share rows.

* :func:`fig_shares`: each part's share of the baseline regarding all, one panel per condition
  (fusion × schedule), bars = mean over seeds with the band over seeds;
* :func:`fig_who_informs_whom`: a heat map per condition, rows = source part, columns = target
  modality, colour = the mean over seeds of the source's share regarding the target;
* :func:`ranked_interactions`: the strongest redundancies (interaction < 0) and synergies
  (> 0) regarding all, ranked by size, with their interval over seeds;
* :func:`shares_section`: the report's section, present only when the results have shares.

Like :mod:`intermodal.outputs.figures`, functions of DataFrames; a run of several fusions is
passed through :func:`~intermodal.evaluation.summaries.by_condition` first, so that a
condition is the ``schedule`` column ("schedule [fusion]"). Figures are saved, as the others,
by the report (PNG and SVG in ``RUN/figures``), under the stems of :data:`SHARE_FIGURES`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..evaluation import catalogue
from ..evaluation.findings import format_number
from ..evaluation.statistics import summarise
from ..evaluation.summaries import BAND_DESCRIPTIONS, normalised_results, schedule_order, seed_summary
from .plotting import new_figure, say_no_data, schedules_and_colours, title_with_notes

__all__ = [
    "SHARES_FIGURE",
    "WHO_INFORMS_WHOM_FIGURE",
    "SHARE_FIGURES",
    "SHARES_SECTION_TITLE",
    "has_shares",
    "last_share_rows",
    "who_informs_whom",
    "ranked_interactions",
    "fig_shares",
    "fig_who_informs_whom",
    "draw_share_figures",
    "shares_section",
]

SHARES_FIGURE = "shares_all"
WHO_INFORMS_WHOM_FIGURE = "shares_who_informs_whom"
# File stem and caption of each figure of the lattice (not one of the paper's figures).
SHARE_FIGURES: dict[str, str] = {
    SHARES_FIGURE: (
        "Shares of the baseline regarding all: each part's Shapley share of what muting every column removes, "
        "one panel per condition, at the last epoch with shares; the shares of a condition add up to its baseline."
    ),
    WHO_INFORMS_WHOM_FIGURE: (
        "Who informs whom: the share of each source part (rows) in the baseline regarding each target modality's "
        "columns (columns), mean over seeds, one panel per condition, one colour scale for all."
    ),
}
SHARES_SECTION_TITLE = "Shares of the baseline (the lattice of modalities)"
# The ranked table shows at most this many interactions per condition.
TOP_INTERACTIONS = 10


# --------------------------------------------------------------------------- tables
def has_shares(results: pd.DataFrame | None) -> bool:
    """Whether a results table has any share row."""
    return results is not None and len(results) > 0 and bool((results["quantity"] == catalogue.SHARE).any())


def last_share_rows(results: pd.DataFrame) -> tuple[pd.DataFrame, int | None]:
    """The share and interaction rows at the last epoch that has share rows, and that epoch
    (None, and no rows, where the table has no share row)."""
    results = normalised_results(results)
    lattice = results[results["quantity"].isin(catalogue.names("lattice"))]
    shares = lattice[lattice["quantity"] == catalogue.SHARE]
    if shares.empty:
        return lattice.iloc[0:0], None
    epoch = int(shares["epoch"].max()) if "epoch" in shares else None
    if epoch is None:  # a table of one evaluation (as `intermodal measure` gives) has no epoch
        return lattice, None
    return lattice[lattice["epoch"] == epoch], epoch


def _parts(rows: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The source parts and the target modalities in order of first appearance."""
    shares = rows[rows["quantity"] == catalogue.SHARE]
    sources = [str(m) for m in pd.unique(shares["modality"])]
    targets = [str(s) for s in pd.unique(shares["scope"]) if s != "all"]
    return sources, targets


def who_informs_whom(results: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per condition (the ``schedule`` column): a source × target table of the mean over
    seeds of the share with scope = target, at the last epoch with shares (NaN where a pair
    has no row)."""
    rows, _ = last_share_rows(results)
    sources, targets = _parts(rows)
    rows = rows[(rows["quantity"] == catalogue.SHARE) & (rows["scope"] != "all")]
    out = {}
    for condition in schedule_order(rows):
        mine = rows[rows["schedule"].astype(str) == condition]
        means = mine.groupby(["modality", "scope"], sort=False)["value"].mean()
        out[condition] = means.unstack("scope").reindex(index=sources, columns=targets).rename_axis("source")
    return out


def ranked_interactions(results: pd.DataFrame, limit: int | None = TOP_INTERACTIONS) -> pd.DataFrame:
    """The interactions regarding all at the last epoch with shares, per condition ranked by
    size (largest |mean| first; at most ``limit`` per condition): columns ``schedule`` (the
    condition), ``pair``, ``kind`` ("synergy" > 0, "redundancy" < 0, "none"), ``mean``,
    ``sd``, ``low``, ``high`` (the 95% t interval of the mean over seeds), ``n_seeds`` and
    ``standard_error`` (the mean over seeds of the Monte Carlo error; 0 when exact)."""
    rows, _ = last_share_rows(results)
    rows = rows[(rows["quantity"] == catalogue.INTERACTION) & (rows["scope"] == "all")]
    columns = ["schedule", "pair", "kind", "mean", "sd", "low", "high", "n_seeds", "standard_error"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    stats = summarise(rows, ["schedule", "modality"], "value").rename(columns={"modality": "pair"})
    if "standard_error" in rows:
        errors = rows.groupby(["schedule", "modality"], sort=False)["standard_error"].mean()
        stats["standard_error"] = [float(errors.get((s, p), 0.0)) for s, p in zip(stats["schedule"], stats["pair"])]
    else:
        stats["standard_error"] = 0.0
    stats["kind"] = np.where(stats["mean"] > 0, "synergy", np.where(stats["mean"] < 0, "redundancy", "none"))
    order = {c: i for i, c in enumerate(schedule_order(rows))}
    stats = stats.assign(_order=stats["schedule"].map(order), _size=-stats["mean"].abs())
    stats = stats.sort_values(["_order", "_size"], kind="stable")
    if limit is not None:
        stats = stats.groupby("schedule", sort=False).head(limit)
    return stats[columns].reset_index(drop=True)


# --------------------------------------------------------------------------- figures
def _band_notes(epoch: int | None, n_seeds: int, band: str) -> list[str]:
    notes = [f"epoch {epoch}" if epoch is not None else "one evaluation"]
    notes.append(f"mean over {n_seeds} seed{'s' if n_seeds != 1 else ''}")
    if n_seeds > 1:
        notes.append(BAND_DESCRIPTIONS[band].replace("band", "error bars"))
    return notes


def fig_shares(results: pd.DataFrame, *, schedules=None, colours=None, band: str = "ci") -> Figure:
    """Each part's share of the baseline regarding all: a panel per condition, a bar per part
    (mean over seeds) with the band over seeds as error bars; the y-axis is shared."""
    rows, epoch = last_share_rows(results)
    rows = rows[(rows["quantity"] == catalogue.SHARE) & (rows["scope"] == "all")]
    schedules, colours = schedules_and_colours(schedules, colours, rows)
    sources, _ = _parts(rows)
    summary = seed_summary(
        rows.assign(epoch=epoch if epoch is not None else 0), ["schedule", "modality"], "value", band
    )
    figure, axes = new_figure(1, max(len(schedules), 1), (max(2.6, 0.45 * len(sources) + 1.0), 2.8), sharey=True)
    x = np.arange(len(sources), dtype=float)
    for ax, name in zip(axes[0], schedules or [None]):
        mine = summary[summary["schedule"] == name].set_index("modality").reindex(sources)
        if name is None or mine["mean"].isna().all():
            say_no_data(ax, "no shares")
            continue
        mean = mine["mean"].to_numpy(float)
        spread = np.vstack([mean - mine["low"].to_numpy(float), mine["high"].to_numpy(float) - mean])
        ax.bar(x, mean, color=colours[name], alpha=0.8)
        if (mine["n_seeds"] > 1).any():
            ax.errorbar(x, mean, yerr=np.nan_to_num(np.clip(spread, 0, None)), fmt="none", color="k", capsize=2, lw=0.9)
        ax.axhline(0.0, color="0.4", linewidth=0.6)
        ax.set_xticks(x, sources, fontsize=8, rotation=30 if len(sources) > 4 else 0)
        ax.set_title(name, fontsize=9, color=colours[name])
    axes[0, 0].set_ylabel(catalogue.with_unit(catalogue.SHARE, "all", short=True))
    n_seeds = int(rows.groupby("schedule")["seed"].nunique().max()) if len(rows) else 0
    title_with_notes(figure, "Shares of the baseline regarding all", _band_notes(epoch, n_seeds, band))
    return figure


def fig_who_informs_whom(results: pd.DataFrame, *, schedules=None) -> Figure:
    """A heat map per condition: rows = source part, columns = target modality, colour = the
    mean over seeds of the share regarding the target (:func:`who_informs_whom`), one colour
    scale for every panel (diverging around 0 where a share is negative)."""
    matrices = who_informs_whom(results)
    rows, epoch = last_share_rows(results)
    schedules = list(schedules) if schedules is not None else list(matrices)
    schedules = [s for s in schedules if s in matrices] or list(matrices)
    sources, targets = _parts(rows)
    width = max(2.8, 0.55 * len(targets) + 1.6)
    figure, axes = new_figure(1, max(len(schedules), 1), (width, max(2.4, 0.4 * len(sources) + 1.2)))
    values = np.concatenate([m.to_numpy(float).ravel() for m in matrices.values()]) if matrices else np.array([])
    values = values[np.isfinite(values)]
    low, high = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    if low < 0:  # a negative share: a diverging scale with 0 in the middle
        limit = max(-low, high, 1e-12)
        cmap, vmin, vmax = "RdBu_r", -limit, limit
    else:
        cmap, vmin, vmax = "viridis", 0.0, max(high, 1e-12)
    image = None
    for ax, name in zip(axes[0], schedules or [None]):
        if name is None or not targets:
            say_no_data(ax, "no shares regarding a target")
            continue
        matrix = matrices[name].to_numpy(float)
        image = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
        ax.set_xticks(np.arange(len(targets)), targets, fontsize=8, rotation=30 if len(targets) > 4 else 0)
        ax.set_yticks(np.arange(len(sources)), sources, fontsize=8)
        ax.set_xlabel("target (regarding)", fontsize=8)
        ax.set_title(name, fontsize=9)
        if matrix.size <= 144:  # numbers in the cells while they fit
            middle = (vmin + vmax) / 2
            for (i, j), v in np.ndenumerate(matrix):
                if np.isfinite(v):
                    colour = "white" if (v < middle if cmap == "viridis" else abs(v) > 0.6 * vmax) else "black"
                    ax.text(j, i, format_number(v), ha="center", va="center", fontsize=7, color=colour)
    axes[0, 0].set_ylabel("source", fontsize=9)
    if image is not None:
        figure.colorbar(image, ax=axes[0, :].tolist(), shrink=0.8, label=catalogue.with_unit(catalogue.SHARE))
    n_seeds = int(rows.groupby("schedule")["seed"].nunique().max()) if len(rows) else 0
    notes = [f"epoch {epoch}" if epoch is not None else "one evaluation", f"mean over {n_seeds} seeds"]
    title_with_notes(figure, "Who informs whom: shares of the baseline regarding each target", notes)
    return figure


def draw_share_figures(results: pd.DataFrame, *, schedules=None, colours=None, band: str = "ci") -> dict[str, Figure]:
    """The lattice's figures by stem (:data:`SHARE_FIGURES`), none for results without
    share rows; ``results`` with conditions as schedules (see the module docstring)."""
    if not has_shares(results):
        return {}
    return {
        SHARES_FIGURE: fig_shares(results, schedules=schedules, colours=colours, band=band),
        WHO_INFORMS_WHOM_FIGURE: fig_who_informs_whom(results, schedules=schedules),
    }


# --------------------------------------------------------------------------- report
def _cell(row) -> str:
    text = format_number(row["mean"])
    if np.isfinite(row["sd"]):
        text += f" ± {format_number(row['sd'])}"
    if np.isfinite(row["low"]) and np.isfinite(row["high"]):
        text += f" [{format_number(row['low'])}, {format_number(row['high'])}]"
    return text


def _ranked_frame(ranked: pd.DataFrame) -> pd.DataFrame:
    """The ranked interactions as the report prints them."""
    frame = pd.DataFrame(
        {
            "condition": ranked["schedule"],
            "pair": ranked["pair"].str.replace(catalogue.PAIR_JOIN, " & ", regex=False),
            "kind": ranked["kind"],
            catalogue.with_unit(catalogue.INTERACTION): [_cell(r) for _, r in ranked.iterrows()],
            "seeds": ranked["n_seeds"].astype(int),
        }
    )
    if (ranked["standard_error"] > 0).any():
        frame["Monte Carlo error"] = [format_number(e) for e in ranked["standard_error"]]
    return frame


def _muting_sentence(config) -> str:
    muting = getattr(config, "muting", "patterns") if config is not None else None
    if muting is None:
        return "Which muting this run trained with is not recorded."
    if muting == "subsets":
        return (
            'This run trained with muting = "subsets": random subsets of the modalities, so every vertex of the '
            "lattice was taught."
        )
    return (
        f'This run trained with muting = "{muting}", the data set\'s muting patterns; a run with muting = "subsets" '
        "(random subsets of the modalities, every vertex taught) shows how much these shares depend on that."
    )


def shares_section(results: pd.DataFrame, paths: dict, config=None) -> dict | None:
    """The report's section on the lattice: None for results without share rows; else a dict
    with id, title, paragraphs, tables (title, frame) and figures (stem, png path, caption),
    as the report's other extra sections. ``results`` with conditions as schedules; ``paths``:
    stem -> (PNG, SVG) of the run's figures; ``config``: the run's config, for its muting."""
    if not has_shares(results):
        return None
    _, epoch = last_share_rows(results)
    ranked = ranked_interactions(results)
    paragraphs = [
        "Each part's Shapley share of the baseline: the average, over the orders in which the parts can be muted "
        "one after another, of what muting that part removes from the output (nats). The shares add up to the "
        "baseline, regarding all columns or regarding one target modality's columns (who informs whom). An "
        "interaction of two parts above 0 is a synergy (together they remove more than apart), below 0 a "
        "redundancy (each carries what the other does)."
        + (f" Values at epoch {epoch}, the last evaluation with shares." if epoch is not None else ""),
        "A caveat: the shares mute every subset of the parts, and most subsets of the modalities are inputs the "
        "training never showed — Zambelli's muting patterns teach only a few vertices of the lattice, and the "
        "model's output for the others is an extrapolation. " + _muting_sentence(config),
    ]
    tables = []
    if len(ranked):
        tables.append(
            {
                "title": "The strongest redundancies and synergies (regarding all)",
                "frame": _ranked_frame(ranked),
            }
        )
    else:
        paragraphs.append("No interactions regarding all at that epoch.")
    figures = [
        {"stem": stem, "png": paths[stem][0], "caption": caption}
        for stem, caption in SHARE_FIGURES.items()
        if stem in paths
    ]
    return {
        "id": "shares",
        "title": SHARES_SECTION_TITLE,
        "paragraphs": paragraphs,
        "tables": tables,
        "figures": figures,
    }
