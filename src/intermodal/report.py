"""One self-contained HTML page per run: figures, tables and the paper's findings checked.

:func:`write_report` reads a run folder (through :mod:`intermodal.runfolder`), draws its
figures (:mod:`intermodal.figures`) into ``RUN/figures/`` and renders
``templates/report.html.j2`` into ``RUN/report.html``: every figure is embedded as a base64
PNG, styles are inline, and the page needs no other file, no network and no JavaScript.
:func:`check_findings` tests each of the paper's findings (docs/method.md §8) against the
run's numbers; its rules and thresholds are the module constants below and are printed in
the page.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from . import runfolder
from .figures import ACTIVE_UNITS_CAPTION, ACTIVE_UNITS_FIGURE, FIGURES, MEASURES, draw_figures
from .files import atomic_write
from .plotting import save_figure
from .runfolder import (
    BAND_DESCRIPTIONS,
    MEASURE_QUANTITIES,
    active_unit_counts,
    modality_order,
    normalised_results,
    resolve_windows,
    schedule_order,
    window_label,
    window_means,
    window_schedule_means,
)

__all__ = [
    "FINDINGS_SECTION_TITLE",
    "COLLAPSED_SCHEDULE",
    "LATENT_NEAR_ZERO_NATS",
    "LATENT_NEAR_ZERO_FRACTION",
    "LOP_CLOSE_TO_SME_RATIO",
    "TIE_TOLERANCE",
    "check_findings",
    "render_report",
    "write_report",
    "write_figures",
    "figure_paths",
]

FINDINGS_SECTION_TITLE = "Does this run show what the paper found?"

# The schedule the paper found to collapse, and the modalities its findings name.
COLLAPSED_SCHEDULE = "constant-1"
INFORMATIVE_MODALITY = "vision"
HARD_MODALITIES = ("touch", "sound")
# Finding a: "latent loss near 0" means below this many nats (summed over latent units) ...
LATENT_NEAR_ZERO_NATS = 0.5
# ... or below this fraction of the median of the other schedules' latent losses (a short
# run may not drive the collapsed KL all the way to 0, but it is far below the typical
# schedule's; the median, because dynamic-plateau-1 is itself at β = 1 in the last window).
LATENT_NEAR_ZERO_FRACTION = 0.10
# Finding a: values within this relative distance count as a tie for "lowest"/"highest", so
# that two collapsed schedules (e.g. dynamic-plateau-1 after its β=1 plateau) with the same
# baseline up to noise do not make the verdict hinge on the noise.
TIE_TOLERANCE = 0.01
# Finding c: "LoP regarding m close to SME regarding m" means they differ by at most this
# factor either way.
LOP_CLOSE_TO_SME_RATIO = 2.0


# --------------------------------------------------------------------------- numbers
def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.3g}"


def _mean_sd(mean: float, sd: float) -> str:
    if sd is None or (isinstance(sd, float) and math.isnan(sd)):
        return _fmt(mean)
    return f"{_fmt(mean)} ± {_fmt(sd)}"


def _measure_table(means: pd.DataFrame, quantity: str, scope: str, schedule: str) -> pd.Series:
    rows = means[(means["quantity"] == quantity) & (means["scope"] == scope) & (means["schedule"] == schedule)]
    return rows.set_index("modality")["mean"]


def _values(series: pd.Series) -> str:
    return ", ".join(f"{name} {_fmt(v)}" for name, v in series.items())


def _finding(finding: str, rule: str, holds, evidence: str, figures: list[str]) -> dict:
    return {"finding": finding, "holds": holds, "evidence": evidence, "rule": rule, "figures": figures}


def check_findings(history: pd.DataFrame, results: pd.DataFrame, windows=None) -> list[dict]:
    """Check the paper's three findings on a run's tables, over the last window.

    Returns one dict per finding: ``finding`` (the claim), ``holds`` (True, False, or None
    when the run lacks what the check needs: the schedule, the modality, or evaluations in
    the window), ``evidence`` (the numbers), ``rule`` (the test applied) and ``figures``
    (stems of the figures that show it). Values are seed means of each seed's mean over the
    window.
    """
    results = normalised_results(results)
    if windows is None:
        windows = resolve_windows(None, history, results)
    window = tuple(windows[-1])
    where = f"last window ({window_label(window)})"
    means = window_means(results, [window])
    non_collapsed = [s for s in schedule_order(history, results) if s != COLLAPSED_SCHEDULE]
    modalities = modality_order(results)
    return [
        _check_collapse(history, results, window, where),
        _check_informative(means, non_collapsed, modalities, where),
        _check_hard_to_predict(means, non_collapsed, modalities, where),
    ]


def _check_collapse(history, results, window, where) -> dict:
    finding = f"{COLLAPSED_SCHEDULE} collapses: lowest baseline, highest prediction error, latent loss near 0"
    rule = (
        f"Over the {where}: {COLLAPSED_SCHEDULE}'s baseline is below every other schedule's, its "
        f"prediction error above every other schedule's, and its latent loss below "
        f"{LATENT_NEAR_ZERO_NATS:g} nats or below {LATENT_NEAR_ZERO_FRACTION:.0%} of the median of the "
        f"other schedules' latent losses. Values within {TIE_TOLERANCE:.0%} of each other count as tied, and a tie "
        "counts as lowest/highest."
    )
    figures = ["fig4_losses", "fig5_baseline"]
    baseline = window_schedule_means(results[results["quantity"] == "baseline"], "value", window)
    prediction = window_schedule_means(results[results["quantity"] == "prediction_error"], "value", window)
    latent = window_schedule_means(history, "latent_loss", window)
    schedules = set(history["schedule"]) | set(results["schedule"])
    if COLLAPSED_SCHEDULE not in schedules:
        return _finding(finding, rule, None, f"This run has no {COLLAPSED_SCHEDULE} schedule.", figures)
    if not schedules - {COLLAPSED_SCHEDULE}:
        return _finding(finding, rule, None, f"This run has no schedule to compare {COLLAPSED_SCHEDULE} with.", figures)
    gaps = [
        name
        for name, series in (("baseline", baseline), ("prediction error", prediction), ("latent loss", latent))
        if COLLAPSED_SCHEDULE not in series.index or len(series) < 2
    ]
    if gaps:
        return _finding(
            finding,
            rule,
            None,
            f"No {', '.join(gaps)} values for {COLLAPSED_SCHEDULE} and another schedule in the {where}.",
            figures,
        )
    others_baseline = baseline.drop(COLLAPSED_SCHEDULE)
    others_prediction = prediction.drop(COLLAPSED_SCHEDULE)
    others_latent = latent.drop(COLLAPSED_SCHEDULE)
    lowest_baseline = bool(baseline[COLLAPSED_SCHEDULE] <= others_baseline.min() * (1 + TIE_TOLERANCE))
    highest_prediction = bool(prediction[COLLAPSED_SCHEDULE] >= others_prediction.max() * (1 - TIE_TOLERANCE))
    own_latent = latent[COLLAPSED_SCHEDULE]
    below_absolute = bool(own_latent < LATENT_NEAR_ZERO_NATS)
    below_relative = bool(own_latent < LATENT_NEAR_ZERO_FRACTION * others_latent.median())
    near_zero = below_absolute or below_relative
    evidence = (
        f"Baseline: {_values(baseline)} → lowest: {_yes(lowest_baseline)}.\n"
        f"Prediction error: {_values(prediction)} → highest: {_yes(highest_prediction)}.\n"
        f"Latent loss (nats): {_values(latent)} → {COLLAPSED_SCHEDULE} {_fmt(own_latent)} "
        f"{'<' if below_absolute else '≥'} {LATENT_NEAR_ZERO_NATS:g} nats; "
        f"{_fmt(own_latent / others_latent.median()) if others_latent.median() > 0 else 'n/a'}× the others' median "
        f"({'<' if below_relative else '≥'} {LATENT_NEAR_ZERO_FRACTION:g}) → near 0: {_yes(near_zero)}."
    )
    return _finding(finding, rule, lowest_baseline and highest_prediction and near_zero, evidence, figures)


def _check_informative(means, non_collapsed, modalities, where) -> dict:
    m = INFORMATIVE_MODALITY
    finding = f"{m} is the most informative modality: lowest single modality error, high loss of precision"
    rule = (
        f"Over the {where}, for every schedule except {COLLAPSED_SCHEDULE}: {m} has the lowest single "
        f"modality error regarding all among the modalities, and its loss of precision regarding all is "
        "above the median across modalities."
    )
    figures = ["fig7_window_means", "fig6_measures", "figA1_per_modality"]
    if m not in modalities:
        return _finding(
            finding,
            rule,
            None,
            f"This run has no modality called {m!r} (it has: {', '.join(modalities) or 'none'}).",
            figures,
        )
    if len(modalities) < 2:
        return _finding(finding, rule, None, "There is only one modality; nothing to compare with.", figures)
    parts, verdicts = [], []
    for schedule in non_collapsed:
        sme_all = _measure_table(means, "single_modality_error", "all", schedule)
        lop_all = _measure_table(means, "loss_of_precision", "all", schedule)
        if m not in sme_all.index or m not in lop_all.index or len(sme_all) < 2:
            continue
        lowest = bool(sme_all[m] < sme_all.drop(m).min())
        median = float(np.median(lop_all.to_numpy(float)))
        high = bool(lop_all[m] > median)
        verdicts.append(lowest and high)
        parts.append(
            f"{schedule}: SME regarding all {_values(sme_all)} → {m} lowest: {_yes(lowest)}; "
            f"LoP regarding all of {m} {_fmt(lop_all[m])} vs median {_fmt(median)} → above: {_yes(high)}."
        )
    return _verdict(finding, rule, verdicts, parts, where, figures)


def _check_hard_to_predict(means, non_collapsed, modalities, where) -> dict:
    present = [m for m in HARD_MODALITIES if m in modalities]
    finding = (
        f"{' and '.join(HARD_MODALITIES)} are hard to predict: high on every measure, loss of precision "
        "close to single modality error"
    )
    rule = (
        f"Over the {where}, for every schedule except {COLLAPSED_SCHEDULE} and each of "
        f"{' and '.join(HARD_MODALITIES)}: its single modality error regarding itself is above the median "
        f"across modalities, and its loss of precision regarding itself is within a factor "
        f"{LOP_CLOSE_TO_SME_RATIO:g} of that single modality error."
    )
    figures = ["fig7_window_means", "figA1_per_modality", "fig6_measures"]
    if not present:
        wanted = " or ".join(map(repr, HARD_MODALITIES))
        return _finding(
            finding,
            rule,
            None,
            f"This run has no modality called {wanted} (it has: {', '.join(modalities) or 'none'}).",
            figures,
        )
    if len(modalities) < 2:
        return _finding(finding, rule, None, "There is only one modality; nothing to compare with.", figures)
    absent = [m for m in HARD_MODALITIES if m not in present]
    parts = [f"No modality {' or '.join(map(repr, absent))}; checked {', '.join(present)} only."] if absent else []
    verdicts = []
    for schedule in non_collapsed:
        sme_m = _measure_table(means, "single_modality_error", "modality", schedule)
        lop_m = _measure_table(means, "loss_of_precision", "modality", schedule)
        if any(m not in sme_m.index or m not in lop_m.index for m in present) or len(sme_m) < 2:
            continue
        median = float(np.median(sme_m.to_numpy(float)))
        notes = []
        for m in present:
            high = bool(sme_m[m] > median)
            ratio = lop_m[m] / sme_m[m] if sme_m[m] > 0 else float("nan")
            # NaN compares False: no evidence of closeness
            close = bool(1 / LOP_CLOSE_TO_SME_RATIO <= ratio <= LOP_CLOSE_TO_SME_RATIO)
            verdicts.append(high and close)
            notes.append(
                f"{m}: SME regarding {m} {_fmt(sme_m[m])} vs median {_fmt(median)} → above: {_yes(high)}, "
                f"LoP/SME {_fmt(ratio)} → close: {_yes(close)}"
            )
        parts.append(f"{schedule}: " + "; ".join(notes) + ".")
    return _verdict(finding, rule, verdicts, parts, where, figures)


def _verdict(finding: str, rule: str, verdicts: list[bool], parts: list[str], where: str, figures: list[str]) -> dict:
    """A finding holds when every schedule's verdict does; none to judge is "cannot tell"."""
    if not verdicts:
        return _finding(
            finding,
            rule,
            None,
            f"No measure evaluations in the {where} for a schedule other than {COLLAPSED_SCHEDULE}.",
            figures,
        )
    return _finding(finding, rule, all(verdicts), "\n".join(parts), figures)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


