"""Tests of the output families (intermodal.model.likelihoods), the mixture posterior's coupled
sampling (intermodal.model.posterior) and the measures on models of other families or with
mixture posteriors (intermodal.evaluation.measures).

Reference values are computed independently: divergences and densities from numpy closed forms
or torch.distributions, columns found from their names, predictive mixtures integrated on a grid.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import special, stats
from torch.distributions import Bernoulli, Categorical, Laplace, Normal, kl_divergence

import intermodal as im
from intermodal.data.description import DatasetDescription, Modality
from intermodal.model.likelihoods import Likelihood, OutputLayout, Outputs
from intermodal.model.posterior import MixturePosterior, latent_noise

# A mixed description: the categorical modality sits between others, so its columns are not at the end.
FAMILY = {"g": ("gaussian", None), "c": ("categorical", None), "l": ("laplace", 0.7), "b": ("bernoulli", None)}
MIXED = DatasetDescription(
    name="mixed",
    modalities=(Modality("g", 2), Modality("c", 3), Modality("l", 1), Modality("b", 2)),
    muting_patterns={"complete": ()},
)
MIXED_LIK = {m: Likelihood(f, s) for m, (f, s) in FAMILY.items()}


def softmax(a):
    return special.softmax(a, axis=-1)


def groups(desc):
    """(modality, column indices) of each modality at each step, found by the columns' names."""
    names = desc.column_names()
    return [
        (m.name, [names.index(f"{m.name}_{s}_{i}") for i in range(m.size)])
        for m in desc.modalities
        for s in desc.time_steps
    ]


def family_columns(desc, families, family):
    return sorted(c for m, cols in groups(desc) if families[m][0] == family for c in cols)


def kl_numpy(desc, families, p, q):
    """KL(p ‖ q) per column from the closed forms; p, q: (loc, scale) numpy arrays, broadcast."""
    out = np.zeros(np.broadcast_shapes(p[0].shape, q[0].shape))
    for m, cols in groups(desc):
        family, fixed = families[m]
        mp, mq = p[0][..., cols], q[0][..., cols]
        sp, sq = (p[1][..., cols], q[1][..., cols]) if fixed is None else (fixed, fixed)
        if family == "gaussian":
            kl = np.log(sq / sp) + (sp**2 + (mp - mq) ** 2) / (2 * sq**2) - 0.5
        elif family == "laplace":
            d = np.abs(mp - mq)
            kl = np.log(sq / sp) + d / sq + (sp / sq) * np.exp(-d / sp) - 1
        elif family == "bernoulli":
            a, b = special.expit(mp), special.expit(mq)
            kl = a * np.log(a / b) + (1 - a) * np.log((1 - a) / (1 - b))
        else:
            a, b = softmax(mp), softmax(mq)
            kl = np.repeat((a * np.log(a / b)).sum(-1, keepdims=True) / len(cols), len(cols), -1)
        out[..., cols] = kl
    return out


def random_outputs(rng, shape):
    return rng.normal(size=shape) * 1.5, np.exp(rng.normal(size=shape) * 0.5)


def as_outputs(loc, scale):
    return Outputs(torch.as_tensor(loc, dtype=torch.float64), torch.as_tensor(scale, dtype=torch.float64))


def moments_np(desc, families, loc, scale):
    """Each column's mean and standard deviation in data units: Laplace √2·b; Bernoulli p and
    √(p(1−p)), categorical p_c, each on the value range's scale (low + p·(high − low))."""
    low, high = desc.value_range
    mean, std = loc.copy(), np.array(scale, dtype=float)
    for m, cols in groups(desc):
        family, fixed = families[m]
        if family in ("gaussian", "laplace"):
            std[..., cols] = (scale[..., cols] if fixed is None else fixed) * (1.0 if family == "gaussian" else 2**0.5)
        else:
            p = special.expit(loc[..., cols]) if family == "bernoulli" else softmax(loc[..., cols])
            mean[..., cols], std[..., cols] = low + (high - low) * p, (high - low) * np.sqrt(p * (1 - p))
    return mean, std


CAT = [cols for m, cols in groups(MIXED) if m == "c"]  # the categorical modality's one-hot groups


