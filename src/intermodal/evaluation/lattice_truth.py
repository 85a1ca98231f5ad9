"""The simulator's ground truth in the lattice measures' terms (docs/simulator.md, "What the
measures must find"; :mod:`intermodal.evaluation.lattice`): a pure-noise modality has no
share and interacts with nothing, an exact copy and its source are redundant and split the
source's share, and the two bits of the ``xor`` distractor are synergistic regarding their
product. Each check is decided over seeds by the rule of :mod:`intermodal.evaluation.findings`
(:func:`~intermodal.evaluation.claims.decide`), from the ``share`` and ``interaction`` rows of
a run's results; a run without them (the lattice not computed) gets none of these checks.

Shares regarding a scope add up to the divergence given nothing regarding that scope (the
game's baseline v_T(∅)), so each claim is a share or interaction over that sum, read from the
same rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd

from ..data.sim_truth import GROUND_TRUTH_DISTRACTORS, GroundTruth
from .catalogue import INTERACTION, SHARE, pair_name
from .claims import Claim, Finding, cannot, column, decide, describe_column, log10, pair_column, ratio_claim

__all__ = [
    "lattice_truth_checks",
    "has_shares",
    "NOISE_SHARE_FRACTION",
    "NOISE_INTERACTION_FRACTION",
    "COPY_REDUNDANCY_FRACTION",
    "COPY_SPLIT_RATIO",
    "SYNERGY_FRACTION",
    "SYNERGY_DOMINANCE",
    "COPY_READ_FRACTION",
    "PRODUCT_LEARNED_NATS",
    "PRODUCT_FROM_BITS_FRACTION",
    "SYNERGY_CHECK",
    "COPY_CHECK",
    "truths_held",
]

# Thresholds. Checked on the quick preset's models (1500 epochs, lr 3e-4, the four paper
# schedules, 3 seeds) on the simulator with noise, copy-vision and xor, every subset of the
# ten modalities exact over the first 1024 test rows, and on concat models of the xor triple
# alone (600 epochs, lr 1e-3, constant-0); docs/simulator.md has the numbers.
# (1) Regarding all, the noise's share is at most the first fraction of the game's baseline in
# size, and each of its interactions the second. On the quick preset's models every part but
# vision scatters by some percent of the baseline either way (their outputs given parts the
# patterns never give together): the noise's share reached 0.079 (geometric mean 0.011), its
# largest interaction 0.137 (0.031), while vision's share is 0.8-1.2 of the baseline.
NOISE_SHARE_FRACTION = 0.25
NOISE_INTERACTION_FRACTION = 0.4
# (2) The interaction of a copy and its source regarding all is negative, at least this
# fraction of their two shares together in size (ideal about 1: a copy adds nothing its source
# has not), and the two shares are within this factor of each other (ideal 1: they split it).
# Set from the ideal values with a factor 3 of room. Models taught the copy (teach_copies)
# gave -0.99 and 0.89 (geometric means over 12); models never given the copy alone do not
# read it (its share 0.00 ± 0.07 of vision's), and COPY_READ_FRACTION says so.
COPY_REDUNDANCY_FRACTION = 0.3
COPY_SPLIT_RATIO = 3.0
# Whether the models read the copy at all: its share above this fraction of the source's in
# size, in half the models at least. A model that ignores the copy still gives it a share and
# an interaction of a few percent of the source's share, of either sign (the scatter of
# inputs no pattern teaches): on the front door's models (--preset demo) the copy's share was
# 0.00-0.07 of vision's and its interaction up to 0.2, so the share alone decides; models
# taught the copy (--sim '{"teach_copies": true}') gave 0.33-1.23.
COPY_READ_FRACTION = 0.1
# (3) Regarding the product, the interaction of the two bits is at least the first fraction of
# the game's baseline (ideal 1/2 when the product is known from itself or from both bits,
# from nothing less; the models that learned the triple gave 2 700-2 900, since given one bit
# they predict the product sharply and wrongly) and at least the second times every other
# pair's interaction regarding it (ideal: no other pair is synergistic; learned models 185-340).
SYNERGY_FRACTION = 0.1
SYNERGY_DOMINANCE = 3.0
# Whether a model learned the product at all (else it is left out of the synergy check): the
# lattice's baseline regarding it, in nats (the quick preset's models: 0.04-0.16, the output given
# everything as wide as given nothing; models that learned the triple: about 2.5).
PRODUCT_LEARNED_NATS = 0.5
# And learned from the bits (else left out too): the product's output given both bits within
# this fraction of its output given nothing, in divergence from the output given everything
# (learned on the triple alone: 0.000-0.002 nats against 2.5; the full simulator's
# constant-0 models with xor:16, which predict it sharply and wrongly from the bits: 1.6-100
# times it).
PRODUCT_FROM_BITS_FRACTION = 0.1

SYNERGY_CHECK = "bits-synergy"  # the id of the synergy check
COPY_CHECK = "copy-shares-split"  # the id of the copy's redundancy check
_GROUND_TRUTH = "ground truth of the simulator (docs/simulator.md)"
_FIGURES = ("fig7_window_means",)
_NO_SHARES = (
    "This run has no {what} in the window: its lattice measures (im.modality_shares) were not computed, "
    "or not regarding {scope}."
)


def truths_held(truth: GroundTruth) -> dict[str, bool]:
    """Which of the lattice's copy and synergy checks a data set's ground truth can decide
    (check id -> whether it holds a copy, a synergy triple): a study's controls lend the
    report the checks they hold."""
    return {COPY_CHECK: bool(truth.copies), SYNERGY_CHECK: bool(truth.synergies)}


def has_shares(values: pd.DataFrame) -> bool:
    """Whether a run's window values (one column per quantity|modality|scope) hold shares."""
    return any(str(c).startswith(f"{SHARE}|") for c in values.columns)


