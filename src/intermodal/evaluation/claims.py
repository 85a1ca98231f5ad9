"""The pieces a finding is made of (docs/study.md, "Findings"): :class:`Finding`, the
*claims* it is decided by (a ratio of two of a run's numbers against a threshold, per model,
as a log10 margin) and the rule that decides a check from its claims over seeds, with the
words the report prints for them. :mod:`intermodal.evaluation.findings` makes the checks."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import catalogue, statistics
from .summaries import in_window

__all__ = [
    "Finding",
    "VERDICT_RULE",
    "Claim",
    "format_number",
    "column",
    "sme_column",
    "lop_column",
    "pair_column",
    "share_column",
    "interaction_column",
    "BASELINE",
    "PREDICTION_ERROR",
    "LATENT_LOSS",
    "model_values",
    "log10",
    "ratio_claim",
    "decide",
    "cannot",
    "missing_columns",
    "describe_column",
]

# Values are floored here before their log (a measure can be exactly 0), and a margin is
# clipped to this many decades.
FLOOR = 1e-12
LOG_LIMIT = 12.0
VERDICT_RULE = (
    "How a verdict is decided: each claim compares a ratio of two of the run's numbers with a threshold, per model, "
    "in the last window (each model's mean over the window's evaluations), on a log scale; per seed the margins of "
    "the schedules the claim covers are averaged (a seed's models share their initial weights and batches), and a "
    "one-sided t-test over seeds decides the claim. With Holm's correction over a finding's claims the verdict is "
    f"Yes when every claim holds at the {statistics.ALPHA:g} level, No when any claim's opposite does, and Cannot "
    f"tell otherwise or with fewer than {statistics.MIN_SEEDS} seeds; it then says about how many seeds would "
    f"decide (power {statistics.POWER:.0%} at the observed spread)."
)


# --------------------------------------------------------------------------- numbers
def format_number(x: float) -> str:
    """A number as the report shows it: three significant digits, "n/a" for a missing one."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.3g}"


@dataclass(frozen=True)
class Finding:
    """One check of a run: ``claim`` (in words), ``source`` (the simulator's ground truth or
    the paper), ``fusion`` (the models checked), ``state`` ("yes", "no" or "cannot tell"),
    ``rule`` (the test, with its thresholds), ``evidence`` (the numbers, one line per claim
    and what decided), ``n_seeds`` (the fewest seeds any claim had), ``seeds_needed`` (for
    "cannot tell": about how many seeds would decide under the observed spread, else None),
    ``p_value`` (the largest Holm-adjusted p of the claims; NaN without a test), ``figures``
    (stems of the figures that show it) and ``id`` (a short stable name)."""

    id: str
    claim: str
    source: str
    fusion: str
    state: str
    rule: str
    evidence: str
    n_seeds: int = 0
    seeds_needed: int | None = None
    p_value: float = float("nan")
    figures: tuple[str, ...] = field(default_factory=tuple)

    @property
    def holds(self) -> bool | None:
        """True for "yes", False for "no", None for "cannot tell"."""
        return {"yes": True, "no": False}.get(self.state)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "claim": self.claim,
            "source": self.source,
            "fusion": self.fusion,
            "state": self.state,
            "rule": self.rule,
            "evidence": self.evidence,
            "n_seeds": self.n_seeds,
            "seeds_needed": self.seeds_needed,
            "p_value": self.p_value,
            "figures": list(self.figures),
        }


# --------------------------------------------------------------------------- per model
def column(quantity: str, modality: str = "", scope: str = "") -> str:
    return f"{quantity}|{modality}|{scope}"


def sme_column(m: str, scope: str) -> str:
    return column(catalogue.SINGLE_MODALITY_ERROR, m, scope)


def lop_column(m: str, scope: str) -> str:
    return column(catalogue.LOSS_OF_PRECISION, m, scope)


def pair_column(name: str) -> str:
    return column(catalogue.CUSTOM, name)


def share_column(part: str, scope: str = "all") -> str:
    """A lattice share: ``part``'s share of the baseline regarding ``scope`` ("all" or a target modality)."""
    return column(catalogue.SHARE, part, scope)


def interaction_column(a: str, b: str, scope: str = "all") -> str:
    """The interaction of two parts regarding ``scope``, in the order the description lists them."""
    return column(catalogue.INTERACTION, catalogue.pair_name(a, b), scope)


BASELINE = column(catalogue.BASELINE)
PREDICTION_ERROR = column(catalogue.PREDICTION_ERROR)
LATENT_LOSS = catalogue.LATENT_LOSS


def model_values(history: pd.DataFrame, results: pd.DataFrame, window) -> tuple[pd.DataFrame, pd.Series]:
    """Each model's mean over the window: one row per (schedule, seed), one column per
    (quantity, modality, scope) of the results plus the latent loss; and per schedule,
    whether β is 1 at every epoch of the window."""
    parts = []
    inside = results[in_window(results["epoch"], window)]
    if len(inside):
        keys = inside["quantity"] + "|" + inside["modality"] + "|" + inside["scope"]
        wide = inside.assign(key=keys).pivot_table(
            index=["schedule", "seed"], columns="key", values="value", aggfunc="mean"
        )
        parts.append(wide)
    trained = history[in_window(history["epoch"], window)] if len(history) else history
    full_beta = pd.Series(dtype=bool)
    if len(trained):
        parts.append(trained.groupby(["schedule", "seed"])[LATENT_LOSS].mean().rename(LATENT_LOSS).to_frame())
        full_beta = trained.groupby("schedule")["beta"].min() >= 1.0 - 1e-9
    if not parts:
        return pd.DataFrame(index=pd.MultiIndex.from_arrays([[], []], names=["schedule", "seed"])), full_beta
    values = pd.concat(parts, axis=1)
    values.columns = [str(c) for c in values.columns]
    return values, full_beta