# --------------------------------------------------------------------------- tables
def _final_values(history: pd.DataFrame, results: pd.DataFrame, schedules: list[str]) -> pd.DataFrame:
    """Per schedule, each seed's value at its last epoch, as mean ± sd over seeds."""
    evaluations = {
        "prediction error": results[results["quantity"] == "prediction_error"],
        "baseline (nats)": results[results["quantity"] == "baseline"],
    }
    training = {
        "latent loss (nats)": "latent_loss",
        "reconstruction loss": "reconstruction_loss",
        "weighted loss": "loss",
    }

    def at_last_epoch(frame: pd.DataFrame, value: str) -> pd.DataFrame:
        if frame.empty:
            return pd.DataFrame(columns=["mean", "sd", "epoch"])
        last = frame.loc[frame.groupby(["schedule", "seed"])["epoch"].idxmax()]
        return last.groupby("schedule").agg(mean=(value, "mean"), sd=(value, "std"), epoch=("epoch", "max"))

    def cell(stats: pd.DataFrame, schedule: str, column: str = "value") -> str:
        if schedule not in stats.index:
            return "n/a"
        if column == "epoch":
            return str(int(stats.at[schedule, "epoch"]))
        return _mean_sd(float(stats.at[schedule, "mean"]), float(stats.at[schedule, "sd"]))

    table = {}
    first = True
    for label, frame in evaluations.items():
        stats = at_last_epoch(frame, "value")
        if first:
            table["last evaluation epoch"] = {s: cell(stats, s, "epoch") for s in schedules}
            first = False
        table[label] = {s: cell(stats, s) for s in schedules}
    first = True
    for label, value in training.items():
        stats = at_last_epoch(history, value)
        if first:
            table["last training epoch"] = {s: cell(stats, s, "epoch") for s in schedules}
            first = False
        table[label] = {s: cell(stats, s) for s in schedules}
    return pd.DataFrame(table, index=schedules).rename_axis("schedule").reset_index()


