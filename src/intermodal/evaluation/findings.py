"""What the paper found (docs/method.md §8), checked on a run's tables: each finding's
rule, its verdict (yes, no, or "cannot tell") and the numbers behind it. The rules and
thresholds are the module constants below; the report prints them beside each verdict.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .summaries import (
    modality_order,
    normalised_results,
    resolve_windows,
    schedule_order,
    window_label,
    window_means,
    window_schedule_means,
)

__all__ = [
    "COLLAPSED_SCHEDULE",
    "LATENT_NEAR_ZERO_NATS",
    "LATENT_NEAR_ZERO_FRACTION",
    "LOP_CLOSE_TO_SME_RATIO",
    "TIE_TOLERANCE",
    "check_findings",
    "format_number",
]

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
def format_number(x: float) -> str:
    """A number as the report shows it: three significant digits, "n/a" for a missing one."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.3g}"


_fmt = format_number


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
