"""Statistics over seeds: the models of one condition differ only in their random seed, so
every number the report gives is a mean over seeds with its spread and a 95% interval, and
every finding is decided by a stated rule over seeds.

:func:`interval` and :func:`summarise` give a mean with its sd and interval;
:func:`paired_comparison` and :func:`threshold_comparison` test one claim ("a is lower than
b") with a one-sided t-test over seeds and say how many seeds would be needed under the
observed spread; :func:`verdict` combines the claims of one finding (Holm's correction) into
"yes", "no" or "cannot tell". SciPy does the statistics; only Holm's step-down is written here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ConfigError

__all__ = [
    "CONFIDENCE",
    "ALPHA",
    "MIN_SEEDS",
    "POWER",
    "MAX_SEEDS_SEARCHED",
    "Interval",
    "interval",
    "summarise",
    "Comparison",
    "paired_comparison",
    "threshold_comparison",
    "holm",
    "Verdict",
    "verdict",
]

CONFIDENCE = 0.95  # the intervals' level
ALPHA = 0.05  # a verdict's significance level
MIN_SEEDS = 3  # fewer seeds than this: "cannot tell", whatever the numbers
POWER = 0.8  # the power at which seeds_needed is computed
MAX_SEEDS_SEARCHED = 10_000  # seeds_needed looks no further than this

_METHODS = ("t", "bootstrap")
_ALTERNATIVES = ("less", "greater")
_BOOTSTRAP_RESAMPLES = 9999
_BOOTSTRAP_SEED = 0
# The seed counts searched for seeds_needed, in blocks: most answers lie in the first, and
# the noncentral t is evaluated only as far as needed.
_SEARCH_BLOCKS = ((MIN_SEEDS, 64), (64, 1024), (1024, MAX_SEEDS_SEARCHED + 1))


class Interval(NamedTuple):
    """A mean over seeds with its spread: ``mean``, the sample ``sd`` (ddof=1), the interval's
    ``low`` and ``high`` limits (same unit as the values) and ``n``, the number of seeds used."""

    mean: float
    sd: float
    low: float
    high: float
    n: int


class Comparison(NamedTuple):
    """One claim tested over seeds; see :func:`paired_comparison` for each field."""

    label: str
    n: int
    mean_difference: float
    sd_difference: float
    low: float
    high: float
    p_value: float
    p_opposite: float
    holds: int
    holds_low: float
    holds_high: float
    seeds_needed: int | None


class Verdict(NamedTuple):
    """A finding's answer over seeds; see :func:`verdict` for each field."""

    state: str
    n_seeds: int
    p_value: float
    seeds_needed: int | None
    rule: str
    text: str


# ---------------------------------------------------------------------------- checks


def _level(value, name: str) -> float:
    """``value`` as a float strictly between 0 and 1, else a ConfigError naming ``name``."""
    try:
        level = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number between 0 and 1 (exclusive), got {value!r}") from None
    if not 0.0 < level < 1.0:
        raise ConfigError(f"{name} must be between 0 and 1 (exclusive), got {value!r}")
    return level


def _choice(value, name: str, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``, else a ConfigError naming ``name``."""
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    return value


def _vector(values, name: str) -> np.ndarray:
    """``values`` (a sequence of numbers, one per seed) as a 1-D float array, NaN kept."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a sequence of numbers (one per seed), got {values!r:.80}") from None
    if array.ndim > 1:
        raise ConfigError(f"{name} must be one-dimensional (one number per seed), got shape {array.shape}")
    return array.reshape(-1)


def _all_equal(x: np.ndarray) -> bool:
    """Whether the (non-empty, finite) values are equal to within rounding: then their sd is
    taken as 0, which spares SciPy a division by a rounding error."""
    spread = float(np.ptp(x))
    return bool(spread <= 8 * np.finfo(float).eps * float(np.max(np.abs(x))))


# ---------------------------------------------------------------------------- intervals