def _window_table(means: pd.DataFrame, window_index: int, schedules: list[str], modalities: list[str]) -> pd.DataFrame:
    inside = means[means["window"] == window_index]
    rows = []
    for schedule in schedules:
        for modality in modalities:
            cells = {"schedule": schedule, "modality": modality}
            for quantity, scope, short, _ in MEASURES:
                match = inside[
                    (inside["schedule"] == schedule)
                    & (inside["modality"] == modality)
                    & (inside["quantity"] == quantity)
                    & (inside["scope"] == scope)
                ]
                cells[short] = (
                    _mean_sd(float(match["mean"].iloc[0]), float(match["sd"].iloc[0])) if len(match) else "n/a"
                )
            rows.append(cells)
    return pd.DataFrame(rows)


def _active_units_table(diagnostics: pd.DataFrame, schedules: list[str]) -> pd.DataFrame:
    counts = active_unit_counts(diagnostics)
    last = counts[counts["epoch"] == counts.groupby("schedule")["epoch"].transform("max")]
    stats = last.groupby("schedule").agg(
        mean=("active_units", "mean"), sd=("active_units", "std"), epoch=("epoch", "max")
    )
    n_latent = int(diagnostics["latent_dim"].nunique()) if "latent_dim" in diagnostics else None
    rows = {}
    for s in schedules:
        if s in stats.index:
            rows[s] = {
                "last epoch": int(stats.at[s, "epoch"]),
                "active latent units": _mean_sd(stats.at[s, "mean"], stats.at[s, "sd"])
                + (f" of {n_latent}" if n_latent else ""),
            }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("schedule").reset_index()


