"""One self-contained HTML page per run: figures, tables and the findings checked.

:func:`write_report` reads a run folder (through :mod:`intermodal.training.runfolder`),
draws its figures (:mod:`intermodal.outputs.figures`) into ``RUN/figures/`` and renders
``templates/report.html.j2`` into ``RUN/report.html``: every figure is embedded as a base64
PNG, styles are inline, and the page needs no other file, no network and no JavaScript.
The page assembles its sections from what the run folder holds (a prediction section where
it has a checkpoint, diagnostics where it has them), so every backend that writes the same
folder gets the same report. The findings are :mod:`intermodal.evaluation.findings`'.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
from pathlib import Path

import jinja2
import pandas as pd

from ..data.digits import digits_pairs
from ..data.sim_truth import ground_truth_of
from ..evaluation import catalogue
from ..evaluation.catalogue import label_of, with_unit
from ..evaluation.claims import Finding
from ..evaluation.findings import VERDICT_RULE, check_findings, format_number
from ..evaluation.lattice_truth import truths_held
from ..evaluation.summaries import (
    BAND_DESCRIPTIONS,
    MEASURE_QUANTITIES,
    active_unit_counts,
    by_condition,
    fusions_of,
    modality_likelihoods,
    modality_order,
    resolve_windows,
    schedule_order,
    t_half_width,
    window_label,
    window_means,
)
from ..files import atomic_write
from ..model.fusions import FUSIONS
from ..options import path_argument
from ..training import runfolder
from ..training.config import ModelKey
from ..training.shards import divergence_line
from .figures import (
    ACTIVE_UNITS_CAPTION,
    ACTIVE_UNITS_FIGURE,
    FIGURES,
    FUSIONS_CAPTION,
    FUSIONS_FIGURE,
    MEASURES,
    draw_figures,
)
from .plotting import save_figure
from .prediction import prediction_section
from .shares_figures import SHARE_FIGURES, has_shares, shares_section

__all__ = [
    "FINDINGS_SECTION_TITLE",
    "GROUND_TRUTH_SECTION_TITLE",
    "render_report",
    "render_page",
    "write_report",
    "write_figures",
    "figure_paths",
    "section_ids",
]

FINDINGS_SECTION_TITLE = "Does this run show what the paper found?"
GROUND_TRUTH_SECTION_TITLE = "Does this run find what the simulator makes true?"
DIGITS_SECTION_TITLE = "Does this run find what the digits make true?"


def _mean_sd(mean: float, sd: float, n: int | None = None) -> str:
    """``mean ± sd [low, high]``: the sample sd over seeds and the 95% t interval of the mean
    (``n`` seeds; no ± and no interval with one seed)."""
    if sd is None or (isinstance(sd, float) and math.isnan(sd)):
        return format_number(mean)
    text = f"{format_number(mean)} ± {format_number(sd)}"
    if n is not None and n >= 2:
        half = float(t_half_width(sd, n))
        text += f" [{format_number(mean - half)}, {format_number(mean + half)}]"
    return text


# --------------------------------------------------------------------------- tables
def _final_values(history: pd.DataFrame, results: pd.DataFrame, schedules: list[str]) -> pd.DataFrame:
    """Per schedule, each seed's value at its last epoch, as mean ± sd over seeds."""
    evaluations = {
        label_of(catalogue.PREDICTION_ERROR): results[results["quantity"] == catalogue.PREDICTION_ERROR],
        with_unit(catalogue.BASELINE): results[results["quantity"] == catalogue.BASELINE],
    }
    training = {
        with_unit(catalogue.LATENT_LOSS): catalogue.LATENT_LOSS,
        label_of(catalogue.RECONSTRUCTION_LOSS): catalogue.RECONSTRUCTION_LOSS,
        label_of(catalogue.LOSS): catalogue.LOSS,
    }

    def at_last_epoch(frame: pd.DataFrame, value: str) -> pd.DataFrame:
        if frame.empty:
            return pd.DataFrame(columns=["mean", "sd", "epoch"])
        last = frame.loc[frame.groupby(["schedule", "seed"])["epoch"].idxmax()]
        return last.groupby("schedule").agg(
            mean=(value, "mean"), sd=(value, "std"), n=(value, "count"), epoch=("epoch", "max")
        )

    def cell(stats: pd.DataFrame, schedule: str, column: str = "value") -> str:
        if schedule not in stats.index:
            return "n/a"
        if column == "epoch":
            return str(int(stats.at[schedule, "epoch"]))
        return _mean_sd(
            float(stats.at[schedule, "mean"]), float(stats.at[schedule, "sd"]), int(stats.at[schedule, "n"])
        )

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
                    _mean_sd(float(match["mean"].iloc[0]), float(match["sd"].iloc[0]), int(match["n_seeds"].iloc[0]))
                    if len(match)
                    else "n/a"
                )
            rows.append(cells)
    return pd.DataFrame(rows)