# ---------------------------------------------------------------------- 1. KL per column
@pytest.mark.parametrize("laplace_scale", [0.7, None])  # fixed (symmetric in p and q) or learned
def test_kl_per_column_matches_each_familys_closed_form(laplace_scale):
    families = {**FAMILY, "l": ("laplace", laplace_scale)}
    layout = OutputLayout(MIXED, {**MIXED_LIK, "l": Likelihood("laplace", laplace_scale)})
    rng = np.random.default_rng(1)
    n = MIXED.n_columns
    p_np, q_np = random_outputs(rng, (1, 6, n)), random_outputs(rng, (3, 6, n))  # broadcast over the first axis
    p, q = layout.with_fixed_scales(as_outputs(*p_np)), layout.with_fixed_scales(as_outputs(*q_np))
    kl = layout.kl_per_column(p, q).numpy()
    assert kl.shape == (3, 6, n)
    np.testing.assert_allclose(kl, kl_numpy(MIXED, families, p_np, q_np), rtol=1e-10, atol=1e-13)
    # Each one-hot group's columns add up to its categorical KL.
    for cols in CAT:
        a, b = softmax(p_np[0][..., cols]), softmax(q_np[0][..., cols])
        np.testing.assert_allclose(kl[..., cols].sum(-1), (a * np.log(a / b)).sum(-1), rtol=1e-10)
    # The Gaussian columns agree with torch's Normal KL away from p ≈ q, and are exactly 0 at p = q.
    g = family_columns(MIXED, FAMILY, "gaussian")
    torch_kl = kl_divergence(Normal(p.loc[..., g], p.scale[..., g]), Normal(q.loc[..., g], q.scale[..., g]))
    np.testing.assert_allclose(kl[..., g], torch_kl.numpy(), rtol=1e-9)
    same = layout.kl_per_column(p, p).numpy()
    assert (same[..., g] == 0).all()
    np.testing.assert_allclose(same, 0.0, atol=1e-12)
    # Near p = q (scale ratio 1 + δ) the Gaussian KL keeps its relative accuracy (≈ δ², not rounding noise).
    delta = 1e-6
    near = layout.kl_per_column(p, Outputs(p.loc, p.scale / (1 + delta))).numpy()[..., g]
    np.testing.assert_allclose(near, -np.log1p(delta) + delta + delta**2 / 2, rtol=1e-6)


def test_categorical_groups_are_the_modalitys_columns_at_each_step():
    # A modality named like another's columns ("c" and "c_t": "c_t_..." also begins "c_t_t_...").
    desc = DatasetDescription(
        name="prefix", modalities=(Modality("c", 3), Modality("c_t", 1)), muting_patterns={"complete": ()}
    )
    layout = OutputLayout(desc, {"c": "categorical"})
    assert [list(g) for g in layout.categorical_groups] == [cols for m, cols in groups(desc) if m == "c"]


# ---------------------------------------------------------------------- 2. log densities
def test_log_prob_per_column_matches_torch_distributions():
    layout = OutputLayout(MIXED, MIXED_LIK)
    rng = np.random.default_rng(2)
    n = MIXED.n_columns
    out = layout.with_fixed_scales(as_outputs(*random_outputs(rng, (2, 1, 5, n))))
    y = rng.normal(size=(1, 3, 5, n))
    for m, cols in groups(MIXED):
        if FAMILY[m][0] == "bernoulli":
            y[..., cols] = rng.integers(0, 2, size=y[..., cols].shape)
        elif FAMILY[m][0] == "categorical":
            y[..., cols] = np.eye(len(cols))[rng.integers(0, len(cols), size=y.shape[:-1])]
    y = torch.as_tensor(y)
    got = layout.log_prob_per_column(out, y)
    assert got.shape == (2, 3, 5, n)
    for family, dist in (("gaussian", Normal), ("laplace", Laplace)):
        c = family_columns(MIXED, FAMILY, family)
        expected = dist(out.loc[..., c], out.scale[..., c]).log_prob(y[..., c])
        torch.testing.assert_close(got[..., c], expected.expand_as(got[..., c]), rtol=1e-12, atol=1e-12)
    c = family_columns(MIXED, FAMILY, "bernoulli")
    expected = Bernoulli(logits=out.loc[..., c]).log_prob(y[..., c])
    torch.testing.assert_close(got[..., c], expected, rtol=1e-12, atol=1e-12)
    for cols in CAT:
        expected = Categorical(logits=out.loc[..., cols]).log_prob(y[..., cols].argmax(-1))
        torch.testing.assert_close(got[..., cols].sum(-1), expected, rtol=1e-12, atol=1e-12)
        assert (got[..., cols][y[..., cols].expand_as(got[..., cols]) == 0] == 0).all()


