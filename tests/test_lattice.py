"""Tests of the lattice measures (docs/method.md §5d): Shapley shares of the baseline, who
informs whom, interactions.

The references here are computed apart from ``intermodal.evaluation.lattice``: the Shapley
value by enumerating every ordering of the parts, the interaction index from its definition
over subsets with binomial weights, and the divergences of a linear-Gaussian model of our
own from its closed form in numpy.
"""

from __future__ import annotations

import math
from itertools import combinations, permutations

import numpy as np
import pandas as pd
import pytest
import torch

import intermodal as im
from intermodal.data.description import DatasetDescription, Modality
from intermodal.errors import ConfigError, DataError
from intermodal.evaluation import lattice
from intermodal.evaluation.lattice import lattice_values, modality_shares, shapley_from_values
from intermodal.evaluation.measures import integration_measures
from intermodal.model.architecture import architecture_preset
from intermodal.model.group import build_model

KEY = ["model", "quantity", "modality", "scope"]


# ---------------------------------------------------------------------- references
def shapley_by_orderings(v: dict[frozenset, float], n: int) -> np.ndarray:
    """Each part's marginal contribution to the gain v(∅) − v(S), averaged over all n!
    orderings."""
    shares = np.zeros(n)
    for order in permutations(range(n)):
        given: frozenset = frozenset()
        for part in order:
            shares[part] += v[given] - v[given | {part}]
            given = given | {part}
    return shares / math.factorial(n)


def interaction_by_definition(v: dict[frozenset, float], n: int, i: int, j: int) -> float:
    """Grabisch and Roubens's Shapley interaction index of the gain g(S) = v(∅) − v(S)."""
    g = {s: v[frozenset()] - value for s, value in v.items()}
    others = [k for k in range(n) if k not in (i, j)]
    total = 0.0
    for size in range(len(others) + 1):
        weight = 1.0 / ((n - 1) * math.comb(n - 2, size))
        for s in map(frozenset, combinations(others, size)):
            total += weight * (g[s | {i, j}] - g[s | {i}] - g[s | {j}] + g[s])
    return total


def as_index(values: dict[frozenset, float], n: int) -> np.ndarray:
    out = np.zeros(2**n)
    for s, value in values.items():
        out[sum(1 << k for k in s)] = value
    return out


def random_game(n: int, seed: int) -> dict[frozenset, float]:
    rng = np.random.default_rng(seed)
    v = {frozenset(s): float(rng.uniform(0, 5)) for k in range(n + 1) for s in combinations(range(n), k)}
    v[frozenset(range(n))] = 0.0
    return v


# ---------------------------------------------------------------------- the arithmetic
@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_exact_shares_and_interactions_match_their_definitions(n):
    v = random_game(n, seed=n)
    shares, pairs = shapley_from_values(as_index(v, n))
    np.testing.assert_allclose(shares, shapley_by_orderings(v, n), rtol=1e-12, atol=1e-12)
    assert shares.sum() == pytest.approx(v[frozenset()], rel=1e-12)  # efficiency
    for i, j in combinations(range(n), 2):
        assert pairs[i, j] == pytest.approx(interaction_by_definition(v, n, i, j), rel=1e-12, abs=1e-12)
        assert pairs[j, i] == pairs[i, j]
    assert np.all(np.diag(pairs) == 0)


def test_a_part_that_changes_nothing_has_no_share_and_no_interaction():
    """A dummy part (v(S ∪ d) = v(S) for every S) gets 0; two copies are symmetric and
    redundant; an XOR game is synergistic."""
    n = 3
    base = random_game(2, seed=1)
    v = {s | extra: value for s, value in base.items() for extra in (frozenset(), frozenset({2}))}
    shares, pairs = shapley_from_values(as_index(v, n))
    assert shares[2] == pytest.approx(0, abs=1e-12)
    assert pairs[0, 2] == pytest.approx(0, abs=1e-12) and pairs[1, 2] == pytest.approx(0, abs=1e-12)
    copies = {frozenset(): 4.0, frozenset({0}): 0.0, frozenset({1}): 0.0, frozenset({0, 1}): 0.0}
    shares, pairs = shapley_from_values(as_index(copies, 2))
    np.testing.assert_allclose(shares, [2.0, 2.0])
    assert pairs[0, 1] == pytest.approx(-4.0)
    xor = {frozenset(): 4.0, frozenset({0}): 4.0, frozenset({1}): 4.0, frozenset({0, 1}): 0.0}
    shares, pairs = shapley_from_values(as_index(xor, 2))
    np.testing.assert_allclose(shares, [2.0, 2.0])
    assert pairs[0, 1] == pytest.approx(4.0)