def interval(values, confidence: float = CONFIDENCE, method: str = "t") -> Interval:
    """The mean over seeds of ``values`` with its sample sd and a two-sided interval for the mean.

    ``values``: shape ``[seeds]``, any unit; NaN values (seeds without a value) are dropped.
    ``confidence``: the interval's level, in (0, 1). ``method``: ``"t"``, Student's t interval
    ``mean ± t_{(1+c)/2, n-1} · sd/√n`` (scipy.stats.t), or ``"bootstrap"``, scipy.stats.bootstrap
    with BCa and 9999 resamples drawn by a numpy Generator seeded 0, so the interval is reproducible.

    Returns an :class:`Interval` in the values' unit. Edge cases: no values, every field NaN and
    ``n = 0``; one value, ``sd``, ``low`` and ``high`` NaN; all values equal (to within rounding),
    ``sd = 0`` and ``low = high = mean``.
    """
    confidence = _level(confidence, "confidence")
    method = _choice(method, "method", _METHODS)
    x = _vector(values, "values")
    x = x[~np.isnan(x)]
    n = int(x.size)
    nan = float("nan")
    if n == 0:
        return Interval(nan, nan, nan, nan, 0)
    if n == 1:
        return Interval(float(x[0]), nan, nan, nan, 1)
    if np.all(np.isfinite(x)) and _all_equal(x):
        # No spread: the interval is the point itself (the t scale and the bootstrap are degenerate).
        value = float(x[0])
        return Interval(value, 0.0, value, value, n)
    mean = float(np.mean(x))
    sd = float(np.std(x, ddof=1))
    if method == "t":
        low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sd / math.sqrt(n))
    else:
        result = stats.bootstrap(
            (x,),
            np.mean,
            n_resamples=_BOOTSTRAP_RESAMPLES,
            confidence_level=confidence,
            method="BCa",
            rng=np.random.default_rng(_BOOTSTRAP_SEED),
        )
        low, high = result.confidence_interval
    return Interval(mean, sd, float(low), float(high), n)


_SUMMARY_COLUMNS = ["mean", "sd", "low", "high", "n_seeds"]