# ---------------------------------------------------------------------- 3, 4. draws and moments
def test_sample_draws_each_familys_distribution():
    layout = OutputLayout(MIXED, MIXED_LIK)
    rng = np.random.default_rng(3)
    n, draws = MIXED.n_columns, 200_000
    loc, scale = random_outputs(rng, (n,))
    out = layout.with_fixed_scales(as_outputs(loc, scale))
    loc, scale = out.loc.numpy(), out.scale.numpy()
    u = torch.rand(draws, n, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    y = layout.sample(Outputs(out.loc.expand(draws, n), out.scale.expand(draws, n)), u).numpy()
    mean, var = y.mean(0), y.var(0)
    for family, factor in (("gaussian", 1.0), ("laplace", 2.0)):
        c = family_columns(MIXED, FAMILY, family)
        sd = np.sqrt(factor) * scale[c]
        np.testing.assert_array_less(np.abs(mean[c] - loc[c]), 5 * sd / math.sqrt(draws))
        np.testing.assert_allclose(var[c], sd**2, rtol=0.03)
    c = family_columns(MIXED, FAMILY, "bernoulli")
    p = special.expit(loc[c])
    assert set(np.unique(y[:, c])) <= {0.0, 1.0}
    np.testing.assert_array_less(np.abs(mean[c] - p), 5 * np.sqrt(p * (1 - p) / draws))
    for cols in CAT:
        assert set(np.unique(y[:, cols])) <= {0.0, 1.0} and (y[:, cols].sum(-1) == 1).all()
        p = softmax(loc[cols])
        np.testing.assert_array_less(np.abs(mean[cols] - p), 5 * np.sqrt(p * (1 - p) / draws))


def test_moments_per_family():
    layout = OutputLayout(MIXED, MIXED_LIK)
    loc, scale = random_outputs(np.random.default_rng(4), (3, MIXED.n_columns))
    mean, std = (t.numpy() for t in layout.moments(layout.with_fixed_scales(as_outputs(loc, scale))))
    expected_mean, expected_std = moments_np(MIXED, FAMILY, loc, scale)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-12)
    np.testing.assert_allclose(std, expected_std, rtol=1e-12)
    assert np.allclose(std[:, family_columns(MIXED, FAMILY, "laplace")], math.sqrt(2) * 0.7)
    low, high = MIXED.value_range
    for cols in CAT:  # probabilities on the value range's scale
        np.testing.assert_allclose(((mean[:, cols] - low) / (high - low)).sum(-1), 1.0)


# ---------------------------------------------------------------------- 5. fixed scales, labels, refusals
def test_fixed_scales_labels_and_bad_likelihoods():
    layout = OutputLayout(MIXED, {**MIXED_LIK, "g": Likelihood("gaussian", 0.5)})
    loc = torch.zeros(2, MIXED.n_columns, dtype=torch.float64)
    scale = torch.full_like(loc, -3.0)  # nonsense everywhere; the fixed columns get their scale
    out = layout.with_fixed_scales(Outputs(loc, scale)).scale
    g, lap = family_columns(MIXED, FAMILY, "gaussian"), family_columns(MIXED, FAMILY, "laplace")
    assert (out[:, g] == 0.5).all() and (out[:, lap] == 0.7).all()
    rest = [c for c in range(MIXED.n_columns) if c not in g + lap]
    assert (out[:, rest] == -3.0).all()
    assert Likelihood("gaussian", 0.5).label == "gaussian(scale=0.5)"
    assert Likelihood("bernoulli").label == "bernoulli"
    assert layout.label_of(np.ones(16, bool)) == "gaussian(scale=0.5)+categorical+laplace(scale=0.7)+bernoulli"
    assert layout.label_of(MIXED.mask(["b@t", "l"])) == "laplace(scale=0.7)+bernoulli"
    bad = [("poisson", None), ("bernoulli", 0.5), ("categorical", 1.0), ("gaussian", 0.0), ("gaussian", -1.0)]
    for family, scale in bad + [("laplace", s) for s in (float("nan"), float("inf"), True, "1")]:
        with pytest.raises(im.IntermodalError):
            Likelihood(family, scale)
    with pytest.raises(im.IntermodalError, match="'nope'"):
        OutputLayout(MIXED, {"nope": "gaussian"})
    part = np.zeros(MIXED.n_columns, bool)
    part[CAT[0][0]] = True  # one column of c@t
    with pytest.raises(im.IntermodalError):
        layout.check_hidden(part, "test")
    with pytest.raises(im.IntermodalError, match="'c'"):
        layout.check_compared(MIXED.mask("c@t"), "test")
    layout.check_hidden(MIXED.mask("c@t"), "test")  # a whole group may be hidden