# ---------------------------------------------------------------------- a model with closed forms
def factor_description(n: int) -> DatasetDescription:
    return DatasetDescription(
        name="factor",
        modalities=tuple(Modality(f"m{k}", 1) for k in range(n)),
        time_steps=("t",),
        muting_patterns={"complete": ()},
    )


class OneFactor:
    """x_k = w_k z + σ_k ε_k with z, ε ~ N(0, 1): given the columns of S, each column's
    output is its conditional Gaussian, N(w_k μ_S, w_k² V_S + σ_k²) with
    V_S = 1 / (1 + Σ_{k∈S} w_k²/σ_k²) and μ_S = V_S Σ_{k∈S} w_k x_k / σ_k²."""

    n_models = 1

    def __init__(self, w, sigma):
        self.w, self.sigma = np.asarray(w, float), np.asarray(sigma, float)
        self.description = factor_description(len(w))

    def conditional(self, rows: np.ndarray, given: np.ndarray):
        precision = 1 + (given * self.w**2 / self.sigma**2).sum(-1, keepdims=True)
        mu = (given * self.w * rows / self.sigma**2).sum(-1, keepdims=True) / precision
        return self.w * mu, self.w**2 / precision + self.sigma**2

    def output_gaussian(self, rows, muted):
        mean, var = self.conditional(rows.double().numpy(), ~muted.numpy())
        return torch.as_tensor(mean)[None], torch.as_tensor(var)[None]


def closed_form_values(model: OneFactor, rows: np.ndarray, target: list[int]) -> dict[frozenset, float]:
    n = len(model.w)
    mean_p, var_p = model.conditional(rows, np.ones(n, bool))
    out = {}
    for k in range(n + 1):
        for s in map(frozenset, combinations(range(n), k)):
            given = np.isin(np.arange(n), list(s))
            mean_q, var_q = model.conditional(rows, given)
            kl = 0.5 * (np.log(var_q / var_p) + (var_p + (mean_p - mean_q) ** 2) / var_q - 1)
            out[s] = float(kl[:, target].sum(-1).mean())
    return out


def test_two_parts_of_a_linear_gaussian_model_have_their_closed_form_shares():
    """At rows where x = 0 the means agree, and with a and b informative about z:
    v_T(S) = ½(log(a_S/a_N) + a_N/a_S − 1) summed over T, a_S = w² V_S + σ²;
    φ_a = ½(v(∅) − v(a) + v(b)), I_ab = v(a) + v(b) − v(∅)."""
    w, sigma = np.array([1.5, 0.7]), np.array([0.5, 0.4])
    model = OneFactor(w, sigma)
    rows = np.zeros((3, 2))

    def v(given):
        v_s = 1 / (1 + sum(w[k] ** 2 / sigma[k] ** 2 for k in given))
        v_n = 1 / (1 + (w**2 / sigma**2).sum())
        a_s, a_n = w**2 * v_s + sigma**2, w**2 * v_n + sigma**2
        return 0.5 * (np.log(a_s / a_n) + a_n / a_s - 1)  # per column

    table = modality_shares(model, rows)
    for scope, cols in [("all", [0, 1]), ("m0", [0]), ("m1", [1])]:
        v0, va, vb = (v(g)[cols].sum() for g in ([], [0], [1]))
        got = table[table["scope"] == scope].set_index(["quantity", "modality"])["value"]
        assert got["share", "m0"] == pytest.approx(0.5 * (v0 - va + vb), rel=1e-10)
        assert got["share", "m1"] == pytest.approx(0.5 * (v0 - vb + va), rel=1e-10)
        assert got["interaction", "m0&m1"] == pytest.approx(va + vb - v0, rel=1e-10)
    # Two strongly informative views of one factor are redundant.
    assert table.query("quantity == 'interaction' and scope == 'all'")["value"].item() < 0


