"""Tests of the statistics over seeds (intermodal.evaluation.statistics): intervals with known
coverage, paired t-tests against SciPy's own paired test, seeds_needed against an independently
computed power and a Monte-Carlo experiment, and the verdict rule on synthetic seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from intermodal.errors import ConfigError
from intermodal.evaluation.statistics import (
    ALPHA,
    MIN_SEEDS,
    POWER,
    Comparison,
    holm,
    interval,
    paired_comparison,
    summarise,
    threshold_comparison,
    verdict,
)


def power_of(effect: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the one-sided one-sample t-test, written independently of the module:
    1 - F_nct(t_crit) with F_nct the noncentral t's cdf."""
    critical = stats.t.ppf(1 - alpha, n - 1)
    return 1.0 - stats.nct.cdf(critical, n - 1, effect * math.sqrt(n))


# ---------------------------------------------------------------------------- intervals


def test_t_interval_covers_the_true_mean_95_percent():
    rng = np.random.default_rng(12345)
    draws = rng.normal(3.0, 2.0, size=(4000, 5))
    covered = 0
    for row in draws:
        result = interval(row)
        covered += result.low <= 3.0 <= result.high
    assert 0.93 <= covered / len(draws) <= 0.97


def test_t_interval_half_width_is_t_quantile_times_standard_error():
    x = np.array([2.1, 3.7, 1.4, 4.2, 2.9])
    result = interval(x)
    sd = math.sqrt(sum((v - x.mean()) ** 2 for v in x) / 4)
    half = stats.t.ppf(0.975, 4) * sd / math.sqrt(5)
    assert result.n == 5
    assert result.mean == pytest.approx(x.mean())
    assert result.sd == pytest.approx(sd)
    assert result.low == pytest.approx(x.mean() - half)
    assert result.high == pytest.approx(x.mean() + half)


def test_t_interval_level_follows_confidence():
    x = np.array([2.1, 3.7, 1.4, 4.2, 2.9])
    narrow, wide = interval(x, confidence=0.8), interval(x, confidence=0.99)
    half = stats.t.ppf(0.9, 4) * x.std(ddof=1) / math.sqrt(5)
    assert narrow.high - narrow.mean == pytest.approx(half)
    assert wide.high - wide.low > narrow.high - narrow.low


def test_bootstrap_interval_covers_about_95_percent_and_contains_the_mean():
    rng = np.random.default_rng(7)
    draws = rng.normal(3.0, 2.0, size=(200, 20))
    covered = 0
    for row in draws:
        result = interval(row, method="bootstrap")
        assert result.low <= result.mean <= result.high
        covered += result.low <= 3.0 <= result.high
    # BCa with n = 20 undercovers slightly; 200 repetitions have a binomial sd of about 1.5%.
    assert 0.88 <= covered / len(draws) <= 0.99


def test_bootstrap_interval_is_reproducible():
    x = np.random.default_rng(3).normal(size=12)
    assert interval(x, method="bootstrap") == interval(x, method="bootstrap")


@pytest.mark.parametrize("method", ["t", "bootstrap"])
def test_interval_edge_cases(method):
    empty = interval([], method=method)
    assert empty.n == 0 and all(math.isnan(v) for v in empty[:4])
    only_nan = interval([np.nan, np.nan], method=method)
    assert only_nan.n == 0 and math.isnan(only_nan.mean)
    one = interval([np.nan, 4.5], method=method)
    assert one.n == 1 and one.mean == 4.5
    assert math.isnan(one.sd) and math.isnan(one.low) and math.isnan(one.high)
    equal = interval([0.1, 0.1, 0.1, np.nan], method=method)
    assert equal == (0.1, 0.0, 0.1, 0.1, 3)


def test_interval_drops_nan():
    assert interval([1.0, np.nan, 2.0, 3.0]) == interval([1.0, 2.0, 3.0])