# ---------------------------------------------------------------------- 6. measures end to end
E2E_FAMILY = dict(pos=("gaussian", None), tap=("bernoulli", None), cat=("categorical", None), lap=("laplace", 0.5))
E2E = DatasetDescription(
    name="e2e",
    modalities=(Modality("pos", 2), Modality("tap", 2), Modality("cat", 3), Modality("lap", 1)),
    muting_patterns={"complete": ()},
)
_W = np.random.default_rng(6).normal(size=(3, E2E.n_columns, E2E.n_columns)) * np.array([0.7, 0.3, 0.2])[:, None, None]


def e2e_outputs(rows, muted):
    """The known function of the unmuted inputs: loc affine in them, scale log-affine."""
    x = np.where(muted, 0.0, rows)
    return x @ _W[0] + _W[1][0], np.exp(x @ _W[2])


class OutputsOnly:
    description = E2E
    n_models = 1
    likelihoods = {m: Likelihood(f, s) for m, (f, s) in E2E_FAMILY.items()}

    def outputs(self, rows, muted):
        loc, scale = e2e_outputs(rows.numpy(), muted.numpy())
        scale[:, family_columns(E2E, E2E_FAMILY, "laplace")] = 0.0  # fixed: the model may put anything there
        scale[:, family_columns(E2E, E2E_FAMILY, "bernoulli") + family_columns(E2E, E2E_FAMILY, "categorical")] = -1
        return im.Outputs(torch.as_tensor(loc)[None], torch.as_tensor(scale)[None])


def test_measures_end_to_end_on_an_output_model_of_other_families():
    rng = np.random.default_rng(7)
    model, rows = OutputsOnly(), rng.uniform(-0.9, 0.9, size=(40, E2E.n_columns))
    for m, cols in groups(E2E):  # Bernoulli columns 0 or 1, categorical ones one-hot
        if m != "pos" and m != "lap":
            rows[:, cols] = (
                rng.integers(0, 2, size=(40, len(cols))) if m == "tap" else np.eye(3)[rng.integers(0, 3, 40)]
            )
    names, n = E2E.column_names(), E2E.n_columns
    own = {m.name: np.array([c.startswith(m.name + "_") for c in names]) for m in E2E.modalities}
    everything = np.ones(n, bool)
    specs = [
        (q, m, scope, own[m] if q == "loss_of_precision" else ~own[m], own[m] if scope == "modality" else everything)
        for m in own
        for q in ("single_modality_error", "loss_of_precision")
        for scope in ("modality", "all")
    ]
    cat_t = np.array([c.startswith("cat_t_") for c in names])
    specs += [("baseline", "", "", everything, everything), ("custom", "ok", "", cat_t, own["cat"])]
    table = im.integration_measures(model, rows, extra_pairs={"ok": (["cat@t"], ["cat"])}).set_index(
        ["quantity", "modality", "scope"]
    )
    p = e2e_outputs(rows, np.zeros_like(rows, bool))
    labels = {"pos": "gaussian", "tap": "bernoulli", "cat": "categorical", "lap": "laplace(scale=0.5)"}
    for quantity, m, scope, muted, compared in specs:
        q = e2e_outputs(rows, np.broadcast_to(muted, rows.shape))
        expected = kl_numpy(E2E, E2E_FAMILY, p, q)[:, compared].sum(-1).mean()
        assert expected > 1e-3
        row = table.loc[(quantity, m, scope)]
        assert row["value"] == pytest.approx(expected, rel=1e-9), (quantity, m, scope)
        label = labels["cat" if quantity == "custom" else m] if scope == "modality" or quantity == "custom" else None
        assert row["likelihood"] == (label or "+".join(labels.values()))
    # The prediction error: the distance from each row to its mean (Bernoulli p, categorical probabilities).
    expected = np.linalg.norm(rows - moments_np(E2E, E2E_FAMILY, *p)[0], axis=1).mean()
    assert table.loc[("prediction_error", "", ""), "value"] == pytest.approx(expected, rel=1e-9)
    # Part of a categorical modality cannot be compared; a model without a latent cannot sample.
    with pytest.raises(im.IntermodalError, match="'cat'"):
        im.integration_measures(model, rows, extra_pairs={"x": (["cat@t"], ["cat@t"])})
    with pytest.raises(im.IntermodalError):
        im.integration_measures(model, rows, z_samples=4)
    # predict gives the moments of what the model outputs from the given columns.
    given = np.array([c.startswith(("pos_", "tap_")) for c in names])
    prediction = im.predict(model, rows, ["pos", "tap"])
    expected_mean, expected_std = moments_np(E2E, E2E_FAMILY, *e2e_outputs(rows, np.broadcast_to(~given, rows.shape)))
    np.testing.assert_allclose(prediction.mean[0], expected_mean, rtol=1e-12)
    np.testing.assert_allclose(prediction.std[0], expected_std, rtol=1e-12)
    tap = prediction.mean[0][:, family_columns(E2E, E2E_FAMILY, "bernoulli")]
    assert ((tap > -1) & (tap < 1)).all()  # probabilities on the value range [-1, 1], not logits
    with pytest.raises(im.IntermodalError):
        im.predict(model, rows, ["pos"], seed=0)