def _active_units_table(diagnostics: pd.DataFrame, schedules: list[str]) -> pd.DataFrame:
    counts = active_unit_counts(diagnostics)
    last = counts[counts["epoch"] == counts.groupby("schedule")["epoch"].transform("max")]
    stats = last.groupby("schedule").agg(
        mean=(catalogue.ACTIVE_UNITS, "mean"),
        sd=(catalogue.ACTIVE_UNITS, "std"),
        n=(catalogue.ACTIVE_UNITS, "count"),
        epoch=("epoch", "max"),
    )
    n_latent = int(diagnostics["latent_dim"].nunique()) if "latent_dim" in diagnostics else None
    rows = {}
    for s in schedules:
        if s in stats.index:
            rows[s] = {
                "last epoch": int(stats.at[s, "epoch"]),
                label_of(catalogue.ACTIVE_UNITS): _mean_sd(
                    stats.at[s, "mean"], stats.at[s, "sd"], int(stats.at[s, "n"])
                )
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


def figure_paths(
    run_dir: str | Path, diagnostics: bool = False, fusions: bool = False, shares: bool = False
) -> dict[str, tuple[Path, Path]]:
    """Where :func:`write_figures` puts each figure: stem -> (PNG path, SVG path).
    ``diagnostics``: the run has latent diagnostics; ``fusions``: several fusions;
    ``shares``: the lattice's share rows."""
    folder = runfolder.figures_path(run_dir)
    stems = list(FIGURES) + ([ACTIVE_UNITS_FIGURE] if diagnostics else []) + ([FUSIONS_FIGURE] if fusions else [])
    stems += list(SHARE_FIGURES) if shares else []
    return {stem: (folder / f"{stem}.png", folder / f"{stem}.svg") for stem in stems}


def _run(run: str | Path | runfolder.Run) -> runfolder.Run:
    return run if isinstance(run, runfolder.Run) else runfolder.read_run(run)


def _figure_paths_of(run: runfolder.Run) -> dict[str, tuple[Path, Path]]:
    several = len(fusions_of(run.history, run.results, config=run.config.to_dict())) > 1
    return figure_paths(
        run.folder_for("the figures"),
        diagnostics=run.diagnostics is not None,
        fusions=several,
        shares=has_shares(run.results),
    )


def write_figures(run_dir: str | Path | runfolder.Run, band: str = "ci") -> list[Path]:
    """Draw every figure of a run folder (a path, or one already read) and save each as PNG
    and SVG into ``RUN/figures/`` (each file atomically); returns the paths."""
    run = _run(run_dir)
    figures = draw_figures(run, band=band)
    paths = _figure_paths_of(run)
    runfolder.figures_path(run.folder_for("the figures")).mkdir(exist_ok=True)
    written: list[Path] = []
    for stem, figure in figures.items():
        png, svg = paths[stem]
        save_figure(figure, png, svg)
        written += [png, svg]
    return written


_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("intermodal.outputs", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)


def render_page(template: str, **context) -> str:
    """One of ``outputs/templates/`` rendered (HTML escaped; an undefined name is an error)."""
    return _TEMPLATES.get_template(template).render(**context)


# Sections drawn from what a run folder holds beyond its tables: functions of the run folder
# that return None (nothing to add) or a dict with id, title, paragraphs, tables (title,
# frame) and figures (stem, png path, caption).
EXTRA_SECTIONS = (prediction_section,)


def render_report(run_dir: str | Path | runfolder.Run, band: str = "ci") -> str:
    """The report page as a string; the figures' PNGs must already be in ``RUN/figures``."""
    run = _run(run_dir)
    raw_config = run.config.to_dict()
    fusions = fusions_of(run.history, run.results, config=raw_config)
    config, (history, results, diagnostics) = by_condition(raw_config, run.history, run.results, run.diagnostics)
    assert history is not None and results is not None  # a run's tables, relabelled
    schedules = schedule_order(history, results, config=config)
    modalities = modality_order(results)
    windows = resolve_windows(config, history, results)
    findings = run_findings(run, windows, fusions)
    on_simulator = run.description is not None and ground_truth_of(run.description) is not None
    on_digits = run.description is not None and digits_pairs(run.description) is not None
    means = window_means(results, windows, MEASURE_QUANTITIES)
    paths = _figure_paths_of(run)
    n_seeds = history.groupby("schedule")["seed"].nunique()
    evaluation_epochs = sorted(results["epoch"].unique())

    summary = [
        ("data set", str(config.get("data"))),
        ("fusions", ", ".join(fusions)),
        ("decoded from", _decoding(raw_config, fusions, run.results)),
        ("output distributions", _likelihoods(run.results)),
        *([("trained on", trained_on)] if (trained_on := _trained_on(run.path)) else []),
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
    captions[FUSIONS_FIGURE] = FUSIONS_CAPTION
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
    shares = shares_section(results, paths, run.config)  # the lattice's section, where it has shares
    for content in [shares, *(section(run.folder_for("the report")) for section in EXTRA_SECTIONS)]:
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
        "title": f"intermodal run report: {run.folder_for('the report').resolve().name}",
        "band_description": BAND_DESCRIPTIONS[band],
        "summary": summary,
        "diverged": diverged_lines(history),
        "findings_title": (
            GROUND_TRUTH_SECTION_TITLE
            if on_simulator
            else DIGITS_SECTION_TITLE
            if on_digits
            else FINDINGS_SECTION_TITLE
        ),
        "findings_intro": _findings_intro(on_simulator, on_digits),
        "verdict_rule": VERDICT_RULE,
        "findings": [
            {
                "finding": f"[{fusion}] {f.claim}" if len(fusions) > 1 else f.claim,
                "source": f.source,
                "rule": f.rule,
                "evidence": f.evidence,
                "state": {"yes": "yes", "no": "no"}.get(f.state, "unknown"),
                "verdict": {"yes": "Yes", "no": "No"}.get(f.state, "Cannot tell from this run"),
                "figures": [(stem, _figure_number(stem)) for stem in f.figures],
            }
            for fusion, f in findings
        ],
        "figures": [
            {"stem": stem, "caption": f"{_figure_number(stem)}: {captions[stem]}", "png": _png_base64(png)}
            for stem, (png, _svg) in paths.items()
            if stem not in SHARE_FIGURES  # shown in their own section
        ],
        "final_values": _plain(_final_values(history, results, schedules)),
        "windows": window_sections,
        "active_units": (_plain(_active_units_table(diagnostics, schedules)) if diagnostics is not None else None),
        "active_units_figure": ACTIVE_UNITS_FIGURE,
        "extra_sections": extra,
        "config_json": json.dumps(raw_config, indent=2, ensure_ascii=False),
    }
    return render_page("report.html.j2", **context)


def run_findings(run: runfolder.Run, windows, fusions: list[str]) -> list[tuple[str, Finding]]:
    """Every check of a run as ``(fusion, finding)``: each fusion's on its own models, with
    the checks of the ground-truth controls a study trained beside it (``RUN/controls``),
    each after the run's own of the same check (what the report and ``intermodal compare``
    show)."""
    findings = [
        (fusion, f)
        for fusion in fusions
        for f in check_findings(run.history, run.results, windows, description=run.description, fusion=fusion)
    ]
    truth = ground_truth_of(run.description) if run.description is not None else None
    return _with_controls(findings, _control_findings(run), truth)


def _control_findings(run: runfolder.Run) -> list[tuple[str, Finding]]:
    """The checks of the ground-truth controls a study trained beside the run
    (``RUN/controls``, :mod:`intermodal.study.controls`): the lattice's synergy and copy
    checks, each where the control's data set holds its truth (a triple, a copy), its claim
    saying whose models it is about."""
    out = []
    for name, control in run.controls.items():
        truth = ground_truth_of(control.description) if control.description is not None else None
        if truth is None:
            continue
        held = truths_held(truth)
        cfg = control.config
        sim = cfg.sim or {}
        what = (
            f"The {name} control ({len(cfg.model_keys())} {', '.join(cfg.fusions)} models, "
            f"{', '.join(cfg.schedules)}, {cfg.epochs} epochs, on the simulator with "
            f"{', '.join(sim.get('distractors', []))}"
            + (" (copies taught alone)" if sim.get("teach_copies") else "")
            + (f" and without {', '.join(sim['drop'])}" if sim.get("drop") else "")
            + f"; controls/{name})"
        )
        for f in check_findings(control.history, control.results, description=control.description):
            if held.get(f.id):
                out.append((", ".join(cfg.fusions), dataclasses.replace(f, claim=f"{what}: {f.claim}")))
    return out


def _with_controls(findings: list, from_controls: list, truth) -> list:
    """The run's findings with its controls' each after the run's of the same check; the
    run's own "this simulator has no triple (or copy)" gives way to a control's check."""
    lacking = {check: not held for check, held in truths_held(truth).items()} if truth is not None else {}
    given = {f.id for _, f in from_controls}
    out, placed = [], set()
    for fusion, f in findings:
        if not (lacking.get(f.id) and f.id in given):
            out.append((fusion, f))
        if f.id in given and f.id not in placed:
            out += [(cf, c) for cf, c in from_controls if c.id == f.id]
            placed.add(f.id)
    return out + [(cf, c) for cf, c in from_controls if c.id not in placed]


def _findings_intro(on_simulator: bool, on_digits: bool = False) -> str:
    if on_digits:
        return (
            "Handwritten digits make some things true whatever the model (docs/data.md, 'The digits'): the class shows "
            "in either half of the image, the label carries the class but not the writer's hand, and one half tells "
            "part of the other. Each is checked here with the measures, by the same rule over seeds as the "
            "simulator's checks."
        )
    if on_simulator:
        return (
            "The simulator makes some things true by construction (docs/simulator.md): each is checked here with the "
            "same measures, so a No means the measures or the models missed something the data guarantee. The paper's "
            "iCub findings are checked on iCub data, not here."
        )
    return (
        "Each finding of the paper (Langer et al. 2024, on the iCub data) is tested on this run's numbers where the "
        "data set has what it speaks of."
    )


def _trained_on(path: Path | None) -> str | None:
    """Where the run's training ran, from ``environment.json`` (a cluster run's units' too),
    each place once; None where nothing was recorded."""
    if path is None:
        return None
    records = runfolder.read_environment(path)
    units = runfolder.units_path(path)
    if not records and units.is_dir():
        records = [r for unit in sorted(units.iterdir()) if unit.is_dir() for r in runfolder.read_environment(unit)]
    if not records:
        return None
    places = dict.fromkeys(
        f"{r.get('device')}" + (f" ({r['gpu']})" if r.get("gpu") else "") + f", torch {r.get('torch')}" for r in records
    )
    tf32 = any(r.get("tf32") for r in records)
    return "; ".join(places) + ("; TF32 forced on by TORCH_ALLOW_TF32_CUBLAS_OVERRIDE" if tf32 else "; TF32 off")


def _decoding(config: dict, fusions: list[str], results: pd.DataFrame | None = None) -> str:
    """What the measures decoded from and how samples became a divergence, in words
    (docs/method.md §5, §5c): as the run's results record it (columns ``z_samples`` and
    ``divergence``, :func:`~intermodal.evaluation.evaluator.with_decoding`), else, for a run
    recorded before them, as the config and each fusion's defaults say."""
    z, divergence = config.get("z_samples"), config.get("divergence")

    def sampled(samples: int, how: str) -> str:
        what = (
            "the divergence between the predictive mixtures"
            if how == "predictive"
            else "the mean of the samples' divergences"
        )
        return f"{samples} latent samples per row, shared by p and q; {what}"

    def recorded(f: str) -> tuple[int, str] | None:
        if results is None or not {"z_samples", "divergence", "fusion"} <= set(results.columns):
            return None
        rows = results[(results["fusion"] == f) & results["z_samples"].notna()]
        if rows.empty:
            return None
        return int(rows["z_samples"].iloc[-1]), str(rows["divergence"].iloc[-1])

    def guessed(f: str) -> tuple[int, str]:
        cls = FUSIONS.get(f)
        samples = z if z is not None else (cls.default_z_samples if cls is not None else 0)
        mixture = cls is not None and cls.mixture_posterior
        return samples, divergence or ("predictive" if mixture else "per-sample")

    parts = []
    for f in fusions:
        samples, how = recorded(f) or guessed(f)
        parts.append(f"{f}: " + ("the posterior's mean" if not samples else sampled(samples, how)))
    return "; ".join(parts) + " (--z-samples and --divergence choose)"


def _likelihoods(results: pd.DataFrame) -> str:
    """Each modality's output family, with a fixed scale where there is one (docs/method.md §5b)."""
    return ", ".join(f"{m}: {label}" for m, label in modality_likelihoods(results).items()) or "Gaussian"


def diverged_lines(history: pd.DataFrame) -> list[str]:
    """One line per model whose training diverged (history column ``diverged``)."""
    if "diverged" not in history or not history["diverged"].any():
        return []
    rows = history[history["diverged"]]
    first = rows.groupby(list(ModelKey._fields), sort=False)["epoch"].min()
    return [divergence_line(ModelKey(*key), epoch=int(e)) for key, e in first.items()]


def section_ids(page: str) -> list[str]:
    """The ids of a report page's sections (its ``<h2 id=...>``), in order."""
    import re

    return re.findall(r'<h2 id="([^"]+)"', page)


def write_report(run_dir: str | Path, band: str = "ci", redraw: bool = False) -> Path:
    """Write ``RUN/report.html`` (atomically) and return its path. The figures are drawn
    first if any PNG is missing, or always with ``redraw=True`` (e.g. after a run was
    resumed and extended)."""
    run_dir = path_argument(run_dir, "run_dir")
    run = runfolder.read_run(run_dir)  # once, for the figures and the page
    pngs = [png for png, _svg in _figure_paths_of(run).values()]
    if redraw or any(not png.is_file() for png in pngs):
        write_figures(run, band=band)
    path = runfolder.report_path(run_dir)
    page = render_report(run, band=band)
    atomic_write(path, lambda p: Path(p).write_text(page, encoding="utf-8"))
    return path