def test_interval_bad_arguments():
    with pytest.raises(ConfigError, match="confidence"):
        interval([1.0, 2.0], confidence=95)
    with pytest.raises(ConfigError, match="method"):
        interval([1.0, 2.0], method="normal")
    with pytest.raises(ConfigError, match="values"):
        interval(["a", "b"])
    with pytest.raises(ConfigError, match="one-dimensional"):
        interval(np.ones((2, 3)))


# ---------------------------------------------------------------------------- summarise


def test_summarise_one_row_per_group_in_order_of_first_appearance():
    frame = pd.DataFrame(
        {
            "schedule": ["b", "b", "a", "a", "b", "a", "a"],
            "modality": ["x", "x", "x", "x", "x", "x", "y"],
            "seed": [0, 1, 0, 1, 2, 2, 0],
            "error": [1.0, 2.0, 5.0, 7.0, 4.0, np.nan, 9.0],
        }
    )
    table = summarise(frame, ["schedule", "modality"], "error")
    assert list(table.columns) == ["schedule", "modality", "mean", "sd", "low", "high", "n_seeds"]
    assert table[["schedule", "modality"]].values.tolist() == [["b", "x"], ["a", "x"], ["a", "y"]]
    assert table["n_seeds"].tolist() == [3, 2, 1]
    for row in table.itertuples():
        values = frame.loc[(frame.schedule == row.schedule) & (frame.modality == row.modality), "error"]
        expected = interval(values)
        assert row.mean == pytest.approx(expected.mean)
        assert row.low == pytest.approx(expected.low, nan_ok=True)
        assert row.high == pytest.approx(expected.high, nan_ok=True)
    first = table.iloc[0]
    assert first["mean"] == pytest.approx(7 / 3)
    assert first["sd"] == pytest.approx(np.std([1.0, 2.0, 4.0], ddof=1))


def test_summarise_empty_frame_and_bad_columns():
    empty = summarise(pd.DataFrame({"schedule": [], "error": []}), ["schedule"], "error")
    assert empty.empty
    assert list(empty.columns) == ["schedule", "mean", "sd", "low", "high", "n_seeds"]
    frame = pd.DataFrame({"schedule": ["a"], "error": [1.0]})
    with pytest.raises(ConfigError, match="'loss'"):
        summarise(frame, ["schedule"], "loss")
    with pytest.raises(ConfigError, match="'seed'"):
        summarise(frame, ["seed"], "error")


def test_summarise_without_keys_is_one_group():
    frame = pd.DataFrame({"error": [1.0, 2.0, 3.0]})
    table = summarise(frame, [], "error")
    assert len(table) == 1 and table["mean"].iloc[0] == pytest.approx(2.0)


# ---------------------------------------------------------------------------- comparisons