# ---------------------------------------------------------------------- 7. the mixture's coupled draws
def test_mixture_coupling_keeps_exact_marginals_for_non_uniform_weights():
    grid = 300
    centres = (torch.arange(grid, dtype=torch.float64) + 0.5) / grid
    pick, repick = (t.reshape(-1, 1) for t in torch.meshgrid(centres, centres, indexing="ij"))
    w_ref = np.array([0.5, 0.3, 0.2])
    weights = np.array([[0.2, 0.0, 0.8], [0.6, 0.4, 0.0], [0.1, 0.6, 0.3], [0.5, 0.3, 0.2], [0.0, 0.0, 1.0]])
    n, k = weights.shape
    means = torch.arange(k, dtype=torch.float64).view(1, 1, k, 1).expand(1, n, k, 1)
    var = torch.full((1, n, k, 1), 0.3, dtype=torch.float64)
    with np.errstate(divide="ignore"):
        log_w, log_ref = torch.as_tensor(np.log(weights))[None], torch.as_tensor(np.log(w_ref)).expand(1, n, k)
    post, reference = MixturePosterior(means, var, log_w), MixturePosterior(means, var, log_ref)
    noise = torch.zeros(grid * grid, n, 3, dtype=torch.float64)  # eps = 0: a draw is its component's mean
    noise[..., 1], noise[..., 2] = pick, repick
    chosen = post.sample(noise, reference)[0, :, :, 0].round().long().numpy()  # [draws, n]
    first = reference.sample(noise)[0, :, :, 0].round().long().numpy()
    frequency = (chosen[..., None] == np.arange(k)).mean(0)
    np.testing.assert_allclose(frequency, weights, atol=2 / grid)
    np.testing.assert_allclose(
        (first[..., None] == np.arange(k)).mean(0), np.broadcast_to(w_ref, (n, k)), atol=2 / grid
    )
    assert (frequency[weights == 0] == 0).all()
    # Maximal coupling: the reference's component is kept where the input has at least its weight,
    # and overall with probability Σ_k min(w_k, w_ref_k).
    keeps = weights[np.arange(n), first] >= w_ref[first]
    assert keeps.any() and (chosen[keeps] == first[keeps]).all()
    np.testing.assert_allclose((chosen == first).mean(0), np.minimum(weights, w_ref).sum(-1), atol=2 / grid)
    # The complete row's weights given to the posterior itself couple alike.
    own = MixturePosterior(means, var, log_w, torch.as_tensor(np.log(w_ref)))
    assert (own.sample(noise)[0, :, :, 0].round().long().numpy() == chosen).all()