def test_shares_of_a_linear_gaussian_model_match_the_enumerated_shapley_values():
    model = OneFactor([1.0, 0.8, 0.3, 1.2], [0.3, 0.6, 1.0, 0.2])
    rows = np.random.default_rng(0).normal(size=(40, 4))
    table = modality_shares(model, rows)
    for scope, cols in [("all", [0, 1, 2, 3]), ("m2", [2])]:
        v = closed_form_values(model, rows, cols)
        got = table[table["scope"] == scope].set_index(["quantity", "modality"])["value"]
        np.testing.assert_allclose(
            [got["share", f"m{k}"] for k in range(4)], shapley_by_orderings(v, 4), rtol=1e-9, atol=1e-12
        )
        for i, j in combinations(range(4), 2):
            assert got["interaction", f"m{i}&m{j}"] == pytest.approx(
                interaction_by_definition(v, 4, i, j), rel=1e-9, abs=1e-12
            )
    values = lattice_values(model, rows, targets=["m2"])
    v = closed_form_values(model, rows, [2])
    assert values.set_index("modality")["value"]["m0+m3"] == pytest.approx(v[frozenset({0, 3})], rel=1e-9)


def test_independent_modalities_inform_only_themselves():
    """A model whose output for a modality reads only that modality: who informs whom is
    diagonal and no two modalities interact."""

    class Separate:
        n_models = 1
        description = factor_description(3)

        def output_gaussian(self, rows, muted):
            mean = torch.where(muted, torch.zeros_like(rows), rows).double()
            var = torch.where(muted, torch.ones_like(mean), torch.full_like(mean, 0.01))
            return mean[None], var[None]

    table = modality_shares(Separate(), np.random.default_rng(1).normal(size=(30, 3)))
    matrix = table[(table["quantity"] == "share") & (table["scope"] != "all")].pivot(
        index="modality", columns="scope", values="value"
    )
    assert (np.diag(matrix.to_numpy()) > 0.5).all()
    off = matrix.to_numpy()[~np.eye(3, dtype=bool)]
    np.testing.assert_allclose(off, 0, atol=1e-12)
    np.testing.assert_allclose(table[table["quantity"] == "interaction"]["value"], 0, atol=1e-12)


# ---------------------------------------------------------------------- every fusion
@pytest.fixture(scope="module")
def tiny_rows():
    from conftest import _tiny_description

    description = _tiny_description()
    return description, np.tanh(np.random.default_rng(0).normal(size=(40, description.n_columns)))


def scaled_models(description, fusion: str, n_models: int = 2):
    model = build_model(description, architecture_preset("1", description), fusion, n_models, dtype=torch.float64)
    model.reset_parameters(list(range(n_models)))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    return model


@pytest.mark.parametrize("fusion", ["concat", "poe", "moe", "mopoe"])
def test_every_fusion_s_shares_add_up_to_its_baselines_and_reuse_the_measures(tiny_rows, fusion):
    description, rows = tiny_rows
    model = scaled_models(description, fusion)
    table = modality_shares(model, rows, generator=torch.Generator().manual_seed(3), measures=True)
    measures = integration_measures(model, rows, generator=torch.Generator().manual_seed(3))
    # The measures computed beside the shares are the measures, number for number.
    both = measures.merge(table, on=KEY, suffixes=("", "_lattice"))
    assert len(both) == len(measures)
    np.testing.assert_array_equal(both["value"], both["value_lattice"])
    shares = table[table["quantity"] == "share"].groupby(["model", "scope"])["value"].sum()
    np.testing.assert_allclose(
        shares.xs("all", level="scope"),
        measures[measures["quantity"] == "baseline"].set_index("model")["value"],
        rtol=1e-9,
    )
    # Regarding one modality, the baseline is v_m(∅); with one modality given it is the
    # single modality error regarding m: both vertices of the lattice.
    values = lattice_values(model, rows, generator=torch.Generator().manual_seed(3))
    vertex = values.set_index(["model", "modality", "scope"])["value"]
    sme = measures[(measures["quantity"] == "single_modality_error") & (measures["scope"] == "modality")]
    for _, row in sme.iterrows():
        assert vertex[row["model"], row["modality"], row["modality"]] == pytest.approx(row["value"], rel=1e-9)
    for (m, target), total in shares.items():
        if target != "all":
            assert total == pytest.approx(vertex[m, "", target], rel=1e-9, abs=1e-12)