def paired_seeds(n: int, shift: float, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """a ~ N(0, 1) per seed and b = a + N(shift, noise²): b is higher than a by `shift` on average."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 1.0, n)
    return a, a + rng.normal(shift, noise, n)


def test_paired_comparison_matches_scipy_paired_test():
    a, b = paired_seeds(8, 0.4, 1.0, seed=1)
    result = paired_comparison(a, b, "a < b")
    assert result.label == "a < b" and result.n == 8
    assert result.p_value == pytest.approx(stats.ttest_rel(b, a, alternative="greater").pvalue)
    assert result.p_opposite == pytest.approx(stats.ttest_rel(b, a, alternative="less").pvalue)
    d = b - a
    assert result.mean_difference == pytest.approx(d.mean())
    assert result.sd_difference == pytest.approx(d.std(ddof=1))
    half = stats.t.ppf(0.975, 7) * d.std(ddof=1) / math.sqrt(8)
    assert (result.low, result.high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert result.holds == int(np.sum(d > 0))
    ci = stats.binomtest(result.holds, 8).proportion_ci(confidence_level=0.95, method="exact")
    assert (result.holds_low, result.holds_high) == pytest.approx((ci.low, ci.high))


def test_paired_comparison_holds_counts_and_clopper_pearson():
    a = np.zeros(6)
    b = np.array([1.0, 2.0, -1.0, 3.0, 0.0, 0.5])  # d > 0 in 4 of 6 (0 does not count)
    result = paired_comparison(a, b)
    assert result.holds == 4
    # Clopper-Pearson limits from the beta quantiles, independently of binomtest.
    assert result.holds_low == pytest.approx(stats.beta.ppf(0.025, 4, 3))
    assert result.holds_high == pytest.approx(stats.beta.ppf(0.975, 5, 2))


def test_greater_mirrors_less():
    a, b = paired_seeds(10, 0.7, 1.0, seed=2)
    less = paired_comparison(a, b, alternative="less")
    greater = paired_comparison(b, a, alternative="greater")
    assert greater == less
    flipped = paired_comparison(a, b, alternative="greater")
    assert flipped.mean_difference == pytest.approx(-less.mean_difference)
    assert flipped.p_value == pytest.approx(less.p_opposite)
    assert flipped.p_opposite == pytest.approx(less.p_value)


def test_paired_comparison_drops_nan_pairs_and_checks_lengths():
    result = paired_comparison([1.0, np.nan, 2.0, 3.0], [2.0, 5.0, np.nan, 4.5])
    assert result.n == 2 and result.mean_difference == pytest.approx(1.25)
    with pytest.raises(ConfigError, match="a and b"):
        paired_comparison([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ConfigError, match="alternative"):
        paired_comparison([1.0, 2.0], [1.0, 2.0], alternative="two-sided")


def test_paired_comparison_edge_cases():
    one = paired_comparison([1.0], [2.0])
    assert one.n == 1 and math.isnan(one.p_value) and math.isnan(one.p_opposite) and one.seeds_needed is None
    up = paired_comparison([1.0, 2.0, 3.0], [1.5, 2.5, 3.5])  # d = 0.5 in every seed
    assert (up.p_value, up.p_opposite, up.sd_difference, up.seeds_needed) == (0.0, 1.0, 0.0, MIN_SEEDS)
    down = paired_comparison([1.5, 2.5, 3.5], [1.0, 2.0, 3.0])
    assert (down.p_value, down.p_opposite, down.seeds_needed) == (1.0, 0.0, None)
    same = paired_comparison([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert (same.p_value, same.p_opposite, same.seeds_needed) == (1.0, 1.0, None)
    empty = paired_comparison([np.nan], [1.0])
    assert empty.n == 0 and empty.holds == 0 and math.isnan(empty.holds_low)


def test_threshold_comparison_is_a_paired_comparison_with_a_constant():
    values = np.array([0.8, 1.1, 0.7, 0.9, 1.0])
    below = threshold_comparison(values, 1.2, "error < 1.2")
    assert below == paired_comparison(values, [1.2] * 5, "error < 1.2")
    assert below.p_value == pytest.approx(stats.ttest_1samp(values, 1.2, alternative="less").pvalue)
    above = threshold_comparison(values, 0.5, alternative="greater")
    assert above.p_value == pytest.approx(stats.ttest_1samp(values, 0.5, alternative="greater").pvalue)
    with pytest.raises(ConfigError, match="threshold"):
        threshold_comparison(values, float("nan"))


# ---------------------------------------------------------------------------- seeds needed


@pytest.mark.parametrize(("shift", "n"), [(0.3, 6), (0.8, 5), (1.5, 4)])
def test_seeds_needed_is_the_smallest_n_with_power_80_percent(shift, n):
    a, b = paired_seeds(n, shift, 1.0, seed=11)
    result = paired_comparison(a, b)
    effect = result.mean_difference / result.sd_difference
    assert effect > 0
    needed = result.seeds_needed
    assert needed is not None and needed >= MIN_SEEDS
    assert power_of(effect, needed) >= POWER
    if needed - 1 >= MIN_SEEDS:
        assert power_of(effect, needed - 1) < POWER


def test_seeds_needed_rejection_rate_by_simulation():
    a, b = paired_seeds(5, 0.8, 1.0, seed=4)
    result = paired_comparison(a, b)
    effect, needed = result.mean_difference / result.sd_difference, result.seeds_needed
    # 2000 experiments with `needed` seeds and true standardised effect `effect`.
    rng = np.random.default_rng(2024)
    d = rng.normal(effect, 1.0, size=(2000, needed))
    p = stats.ttest_1samp(d, 0.0, axis=1, alternative="greater").pvalue
    assert np.mean(p < ALPHA) >= 0.75


def test_seeds_needed_none_when_the_data_point_the_other_way():
    a, b = paired_seeds(6, -1.0, 1.0, seed=5)
    assert paired_comparison(a, b).seeds_needed is None


# ---------------------------------------------------------------------------- verdicts


def test_holm_against_a_hand_computed_example():
    # Sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → made monotone: 0.06.
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([]).size == 0
    assert holm([0.02]) == pytest.approx([0.02])
    with pytest.raises(ConfigError, match="p_values"):
        holm([0.5, 1.5])


def test_verdict_two_seeds_cannot_tell_and_names_three():
    result = verdict([paired_comparison([1.0, 2.0], [3.0, 5.0], "a < b")])
    assert result.state == "cannot tell"
    assert result.n_seeds == 2 and result.seeds_needed == 3
    assert "3" in result.text and "0.05" in result.rule and "Holm" in result.rule


def test_verdict_clear_effect_is_yes():
    a, b = paired_seeds(20, 1.5, 0.5, seed=6)
    result = verdict([paired_comparison(a, b, "a < b")])
    assert result.state == "yes" and result.n_seeds == 20 and result.seeds_needed is None
    assert result.p_value < ALPHA
    assert "a < b" in result.text and "20 of 20" in result.text


def test_verdict_reverse_effect_is_no():
    a, b = paired_seeds(20, 1.5, 0.5, seed=6)
    result = verdict([paired_comparison(b, a, "b < a")])
    assert result.state == "no" and result.seeds_needed is None


def test_verdict_tiny_effect_cannot_tell_and_asks_for_more_seeds():
    a, b = paired_seeds(5, 0.1, 1.0, seed=8)
    comparison = paired_comparison(a, b)
    assert comparison.mean_difference > 0 and comparison.p_value >= ALPHA
    result = verdict([comparison])
    assert result.state == "cannot tell"
    assert result.seeds_needed == comparison.seeds_needed and result.seeds_needed > 5
    assert str(result.seeds_needed) in result.text


def test_verdict_all_claims_must_hold_after_holm():
    # Raw p below alpha each, so each alone is "yes"; Holm over both: 0.03·2 = 0.06, then max(0.06, 0.04).
    first = Comparison("first", 10, 0.3, 0.5, 0.0, 0.6, 0.03, 0.97, 7, 0.35, 0.93, 12)
    second = Comparison("second", 10, 0.25, 0.5, 0.0, 0.5, 0.04, 0.96, 7, 0.35, 0.93, 15)
    assert verdict([first]).state == "yes" and verdict([second]).state == "yes"
    both = verdict([first, second])
    assert both.state == "cannot tell"
    assert both.p_value == pytest.approx(0.06)
    # Seeds needed at Holm's strictest level (alpha / 2), for the weaker effect 0.25 / 0.5.
    needed = both.seeds_needed
    assert power_of(0.5, needed, ALPHA / 2) >= POWER > power_of(0.5, needed - 1, ALPHA / 2)
    assert needed > second.seeds_needed


def test_verdict_empty_list_and_bad_arguments():
    result = verdict([])
    assert result.state == "cannot tell" and result.n_seeds == 0 and math.isnan(result.p_value)
    assert "nothing to compare" in result.text
    with pytest.raises(ConfigError, match="alpha"):
        verdict([], alpha=5)
    with pytest.raises(ConfigError, match="min_seeds"):
        verdict([], min_seeds=0)
    with pytest.raises(ConfigError, match="comparisons"):
        verdict([0.01])