def lattice_truth_checks(
    values: pd.DataFrame, truth: GroundTruth, fusion: str, scope: str
) -> list[Callable[[], Finding]]:
    """The lattice checks of the simulator's ground truth, one per noise modality, copy and
    synergy triple (one saying what the data set lacks where it has none); none at all when
    the run computed no shares. ``values``: each model's window means (the collapsed models
    left out), ``scope``: the sentence saying which models are checked."""
    if not has_shares(values):
        return []
    checks: list[Callable[[], Finding]] = []
    noises: list[str | None] = [*truth.noise] or [None]  # None: a check saying the data set lacks one
    copies: list[tuple[str, str] | None] = [*truth.copies] or [None]
    synergies: list[tuple[str, str, str] | None] = [*truth.synergies] or [None]
    checks += [partial(_check_noise_share, values, n, fusion, scope) for n in noises]
    checks += [partial(_check_copy_split, values, c, fusion, scope) for c in copies]
    checks += [partial(_check_synergy, values, s, fusion, scope, truth) for s in synergies]
    return checks


# --------------------------------------------------------------------------- columns
def share_column(modality: str, scope: str) -> str:
    return column(SHARE, modality, scope)


def interaction_column(values: pd.DataFrame, a: str, b: str, scope: str) -> str:
    """The column of the pair's interaction, whichever order the lattice named it in."""
    forward, backward = column(INTERACTION, pair_name(a, b), scope), column(INTERACTION, pair_name(b, a), scope)
    return backward if backward in values.columns and forward not in values.columns else forward


def _shares(values: pd.DataFrame, scope: str) -> list[str]:
    return [c for c in values.columns if c.startswith(f"{SHARE}|") and c.endswith(f"|{scope}")]


def _total(values: pd.DataFrame, scope: str) -> pd.Series:
    """Per model, the game's baseline regarding ``scope``: the sum of every share (efficiency)."""
    return values[_shares(values, scope)].sum(axis=1, min_count=1)


def _missing(values: pd.DataFrame, columns: list[str], scope: str) -> str | None:
    missing = [c for c in columns if c not in values.columns or values[c].isna().all()]
    if not missing:
        return None
    return _NO_SHARES.format(what=", ".join(_describe(c) for c in missing), scope=scope)


def _describe(c: str) -> str:
    quantity, modality, scope = c.split("|")
    if quantity in (SHARE, INTERACTION):
        return f"the {quantity} of {modality.replace('&', ' and ')} regarding {scope}"
    return describe_column(c)


# --------------------------------------------------------------------------- the checks
def _lacking(id_: str, claim: str, what: str, spec: str, fusion: str) -> Finding:
    """Cannot tell: the run's simulator lacks the distractor the check needs (``spec``)."""
    preset = " (the study presets add it with --ground-truth true)" if spec in GROUND_TRUTH_DISTRACTORS else ""
    why = f'This run\'s simulator has no {what}; add one with --sim \'{{"distractors": ["{spec}"]}}\'{preset}.'
    return cannot(id_, claim, _GROUND_TRUTH, fusion, "", why, _FIGURES)


