"""Several run folders side by side (``intermodal compare RUN_A RUN_B ...``): one tidy table,
one page and one figure per measure with a run per colour.

:func:`compare` reads each run folder (through :mod:`intermodal.training.runfolder`) and
returns a :class:`Comparison`: ``table``, the tidy table (one row per run, fusion, schedule,
window, quantity, modality and scope; mean, sd, 95% interval and seeds over the run's
seeds), ``configs`` (the config keys whose values differ, one column per run), ``findings``
(each run's checks, per fusion), ``notes`` (what cannot be compared, in words) and the
figures. With ``out`` it writes ``out`` (the page, self-contained HTML), the table beside it
(``out`` with suffix ``.parquet`` and ``.csv``) and the figures as PNG and SVG into a folder
beside it (``<stem>_figures``), each file atomically.

Any runs can be compared: different data sets, schedules, seeds, lengths or fusions. A
quantity a run lacks is simply absent from its rows; the notes say which modalities,
schedules and fusions are not shared, and that windows of runs of different lengths cover
different epochs.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..errors import ConfigError
from ..evaluation import catalogue
from ..evaluation.findings import format_number
from ..evaluation.statistics import summarise
from ..evaluation.summaries import (
    active_unit_counts,
    fusions_of,
    in_window,
    modality_order,
    resolve_windows,
    schedule_order,
    window_label,
)
from ..files import atomic_write
from ..training import runfolder
from .figures import MEASURES
from .plotting import new_figure, save_figure, say_no_data
from .report import render_page, run_findings

__all__ = [
    "Comparison",
    "compare",
    "COMPARE_COLUMNS",
    "COMPARED_QUANTITIES",
    "LATTICE_QUANTITIES",
    "comparison_figures",
]

COMPARE_COLUMNS = [
    "run",
    "fusion",
    "schedule",
    "window",
    "start",
    "end",
    "quantity",
    "modality",
    "scope",
    "mean",
    "sd",
    "low",
    "high",
    "n_seeds",
]
# The history's losses, summarised like the measures (quantity = the history column).
LOSSES = catalogue.names("loss")
# The per-model quantities of the figures beyond the four measures (the catalogue's order:
# baseline, prediction error, the losses, active units).
COMPARED_QUANTITIES = catalogue.names(("reference", "prediction", "loss", "diagnostic"))
# The lattice's shares and interactions: in the final values, side by side per run.
LATTICE_QUANTITIES = catalogue.names("lattice")
RUN_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
FINAL = "final"  # the window name of each model's last value


@dataclass
class Comparison:
    """What :func:`compare` found: see the module docstring. ``page`` is the written page's
    path (None without ``out``); ``figures`` maps a stem to its matplotlib Figure."""

    labels: list[str]
    table: pd.DataFrame
    configs: pd.DataFrame
    findings: pd.DataFrame
    notes: list[str]
    figures: dict[str, Figure] = field(default_factory=dict)
    page: Path | None = None


def _labels(runs: list[runfolder.Run], labels: list[str] | None) -> list[str]:
    if labels is not None:
        labels = [str(x) for x in labels]
        if len(labels) != len(runs) or len(set(labels)) != len(labels):
            raise ConfigError(f"labels: expected {len(runs)} distinct names, one per run; got {labels}")
        return labels
    folders = [r.folder_for("compare's default labels (the folders' names; else pass labels)") for r in runs]
    names = [f.resolve().name for f in folders]
    if len(set(names)) == len(names):
        return names
    return [str(f) for f in folders]


def _rows_in(table: pd.DataFrame, keys: list[str], window, window_name: str) -> pd.DataFrame:
    """The rows of ``table`` in ``window``, or each model's last epoch's for ``FINAL``."""
    if window_name == FINAL:
        return table[table["epoch"] == table.groupby(keys)["epoch"].transform("max")]
    return table[in_window(table["epoch"], window)]


def _per_model(run: runfolder.Run, window, window_name: str) -> pd.DataFrame:
    """One value per model and quantity in ``window`` (each model's mean over it; ``FINAL``:
    its last value): the results, the losses and the active units."""
    keys = ["fusion", "schedule", "seed"]
    parts = []
    results = run.results
    if len(results):
        lattice = results["quantity"].isin(LATTICE_QUANTITIES)
        if window_name == FINAL and lattice.any():
            # The lattice's rows come at some evaluations only: their final value is that of
            # their own last epoch, which need not be the other quantities' last.
            rows = pd.concat(
                [_rows_in(results[~lattice], keys, window, FINAL), _rows_in(results[lattice], keys, window, FINAL)]
            )
        else:
            rows = _rows_in(results, keys, window, window_name)
        parts.append(rows.groupby(keys + ["quantity", "modality", "scope"], sort=False)["value"].mean().reset_index())
    history = run.history
    if len(history):
        rows = _rows_in(history, keys, window, window_name)
        if len(rows):
            losses = rows.groupby(keys, sort=False)[list(LOSSES)].mean().reset_index()
            losses = losses.melt(id_vars=keys, var_name="quantity", value_name="value")
            parts.append(losses.assign(modality="", scope=""))
    if run.diagnostics is not None and len(run.diagnostics):
        counts = active_unit_counts(run.diagnostics)
        if "fusion" not in counts:
            counts = counts.assign(fusion="concat")
        if window_name == FINAL:
            rows = counts[counts["epoch"] == counts.groupby(keys)["epoch"].transform("max")]
        else:
            rows = counts[in_window(counts["epoch"], window)]
        if len(rows):
            active = rows.groupby(keys, sort=False)[catalogue.ACTIVE_UNITS].mean().reset_index(name="value")
            parts.append(active.assign(quantity=catalogue.ACTIVE_UNITS, modality="", scope=""))
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=[*keys, "quantity", "modality", "scope", "value"])
    return pd.concat(parts, ignore_index=True)


def _run_table(label: str, run: runfolder.Run) -> pd.DataFrame:
    config = run.config.to_dict()
    windows = resolve_windows(config, run.history, run.results)
    named = [(FINAL, (float("nan"), float("nan")))] + [(window_label(w), w) for w in windows]
    parts = []
    for name, window in named:
        values = _per_model(run, window, name)
        if values.empty:
            continue
        stats = summarise(values, ["fusion", "schedule", "quantity", "modality", "scope"], "value")
        stats.insert(0, "end", window[1])
        stats.insert(0, "start", window[0])
        stats.insert(0, "window", name)
        parts.append(stats)
    if not parts:
        return pd.DataFrame(columns=COMPARE_COLUMNS)
    table = pd.concat(parts, ignore_index=True)
    table.insert(0, "run", label)
    return table[COMPARE_COLUMNS]


def _config_differences(labels: list[str], runs: list[runfolder.Run]) -> pd.DataFrame:
    configs = [r.config.to_dict() for r in runs]
    keys = []
    for c in configs:
        keys += [k for k in c if k not in keys]
    rows = {}
    for key in keys:
        shown = [json.dumps(c.get(key), ensure_ascii=False) if key in c else "(absent)" for c in configs]
        if len(set(shown)) > 1:
            rows[key] = shown
    return pd.DataFrame.from_dict(rows, orient="index", columns=labels).rename_axis("option")


def _findings(labels: list[str], runs: list[runfolder.Run]) -> pd.DataFrame:
    """Each run's checks (its ground-truth controls' among them), a row each."""
    columns = ["run", "fusion", "id", "claim", "source", "state", "n_seeds", "p_value", "seeds_needed"]
    rows = []
    for label, run in zip(labels, runs):
        config = run.config.to_dict()
        windows = resolve_windows(config, run.history, run.results)
        fusions = fusions_of(run.history, run.results, config=config) or ["concat"]
        for fusion, f in run_findings(run, windows, fusions):
            rows.append(
                {
                    "run": label,
                    "fusion": fusion,
                    "id": f.id,
                    "claim": f.claim,
                    "source": f.source,
                    "state": f.state,
                    "n_seeds": f.n_seeds,
                    "p_value": f.p_value,
                    "seeds_needed": f.seeds_needed,
                }
            )
    return pd.DataFrame(rows, columns=columns)


def _notes(labels: list[str], runs: list[runfolder.Run]) -> list[str]:
    """What cannot be compared across the runs, in words."""
    notes = []
    described = [
        (r.description.name if r.description is not None else str(r.config.data))
        + (f" {json.dumps(r.config.sim, sort_keys=True)}" if r.config.data == "sim" and r.config.sim else "")
        for r in runs
    ]
    if len(set(described)) > 1:
        notes.append(
            "The runs use different data sets ("
            + ", ".join(f"{label}: {d}" for label, d in zip(labels, described))
            + "): a measure of one data set's modality is not the same quantity as another's, so compare patterns "
            "(which modality is lowest, how schedules order), not values."
        )
    for what, sets in (
        ("modalities", [modality_order(r.results) for r in runs]),
        ("schedules", [schedule_order(r.history, r.results) for r in runs]),
        ("fusions", [fusions_of(r.history, r.results, config=r.config.to_dict()) or ["concat"] for r in runs]),
    ):
        union = []
        for names in sets:
            union += [n for n in names if n not in union]
        missing = {label: [n for n in union if n not in names] for label, names in zip(labels, sets)}
        missing = {k: v for k, v in missing.items() if v}
        if missing:
            notes.append(
                f"Not every run has the same {what}: "
                + "; ".join(f"{label} lacks {', '.join(v)}" for label, v in missing.items())
                + " (absent from its rows and bars)."
            )
    epochs = [int(r.config.epochs) for r in runs]
    if len(set(epochs)) > 1:
        notes.append(
            "The runs have different lengths ("
            + ", ".join(f"{label}: {e} epochs" for label, e in zip(labels, epochs))
            + "): their default windows are the same fractions of each run, hence different epochs; rows carry "
            "each window's start and end."
        )
    seeds = [sorted(set(r.history["seed"])) if len(r.history) else [] for r in runs]
    if len({len(s) for s in seeds}) > 1:
        notes.append(
            "The runs have different numbers of seeds ("
            + ", ".join(f"{label}: {len(s)}" for label, s in zip(labels, seeds))
            + "): their intervals differ in width for that reason too."
        )
    return notes


# --------------------------------------------------------------------------- figures
def _condition(frame: pd.DataFrame, several_fusions: bool) -> pd.Series:
    if several_fusions:
        return frame["schedule"].astype(str) + " [" + frame["fusion"].astype(str) + "]"
    return frame["schedule"].astype(str)


def comparison_figures(table: pd.DataFrame, labels: list[str]) -> dict[str, Figure]:
    """One figure per measure (the four of Fig. 7; x: modality, one panel per schedule) and
    one for the baseline, prediction error, losses and active units (x: schedule), each
    from the last window of every run, a run per colour, error bars the 95% interval."""
    if table.empty:
        return {}
    last = table[table["window"] != FINAL]
    last = last[last.groupby("run")["end"].transform("max") == last["end"]]
    several = last["fusion"].nunique() > 1
    last = last.assign(condition=_condition(last, several))
    colours = {label: RUN_COLOURS[i % len(RUN_COLOURS)] for i, label in enumerate(labels)}
    conditions = list(pd.unique(last["condition"]))
    fusions = list(pd.unique(last["fusion"]))
    schedules = list(pd.unique(last["schedule"]))
    figures = {}
    for quantity, scope, short, long in MEASURES:
        rows = last[(last["quantity"] == quantity) & (last["scope"] == scope)]
        # One row of panels per fusion, one column per schedule.
        figure, axes = new_figure(len(fusions), max(len(schedules), 1), (3.4, 2.8))
        modalities = list(pd.unique(rows["modality"]))
        for i, fusion in enumerate(fusions):
            for j, schedule in enumerate(schedules):
                ax = axes[i][j]
                mine = rows[(rows["fusion"] == fusion) & (rows["schedule"] == schedule)]
                if mine.empty:
                    say_no_data(ax)
                else:
                    _bars(ax, mine, modalities, "modality", labels, colours)
                    ax.set_yscale("log")
                ax.set_title(f"{schedule} [{fusion}]" if several else schedule, fontsize=9)
            axes[i][0].set_ylabel(f"{short} (nats)")
        figure.suptitle(f"{long}, last window of each run; a run per colour (error bars: 95% interval)", fontsize=10)
        _legend(figure, labels, colours)
        figures[f"compare_{quantity}_{scope}"] = figure
    others = [q for q in COMPARED_QUANTITIES if q in set(last["quantity"])]
    if others:
        columns = min(len(others), 3)
        figure, axes = new_figure(-(-len(others) // columns), columns, (max(3.4, 0.35 * len(conditions) + 1), 3.0))
        for ax in axes.flat[len(others) :]:
            ax.set_visible(False)
        for ax, quantity in zip(axes.flat, others):
            rows = last[last["quantity"] == quantity]
            _bars(ax, rows, conditions, "condition", labels, colours)
            ax.set_title(quantity.replace("_", " "), fontsize=9)
            means = rows["mean"].to_numpy(float)
            if len(means) and (means > 0).all() and means.max() > 100 * means.min():
                ax.set_yscale("log")
        figure.suptitle("Baseline, prediction error, losses and active units, last window of each run", fontsize=10)
        _legend(figure, labels, colours)
        figures["compare_losses_baselines"] = figure
    return figures


def _bars(ax, rows: pd.DataFrame, categories: list[str], key: str, labels: list[str], colours: dict) -> None:
    """Grouped points with interval bars: one group per category, a run per colour."""
    width = 0.8 / max(len(labels), 1)
    for k, label in enumerate(labels):
        mine = rows[rows["run"] == label].set_index(key)
        x, y, low, high = [], [], [], []
        for i, category in enumerate(categories):
            if category in mine.index:
                row = mine.loc[category]
                row = row.iloc[0] if isinstance(row, pd.DataFrame) else row
                x.append(i - 0.4 + width * (k + 0.5))
                y.append(row["mean"])
                low.append(row["low"] if np.isfinite(row["low"]) else row["mean"])
                high.append(row["high"] if np.isfinite(row["high"]) else row["mean"])
        if x:
            ys, lows, highs = np.array(y), np.array(low), np.array(high)
            # A log axis cannot draw an interval through 0: the bar stops at a tenth of the mean.
            lows = np.where(lows > 0, lows, ys / 10)
            # A loss can be below 0 (a density above 1), where a tenth of it lies above it: the
            # bar then stops at the point rather than pointing the wrong way.
            below, above = np.clip(ys - lows, 0, None), np.clip(highs - ys, 0, None)
            ax.errorbar(x, ys, yerr=[below, above], fmt="o", color=colours[label], ms=4, capsize=2, lw=1)
    ax.set_xticks(range(len(categories)))
    ax.set_xticklabels(categories, rotation=45, ha="right", fontsize=8)


def _legend(figure: Figure, labels: list[str], colours: dict) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colours[x], marker="o", ls="", label=x) for x in labels]
    figure.legend(handles=handles, loc="outside lower center", ncol=min(len(labels), 4), fontsize=8, frameon=False)


# --------------------------------------------------------------------------- page


def _cell(row) -> str:
    if not np.isfinite(row["sd"]):
        return format_number(row["mean"])
    return (
        f"{format_number(row['mean'])} ± {format_number(row['sd'])} "
        f"[{format_number(row['low'])}, {format_number(row['high'])}]"
    )


def _side_by_side(table: pd.DataFrame, labels: list[str], quantities, window_kind: str) -> dict:
    """Rows (fusion, schedule, quantity, modality, scope) × one column per run, for the final
    values (``window_kind="final"``) or each run's last window (``"last"``)."""
    if window_kind == FINAL:
        rows = table[table["window"] == FINAL]
    else:
        rows = table[table["window"] != FINAL]
        rows = rows[rows.groupby("run")["end"].transform("max") == rows["end"]]
    rows = rows[rows["quantity"].isin(quantities)]
    if rows.empty:
        return {"columns": [], "rows": []}
    rows = rows.assign(cell=[_cell(r) for _, r in rows.iterrows()])
    wide = rows.pivot_table(
        index=["fusion", "schedule", "quantity", "modality", "scope"],
        columns="run",
        values="cell",
        aggfunc="first",
        sort=False,
    ).reindex(columns=labels)
    wide = wide.fillna("—").reset_index()
    return {"columns": [str(c) for c in wide.columns], "rows": wide.values.tolist()}


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def compare(runs, out: str | Path | None = None, *, labels: list[str] | None = None) -> Comparison:
    """Put several run folders side by side.

    ``runs``: two or more run folders (paths, or runs read with :func:`intermodal.load_run`).
    ``out``: where to write the page (e.g. ``"compare.html"``), with the table beside it
    (``.parquet`` and ``.csv``) and the figures in ``<stem>_figures/``; None writes nothing.
    Writing the figures releases them (``figures`` then holds empty Figures).
    ``labels``: a name per run (default: the folders' names). Returns a :class:`Comparison`.
    Its ``table`` has the columns :data:`COMPARE_COLUMNS`: ``window`` is ``"final"`` (each
    model's last value) or a window's label with its ``start``/``end`` epochs; ``mean``,
    ``sd`` (over seeds), ``low``, ``high`` (the 95% Student's t interval of the mean) and
    ``n_seeds``; quantities are the results' (nats; prediction error in data units), the
    losses (``reconstruction_loss``, ``latent_loss``, ``loss``) and ``active_units``; a run
    with the lattice's ``share`` and ``interaction`` rows has them too (their ``final`` is
    their own last evaluation), on the page among the final values.
    """
    if out is not None:
        _check_out(Path(out))
    runs = [r if isinstance(r, runfolder.Run) else runfolder.read_run(r) for r in runs]
    if len(runs) < 2:
        raise ConfigError(f"compare needs at least two run folders; got {len(runs)}")
    labels = _labels(runs, labels)
    table = pd.concat([_run_table(label, run) for label, run in zip(labels, runs)], ignore_index=True)
    result = Comparison(
        labels,
        table,
        _config_differences(labels, runs),
        _findings(labels, runs),
        _notes(labels, runs),
        comparison_figures(table, labels),
    )
    if out is not None:
        result.page = _write(result, runs, Path(out))
    return result