def test_laplace_mixture_samples_have_the_components_variances():
    weights = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.3, 0.7]], dtype=torch.float64)
    mu, v = np.array([-3.0, 2.0]), np.array([0.5, 2.0])
    means = torch.as_tensor(mu).view(1, 1, 2, 1).expand(1, 3, 2, 1)
    var = torch.as_tensor(v).view(1, 1, 2, 1).expand(1, 3, 2, 1)
    post = MixturePosterior(means, var, torch.log(weights)[None], family="laplace")
    draws = 200_000
    z = post.sample(latent_noise(3, draws, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(8)))
    z = z[0, :, :, 0].numpy()
    for r in (0, 1):
        assert z[:, r].mean() == pytest.approx(mu[r], abs=5 * math.sqrt(v[r] / draws))
        assert z[:, r].var() == pytest.approx(v[r], rel=0.03)
        # Laplace tails: P(|z − μ| > σ) = exp(−√2) ≈ 0.243 (a Gaussian's would be 0.317).
        assert (np.abs(z[:, r] - mu[r]) > math.sqrt(v[r])).mean() == pytest.approx(math.exp(-math.sqrt(2)), abs=0.005)
    w = weights[2].numpy()
    assert z[:, 2].mean() == pytest.approx(w @ mu, abs=0.02)
    assert z[:, 2].var() == pytest.approx(w @ (v + mu**2) - (w @ mu) ** 2, rel=0.03)


# ---------------------------------------------------------------------- 8. the predictive divergence
PRED = DatasetDescription(
    name="pred", modalities=(Modality("a", 1), Modality("b", 1)), time_steps=("t",), muting_patterns={"complete": ()}
)
# The estimate targets KL(P_S ‖ Q_S) between S-sample mixtures, whose mean exceeds KL(P ‖ Q) by
# O(1/S) (joint convexity), the more so the wider the latent against the output noise: a narrow
# latent keeps that bias under the standard error at S = 256.
MIX_W, LATENT_VAR, DECODER, NOISE_SD = np.array([0.3, 0.7]), 0.02, np.array([1.0, -1.0]), np.array([0.5, 0.5])


class LinearMixture:
    """z ~ a mixture of one expert per present modality, mean the modality's value, variance
    LATENT_VAR, weights MIX_W renormalised (nothing present: its prior, both experts at 0);
    y = DECODER·z + N(0, NOISE_SD²)."""

    description, n_models, likelihoods, latent_size = PRED, 1, {}, 1

    def posterior(self, rows, muted):
        none = muted.all(-1, keepdim=True)
        means = torch.where(none, 0.0, rows)
        log_w = torch.where(muted, -math.inf, torch.as_tensor(np.log(MIX_W), dtype=rows.dtype))
        log_w = torch.where(none, math.log(0.5), log_w)
        var = torch.full_like(rows, LATENT_VAR)
        return im.MixturePosterior(means[None, ..., None], var[None, ..., None], log_w[None])

    def decode(self, z):
        loc = z * torch.as_tensor(DECODER, dtype=z.dtype)
        return im.Outputs(loc, torch.as_tensor(NOISE_SD, dtype=z.dtype).expand_as(loc))


def predictive_components(x, present):
    """The predictive mixture's weights, means [K, 2] and covariances [K, 2, 2] for input x."""
    w = MIX_W * present / (MIX_W * present).sum() if present.any() else np.array([0.5, 0.5])
    means = np.where(present.any(), x, 0.0)[:, None] * DECODER
    cov = LATENT_VAR * np.outer(DECODER, DECODER) + np.diag(NOISE_SD**2)
    return w, means, [cov, cov]


def mixture_kl(p, q, columns):
    """KL between two Gaussian mixtures (weights, means, covariances) over the columns, on a grid."""
    axis = np.linspace(-6, 6, 1201 if len(columns) == 1 else 481)
    points = np.stack(np.meshgrid(*[axis] * len(columns), indexing="ij"), -1)

    def density(w, means, cov):
        normals = [stats.multivariate_normal(mk[columns], ck[np.ix_(columns, columns)]) for mk, ck in zip(means, cov)]
        return sum(wk * normal.pdf(points) for wk, normal in zip(w, normals))

    dp, dq = density(*p), density(*q)  # both ~0 at the grid's edges: a plain sum is the trapezoid rule
    return float(
        (dp * np.log(np.maximum(dp, 1e-300) / np.maximum(dq, 1e-300))).sum() * (axis[1] - axis[0]) ** len(columns)
    )