def _check_noise_share(values, noise: str | None, fusion: str, scope: str) -> Finding:
    id_ = "noise-no-share"
    if noise is None:
        return _lacking(id_, "A pure-noise modality has no share", "pure-noise distractor", "noise", fusion)
    claim = f"{noise} (uniform noise, independent of everything) informs no other modality and interacts with nothing"
    targets = sorted({c.split("|")[2] for c in values.columns if c.startswith(f"{SHARE}|{noise}|")} - {"all", noise})
    partners = [c.split("|")[1] for c in _shares(values, "all") if c.split("|")[1] != noise]
    rule = (
        f"{scope} Claims, regarding the other modalities (the who-informs-whom targets other than {noise}: what a "
        f"model tells of the noise from the noise itself is no information about the arm): (1) {noise}'s share is at "
        f"most {NOISE_SHARE_FRACTION:g} × their baselines together (the sum of every share regarding them) in size; "
        f"(2) its largest interaction with any other modality, summed over them, is at most "
        f"{NOISE_INTERACTION_FRACTION:g} × it in size."
    )
    if not targets:
        lacking = _NO_SHARES.format(
            what=f"the share of {noise} regarding another modality", scope="the other modalities"
        )
        return cannot(id_, claim, _GROUND_TRUTH, fusion, rule, lacking, _FIGURES)
    pairs = {p: [interaction_column(values, noise, p, t) for t in targets] for p in partners}
    needed = [share_column(noise, t) for t in targets] + next(iter(pairs.values()), [])
    why = _missing(values, needed, "the other modalities")
    if why:
        return cannot(id_, claim, _GROUND_TRUTH, fusion, rule, why, _FIGURES)
    total = sum(_total(values, t) for t in targets)
    share = values[[share_column(noise, t) for t in targets]].sum(axis=1)
    summed = pd.concat(
        {p: values[[c for c in cols if c in values.columns]].sum(axis=1) for p, cols in pairs.items()}, axis=1
    )
    claims = [
        ratio_claim(
            f"|share of {noise}| / baseline, regarding the other modalities",
            share.abs() / total,
            NOISE_SHARE_FRACTION,
            at_most=True,
        ),
        ratio_claim(
            f"largest |interaction of {noise} with another| / baseline, regarding the other modalities",
            summed.abs().max(axis=1) / total,
            NOISE_INTERACTION_FRACTION,
            at_most=True,
        ),
    ]
    return decide(id_, claim, _GROUND_TRUTH, fusion, rule, claims, _FIGURES)


def _check_copy_split(values, copy: tuple[str, str] | None, fusion: str, scope: str) -> Finding:
    id_ = COPY_CHECK
    if copy is None:
        return _lacking(id_, "An exact copy and its source are redundant", "copy distractor", "copy-vision", fusion)
    name, source = copy
    claim = f"{name} and {source} are redundant regarding all and split {source}'s share"
    pair = interaction_column(values, source, name, "all")
    rule = (
        f"{scope} Claims, regarding all: (1) the interaction of {source} and {name} is negative, at least "
        f"{COPY_REDUNDANCY_FRACTION:g} × their two shares together in size; (2) the two shares are within a factor "
        f"{COPY_SPLIT_RATIO:g} of each other."
    )
    shares = [share_column(source, "all"), share_column(name, "all")]
    why = _missing(values, [pair, *shares], "all")
    if why:
        return cannot(id_, claim, _GROUND_TRUTH, fusion, rule, why, _FIGURES)
    # A model that never reads the copy (training never gave it without its source: the
    # simulator adds a COPY-only pattern only with teach_copies) has no share for it beyond
    # the scatter of untaught inputs: the lattice then says nothing of redundancy.
    read = values[shares[1]].abs() > COPY_READ_FRACTION * values[shares[0]].abs()
    if read.mean() < 0.5:
        why = (
            f"The models do not read {name}: in {int((~read).sum())} of {len(read)} its share is under "
            f"{COPY_READ_FRACTION:g} × {source}'s in size, so the lattice cannot show "
            f"a redundancy (training did not give {name} without {source}, so it never asked the models to read it: "
            f"the simulator's default patterns never give a copy alone). Teach it with "
            f"--sim '{{\"teach_copies\": true}}'; the study presets' redundancy control does (docs/simulator.md)."
        )
        return cannot(id_, claim, _GROUND_TRUTH, fusion, rule, why, _FIGURES)
    both = values[shares[0]] + values[shares[1]]
    split = values[shares[1]] / values[shares[0]]
    claims = [
        ratio_claim(
            f"−interaction of {source} and {name} / their shares together, regarding all",
            -values[pair] / both,
            COPY_REDUNDANCY_FRACTION,
            at_most=False,
        ),
        Claim(
            f"share of {name} / share of {source}, regarding all",
            log10(COPY_SPLIT_RATIO) - np.abs(log10(split)),
            split,
            f"within ×{COPY_SPLIT_RATIO:g}",
        ),
    ]
    return decide(id_, claim, _GROUND_TRUTH, fusion, rule, claims, _FIGURES)