# --------------------------------------------------------------------------- HTML
def _plain(table: pd.DataFrame) -> dict:
    return {
        "columns": [str(c) for c in table.columns],
        "rows": [
            ["n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in row]
            for row in table.itertuples(index=False)
        ],
    }


def _grouped(table: pd.DataFrame) -> dict:
    """A table whose first column repeats in runs, as (name, rows of the other columns)."""
    first = table.columns[0]
    groups = []
    for _, block in table.groupby((table[first] != table[first].shift()).cumsum(), sort=False):
        groups.append((block[first].iloc[0], block.drop(columns=first).values.tolist()))
    return {"columns": [str(c) for c in table.columns], "groups": groups}


def _figure_number(stem: str) -> str:
    if stem.startswith("figA"):
        return f"Fig. A.{stem[4]}"
    return f"Fig. {stem[3]}" if stem.startswith("fig") and stem[3].isdigit() else stem


def _png_base64(png: Path) -> str | None:
    return base64.b64encode(png.read_bytes()).decode("ascii") if png.is_file() else None


def figure_paths(run_dir: str | Path, diagnostics: bool = False) -> dict[str, tuple[Path, Path]]:
    """Where :func:`write_figures` puts each figure: stem -> (PNG path, SVG path)."""
    folder = Path(run_dir) / runfolder.FIGURES
    stems = list(FIGURES) + ([ACTIVE_UNITS_FIGURE] if diagnostics else [])
    return {stem: (folder / f"{stem}.png", folder / f"{stem}.svg") for stem in stems}


def _run(run: str | Path | runfolder.Run) -> runfolder.Run:
    return run if isinstance(run, runfolder.Run) else runfolder.read_run(run)


def write_figures(run_dir: str | Path | runfolder.Run, band: str = "sd") -> list[Path]:
    """Draw every figure of a run folder (a path, or one already read) and save each as PNG
    and SVG into ``RUN/figures/`` (each file atomically); returns the paths."""
    run = _run(run_dir)
    figures = draw_figures(run, band=band)
    paths = figure_paths(run.path, diagnostics=run.diagnostics is not None)
    (run.path / runfolder.FIGURES).mkdir(exist_ok=True)
    written: list[Path] = []
    for stem, figure in figures.items():
        png, svg = paths[stem]
        save_figure(figure, png, svg)
        written += [png, svg]
    return written


_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("intermodal", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)

# Sections other modules add to the report (e.g. prediction): functions of the run folder
# that return None (nothing to add) or a dict with id, title, paragraphs, tables (title,
# frame) and figures (stem, png path, caption).
ReportSection = Callable[[Path], dict | None]


def render_report(run_dir: str | Path | runfolder.Run, band: str = "sd", sections: list[ReportSection] = ()) -> str:
    """The report page as a string; the figures' PNGs must already be in ``RUN/figures``."""
    run = _run(run_dir)
    config = run.config.to_dict()
    history, results = run.history, run.results
    schedules = schedule_order(history, results, config=config)
    modalities = modality_order(results)
    windows = resolve_windows(config, history, results)
    findings = check_findings(history, results, windows)
    means = window_means(results, windows, MEASURE_QUANTITIES)
    paths = figure_paths(run.path, diagnostics=run.diagnostics is not None)
    n_seeds = history.groupby("schedule")["seed"].nunique()
    evaluation_epochs = sorted(results["epoch"].unique())

    summary = [
        ("data set", str(config.get("data"))),
        ("schedules", ", ".join(schedules)),
        ("seeds per schedule", ", ".join(f"{s}: {int(n_seeds.get(s, 0))}" for s in schedules)),
        ("epochs", str(config.get("epochs"))),
        (
            "evaluations",
            f"{len(evaluation_epochs)} epochs"
            + (f" ({evaluation_epochs[0]}–{evaluation_epochs[-1]})" if evaluation_epochs else ""),
        ),
        ("modalities", ", ".join(modalities) or "none"),
        (
            "windows (Fig. 7)",
            "; ".join(window_label(w) for w in windows)
            + ("" if config.get("windows") else " (default: the paper's 60–70 k and 70–80 k of 80 k, scaled)"),
        ),
    ]
    captions = dict(FIGURES)
    captions[ACTIVE_UNITS_FIGURE] = ACTIVE_UNITS_CAPTION
    window_sections = []
    for index, window in enumerate(windows):
        inside = means[means["window"] == index]
        window_sections.append(
            {
                "label": window_label(window),
                "table": None if inside.empty else _grouped(_window_table(means, index, schedules, modalities)),
                "n_epochs": int(inside["n_epochs"].max()) if len(inside) else 0,
            }
        )
    extra = []
    for section in sections:
        content = section(run.path)
        if content:
            extra.append(
                {
                    **content,
                    "tables": [{"title": t.get("title"), "frame": _plain(t["frame"])} for t in content["tables"]],
                    "figures": [
                        {"stem": f["stem"], "png": _png_base64(Path(f["png"])), "caption": f["caption"]}
                        for f in content.get("figures", [])
                        if Path(f["png"]).is_file()
                    ],
                }
            )
    context = {
        "title": f"intermodal run report: {run.path.resolve().name}",
        "band_description": BAND_DESCRIPTIONS[band],
        "summary": summary,
        "diverged": diverged_lines(history),
        "findings_title": FINDINGS_SECTION_TITLE,
        "findings": [
            {
                "finding": f["finding"],
                "rule": f.get("rule", ""),
                "evidence": f["evidence"],
                "state": {True: "yes", False: "no", None: "unknown"}[f["holds"]],
                "verdict": {True: "Yes", False: "No", None: "Cannot tell from this run"}[f["holds"]],
                "figures": [(stem, _figure_number(stem)) for stem in f.get("figures", [])],
            }
            for f in findings
        ],
        "figures": [
            {"stem": stem, "caption": f"{_figure_number(stem)}: {captions[stem]}", "png": _png_base64(png)}
            for stem, (png, _svg) in paths.items()
        ],
        "final_values": _plain(_final_values(history, results, schedules)),
        "windows": window_sections,
        "active_units": (
            _plain(_active_units_table(run.diagnostics, schedules)) if run.diagnostics is not None else None
        ),
        "active_units_figure": ACTIVE_UNITS_FIGURE,
        "extra_sections": extra,
        "config_json": json.dumps(config, indent=2, ensure_ascii=False),
    }
    return _TEMPLATES.get_template("report.html.j2").render(**context)


def diverged_lines(history: pd.DataFrame) -> list[str]:
    """One line per model whose training diverged (history column ``diverged``)."""
    if "diverged" not in history or not history["diverged"].any():
        return []
    first = history[history["diverged"]].groupby(["schedule", "seed"], sort=False)["epoch"].min()
    return [f"schedule {s}, seed {n}: diverged at epoch {e}" for (s, n), e in first.items()]


def write_report(
    run_dir: str | Path, band: str = "sd", redraw: bool = False, sections: list[ReportSection] = ()
) -> Path:
    """Write ``RUN/report.html`` (atomically) and return its path. The figures are drawn
    first if any PNG is missing, or always with ``redraw=True`` (e.g. after a run was
    resumed and extended)."""
    run_dir = Path(run_dir)
    run = runfolder.read_run(run_dir)  # once, for the figures and the page
    pngs = [png for png, _svg in figure_paths(run_dir, diagnostics=run.diagnostics is not None).values()]
    if redraw or any(not png.is_file() for png in pngs):
        write_figures(run, band=band)
    path = run_dir / runfolder.REPORT
    page = render_report(run, band=band, sections=sections)
    atomic_write(path, lambda p: Path(p).write_text(page, encoding="utf-8"))
    return path