PAGE_TITLE = "intermodal: runs side by side"


def _companions(out: Path) -> list[Path]:
    """What a comparison writes beside its page."""
    return [out.with_suffix(".parquet"), out.with_suffix(".csv"), out.with_name(f"{out.stem}_figures")]


def _check_out(out: Path) -> None:
    """Refuse to replace a file that ``out`` did not name, or another program's: the page
    may replace only a page a comparison wrote (with its table and figures beside it);
    where there is none, the table's and figures' names must be free. Checked before
    anything is read or written."""
    if out.suffix.lower() in (".csv", ".parquet"):
        raise ConfigError(f"--out {out}: expected the page's name (e.g. compare.html); the tables go beside it")
    if out.exists():
        head = out.read_bytes()[:4096].decode("utf-8", errors="replace") if out.is_file() else ""
        if f"<title>{PAGE_TITLE}</title>" not in head:
            raise ConfigError(
                f"--out {out}: exists and is not a page intermodal compare wrote; choose another name, so that it "
                "is not replaced"
            )
        return
    for path in _companions(out):
        if path.exists():
            raise ConfigError(
                f"--out {out}: {path} exists and would be replaced (a comparison writes its table and figures beside "
                "the page); choose another name for the page, or move that file"
            )


def _write(result: Comparison, runs: list[runfolder.Run], out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    runfolder.write_table_file(out.with_suffix(".parquet"), result.table)
    runfolder.write_table_file(out.with_suffix(".csv"), result.table)
    embedded = [(stem, _png(figure)) for stem, figure in result.figures.items()]
    folder = out.with_name(f"{out.stem}_figures")
    folder.mkdir(exist_ok=True)
    for stem, figure in result.figures.items():
        save_figure(figure, folder / f"{stem}.png", folder / f"{stem}.svg")
    measures = [q for q, _, _, _ in MEASURES]
    context = {
        "title": PAGE_TITLE,
        "runs": [(label, str(run.folder_for("compare's page").resolve())) for label, run in zip(result.labels, runs)],
        "notes": result.notes,
        "configs": {
            "columns": ["option", *result.labels],
            "rows": result.configs.reset_index().values.tolist(),
        },
        "findings": _findings_table(result.findings, result.labels),
        "last_window": _side_by_side(result.table, result.labels, measures, "last"),
        "last_other": _side_by_side(result.table, result.labels, COMPARED_QUANTITIES, "last"),
        "final": _side_by_side(
            result.table, result.labels, [*measures, *COMPARED_QUANTITIES, *LATTICE_QUANTITIES], FINAL
        ),
        "figures": embedded,
        "table_file": out.with_suffix(".parquet").name,
    }
    page = render_page("compare.html.j2", **context)
    atomic_write(out, lambda p: Path(p).write_text(page, encoding="utf-8"))
    return out


def _findings_table(findings: pd.DataFrame, labels: list[str]) -> dict:
    if findings.empty:
        return {"columns": [], "rows": []}
    cell = findings.assign(
        cell=[
            s
            + ("" if not np.isfinite(p) else f" (p {format_number(p)}, {n} seeds)")
            + (f"; ~{int(k)} seeds needed" if pd.notna(k) else "")
            for s, p, n, k in zip(findings["state"], findings["p_value"], findings["n_seeds"], findings["seeds_needed"])
        ]
    )
    wide = cell.pivot_table(index=["fusion", "claim"], columns="run", values="cell", aggfunc="first", sort=False)
    wide = wide.reindex(columns=labels).fillna("not checked (other data)").reset_index()
    return {"columns": [str(c) for c in wide.columns], "rows": wide.values.tolist()}