def _check_synergy(
    values, triple: tuple[str, str, str] | None, fusion: str, scope: str, truth: GroundTruth | None = None
) -> Finding:
    id_ = SYNERGY_CHECK
    if triple is None:
        return _lacking(id_, "Two bits are synergistic regarding their product", "synergy triple", "xor", fusion)
    a, b, product = triple
    claim = f"{a} and {b} are synergistic regarding their product {product}: neither alone tells it, both do"
    pair = interaction_column(values, a, b, product)
    rule = (
        f"{scope} Claims, regarding {product}: (1) the interaction of {a} and {b} is positive, at least "
        f"{SYNERGY_FRACTION:g} × the lattice's baseline regarding {product} (the sum of every share regarding it); "
        f"(2) it is at least {SYNERGY_DOMINANCE:g} × every other pair's interaction regarding {product}: of all "
        f"pairs, the bits are the synergistic one. Models that did not learn {product} from the bits are left out "
        f"(its baseline under {PRODUCT_LEARNED_NATS:g} nats, or its output given both bits not within "
        f"{PRODUCT_FROM_BITS_FRACTION:g} × its output given nothing of its output given everything): the lattice "
        "shows a synergy only where a model has one."
    )
    others = [c for c in values.columns if c.startswith(f"{INTERACTION}|") and c.endswith(f"|{product}") and c != pair]
    why = _missing(values, [pair, share_column(a, product)], product)
    if why:
        return cannot(id_, claim, _GROUND_TRUTH, fusion, rule, why, _FIGURES)
    # The lattice shows a synergy only in a model that has one: a model that never learned the
    # product (its baseline regarding it ~0), or knows it from itself but not from the bits
    # (where the run measured the ground truth's pairs: the output given both bits far from the
    # output given everything; it predicts the product sharply and wrongly there, which makes
    # a huge interaction without any synergy), says nothing of it and is left out.
    total = _total(values, product)
    known = total > PRODUCT_LEARNED_NATS
    from_bits, from_nothing = _product_pairs(values, truth, product)
    learned = known.copy()
    if from_bits is not None and from_nothing is not None:
        learned &= values[from_bits] < PRODUCT_FROM_BITS_FRACTION * values[from_nothing]
    not_known, not_from_bits = int((~known).sum()), int((known & ~learned).sum())
    left_out = []
    if not_known:
        left_out.append(
            f"{not_known} did not learn {product} (the divergence of its output given everything from its output "
            f"given nothing, the lattice's baseline regarding it, is under {PRODUCT_LEARNED_NATS:g} nats)"
        )
    if not_from_bits:
        left_out.append(
            f"{not_from_bits} did not learn it from {a} and {b} (its output given both bits is not within "
            f"{PRODUCT_FROM_BITS_FRACTION:g} × its output given nothing of its output given everything, in divergence: "
            f"{describe_column(from_bits or '')} against {describe_column(from_nothing or '')})"
        )
    if not learned.any():
        why = (
            f"No model learned {product} from {a} and {b}: of {len(learned)}, " + "; ".join(left_out) + ". The "
            'lattice has no synergy to show (docs/simulator.md, "Where the synergy is found").'
        )
        return cannot(id_, claim, _GROUND_TRUTH, fusion, rule, why, _FIGURES)
    values, total = values[learned], total[learned]
    claims = [
        ratio_claim(
            f"interaction of {a} and {b} / baseline, regarding {product}",
            values[pair] / total,
            SYNERGY_FRACTION,
            at_most=False,
        ),
        ratio_claim(
            f"interaction of {a} and {b} / largest other pair's, regarding {product}",
            # an other pair's negative interaction is no rival: then the ratio is infinite
            values[pair] / values[others].max(axis=1).clip(lower=0.0) if others else values[pair] * np.inf,
            SYNERGY_DOMINANCE,
            at_most=False,
        ),
    ]
    finding = decide(id_, claim, _GROUND_TRUTH, fusion, rule, claims, _FIGURES)
    if not left_out:
        return finding
    note = f"Left out, of {len(learned)} models: " + "; ".join(left_out) + "."
    return dataclasses.replace(finding, evidence=f"{note}\n{finding.evidence}")


def _product_pairs(values: pd.DataFrame, truth: GroundTruth | None, product: str) -> tuple[str | None, str | None]:
    """The columns of the ground truth's pairs "the product given both bits" and "given
    nothing", where the run measured them (None otherwise)."""
    if truth is None:
        return None, None
    names = (truth.product_from_bits.get(product), truth.product_from_nothing.get(product))
    found = [pair_column(n) if n is not None and pair_column(n) in values.columns else None for n in names]
    return found[0], found[1]