def log10(x) -> pd.Series | float:
    """log10, with 0 floored at 1e-12; NaN (a ratio 0/0) stays NaN, inf stays inf."""
    return np.log10(np.maximum(x, FLOOR))


@dataclass
class Claim:
    """One claim: its words and, per model (schedule, seed), its log10 margin (> 0: holds),
    with the per-model ratio it was computed from."""

    label: str
    margin: pd.Series
    ratio: pd.Series
    threshold: str


def ratio_claim(label: str, ratio: pd.Series, threshold: float, *, at_most: bool) -> Claim:
    """``ratio <= threshold`` (``at_most``) or ``ratio >= threshold``, per model."""
    margin = log10(threshold) - log10(ratio) if at_most else log10(ratio) - log10(threshold)
    sign = "≤" if at_most else "≥"
    return Claim(label, margin, ratio, f"{sign} {threshold:g}")


def decide(
    id_: str, claim: str, source: str, fusion: str, rule: str, claims: list[Claim], figures: tuple[str, ...]
) -> Finding:
    """The verdict over seeds of a check's claims (module docstring)."""
    comparisons, lines = [], []
    for c in claims:
        # A ratio 0/0 (both numbers 0: the output there does not depend on the input) says
        # nothing of the claim, and its model is left out; x/0 is as far off as a log can say.
        undefined = int(c.margin.isna().sum())
        margin = c.margin.dropna().clip(-LOG_LIMIT, LOG_LIMIT)
        per_seed = margin.groupby(level="seed").mean()
        comparison = statistics.threshold_comparison(per_seed.to_numpy(), 0.0, c.label, alternative="greater")
        comparisons.append(comparison)
        ratio = c.ratio.loc[margin.index]
        models_holding = int((margin > 0).sum())
        geometric = 10 ** float(np.mean(log10(ratio))) if len(ratio) else float("nan")
        lines.append(
            f"{c.label}: ratio {format_number(geometric)} (geometric mean over {len(ratio)} models, range "
            f"{format_number(float(ratio.min()) if len(ratio) else float('nan'))}–"
            f"{format_number(float(ratio.max()) if len(ratio) else float('nan'))}; claim {c.threshold}); holds in "
            f"{comparison.holds} of {comparison.n} seeds and {models_holding} of {len(margin)} models"
            + (f" ({undefined} left out: their ratio is 0/0)" if undefined else "")
        )
    result = statistics.verdict(comparisons)
    adjusted: np.ndarray | list[float] = statistics.holm([c.p_value for c in comparisons]) if comparisons else []
    for i, p in enumerate(adjusted):
        lines[i] += f", Holm-adjusted p {p_text(p)}."
    lines.append(verdict_line(result))
    return Finding(
        id_,
        claim,
        source,
        fusion,
        result.state,
        rule,
        "\n".join(lines),
        result.n_seeds,
        result.seeds_needed,
        result.p_value,
        figures,
    )


def p_text(p: float) -> str:
    if not np.isfinite(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"= {p:.2g}"


def verdict_line(result: statistics.Verdict) -> str:
    if result.state == "yes":
        return f"Every claim holds at the {statistics.ALPHA:g} level over {result.n_seeds} seeds."
    if result.state == "no":
        return f"At least one claim's opposite holds at the {statistics.ALPHA:g} level over {result.n_seeds} seeds."
    if result.n_seeds < statistics.MIN_SEEDS:
        return f"Too few seeds ({result.n_seeds}) to decide: at least {statistics.MIN_SEEDS} are needed."
    if result.seeds_needed is not None:
        return (
            f"Undecided over {result.n_seeds} seeds; about {result.seeds_needed} seeds would decide "
            f"(power {statistics.POWER:.0%} at the observed spread)."
        )
    return (
        f"Undecided over {result.n_seeds} seeds; the data point the other way, so more seeds would not be "
        "expected to show it."
    )


def cannot(id_: str, claim: str, source: str, fusion: str, rule: str, why: str, figures=()) -> Finding:
    return Finding(id_, claim, source, fusion, "cannot tell", rule, why, figures=tuple(figures))


def missing_columns(values: pd.DataFrame, columns: list[str]) -> list[str]:
    return [c for c in columns if c not in values.columns or values[c].isna().all()]


def describe_column(column: str) -> str:
    quantity, modality, scope = column.split("|") if "|" in column else (column, "", "")
    if quantity == catalogue.CUSTOM:
        return f"the pair {modality!r}"
    words = quantity.replace("_", " ")
    if quantity in catalogue.names("lattice"):
        # "share of the baseline" and "interaction" say more than the bare names.
        words = catalogue.label_of(quantity)
    return " ".join(p for p in (words, modality, f"regarding {scope}" if scope else "") if p)