def summarise(
    frame: pd.DataFrame, keys: list[str], value: str, confidence: float = CONFIDENCE, method: str = "t"
) -> pd.DataFrame:
    """One row per group of ``keys``: the mean over the group's rows (its seeds) of column ``value``
    with its sd and interval (see :func:`interval`; NaN values are dropped).

    ``frame``: one row per seed (and whatever else ``keys`` tell apart). ``keys``: the grouping
    columns; an empty list makes the whole frame one group. Returns a DataFrame with columns
    ``keys + ["mean", "sd", "low", "high", "n_seeds"]`` (``n_seeds``: the values used), groups in
    order of first appearance (missing keys kept as a group); an empty frame gives an empty table
    with those columns.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ConfigError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
    keys = [keys] if isinstance(keys, str) else list(keys)
    missing = [c for c in [*keys, value] if c not in frame.columns]
    if missing:
        raise ConfigError(f"frame has no column {', '.join(map(repr, missing))}; it has {list(frame.columns)}")
    if value in keys:
        raise ConfigError(f"value {value!r} must not also be one of the keys {keys}")
    columns = keys + _SUMMARY_COLUMNS
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c == "n_seeds" else float) for c in columns})
    if keys:
        groups = [(k if isinstance(k, tuple) else (k,), g) for k, g in frame.groupby(keys, sort=False, dropna=False)]
    else:
        groups = [((), frame)]
    rows = []
    for key, group in groups:
        try:
            result = interval(group[value], confidence, method)
        except ConfigError as error:
            raise ConfigError(f"column {value!r} of frame: {error}") from None
        rows.append([*key, result.mean, result.sd, result.low, result.high, result.n])
    table = pd.DataFrame(rows, columns=columns)
    return table.astype({"n_seeds": "int64"})


# ---------------------------------------------------------------------------- comparisons


def _power(effect: float, n: np.ndarray, alpha: float) -> np.ndarray:
    """Power of a one-sided one-sample t-test at level ``alpha`` with ``n`` seeds (an array)
    when the true standardised effect (mean/sd) is ``effect``: P(T' > t_{1-alpha, n-1}) for T'
    noncentral t with n-1 degrees of freedom and noncentrality effect·√n."""
    df = n - 1
    return stats.nct.sf(stats.t.ppf(1.0 - alpha, df), df, effect * np.sqrt(n))


def _seeds_needed(effect: float, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """The smallest number of seeds, from MIN_SEEDS up to MAX_SEEDS_SEARCHED, at which the
    one-sided t-test at ``alpha`` has ``power`` for the standardised ``effect`` (> 0); None if
    none of them does (or the effect is not positive)."""
    if not effect > 0:
        return None
    for start, stop in _SEARCH_BLOCKS:
        n = np.arange(start, stop)
        reached = np.nonzero(_power(effect, n, alpha) >= power)[0]
        if reached.size:
            return int(n[reached[0]])
    return None


def paired_comparison(a, b, label: str = "", *, alternative: str = "less") -> Comparison:
    """Is ``a`` lower than ``b`` (``alternative="less"``) or higher (``"greater"``) across seeds?

    ``a``, ``b``: shape ``[seeds]``, the same unit, paired by position (``a[i]`` and ``b[i]``
    come from the same seed); pairs with a NaN on either side are dropped. ``label``: what is
    compared, in words, e.g. ``"constant-1 < constant-0 (baseline)"``.

    The claim is always mean d > 0, with d = b - a for "less" and a - b for "greater". Returns a
    :class:`Comparison`: ``n`` seeds paired; ``mean_difference`` and ``sd_difference`` of d (ddof=1),
    in the values' unit, with its CONFIDENCE t interval ``low``, ``high``; ``p_value``, the one-sided
    p of the paired t-test for the claim, and ``p_opposite``, the one for d < 0
    (scipy.stats.ttest_1samp(d, 0)); ``holds``, the seeds in which d > 0, with the Clopper-Pearson
    CONFIDENCE interval ``holds_low``, ``holds_high`` of the proportion holds/n; ``seeds_needed``,
    the smallest number of seeds from MIN_SEEDS on (up to 10 000) at which a one-sided t-test at
    ALPHA has power POWER for the observed standardised effect mean(d)/sd(d) (scipy.stats.nct).

    Edge cases: n < 2, both p NaN and ``seeds_needed`` None. sd(d) = 0 (to within rounding):
    p_value 0 and p_opposite 1 if mean d > 0, the reverse if mean d < 0, both 1 if all d = 0;
    ``seeds_needed`` MIN_SEEDS if mean d > 0. ``seeds_needed`` is None when the observed effect is
    <= 0 (more seeds would not show the claim) or more than 10 000 seeds would be needed.
    ``a`` and ``b`` of different lengths: ConfigError.
    """
    alternative = _choice(alternative, "alternative", _ALTERNATIVES)
    x = _vector(a, "a")
    y = _vector(b, "b")
    if x.size != y.size:
        raise ConfigError(f"a and b must have one value per seed each, paired by position; got {x.size} and {y.size}")
    d = y - x if alternative == "less" else x - y
    # A seed with a value missing on either side cannot be paired.
    d = d[~(np.isnan(x) | np.isnan(y))]
    n = int(d.size)
    summary = interval(d, CONFIDENCE, "t")
    nan = float("nan")

    holds = int(np.sum(d > 0))
    if n > 0:
        holds_low, holds_high = stats.binomtest(holds, n).proportion_ci(confidence_level=CONFIDENCE, method="exact")
    else:
        holds_low = holds_high = nan

    mean = summary.mean
    if n < 2:
        p_value = p_opposite = nan
        needed = None
    elif summary.sd == 0.0:
        # No spread: the t statistic is infinite (or undefined when every d is 0).
        if mean > 0:
            p_value, p_opposite, needed = 0.0, 1.0, MIN_SEEDS
        elif mean < 0:
            p_value, p_opposite, needed = 1.0, 0.0, None
        else:
            p_value, p_opposite, needed = 1.0, 1.0, None
    else:
        p_value = float(stats.ttest_1samp(d, 0.0, alternative="greater").pvalue)
        p_opposite = float(stats.ttest_1samp(d, 0.0, alternative="less").pvalue)
        needed = _seeds_needed(mean / summary.sd) if np.isfinite(mean / summary.sd) else None
    return Comparison(
        label=str(label),
        n=n,
        mean_difference=mean,
        sd_difference=summary.sd,
        low=summary.low,
        high=summary.high,
        p_value=p_value,
        p_opposite=p_opposite,
        holds=holds,
        holds_low=float(holds_low),
        holds_high=float(holds_high),
        seeds_needed=needed,
    )


def threshold_comparison(values, threshold: float, label: str = "", *, alternative: str = "less") -> Comparison:
    """Is the mean over seeds of ``values`` (shape ``[seeds]``) below (``alternative="less"``) or
    above (``"greater"``) the fixed ``threshold`` (same unit)? The same as
    ``paired_comparison(values, [threshold] * n, label, alternative=alternative)``; returns its
    :class:`Comparison`, with d = threshold - values for "less"."""
    try:
        limit = float(threshold)
    except (TypeError, ValueError):
        raise ConfigError(f"threshold must be a number, got {threshold!r}") from None
    if not np.isfinite(limit):
        raise ConfigError(f"threshold must be a finite number, got {threshold!r}")
    x = _vector(values, "values")
    return paired_comparison(x, np.full(x.size, limit), label, alternative=alternative)


# ---------------------------------------------------------------------------- verdicts


def holm(p_values) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values of ``p_values`` (shape ``[claims]``, each in [0, 1]).

    Step-down: sorted ascending, the k-th smallest (k from 1) is multiplied by m - k + 1 (m
    claims), made non-decreasing along the order and capped at 1. Returns an array of the same
    shape and order; a claim rejected at level alpha by Holm's procedure is one whose adjusted p
    is < alpha. A NaN (a claim without a test) counts among the m claims, sorts last and stays NaN.
    """
    p = _vector(p_values, "p_values")
    if np.any((p < 0) | (p > 1)):
        raise ConfigError(f"p_values must lie in [0, 1], got {p.tolist()}")
    m = p.size
    order = np.argsort(p, kind="stable")  # NaN sorts last, so it cannot raise the others
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def _number(value: float) -> str:
    """A value for the evidence text: three significant digits, "n/a" for NaN."""
    return "n/a" if not np.isfinite(value) else f"{value:.3g}"


def _p_text(value: float) -> str:
    """A p-value for the evidence text."""
    if not np.isfinite(value):
        return "n/a"
    return "< 0.001" if value < 0.001 else f"= {value:.3g}"


def _evidence(comparison: Comparison, adjusted_p: float) -> str:
    """One comparison's evidence in words: its mean difference with interval, in how many seeds
    it holds (with the proportion's interval) and its adjusted p."""
    name = comparison.label or "claim"
    level = f"{CONFIDENCE:.0%}"
    holds = f"holds in {comparison.holds} of {comparison.n} seeds"
    if np.isfinite(comparison.holds_low):
        holds += f" ({level} CI {comparison.holds_low:.0%}–{comparison.holds_high:.0%})"
    return (
        f"{name}: mean difference {_number(comparison.mean_difference)} "
        f"({level} CI {_number(comparison.low)} to {_number(comparison.high)}), {holds}, "
        f"Holm-adjusted p {_p_text(adjusted_p)}"
    )


def verdict(comparisons: list[Comparison], *, alpha: float = ALPHA, min_seeds: int = MIN_SEEDS) -> Verdict:
    """A finding made of several claims, all of which must hold, decided over seeds.

    ``comparisons``: the claims (see :func:`paired_comparison`). Holm's correction is applied to
    their ``p_value`` and, separately, to their ``p_opposite``. The rule:

    - any comparison with fewer than ``min_seeds`` seeds: "cannot tell", ``seeds_needed = min_seeds``;
    - every claim's adjusted p < ``alpha``: "yes";
    - any claim's adjusted opposite p < ``alpha``: "no";
    - otherwise "cannot tell", ``seeds_needed`` the largest number of seeds the undecided claims
      (adjusted p >= alpha) need: for each, the smallest n from MIN_SEEDS on at which the one-sided
      t-test at alpha/m (m claims; Holm's first, strictest level, so the number suffices under the
      correction; for one claim at ALPHA it is the comparison's own ``seeds_needed``) has power
      POWER for its observed standardised effect. None if any of them has none: its data point
      the other way (or it had fewer than 2 seeds, or more than 10 000 would be needed).

    Returns a :class:`Verdict`: ``state``; ``n_seeds``, the fewest seeds among the comparisons;
    ``p_value``, the largest adjusted p of the claims (NaN if there are none or one has no p);
    ``seeds_needed`` (None unless "cannot tell"); ``rule``, the rule in words; ``text``, the
    evidence per comparison. An empty list: "cannot tell", saying there is nothing to compare.
    """
    alpha = _level(alpha, "alpha")
    if isinstance(min_seeds, bool) or not isinstance(min_seeds, (int, np.integer)) or min_seeds < 1:
        raise ConfigError(f"min_seeds must be a whole number >= 1, got {min_seeds!r}")
    if isinstance(comparisons, Comparison) or not isinstance(comparisons, Sequence):
        raise ConfigError(f"comparisons must be a list of Comparison, got {type(comparisons).__name__}")
    bad = [type(c).__name__ for c in comparisons if not isinstance(c, Comparison)]
    if bad:
        raise ConfigError(f"comparisons must hold only Comparison (from paired_comparison), got {', '.join(bad)}")

    m = len(comparisons)
    rule = (
        f"Each claim is a one-sided paired t-test over seeds; with Holm's correction over the {m} "
        f'claim{"s" if m != 1 else ""}, the finding is "yes" when every claim\'s adjusted p < {alpha:g}, '
        f'"no" when any claim\'s adjusted p for the opposite direction < {alpha:g}, and "cannot tell" '
        f"otherwise or when any comparison has fewer than {min_seeds} seeds."
    )
    if m == 0:
        return Verdict("cannot tell", 0, float("nan"), None, rule, "There is nothing to compare: no claims were given.")

    n_seeds = min(c.n for c in comparisons)
    adjusted = holm([c.p_value for c in comparisons])
    adjusted_opposite = holm([c.p_opposite for c in comparisons])
    p_value = float(np.max(adjusted))  # NaN when any claim has no p
    text = "; ".join(_evidence(c, p) for c, p in zip(comparisons, adjusted)) + "."

    if n_seeds < min_seeds:
        state, needed = "cannot tell", min_seeds
        text += f" Too few seeds ({n_seeds}) to decide: at least {min_seeds} are needed."
    elif np.all(adjusted < alpha):
        state, needed = "yes", None
    elif np.any(adjusted_opposite < alpha):
        state, needed = "no", None
    else:
        state = "cannot tell"
        # NaN adjusted p (no test) counts as undecided.
        undecided = [c for c, p in zip(comparisons, adjusted) if not p < alpha]
        counts = [_needed_for_verdict(c, alpha / m) for c in undecided]
        needed = None if any(k is None for k in counts) else max(k for k in counts if k is not None)
        if needed is not None:
            text += f" About {needed} seeds would be needed to decide (power {POWER:.0%} at the observed spread)."
        elif any(c.n >= 2 and not c.mean_difference > 0 for c in undecided):
            text += " The data point the other way, so more seeds would not be expected to show the claim."
        else:
            text += f" The number of seeds needed is unknown (more than {MAX_SEEDS_SEARCHED} or too few seeds)."
    return Verdict(state, n_seeds, p_value, needed, rule, text)


def _needed_for_verdict(comparison: Comparison, level: float) -> int | None:
    """Seeds needed for an undecided claim at the test ``level``: the comparison's own number when
    the level is ALPHA, else recomputed from its observed standardised effect."""
    if comparison.seeds_needed is None:
        return None
    if math.isclose(level, ALPHA) or comparison.sd_difference == 0.0:
        return comparison.seeds_needed
    return _seeds_needed(comparison.mean_difference / comparison.sd_difference, alpha=level)
