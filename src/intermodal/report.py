"""One self-contained HTML page per run: figures, tables and the paper's findings checked.

:func:`write_report` reads a run folder (see :mod:`intermodal.figures`) and writes
``RUN/report.html``: every figure is embedded as a base64 PNG, styles are inline, and the
page needs no other file, no network and no JavaScript. :func:`check_findings` tests each of
the paper's findings (SPEC, end of section 6) against the run's numbers; its rules and
thresholds are the module constants below and are printed in the page.
"""
from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .figures import (
    ACTIVE_UNITS_CAPTION,
    ACTIVE_UNITS_FIGURE,
    BAND_DESCRIPTIONS,
    FIGURES,
    MEASURE_QUANTITIES,
    MEASURES,
    active_unit_counts,
    figure_paths,
    in_window,
    load_run,
    modality_order,
    normalised_results,
    resolve_windows,
    schedule_order,
    window_label,
    window_means,
    write_figures,
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


def _window_schedule_means(frame: pd.DataFrame, value: str, window) -> pd.Series:
    """Per schedule: mean over seeds of each seed's mean over the window's epochs."""
    inside = frame[in_window(frame["epoch"], window)]
    if inside.empty:
        return pd.Series(dtype=float)
    return inside.groupby(["schedule", "seed"])[value].mean().groupby("schedule").mean()


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
    finding = (f"{COLLAPSED_SCHEDULE} collapses: lowest baseline, highest prediction error, "
               "latent loss near 0")
    rule = (f"Over the {where}: {COLLAPSED_SCHEDULE}'s baseline is below every other schedule's, its "
            f"prediction error above every other schedule's, and its latent loss below "
            f"{LATENT_NEAR_ZERO_NATS:g} nats or below {LATENT_NEAR_ZERO_FRACTION:.0%} of the median of the "
            f"other schedules' latent losses. Values within {TIE_TOLERANCE:.0%} of each other count as tied, and a tie "
            "counts as lowest/highest.")
    figures = ["fig2_losses", "fig3_baseline"]
    baseline = _window_schedule_means(results[results["quantity"] == "baseline"], "value", window)
    prediction = _window_schedule_means(results[results["quantity"] == "prediction_error"], "value", window)
    latent = _window_schedule_means(history, "latent_loss", window)
    schedules = set(history["schedule"]) | set(results["schedule"])
    if COLLAPSED_SCHEDULE not in schedules:
        return _finding(finding, rule, None, f"This run has no {COLLAPSED_SCHEDULE} schedule.", figures)
    if not schedules - {COLLAPSED_SCHEDULE}:
        return _finding(finding, rule, None, f"This run has no schedule to compare {COLLAPSED_SCHEDULE} with.",
                        figures)
    gaps = [name for name, series in (("baseline", baseline), ("prediction error", prediction),
                                      ("latent loss", latent))
            if COLLAPSED_SCHEDULE not in series.index or len(series) < 2]
    if gaps:
        return _finding(finding, rule, None,
                        f"No {', '.join(gaps)} values for {COLLAPSED_SCHEDULE} and another schedule in the {where}.",
                        figures)
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
    rule = (f"Over the {where}, for every schedule except {COLLAPSED_SCHEDULE}: {m} has the lowest single "
            f"modality error regarding all among the modalities, and its loss of precision regarding all is "
            "above the median across modalities.")
    figures = ["fig5_window_means", "fig4_measures", "fig6_per_modality"]
    if m not in modalities:
        return _finding(finding, rule, None, f"This run has no modality called {m!r} (it has: "
                        f"{', '.join(modalities) or 'none'}).", figures)
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
        parts.append(f"{schedule}: SME regarding all {_values(sme_all)} → {m} lowest: {_yes(lowest)}; "
                     f"LoP regarding all of {m} {_fmt(lop_all[m])} vs median {_fmt(median)} → above: {_yes(high)}.")
    if not verdicts:
        return _finding(finding, rule, None, f"No measure evaluations in the {where} for a schedule other than "
                        f"{COLLAPSED_SCHEDULE}.", figures)
    return _finding(finding, rule, all(verdicts), "\n".join(parts), figures)


def _check_hard_to_predict(means, non_collapsed, modalities, where) -> dict:
    present = [m for m in HARD_MODALITIES if m in modalities]
    finding = (f"{' and '.join(HARD_MODALITIES)} are hard to predict: high on every measure, loss of precision "
               "close to single modality error")
    rule = (f"Over the {where}, for every schedule except {COLLAPSED_SCHEDULE} and each of "
            f"{' and '.join(HARD_MODALITIES)}: its single modality error regarding itself is above the median "
            f"across modalities, and its loss of precision regarding itself is within a factor "
            f"{LOP_CLOSE_TO_SME_RATIO:g} of that single modality error.")
    figures = ["fig5_window_means", "fig6_per_modality", "fig4_measures"]
    if not present:
        wanted = " or ".join(map(repr, HARD_MODALITIES))
        return _finding(finding, rule, None, f"This run has no modality called {wanted} "
                        f"(it has: {', '.join(modalities) or 'none'}).", figures)
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
            notes.append(f"{m}: SME regarding {m} {_fmt(sme_m[m])} vs median {_fmt(median)} → above: {_yes(high)}, "
                         f"LoP/SME {_fmt(ratio)} → close: {_yes(close)}")
        parts.append(f"{schedule}: " + "; ".join(notes) + ".")
    if not verdicts:
        return _finding(finding, rule, None, f"No measure evaluations in the {where} for a schedule other than "
                        f"{COLLAPSED_SCHEDULE}.", figures)
    return _finding(finding, rule, all(verdicts), "\n".join(parts), figures)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


# --------------------------------------------------------------------------- tables
def _final_values(history: pd.DataFrame, results: pd.DataFrame, schedules: list[str]) -> pd.DataFrame:
    """Per schedule, each seed's value at its last epoch, as mean ± sd over seeds."""
    evaluations = {"prediction error": results[results["quantity"] == "prediction_error"],
                   "baseline (nats)": results[results["quantity"] == "baseline"]}
    training = {"latent loss (nats)": "latent_loss", "reconstruction loss": "reconstruction_loss",
                "weighted loss": "loss"}

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
                match = inside[(inside["schedule"] == schedule) & (inside["modality"] == modality)
                               & (inside["quantity"] == quantity) & (inside["scope"] == scope)]
                cells[short] = (_mean_sd(float(match["mean"].iloc[0]), float(match["sd"].iloc[0]))
                                if len(match) else "n/a")
            rows.append(cells)
    return pd.DataFrame(rows)


def _active_units_table(diagnostics: pd.DataFrame, schedules: list[str]) -> pd.DataFrame:
    counts = active_unit_counts(diagnostics)
    last = counts[counts["epoch"] == counts.groupby("schedule")["epoch"].transform("max")]
    stats = last.groupby("schedule").agg(mean=("active_units", "mean"), sd=("active_units", "std"),
                                         epoch=("epoch", "max"))
    n_latent = int(diagnostics["latent_dim"].nunique()) if "latent_dim" in diagnostics else None
    rows = {}
    for s in schedules:
        if s in stats.index:
            rows[s] = {"last epoch": int(stats.at[s, "epoch"]),
                       "active latent units": _mean_sd(stats.at[s, "mean"], stats.at[s, "sd"])
                       + (f" of {n_latent}" if n_latent else "")}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("schedule").reset_index()


# --------------------------------------------------------------------------- HTML
_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto; max-width: 1150px;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
td { white-space: nowrap; }
th { background: #f2f2f2; text-align: left; }
th.group { vertical-align: top; }
td:first-child, th:first-child { text-align: left; }
table.summary td { text-align: left; }
pre { background: #f6f6f6; border: 1px solid #ddd; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
figure { margin: 1.2em 0 2em; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; margin-top: 0.3em; }
.finding { border-left: 5px solid #999; padding: 0.4em 1em; margin: 1em 0; background: #fafafa; }
.finding.yes { border-color: #2a9d3a; } .finding.no { border-color: #c62828; } .finding.unknown { border-color: #999; }
.verdict { font-weight: bold; font-size: 1.05em; }
.yes .verdict { color: #1b7a2a; } .no .verdict { color: #b71c1c; } .unknown .verdict { color: #555; }
.muted { color: #666; font-size: 0.9em; }
"""


def _table_html(table: pd.DataFrame) -> str:
    # A plain column table (no meaningful index) is written without pandas' row numbers.
    plain = isinstance(table.index, pd.RangeIndex)
    return table.to_html(escape=True, border=0, na_rep="n/a", index=not plain)


def _grouped_table_html(table: pd.DataFrame) -> str:
    """A table whose first column repeats in runs (schedule, then its modalities): each run's
    first cell spans its rows, so the table reads as one block per schedule."""
    header = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    lines = [f"<table><thead><tr>{header}</tr></thead><tbody>"]
    first = table.columns[0]
    run_lengths = table.groupby((table[first] != table[first].shift()).cumsum(), sort=False).size().tolist()
    row = 0
    for length in run_lengths:
        for offset in range(length):
            values = table.iloc[row + offset].tolist()
            cells = []
            if offset == 0:
                cells.append(f'<th rowspan="{length}" class="group">{html.escape(str(values[0]))}</th>')
            cells.append(f"<th>{html.escape(str(values[1]))}</th>")
            cells += [f"<td>{html.escape(str(v))}</td>" for v in values[2:]]
            lines.append("<tr>" + "".join(cells) + "</tr>")
        row += length
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _figure_html(stem: str, png: Path, caption: str) -> str:
    encoded = base64.b64encode(png.read_bytes()).decode("ascii")
    return (f'<figure id="{html.escape(stem)}"><img src="data:image/png;base64,{encoded}" '
            f'alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}</figcaption></figure>')


def _figure_number(stem: str) -> str:
    return f"Fig. {stem[3]}" if stem.startswith("fig") and stem[3].isdigit() else stem


def _findings_html(findings: list[dict]) -> str:
    parts = []
    for f in findings:
        state = {True: "yes", False: "no", None: "unknown"}[f["holds"]]
        verdict = {True: "Yes", False: "No", None: "Cannot tell from this run"}[f["holds"]]
        links = ", ".join(f'<a href="#{html.escape(s)}">{html.escape(_figure_number(s))}</a>'
                          for s in f.get("figures", []))
        parts.append(
            f'<div class="finding {state}"><h3>{html.escape(f["finding"])}</h3>'
            f'<p class="verdict">{verdict}</p>'
            f'<p><b>Rule:</b> {html.escape(f.get("rule", ""))}</p>'
            f'<p><b>Numbers:</b><br>{html.escape(f["evidence"]).replace(chr(10), "<br>")}</p>'
            + (f'<p><b>Figures:</b> {links}</p>' if links else "") + "</div>")
    return "\n".join(parts)


def render_report(run_dir: str | Path, band: str = "sd") -> str:
    """The report page as a string; the figures' PNGs must already be in ``RUN/figures``."""
    run = load_run(run_dir)
    config, history, results = run.config, run.history, run.results
    schedules = schedule_order(history, results, config=config)
    modalities = modality_order(results)
    windows = resolve_windows(config, history, results)
    findings = check_findings(history, results, windows)
    means = window_means(results, windows, MEASURE_QUANTITIES)
    paths = figure_paths(run.run_dir, diagnostics=run.diagnostics is not None)
    n_seeds = history.groupby("schedule")["seed"].nunique()
    evaluation_epochs = sorted(results["epoch"].unique())

    title = f"intermodal run report: {run.run_dir.name}"
    dataset = config.get("data", "(not given in config.json)")
    summary_rows = [
        ("data set", str(dataset)),
        ("schedules", ", ".join(schedules)),
        ("seeds per schedule", ", ".join(f"{s}: {int(n_seeds.get(s, 0))}" for s in schedules)),
        ("epochs", str(config.get("epochs", int(history["epoch"].max()) + 1 if len(history) else "n/a"))),
        ("evaluations", f"{len(evaluation_epochs)} epochs"
                        + (f" ({evaluation_epochs[0]}–{evaluation_epochs[-1]})" if evaluation_epochs else "")),
        ("modalities", ", ".join(modalities) or "none"),
        ("windows (Fig. 5)", "; ".join(window_label(w) for w in windows)
         + ("" if config.get("windows") else " (default: the paper's 60–70 k and 70–80 k of 80 k, scaled)")),
    ]
    summary = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in summary_rows)
    summary = f'<table class="summary">{summary}</table>'

    body = [f"<h1>{html.escape(title)}</h1>",
            f'<p class="muted">Multimodal VAE integration measures (Langer et al. 2024). Curves and table '
            f'entries are means over seeds; {html.escape(BAND_DESCRIPTIONS[band])}; table entries are mean ± sd '
            f'over seeds (sample sd; no ± with one seed).</p>',
            summary]

    body.append(f"<h2 id=\"findings\">{html.escape(FINDINGS_SECTION_TITLE)}</h2>")
    body.append('<p class="muted">Each finding of the paper is tested on this run\'s numbers by the rule stated '
                'with it; values are seed means of each seed\'s mean over the last window. "Cannot tell" means '
                'the run lacks the schedule, modality or evaluations the rule needs.</p>')
    body.append(_findings_html(findings))

    body.append("<h2 id=\"figures\">Figures</h2>")
    captions = dict(FIGURES)
    if run.diagnostics is not None:
        captions[ACTIVE_UNITS_FIGURE] = ACTIVE_UNITS_CAPTION
    for stem, (png, _svg) in paths.items():
        caption = f"{_figure_number(stem)}: {captions[stem]}"
        body.append(_figure_html(stem, png, caption) if png.is_file()
                    else f'<p id="{html.escape(stem)}">{html.escape(caption)}: figure missing.</p>')

    body.append("<h2 id=\"final\">Final values per schedule</h2>")
    body.append('<p class="muted">Each seed\'s value at its last epoch (results: last evaluation; history: last '
                'training epoch), mean ± sd over seeds.</p>')
    body.append(_table_html(_final_values(history, results, schedules)))

    body.append("<h2 id=\"window-means\">Window means of the measures</h2>")
    body.append('<p class="muted">Each seed\'s mean over the evaluations in the window, then mean ± sd over seeds '
                '(nats). SME = single modality error, LoP = loss of precision; "regarding m" = over the '
                'modality\'s own columns, "regarding all" = over all columns.</p>')
    for index, window in enumerate(windows):
        body.append(f"<h3>{html.escape(window_label(window))}</h3>")
        inside = means[means["window"] == index]
        if inside.empty:
            body.append(f"<p>No evaluations in {html.escape(window_label(window))}.</p>")
            continue
        n_epochs = int(inside["n_epochs"].max())
        body.append(f'<p class="muted">{n_epochs} evaluation epoch{"s" if n_epochs != 1 else ""} in the window.</p>')
        body.append(_grouped_table_html(_window_table(means, index, schedules, modalities)))

    if run.diagnostics is not None:
        body.append("<h2 id=\"diagnostics\">Diagnostics: active latent units</h2>")
        body.append('<p class="muted">Latent units flagged active at each schedule\'s last diagnostic epoch, '
                    f'mean ± sd over seeds; the curve is <a href="#{ACTIVE_UNITS_FIGURE}">above</a>.</p>')
        body.append(_table_html(_active_units_table(run.diagnostics, schedules)))

    body.append("<h2 id=\"config\">Configuration</h2>")
    body.append(f"<pre>{html.escape(json.dumps(config, indent=2, ensure_ascii=False, sort_keys=False))}</pre>")

    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def write_report(run_dir: str | Path, band: str = "sd", redraw: bool = False) -> Path:
    """Write ``RUN/report.html`` and return its path. The figures are drawn first if any PNG
    is missing, or always with ``redraw=True`` (e.g. after a run was resumed and extended)."""
    run_dir = Path(run_dir)
    has_diagnostics = (run_dir / "diagnostics.parquet").is_file()
    pngs = [png for png, _svg in figure_paths(run_dir, diagnostics=has_diagnostics).values()]
    if redraw or any(not png.is_file() for png in pngs):
        write_figures(run_dir, band=band)
    path = run_dir / "report.html"
    path.write_text(render_report(run_dir, band=band), encoding="utf-8")
    return path