def test_predictive_divergence_matches_the_integrated_mixture_kl():
    x, generator = np.array([0.8, -0.5]), torch.Generator().manual_seed(9)
    table = im.integration_measures(
        LinearMixture(), np.tile(x, (200, 1)), z_samples=256, divergence="predictive", standard_error=True,
        generator=generator, rows_per_pass=4,
    )  # fmt: skip
    full = predictive_components(x, np.array([True, True]))
    checked = 0
    for _, row in table[table["quantity"] != "prediction_error"].iterrows():
        own = PRED.mask(row["modality"] or "*")
        muted = ~own if row["quantity"] == "single_modality_error" else own
        compared = own if row["scope"] == "modality" else np.ones(2, bool)
        exact = mixture_kl(full, predictive_components(x, ~muted), list(np.flatnonzero(compared)))
        assert exact > 0.05
        assert 0 < row["standard_error"] < 0.02 * exact + 0.005
        assert abs(row["value"] - exact) < 4 * row["standard_error"], (row.to_dict(), exact)
        checked += 1
    assert checked == 9


def test_binary_and_categorical_divergences_stay_finite_for_confident_logits():
    """A confident decoder's logits (|ℓ| > 17 rounds σ(ℓ) to 0 or 1 in float32): the
    divergences are finite and equal the float64 closed form, where torch's probability
    forms give inf or NaN."""
    from torch.distributions import Bernoulli, Categorical, kl_divergence

    from intermodal.model.likelihoods import bernoulli_kl_from_logits, categorical_kl_from_logits

    a = torch.tensor([30.0, -25.0, 18.0, 0.3, 0.3], dtype=torch.float32)
    b = torch.tensor([20.0, 3.0, -18.0, -0.2, 20.0], dtype=torch.float32)  # σ(20) rounds to 1
    got = bernoulli_kl_from_logits(a, b)
    expected = kl_numpy_bernoulli(a.double().numpy(), b.double().numpy())
    np.testing.assert_allclose(got.double().numpy(), expected, rtol=1e-5)
    assert not torch.isfinite(kl_divergence(Bernoulli(logits=a), Bernoulli(logits=b))).all()
    la, lb = torch.tensor([[40.0, 0.0, -40.0]]), torch.tensor([[0.0, 120.0, -40.0]])  # q's first class rounds to 0
    got = categorical_kl_from_logits(la, lb)
    pa = special.softmax(la.double().numpy(), -1)
    expected = (pa * (special.log_softmax(la.double().numpy(), -1) - special.log_softmax(lb.double().numpy(), -1))).sum(
        -1
    )
    np.testing.assert_allclose(got.double().numpy(), expected, rtol=1e-5)
    assert torch.isfinite(got).all()
    assert not torch.isfinite(kl_divergence(Categorical(logits=la), Categorical(logits=lb))).all()


def kl_numpy_bernoulli(a, b):
    """KL between Bernoulli logits in float64 from log-sigmoids (exact for these sizes)."""
    log_sig = lambda x: -np.logaddexp(0, -x)  # noqa: E731
    pa = special.expit(a)
    return pa * (log_sig(a) - log_sig(b)) + (1 - pa) * (log_sig(-a) - log_sig(-b))


def test_binary_and_categorical_divergences_keep_their_precision_where_p_is_close_to_q():
    """Logits 1e-4 apart in float32 (a muted input that changes little): the divergence is
    within 1 % of the float64 value, where a difference of log-probabilities near 1 would
    be off by more than itself."""
    from intermodal.model.likelihoods import bernoulli_kl_from_logits, categorical_kl_from_logits

    a = np.array([0.3, 2.0, -4.0])
    b = (a + 1e-4).astype(np.float32).astype(np.float64)  # what float32 holds
    got = bernoulli_kl_from_logits(torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32))
    a32 = a.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(got.double().numpy(), kl_numpy_bernoulli(a32, b), rtol=1e-2)
    la = np.array([[0.3, 2.0, -1.0]], dtype=np.float32).astype(np.float64)
    lb = (la + np.array([[1e-3, -2e-3, 5e-4]])).astype(np.float32).astype(np.float64)
    pa = special.softmax(la, -1)
    expected = (pa * (special.log_softmax(la, -1) - special.log_softmax(lb, -1))).sum(-1)
    got = categorical_kl_from_logits(torch.tensor(la, dtype=torch.float32), torch.tensor(lb, dtype=torch.float32))
    np.testing.assert_allclose(got.double().numpy(), expected, rtol=1e-2)