def test_bernoulli_and_categorical_outputs_have_shares(tiny_rows):
    description, rows = tiny_rows
    description = description.replace(
        modalities=(Modality("arm", 2), Modality("bump", 1, likelihood="bernoulli"), Modality("eye", 3))
    )
    rows = rows.copy()
    bump = description.mask("bump")
    rows[:, bump] = (rows[:, bump] > 0).astype(float) * 2 - 1  # the value range's ends
    model = scaled_models(description, "concat")
    table = modality_shares(model, rows, targets=["bump"])
    assert set(table["likelihood"]) == {"bernoulli"}
    baseline = lattice_values(model, rows, targets=["bump"]).query("modality == ''")["value"].to_numpy()
    total = table[table["quantity"] == "share"].groupby("model")["value"].sum().to_numpy()
    np.testing.assert_allclose(total, baseline, rtol=1e-9)
    assert (baseline > 0).all()


def test_steps_as_parts_and_sampled_orderings(tiny_rows, monkeypatch):
    description, rows = tiny_rows
    model = scaled_models(description, "concat", n_models=1)
    exact = modality_shares(model, rows, parts="steps", targets=["all"])
    assert set(exact.query("quantity == 'share'")["modality"]) == {
        f"{m}@{t}" for m in ("arm", "bump", "eye") for t in ("t", "t-1")
    }
    assert (exact["standard_error"] == 0).all()
    monkeypatch.setattr(lattice, "EXACT_UP_TO", 3)  # six parts are now sampled
    sampled = modality_shares(model, rows, parts="steps", targets=["all"], orderings=400, seed=1)
    shares = sampled[sampled["quantity"] == "share"]
    # Each ordering telescopes to the baseline, so the sampled shares add up to it exactly.
    assert shares["value"].sum() == pytest.approx(exact.query("quantity == 'share'")["value"].sum(), rel=1e-9)
    merged = exact.merge(sampled, on=KEY, suffixes=("", "_sampled"))
    assert (merged["standard_error_sampled"] > 0).any()
    z = (merged["value_sampled"] - merged["value"]).abs() / merged["standard_error_sampled"].clip(lower=1e-12)
    assert (z[merged["standard_error_sampled"] > 0] < 5).all(), merged
    again = modality_shares(model, rows, parts="steps", targets=["all"], orderings=400, seed=1)
    pd.testing.assert_frame_equal(sampled, again)


def test_bad_parts_targets_and_orderings_are_refused(tiny_rows):
    description, rows = tiny_rows
    model = scaled_models(description, "concat", n_models=1)
    with pytest.raises(ConfigError, match="column 'eye_t_0' is in no part"):
        modality_shares(model, rows, parts=["arm", "bump"])
    with pytest.raises(ConfigError, match="in several parts"):
        modality_shares(model, rows, parts={"a": ["arm", "bump"], "b": ["bump", "eye"]})
    with pytest.raises(DataError, match="part 'x'"):
        modality_shares(model, rows, parts={"x": ["wing"], "y": ["arm", "bump", "eye"]})
    with pytest.raises(ConfigError, match="parts 'pairs'"):
        modality_shares(model, rows, parts="pairs")
    with pytest.raises(ConfigError, match="targets: 'wing'"):
        modality_shares(model, rows, targets=["wing"])
    with pytest.raises(ConfigError, match="every subset is exact"):
        modality_shares(model, rows, orderings=10)
    with pytest.raises(ConfigError, match="at least two parts"):
        modality_shares(model, rows, parts={"everything": ["arm", "bump", "eye"]})


