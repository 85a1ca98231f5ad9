"""What a run's tables show about what is known to be true, each check decided by a stated
rule over seeds (docs/study.md, "Findings").

- On the simulator's data, its **ground truth** (docs/simulator.md): a pure-noise
  distractor is uninformative, an exact copy is redundant with its source, the arm's
  present follows from its past, touch and sound follow from where the fingertip is (which
  vision shows).
- On scikit-learn's handwritten **digits** (:mod:`intermodal.data.digits`): the label
  follows from either half of the image; the label gives the class but not the writer's
  style; the two halves are partly redundant.
- On any other data, the **paper's findings** on iCub (docs/method.md §8), where the data
  set has what they speak of: constant-1 collapses; vision is the most informative
  modality; touch and sound are hard to predict (the rule says which output family touch
  and sound were decoded with).

Every check is made of *claims*, each a ratio of two of the run's numbers compared with a
threshold, in the last window (each model's mean over the window's evaluations). A claim's
value for a model is its margin on a log10 scale (``log10(ratio) - log10(threshold)``, signed
so that > 0 means the claim holds): the measures span decades and vary between seeds by
factors, not by amounts. The models of one seed share their initial weights and batches
across schedules, so the seed is the unit of replication: per seed, the margins of the
schedules a claim covers are averaged, and a one-sided t-test over seeds decides the
claim (:func:`~intermodal.evaluation.statistics.threshold_comparison`); Holm's correction
combines a check's claims (:func:`~intermodal.evaluation.statistics.verdict`): "yes" when
every claim holds at the 5% level, "no" when any claim's opposite does, "cannot tell"
otherwise or with fewer than 3 seeds, with the seeds that would be needed.

The thresholds are the module constants below, chosen from a calibration run (docs/study.md)
with margins of a factor 3 or more; the report prints every rule beside its verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd

from ..data.description import DatasetDescription
from ..data.digits import digits_pairs
from ..data.sim_truth import GroundTruth, ground_truth_of
from .claims import (
    BASELINE,
    LATENT_LOSS,
    PREDICTION_ERROR,
    VERDICT_RULE,
    Claim,
    Finding,
    cannot,
    decide,
    describe_column,
    format_number,
    log10,
    lop_column,
    missing_columns,
    model_values,
    pair_column,
    ratio_claim,
    sme_column,
)
from .lattice_truth import lattice_truth_checks
from .summaries import MEASURE_QUANTITIES, modality_likelihoods, normalised_results, resolve_windows, window_label

__all__ = [
    "Finding",
    "VERDICT_RULE",
    "check_findings",
    "format_number",
    "COLLAPSED_SCHEDULE",
    "INFORMATIVE_MODALITY",
    "HARD_MODALITIES",
    "LATENT_NEAR_ZERO_NATS",
    "LATENT_NEAR_ZERO_FRACTION",
    "LOP_CLOSE_TO_SME_RATIO",
    "NOISE_ALONE_MIN_FRACTION",
    "NEGLIGIBLE_FRACTION",
    "PREDICTED_FRACTION",
    "COPY_AS_SOURCE_RATIO",
    "COLLAPSED_BASELINE_NATS",
    "LABEL_FROM_HALF_FRACTION",
    "CLASS_SHOWS_FRACTION",
    "STYLE_REMAINS_FRACTION",
]

# --- the paper's findings ------------------------------------------------------------
# The schedule the paper found to collapse, and the modalities its findings name.
COLLAPSED_SCHEDULE = "constant-1"
INFORMATIVE_MODALITY = "vision"
HARD_MODALITIES = ("touch", "sound")
# "Latent loss near 0": below this many nats (summed over latent units), or below this
# fraction of the median of the compared schedules' latent losses (a short run does not
# drive a collapsed KL all the way to 0, but far below a working schedule's).
LATENT_NEAR_ZERO_NATS = 0.5
LATENT_NEAR_ZERO_FRACTION = 0.10
# "Loss of precision close to single modality error": within this factor either way.
LOP_CLOSE_TO_SME_RATIO = 2.0

# --- the simulator's ground truth ----------------------------------------------------
# Alone, a pure-noise modality leaves the output at least this fraction as far from the
# full input's as no input does (the baseline): it tells the model nothing.
NOISE_ALONE_MIN_FRACTION = 0.5
# Muting a modality that carries nothing (noise) or nothing new (a copy beside its source)
# moves the output by at most this fraction of the baseline; muting vision moves the noise
# columns' output by at most this fraction of what it moves the whole row's.
NEGLIGIBLE_FRACTION = 0.01
# A modality that follows from the given ones is reproduced at most this fraction as far
# from the full input's output as from no input.
PREDICTED_FRACTION = 0.1
# From its source alone, a copy is reproduced within this factor of how well the source
# itself is (the copy's divergence over the source's single modality error regarding itself).
COPY_AS_SOURCE_RATIO = 2.0
# A model whose baseline is below this (nats) has collapsed: its output hardly depends on
# its input, so it says nothing of what the data make true. The ground-truth checks leave it out.
COLLAPSED_BASELINE_NATS = 0.1

# --- what the digits make true (intermodal.data.digits) ----------------------------------
# Set from a calibration run (the quick preset on the digits, its constant-0 models: the
# others collapse; docs/study.md), 3 times or more beyond the worst model where a threshold
# below 1 allows it. Given either half alone, the label is at most this fraction as far
# from the full input's as given nothing: the half shows the class (worst model 0.26).
LABEL_FROM_HALF_FRACTION = 0.8
# Given the label alone, the image is at most the first fraction as far from the full
# input's as given nothing (the class shows; worst 0.39, 2.3 times below) and at least the
# second (the writer's style does not; lowest 0.27); given one half, the other half
# likewise (partly redundant; from 0.19 to 0.32).
CLASS_SHOWS_FRACTION = 0.9
STYLE_REMAINS_FRACTION = 0.06

_GROUND_TRUTH = "ground truth of the simulator (docs/simulator.md)"
_DIGITS = "what the handwritten digits make true (docs/data.md, 'The digits')"
_PAPER = "Langer et al. (2024) on the iCub data (docs/method.md §8)"


# --------------------------------------------------------------------------- entry point
def check_findings(
    history: pd.DataFrame,
    results: pd.DataFrame,
    windows=None,
    *,
    description: DatasetDescription | None = None,
    fusion: str | None = None,
) -> list[Finding]:
    """Check a run's tables, over their last window, against what is known to be true.

    ``history``, ``results``: a run folder's tables (one fusion's models, or all: then
    ``fusion`` picks one; by default the first found). ``windows``: the run's epoch windows
    (None: the default windows for its length). ``description``: the data set's, which says
    whether the data are the simulator's (then its ground truth is checked) or other data
    (then the paper's findings, where the data set has what they need); None counts as other
    data. Returns one :class:`Finding` per check.
    """
    results = normalised_results(results)
    if fusion is None:
        found = [str(f) for f in pd.unique(results["fusion"])] if "fusion" in results and len(results) else []
        fusion = found[0] if found else "concat"
    if "fusion" in results:
        results = results[results["fusion"].astype(str) == fusion]
    if "fusion" in history:
        history = history[history["fusion"].astype(str) == fusion]
    if windows is None:
        windows = resolve_windows(None, history, results)
    window = tuple(windows[-1])
    values, full_beta = model_values(history, results, window)
    where = f"the last window ({window_label(window)})"
    truth = ground_truth_of(description) if description is not None else None
    if truth is not None:
        return _ground_truth_checks(values, truth, fusion, where)
    if description is not None and digits_pairs(description) is not None:
        return _digits_checks(values, fusion, where)
    modalities = list(description.modality_names) if description is not None else _modalities_in(results)
    families = description.likelihoods if description is not None else modality_likelihoods(results)
    return _paper_checks(values, full_beta, modalities, fusion, where, families)


def _modalities_in(results: pd.DataFrame) -> list[str]:
    rows = results[results["quantity"].isin(MEASURE_QUANTITIES)]
    return [str(m) for m in pd.unique(rows["modality"]) if m]


# --------------------------------------------------------------------------- ground truth
def _without_collapsed(values: pd.DataFrame, where: str) -> tuple[pd.DataFrame, list[str], str]:
    """The models whose baseline shows that their output depends on their input, the ones
    left out, and the scope sentence of a known-truth check."""
    collapsed = []
    if BASELINE in values:
        low = values[BASELINE] < COLLAPSED_BASELINE_NATS
        collapsed = [f"{s} seed {seed}" for s, seed in values.index[low]]
        values = values[~low]
    scope = (
        f"Over {where}, every model of the fusion (every schedule"
        + (
            f"; left out as collapsed, baseline < {COLLAPSED_BASELINE_NATS:g} nats: {', '.join(collapsed)}"
            if collapsed
            else ""
        )
        + ")."
    )
    return values, collapsed, scope


def _ground_truth_checks(values: pd.DataFrame, truth: GroundTruth, fusion: str, where: str) -> list[Finding]:
    values, collapsed, scope = _without_collapsed(values, where)
    if collapsed and values.empty:
        why = (
            f"Every model's baseline is below {COLLAPSED_BASELINE_NATS:g} nats in the window: their outputs hardly "
            "depend on their input, so they cannot show what the data make true."
        )
        ids = ["noise-uninformative", "copy-redundant", "present-from-past", "contact-from-vision"]
        return [cannot(i, i.replace("-", " "), _GROUND_TRUTH, fusion, scope, why) for i in ids]
    checks: list[Callable[[], Finding]] = []
    noises: list[str | None] = [*truth.noise] or [None]  # None: a check saying the data set lacks one
    copies: list[tuple[str, str] | None] = [*truth.copies] or [None]
    checks += [partial(_check_noise, values, truth, n, fusion, scope) for n in noises]
    checks += [partial(_check_copy, values, truth, c, fusion, scope) for c in copies]
    checks.append(lambda: _check_past(values, truth, fusion, scope))
    checks.append(lambda: _check_contact(values, truth, fusion, scope))
    checks += lattice_truth_checks(values, truth, fusion, scope)
    return [check() for check in checks]


def _needs(values: pd.DataFrame, columns: list[str]) -> str | None:
    """Why a check cannot be made (columns absent from the window), or None."""
    missing = missing_columns(values, columns)
    if not missing:
        return None
    pairs = [c for c in missing if c.startswith("custom|")]
    hint = (
        " The ground-truth pairs are measured in training with --ground-truth true (the study presets' default)."
        if pairs
        else ""
    )
    return f"This run has no values of {', '.join(describe_column(c) for c in missing)} in the window.{hint}"


def _check_noise(values, truth: GroundTruth, noise: str | None, fusion: str, scope: str) -> Finding:
    figures = ("fig7_window_means", "fig6_measures")
    if noise is None:
        return cannot(
            "noise-uninformative",
            "A pure-noise modality is uninformative",
            _GROUND_TRUTH,
            fusion,
            "",
            "This run's simulator has no pure-noise distractor; add one with --sim "
            '\'{"distractors": ["noise"]}\' (the study presets add it with --ground-truth true).',
            figures,
        )
    ref = truth.reference
    pair = truth.noise_when_reference_muted.get(noise)
    claim = f"{noise} (uniform noise, independent of everything) is uninformative"
    rule = (
        f"{scope} Claims: (1) alone, {noise} tells nothing: its single modality error regarding all is at least "
        f"{NOISE_ALONE_MIN_FRACTION:g} × the baseline; (2) without it nothing is lost: its loss of precision "
        f"regarding all is at most {NEGLIGIBLE_FRACTION:g} × the baseline; (3) muting {ref} leaves the {noise} "
        f"columns' output unchanged: their divergence (pair {pair!r}) is at most {NEGLIGIBLE_FRACTION:g} × the loss "
        f"of precision regarding all of {ref}."
    )
    columns = [sme_column(noise, "all"), lop_column(noise, "all"), BASELINE] + (
        [pair_column(pair), lop_column(ref, "all")] if pair and ref else []
    )
    why = (
        _needs(values, columns)
        if pair and ref
        else f"This data set has no informative arm modality to mute beside {noise}."
    )
    if why:
        return cannot("noise-uninformative", claim, _GROUND_TRUTH, fusion, rule, why, figures)
    assert pair is not None and ref is not None  # else `why` says what is missing
    claims = [
        ratio_claim(
            f"SME regarding all of {noise} / baseline",
            values[sme_column(noise, "all")] / values[BASELINE],
            NOISE_ALONE_MIN_FRACTION,
            at_most=False,
        ),
        ratio_claim(
            f"LoP regarding all of {noise} / baseline",
            values[lop_column(noise, "all")] / values[BASELINE],
            NEGLIGIBLE_FRACTION,
            at_most=True,
        ),
        ratio_claim(
            f"{noise} columns when {ref} is muted / LoP regarding all of {ref}",
            values[pair_column(pair)] / values[lop_column(ref, "all")],
            NEGLIGIBLE_FRACTION,
            at_most=True,
        ),
    ]
    return decide("noise-uninformative", claim, _GROUND_TRUTH, fusion, rule, claims, figures)


def _check_copy(values, truth: GroundTruth, copy: tuple[str, str] | None, fusion: str, scope: str) -> Finding:
    figures = ("fig7_window_means", "fig6_measures")
    if copy is None:
        return cannot(
            "copy-redundant",
            "An exact copy of a modality is redundant",
            _GROUND_TRUTH,
            fusion,
            "",
            "This run's simulator has no copy distractor; add one with --sim "
            '\'{"distractors": ["copy-vision"]}\' (the study presets add it with --ground-truth true).',
            figures,
        )
    name, source = copy
    pair = truth.copy_from_source[name]
    claim = f"{name} (an exact copy of {source}) is redundant with {source}"
    rule = (
        f"{scope} Claims: (1) with {source} present, muting {name} loses almost nothing: its loss of precision "
        f"regarding all is at most {NEGLIGIBLE_FRACTION:g} × the baseline; (2) {name} follows from {source} alone "
        f"as well as {source} itself does: the divergence over {name}'s columns given {source} alone (pair "
        f"{pair!r}) is at most {COPY_AS_SOURCE_RATIO:g} × {source}'s single modality error regarding itself."
    )
    columns = [lop_column(name, "all"), BASELINE, pair_column(pair), sme_column(source, "modality")]
    why = _needs(values, columns)
    if why:
        return cannot("copy-redundant", claim, _GROUND_TRUTH, fusion, rule, why, figures)
    claims = [
        ratio_claim(
            f"LoP regarding all of {name} / baseline",
            values[lop_column(name, "all")] / values[BASELINE],
            NEGLIGIBLE_FRACTION,
            at_most=True,
        ),
        ratio_claim(
            f"{name} given {source} alone / SME regarding {source} of {source}",
            values[pair_column(pair)] / values[sme_column(source, "modality")],
            COPY_AS_SOURCE_RATIO,
            at_most=True,
        ),
    ]
    return decide("copy-redundant", claim, _GROUND_TRUTH, fusion, rule, claims, figures)


def _check_past(values, truth: GroundTruth, fusion: str, scope: str) -> Finding:
    claim = "The arm's present follows from its past: joints(t) = joints(t-1) + 0.2 · motor(t-1)"
    rule = (
        f"{scope} Claim: given every modality at t-1 alone, the divergence over the joints@t columns (pair "
        f"{truth.present_from_past!r}) is at most {PREDICTED_FRACTION:g} × the one given nothing (pair "
        f"{truth.present_from_nothing!r})."
    )
    figures = ("fig7_window_means",)
    if truth.present_from_past is None or truth.present_from_nothing is None:  # set together
        return cannot(
            "present-from-past", claim, _GROUND_TRUTH, fusion, rule, "This data set lacks joints or motor.", figures
        )
    past, nothing = pair_column(truth.present_from_past), pair_column(truth.present_from_nothing)
    why = _needs(values, [past, nothing])
    if why:
        return cannot("present-from-past", claim, _GROUND_TRUTH, fusion, rule, why, figures)
    claims = [
        ratio_claim(
            "joints@t given t-1 / given nothing", values[past] / values[nothing], PREDICTED_FRACTION, at_most=True
        )
    ]
    return decide("present-from-past", claim, _GROUND_TRUTH, fusion, rule, claims, figures)


def _check_contact(values, truth: GroundTruth, fusion: str, scope: str) -> Finding:
    present = list(truth.contact_from_vision)
    claim = f"{' and '.join(present) or 'Touch and sound'} follow from where the fingertip is, which vision shows"
    rule = (
        f"{scope} Claim, for each of {', '.join(present) or 'touch, sound'}: given vision alone, the divergence over "
        f"its columns (pair '<modality>-from-vision') is at most {PREDICTED_FRACTION:g} × the one given nothing "
        "(pair '<modality>-from-nothing')."
    )
    figures = ("fig7_window_means",)
    if not present:
        return cannot(
            "contact-from-vision",
            claim,
            _GROUND_TRUTH,
            fusion,
            rule,
            "This data set lacks vision, or touch and sound.",
            figures,
        )
    columns = [pair_column(truth.contact_from_vision[m]) for m in present] + [
        pair_column(truth.contact_from_nothing[m]) for m in present
    ]
    why = _needs(values, columns)
    if why:
        return cannot("contact-from-vision", claim, _GROUND_TRUTH, fusion, rule, why, figures)
    claims = [
        ratio_claim(
            f"{m} given vision / given nothing",
            values[pair_column(truth.contact_from_vision[m])] / values[pair_column(truth.contact_from_nothing[m])],
            PREDICTED_FRACTION,
            at_most=True,
        )
        for m in present
    ]
    return decide("contact-from-vision", claim, _GROUND_TRUTH, fusion, rule, claims, figures)


# --------------------------------------------------------------------------- the digits
def _digits_checks(values: pd.DataFrame, fusion: str, where: str) -> list[Finding]:
    values, collapsed, scope = _without_collapsed(values, where)
    figures = ("fig7_window_means",)

    def given(name: str) -> pd.Series:
        return values[pair_column(name)]

    def check(id_: str, claim: str, rule: str, pairs: list[str], make) -> Finding:
        why = (
            "Every model's baseline is below the collapse limit in the window."
            if collapsed and values.empty
            else _needs(values, [pair_column(p) for p in pairs])
        )
        if why:
            return cannot(id_, claim, _DIGITS, fusion, rule, why, figures)
        return decide(id_, claim, _DIGITS, fusion, rule, make(), figures)

    f_half, f_class, f_style = LABEL_FROM_HALF_FRACTION, CLASS_SHOWS_FRACTION, STYLE_REMAINS_FRACTION
    label = check(
        "label-from-either-half",
        "The label follows from either half of the image",
        f"{scope} Claim, for each half: given that half alone, the divergence over the label's columns (pair "
        f"'label-from-top' or 'label-from-bottom') is at most {f_half:g} × the one given nothing (pair "
        "'label-from-nothing').",
        ["label-from-top", "label-from-bottom", "label-from-nothing"],
        lambda: [
            ratio_claim(
                f"label given the {h} half / given nothing",
                given(f"label-from-{h}") / given("label-from-nothing"),
                f_half,
                at_most=True,
            )
            for h in ("top", "bottom")
        ],
    )
    style = check(
        "label-class-not-style",
        "The label gives the class but not the writer's style",
        f"{scope} Claims: given the label alone, the divergence over the image's columns (pair 'image-from-label') "
        f"is (1) at most {f_class:g} × the one given nothing (pair 'image-from-nothing'): the class shows; (2) at "
        f"least {f_style:g} × it: the style does not.",
        ["image-from-label", "image-from-nothing"],
        lambda: [
            ratio_claim(label_, given("image-from-label") / given("image-from-nothing"), t, at_most=most)
            for label_, t, most in (
                ("image given the label / given nothing: class", f_class, True),
                ("image given the label / given nothing: style", f_style, False),
            )
        ],
    )
    halves = check(
        "halves-partly-redundant",
        "The two halves of the image are partly redundant",
        f"{scope} Claims, for each half: given the other half alone, the divergence over its columns (pairs "
        f"'bottom-from-top', 'top-from-bottom') is at most {f_class:g} × and at least {f_style:g} × the one given "
        "nothing ('bottom-from-nothing', 'top-from-nothing'): each half tells something of the other, not all.",
        ["bottom-from-top", "bottom-from-nothing", "top-from-bottom", "top-from-nothing"],
        lambda: [
            ratio_claim(
                f"{a} given {b} / given nothing: {what}",
                given(f"{a}-from-{b}") / given(f"{a}-from-nothing"),
                t,
                at_most=most,
            )
            for a, b in (("bottom", "top"), ("top", "bottom"))
            for what, t, most in (("informative", f_class, True), ("not determined", f_style, False))
        ],
    )
    return [label, style, halves]


# --------------------------------------------------------------------------- the paper
def _paper_checks(
    values: pd.DataFrame, full_beta: pd.Series, modalities: list[str], fusion: str, where: str, families: dict
) -> list[Finding]:
    schedules = [str(s) for s in pd.unique(values.index.get_level_values("schedule"))] if len(values) else []
    others = [s for s in schedules if s != COLLAPSED_SCHEDULE]
    return [
        _check_collapse(values, full_beta, schedules, fusion, where),
        _check_informative(values, others, modalities, fusion, where),
        _check_hard(values, others, modalities, fusion, where, families),
    ]


def _by_seed(values: pd.DataFrame, column: str, schedules: list[str]) -> pd.DataFrame:
    """``column`` as a [seed × schedule] table of the given schedules (seeds with all of them)."""
    table = values[column].unstack("schedule")
    return table.reindex(columns=schedules).dropna()


def _check_collapse(values, full_beta: pd.Series, schedules: list[str], fusion: str, where: str) -> Finding:
    c1 = COLLAPSED_SCHEDULE
    claim = f"{c1} collapses: lowest baseline, highest prediction error, latent loss near 0"
    compared = [s for s in schedules if s != c1 and not bool(full_beta.get(s, False))]
    rule = (
        f"Over {where}, {c1} against every schedule that is not at β = 1 throughout the window (those are "
        f"{', '.join(compared) or 'none in this run'}), per seed: (1) {c1}'s baseline is below all of theirs; "
        f"(2) its prediction error is above all of theirs; (3) its latent loss is below {LATENT_NEAR_ZERO_NATS:g} "
        f"nats or below {LATENT_NEAR_ZERO_FRACTION:g} × the median of theirs."
    )
    figures = ("fig4_losses", "fig5_baseline")
    if c1 not in schedules:
        return cannot("collapse", claim, _PAPER, fusion, rule, f"This run has no {c1} schedule.", figures)
    if not compared:
        return cannot(
            "collapse",
            claim,
            _PAPER,
            fusion,
            rule,
            f"This run has no schedule below β = 1 in the window to compare {c1} with.",
            figures,
        )
    why = missing_columns(values, [BASELINE, PREDICTION_ERROR, LATENT_LOSS])
    if why:
        text = f"This run has no values of {', '.join(describe_column(c) for c in why)} in the window."
        return cannot("collapse", claim, _PAPER, fusion, rule, text, figures)
    base = _by_seed(values, BASELINE, [c1, *compared])
    error = _by_seed(values, PREDICTION_ERROR, [c1, *compared])
    latent = _by_seed(values, LATENT_LOSS, [c1, *compared])
    near_zero = np.maximum(LATENT_NEAR_ZERO_NATS, LATENT_NEAR_ZERO_FRACTION * latent[compared].median(axis=1))
    claims = [
        _seed_claim(f"lowest other baseline / {c1}'s baseline", base[compared].min(axis=1) / base[c1], 1.0),
        _seed_claim(f"{c1}'s prediction error / highest other's", error[c1] / error[compared].max(axis=1), 1.0),
        _seed_claim(f"near-zero limit / {c1}'s latent loss", near_zero / latent[c1], 1.0),
    ]
    return decide("collapse", claim, _PAPER, fusion, rule, claims, figures)


def _seed_claim(label: str, ratio: pd.Series, threshold: float) -> Claim:
    """A claim whose ratio is already one per seed (it compares schedules): ``ratio > threshold``."""
    ratio = ratio.copy()
    ratio.index = pd.MultiIndex.from_arrays([["(schedules)"] * len(ratio), ratio.index], names=["schedule", "seed"])
    claim = ratio_claim(label, ratio, threshold, at_most=False)
    claim.threshold = f"> {threshold:g}"
    return claim


def _check_informative(values, others: list[str], modalities: list[str], fusion: str, where: str) -> Finding:
    m = INFORMATIVE_MODALITY
    claim = f"{m} is the most informative modality: lowest single modality error, high loss of precision"
    rule = (
        f"Over {where}, every schedule except {COLLAPSED_SCHEDULE}, per model: (1) {m}'s single modality error "
        f"regarding all is below every other modality's; (2) its loss of precision regarding all is above the "
        "median across modalities."
    )
    figures = ("fig7_window_means", "fig6_measures", "figA1_per_modality")
    if m not in modalities:
        why = f"This data set has no modality called {m!r} (it has: {', '.join(modalities) or 'none'})."
        return cannot("vision-informative", claim, _PAPER, fusion, rule, why, figures)
    if len(modalities) < 2:
        return cannot("vision-informative", claim, _PAPER, fusion, rule, "There is only one modality.", figures)
    rows = values.loc[values.index.get_level_values("schedule").isin(others)] if len(values) else values
    sme = [sme_column(x, "all") for x in modalities]
    lop = [lop_column(x, "all") for x in modalities]
    missing = missing_columns(rows, sme + lop)
    if missing or rows.empty:
        why = f"No measure values for a schedule other than {COLLAPSED_SCHEDULE} in the window."
        return cannot("vision-informative", claim, _PAPER, fusion, rule, why, figures)
    others_sme = rows[[sme_column(x, "all") for x in modalities if x != m]].min(axis=1)
    claims = [
        ratio_claim(
            f"lowest other SME regarding all / {m}'s", others_sme / rows[sme_column(m, "all")], 1.0, at_most=False
        ),
        ratio_claim(
            f"{m}'s LoP regarding all / median across modalities",
            rows[lop_column(m, "all")] / rows[lop].median(axis=1),
            1.0,
            at_most=False,
        ),
    ]
    for c in claims:
        c.threshold = "> 1"
    return decide("vision-informative", claim, _PAPER, fusion, rule, claims, figures)


def _check_hard(values, others: list[str], modalities: list[str], fusion: str, where: str, families: dict) -> Finding:
    present = [m for m in HARD_MODALITIES if m in modalities]
    decoded = "; ".join(f"{m} decoded as {families.get(m, 'gaussian')}" for m in present)
    claim = (
        f"{' and '.join(HARD_MODALITIES)} are hard to predict: high on every measure, loss of precision close to "
        "single modality error"
    )
    rule = (
        f"Over {where}, every schedule except {COLLAPSED_SCHEDULE}, per model and for each of "
        f"{' and '.join(HARD_MODALITIES)}: (1) its single modality error regarding itself is above the median "
        f"across modalities; (2) its loss of precision regarding itself is within a factor "
        f"{LOP_CLOSE_TO_SME_RATIO:g} of that single modality error."
        + (f" This run's output families: {decoded} (--likelihood)." if decoded else "")
    )
    figures = ("fig7_window_means", "figA1_per_modality", "fig6_measures")
    if not present:
        wanted = " or ".join(map(repr, HARD_MODALITIES))
        why = f"This data set has no modality called {wanted} (it has: {', '.join(modalities) or 'none'})."
        return cannot("touch-sound-hard", claim, _PAPER, fusion, rule, why, figures)
    if len(modalities) < 2:
        return cannot("touch-sound-hard", claim, _PAPER, fusion, rule, "There is only one modality.", figures)
    rows = values.loc[values.index.get_level_values("schedule").isin(others)] if len(values) else values
    sme = [sme_column(x, "modality") for x in modalities]
    missing = missing_columns(rows, sme + [lop_column(m, "modality") for m in present])
    if missing or rows.empty:
        why = f"No measure values for a schedule other than {COLLAPSED_SCHEDULE} in the window."
        return cannot("touch-sound-hard", claim, _PAPER, fusion, rule, why, figures)
    median = rows[sme].median(axis=1)
    claims = []
    for m in present:
        high = ratio_claim(
            f"{m}'s SME regarding itself / median across modalities",
            rows[sme_column(m, "modality")] / median,
            1.0,
            at_most=False,
        )
        high.threshold = "> 1"
        ratio = rows[lop_column(m, "modality")] / rows[sme_column(m, "modality")]
        close = Claim(
            f"{m}'s LoP / SME regarding itself",
            log10(LOP_CLOSE_TO_SME_RATIO) - np.abs(log10(ratio)),
            ratio,
            f"within ×{LOP_CLOSE_TO_SME_RATIO:g}",
        )
        claims += [high, close]
    absent = [m for m in HARD_MODALITIES if m not in present]
    finding = decide("touch-sound-hard", claim, _PAPER, fusion, rule, claims, figures)
    if absent:
        note = f"No modality {' or '.join(map(repr, absent))}; checked {', '.join(present)} only.\n"
        finding = Finding(**{**finding.to_dict(), "evidence": note + finding.evidence, "figures": finding.figures})
    return finding