def test_the_library_exports_the_lattice():
    assert im.modality_shares is modality_shares and im.lattice_values is lattice_values


# ---------------------------------------------------------------------- in a run
def test_a_run_with_shares_adds_them_at_its_last_evaluation_and_measure_recomputes_them(tmp_path, capsys):
    from intermodal.cli import main
    from intermodal.evaluation.evaluator import measure_run

    out = tmp_path / "run"
    sim = '{"n_train": 200, "n_test": 64}'
    code = main(
        ["train", "--data", "sim", "--sim", sim, "--epochs", "2", "--eval-every", "1", "--shares", "--seeds", "2",
         "--fusion", "concat,poe", "--batch-size", "100", "--out", str(out), "--quiet"]
    )  # fmt: skip
    assert code == 0
    results = im.load_run(out).results
    lattice_rows = results[results["quantity"].isin(["share", "interaction"])]
    assert set(lattice_rows["epoch"]) == {2}  # the last evaluation only (shares_every 0)
    last = results[results["epoch"] == 2]
    baseline = last[last["quantity"] == "baseline"].set_index(["fusion", "seed"])["value"]
    total = last[(last["quantity"] == "share") & (last["scope"] == "all")].groupby(["fusion", "seed"])["value"].sum()
    np.testing.assert_allclose(total.sort_index(), baseline.sort_index(), rtol=1e-6)
    # The measures a run made beside the shares are those a run without them makes.
    again = measure_run(out)
    both = again.merge(last, on=["fusion", "schedule", "seed", "quantity", "modality", "scope"])
    np.testing.assert_allclose(both["value_x"], both["value_y"], rtol=1e-6, atol=1e-9)
    measured = measure_run(out, shares="modalities", fusion="poe")
    shares = measured[measured["quantity"] == "share"].merge(
        last[last["quantity"] == "share"], on=["fusion", "schedule", "seed", "modality", "scope"]
    )
    assert len(shares) == 2 * 5 * 6  # seeds × sources × (all + 5 targets)
    np.testing.assert_allclose(shares["value_x"], shares["value_y"], rtol=1e-6, atol=1e-9)
    capsys.readouterr()
    assert main(["measure", str(out), "--shares", "--fusion", "concat"]) == 0
    printed = capsys.readouterr().out
    assert "shares of the baseline" in printed and "joints&vision" in printed


def test_shares_options_are_checked():
    with pytest.raises(ConfigError, match="eval_every is 0"):
        im.RunConfig.from_mapping({"shares": "modalities"})
    with pytest.raises(ConfigError, match="not a multiple of eval_every"):
        im.RunConfig.from_mapping({"shares": "modalities", "eval_every": 10, "shares_every": 15})
    with pytest.raises(ConfigError, match="needs shares"):
        im.RunConfig.from_mapping({"eval_every": 10, "shares_every": 20})
    with pytest.raises(ConfigError, match="shares"):
        im.RunConfig.from_mapping({"shares": "pairs", "eval_every": 10})
    config = im.RunConfig(shares="steps", eval_every=10, shares_every=20, epochs=50)
    from intermodal.evaluation.evaluator import shares_due

    assert [e for e in range(51) if shares_due(config, e)] == [0, 20, 40, 50]


def test_too_many_sampled_subsets_are_refused_before_anything_is_decoded(tiny_rows, monkeypatch):
    description, rows = tiny_rows
    model = scaled_models(description, "concat", n_models=1)
    monkeypatch.setattr(lattice, "EXACT_UP_TO", 3)
    monkeypatch.setattr(lattice, "MAX_SAMPLED_SUBSETS", 100)
    with pytest.raises(ConfigError, match="orderings 400 with 6 parts would read about 28800 subsets"):
        modality_shares(model, rows, parts="steps", orderings=400)
