"""Tests of the integration measures (docs/method.md §5) and the posterior-collapse diagnostics.

Reference values here are computed independently of ``intermodal.measures``: masks from the
column names, divergences from a numpy formula written in another form, one model at a time.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from intermodal.data.description import DatasetDescription, Modality
from intermodal.errors import ModelError
from intermodal.evaluation.diagnostics import latent_diagnostics
from intermodal.evaluation.measures import (
    MeasureSpec,
    evaluation_rows,
    gaussian_kl,
    integration_measures,
    measure_specs,
)
from intermodal.evaluation.summaries import active_unit_counts
from intermodal.model.architecture import architecture_preset
from intermodal.model.base import losses
from intermodal.model.fusions.concat import MultimodalVAE

KEY = ["model", "quantity", "modality", "scope"]


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def rows(icub):
    return icub.test[:200]


def random_models(desc, n_models, seed, *, scale=3.0, dtype=torch.float64):
    """Untrained models whose weights are scaled up and biases random, so their outputs
    depend visibly on the input (freshly initialised ones give divergences near 1e-9)."""
    model = MultimodalVAE(desc, architecture_preset("1", desc), n_models, dtype=dtype)
    model.reset_parameters(list(range(seed, seed + n_models)))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for w in model.weights.values():
            w.mul_(scale)
        for b in model.biases.values():
            b.copy_(0.3 * torch.randn(b.shape, generator=gen, dtype=b.dtype))
    return model


@pytest.fixture(scope="module")
def trained(icub):
    """Three models after a few hundred Adam steps on augmented training rows."""
    desc = icub.description
    model = MultimodalVAE(desc, architecture_preset("1", desc), 3, dtype=torch.float64)
    model.reset_parameters([0, 1, 2])
    inputs, targets = icub.training_rows()
    pick = np.random.default_rng(0).choice(len(inputs), size=400, replace=False)
    x = torch.as_tensor(inputs[pick])[None].expand(3, -1, -1)
    t = torch.as_tensor(targets[pick])[None].expand(3, -1, -1)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(150):
        eps = torch.randn(3, x.shape[1], model.latent_size, generator=gen, dtype=torch.float64)
        recon, latent = losses(desc, model.latent_size, t, *model(x, eps))
        loss = (recon + 0.1 * latent).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model


def small_description(**overrides) -> DatasetDescription:
    """Three modalities of sizes 2, 1, 3 in a shuffled column order; nothing iCub-like."""
    modalities = (Modality("arm", 2), Modality("bump", 1), Modality("camera", 3))
    default = [f"{m.name}_{s}_{i}" for m in modalities for s in ("t", "t-1") for i in range(m.size)]
    columns = tuple(np.random.default_rng(3).permutation(default))
    kwargs = dict(
        name="toy",
        modalities=modalities,
        muting_patterns={"complete": (), "no-camera": ("camera",), "past": ("arm@t", "bump@t", "camera@t")},
        columns=columns,
        value_range=(0.0, 1.0),
        muted_value=-1.0,
    )
    kwargs.update(overrides)
    return DatasetDescription(**kwargs)


# ---------------------------------------------------------------------- independent references
def modality_of(column_name: str) -> str:
    return column_name.rsplit("_", 2)[0]


def step_of(column_name: str) -> str:
    return column_name.rsplit("_", 2)[1]


def reference_kl(mean_p, logvar_p, mean_q, logvar_q):
    """Per-column KL, the textbook form: ½[σp²/σq² + (μq−μp)²/σq² − 1 + ln(σq²/σp²)]."""
    var_p, var_q = np.exp(logvar_p), np.exp(logvar_q)
    return 0.5 * (var_p / var_q + (mean_q - mean_p) ** 2 / var_q - 1.0 + np.log(var_q / var_p))


def reference_measures(model, desc, rows, pairs, noise=None):
    """The measures one model at a time with numpy, for ``pairs``: (quantity, modality,
    scope, muted mask, compared mask) built by the caller from the column names. With
    ``noise [samples, rows, latent]``, z = mean + std * noise[s] for p and q alike and the
    per-sample divergences are averaged."""
    x = np.asarray(rows, dtype=np.float64)
    records = []
    for k in range(model.n_models):
        single = model.select([k])

        def decode(inputs, eps=None):
            with torch.no_grad():
                z_mean, z_logvar = single.encode(torch.as_tensor(inputs, dtype=torch.float64)[None])
                z = z_mean if eps is None else z_mean + torch.exp(0.5 * z_logvar) * eps
                mean, std = single.decode(z)
            return mean[0].numpy(), 2 * np.log(std[0].numpy())

        mean_p, _ = decode(x)
        records.append((k, "prediction_error", "", "", np.mean(np.sqrt(((x - mean_p) ** 2).sum(axis=1)))))
        for quantity, modality, scope, muted, compared in pairs:
            muted_rows = x.copy()
            muted_rows[:, muted] = desc.muted_value
            per_sample = []
            for eps in [None] if noise is None else list(noise):
                mean_p, logvar_p = decode(x, eps)
                mean_q, logvar_q = decode(muted_rows, eps)
                per_sample.append(reference_kl(mean_p, logvar_p, mean_q, logvar_q)[:, compared].sum(axis=1))
            records.append((k, quantity, modality, scope, np.mean(per_sample)))
    return pd.DataFrame(records, columns=KEY + ["value"])


def standard_pairs_from_names(desc):
    names = np.array(desc.column_names())
    everything = np.ones(len(names), dtype=bool)
    pairs = []
    for m in desc.modality_names:
        own = np.array([modality_of(c) == m for c in names])
        pairs += [
            ("single_modality_error", m, "modality", ~own, own),
            ("single_modality_error", m, "all", ~own, everything),
            ("loss_of_precision", m, "modality", own, own),
            ("loss_of_precision", m, "all", own, everything),
        ]
    pairs.append(("baseline", "", "", everything, everything))
    return pairs


def as_series(table):
    return table.set_index(KEY)["value"].sort_index()


# ---------------------------------------------------------------------- gaussian_kl
def test_gaussian_kl_matches_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    shape = (3, 5, 11)
    mean_p, mean_q = (
        torch.randn(shape, generator=gen, dtype=torch.float64),
        torch.randn(shape, generator=gen, dtype=torch.float64),
    )
    logvar_p, logvar_q = (
        2 * torch.randn(shape, generator=gen, dtype=torch.float64),
        2 * torch.randn(shape, generator=gen, dtype=torch.float64),
    )
    p = torch.distributions.Normal(mean_p, torch.exp(0.5 * logvar_p))
    q = torch.distributions.Normal(mean_q, torch.exp(0.5 * logvar_q))
    expected = torch.distributions.kl_divergence(p, q)

    got = gaussian_kl(mean_p, logvar_p, mean_q, logvar_q)
    assert got.shape == (3, 5)
    torch.testing.assert_close(got, expected.sum(-1), rtol=1e-12, atol=1e-12)

    index = np.array([0, 4, 7])
    torch.testing.assert_close(
        gaussian_kl(mean_p, logvar_p, mean_q, logvar_q, columns=index),
        expected[..., index].sum(-1),
        rtol=1e-12,
        atol=1e-12,
    )
    mask = np.zeros(11, dtype=bool)
    mask[[1, 2, 10]] = True
    torch.testing.assert_close(
        gaussian_kl(mean_p, logvar_p, mean_q, logvar_q, columns=mask),
        expected[..., mask].sum(-1),
        rtol=1e-12,
        atol=1e-12,
    )


def test_gaussian_kl_numpy_in_numpy_out_and_matches_textbook_form():
    rng = np.random.default_rng(1)
    mean_p, mean_q, logvar_p, logvar_q = (rng.normal(size=(40, 6)) for _ in range(4))
    got = gaussian_kl(mean_p, logvar_p, mean_q, logvar_q)
    assert isinstance(got, np.ndarray) and got.shape == (40,)
    np.testing.assert_allclose(got, reference_kl(mean_p, logvar_p, mean_q, logvar_q).sum(axis=1), rtol=1e-12)
    assert (got > 0).all()


def test_gaussian_kl_of_a_distribution_with_itself_is_zero():
    gen = torch.Generator().manual_seed(2)
    mean, logvar = torch.randn(4, 9, generator=gen), 3 * torch.randn(4, 9, generator=gen)
    assert torch.equal(gaussian_kl(mean, logvar, mean, logvar), torch.zeros(4))
    # Nearly equal log-variances, where the literal formula cancels: still >= 0.
    assert (gaussian_kl(mean, logvar, mean, logvar + 1e-9) >= 0).all()


def test_gaussian_kl_rejects_a_mask_of_the_wrong_length():
    z = torch.zeros(2, 5)
    with pytest.raises(ValueError, match="length 4.*length 5"):
        gaussian_kl(z, z, z, z, columns=np.ones(4, dtype=bool))


# ---------------------------------------------------------------------- masks
def test_icub_masks_follow_spec_table(icub):
    desc = icub.description
    names = desc.column_names()
    specs = measure_specs(desc)
    assert all(isinstance(s, MeasureSpec) for s in specs)
    assert len(specs) == 4 * 5 + 1
    by_key = {(s.quantity, s.modality, s.scope): s for s in specs}
    for m in ("joints", "vision", "touch", "sound", "motor"):
        own = np.array([modality_of(c) == m for c in names])
        assert own.sum() == (2 if m in ("touch", "sound") else 8)
        # single modality error keeps exactly m at t and t-1
        for scope, compared in (("modality", own), ("all", np.ones(28, bool))):
            sme = by_key[("single_modality_error", m, scope)]
            np.testing.assert_array_equal(sme.muted, ~own)
            np.testing.assert_array_equal(sme.compared, compared)
            lop = by_key[("loss_of_precision", m, scope)]
            np.testing.assert_array_equal(lop.muted, own)
            np.testing.assert_array_equal(lop.compared, compared)
        kept = {step_of(c) for c, muted in zip(names, by_key[("single_modality_error", m, "all")].muted) if not muted}
        assert kept == {"t", "t-1"}
    baseline = by_key[("baseline", "", "")]
    assert baseline.muted.all() and baseline.compared.all()
    for s in specs:
        assert s.muted.dtype == bool and s.muted.shape == (28,) and s.compared.shape == (28,)


def test_custom_pair_masks_and_mapping_or_list_forms(icub):
    desc = icub.description
    names = desc.column_names()
    as_list = measure_specs(
        desc, [("joints_t-1_only", ["joints@t-1"], ["joints@t-1"]), ("nothing", [], ["vision", "touch@t"])]
    )
    as_mapping = measure_specs(
        desc, {"joints_t-1_only": (["joints@t-1"], ["joints@t-1"]), "nothing": ([], ["vision", "touch@t"])}
    )
    as_json = measure_specs(
        desc,
        {
            "joints_t-1_only": {"muted": ["joints@t-1"], "compared": ["joints@t-1"]},
            "nothing": {"compared": ["vision", "touch@t"], "muted": []},
        },
    )
    for specs in (as_list, as_mapping, as_json):
        custom = [s for s in specs if s.quantity == "custom"]
        assert [s.modality for s in custom] == ["joints_t-1_only", "nothing"]
        expected = np.array([c.startswith("joints_t-1_") for c in names])
        np.testing.assert_array_equal(custom[0].muted, expected)
        np.testing.assert_array_equal(custom[0].compared, expected)
        assert expected.sum() == 4
        assert not custom[1].muted.any()
        np.testing.assert_array_equal(
            custom[1].compared, np.array([modality_of(c) == "vision" or c == "touch_t_0" for c in names])
        )


def test_extra_pair_errors_name_the_problem(icub):
    desc = icub.description
    with pytest.raises(ValueError, match=r"'smell'.*joints.*vision.*touch.*sound.*motor"):
        measure_specs(desc, {"bad": (["smell"], ["joints"])})
    with pytest.raises(ValueError, match="extra pair 'bad'.*'smell'"):
        integration_measures(
            random_models(desc, 1, 0), icub.test[:5], extra_pairs={"bad": (["joints"], ["smell@t"])}, description=desc
        )
    with pytest.raises(ValueError, match="time step 't-2'"):
        measure_specs(desc, {"bad": (["joints@t-2"], ["joints"])})
    with pytest.raises(ValueError, match="compared selectors are empty"):
        measure_specs(desc, {"bad": (["joints"], [])})
    with pytest.raises(ValueError, match="used twice"):
        measure_specs(desc, [("a", ["joints"], ["joints"]), ("a", ["vision"], ["vision"])])
    with pytest.raises(ValueError, match=r"\(name, muted selectors, compared selectors\)"):
        measure_specs(desc, [("a", ["joints"])])
    with pytest.raises(ValueError, match="'a'.*'muted' and 'compared'.*'mute'"):
        measure_specs(desc, {"a": {"mute": ["joints"], "compared": ["joints"]}})


# ---------------------------------------------------------------------- the measures
def test_measures_equal_an_independent_per_model_computation(icub, rows):
    desc = icub.description
    model = random_models(desc, 3, seed=10)
    names = np.array(desc.column_names())
    t_minus_1_joints = np.array([c.startswith("joints_t-1_") for c in names])
    pairs = standard_pairs_from_names(desc) + [("custom", "joints_t-1_only", "", t_minus_1_joints, t_minus_1_joints)]
    got = integration_measures(
        model, rows, extra_pairs={"joints_t-1_only": (["joints@t-1"], ["joints@t-1"])}, description=desc
    )
    expected = reference_measures(model, desc, rows, pairs)
    assert list(got.columns) == KEY + ["value", "likelihood"]
    assert set(got.likelihood[got.quantity != "prediction_error"]) == {"gaussian"}
    assert len(got) == len(expected) == 3 * (1 + 4 * 5 + 1 + 1)
    pd.testing.assert_series_equal(as_series(got), as_series(expected), rtol=1e-9, atol=1e-12)
    # Sanity on the test itself: the compared quantities are not all negligible.
    assert got.loc[got.quantity != "prediction_error", "value"].max() > 0.1


def test_table_layout(icub, rows):
    desc = icub.description
    table = integration_measures(random_models(desc, 2, seed=5), rows[:20], description=desc)
    assert table["model"].dtype == np.int64 and table["value"].dtype == np.float64
    assert set(table.quantity) == {"prediction_error", "single_modality_error", "loss_of_precision", "baseline"}
    assert table.duplicated(KEY).sum() == 0
    for quantity in ("single_modality_error", "loss_of_precision"):
        part = table[table.quantity == quantity]
        assert set(part.modality) == set(desc.modality_names) and set(part.scope) == {"modality", "all"}
    for quantity in ("baseline", "prediction_error"):
        part = table[table.quantity == quantity]
        assert len(part) == 2 and (part.modality == "").all() and (part.scope == "").all()


def check_measure_properties(table, modalities):
    kl = table[table.quantity != "prediction_error"]
    assert np.isfinite(table.value).all()
    assert (kl.value >= 0).all(), kl[kl.value < 0]
    assert (table[table.quantity == "prediction_error"].value > 0).all()
    wide = table.pivot_table(index=["model", "quantity", "modality"], columns="scope", values="value")
    for quantity in ("single_modality_error", "loss_of_precision"):
        part = wide.loc[(slice(None), quantity), :]
        assert len(part) == table.model.nunique() * len(modalities)
        assert (part["modality"] <= part["all"] * (1 + 1e-12)).all(), part[part["modality"] > part["all"]]


@pytest.mark.parametrize("seed", [0, 7, 21])
def test_measures_are_nonnegative_and_ordered_for_random_models(icub, rows, seed):
    desc = icub.description
    table = integration_measures(random_models(desc, 2, seed=seed), rows, description=desc)
    check_measure_properties(table, desc.modality_names)
    assert table[table.quantity != "prediction_error"].value.max() > 1e-3


def test_measures_are_nonnegative_and_ordered_for_a_trained_model(icub, trained, rows):
    desc = icub.description
    table = integration_measures(trained, rows, description=desc)
    check_measure_properties(table, desc.modality_names)
    sampled = integration_measures(
        trained, rows, z_samples=3, generator=torch.Generator().manual_seed(0), description=desc
    )
    check_measure_properties(sampled, desc.modality_names)


def test_empty_muted_set_gives_zero_and_other_custom_pairs_do_not(icub, trained, rows):
    desc = icub.description
    pairs = {
        "itself": ([], ["joints", "vision", "touch", "sound", "motor"]),
        "past_joints": (["joints@t-1"], ["joints"]),
    }
    for z_samples in (0, 2):
        table = integration_measures(
            trained,
            rows,
            extra_pairs=pairs,
            z_samples=z_samples,
            generator=torch.Generator().manual_seed(1),
            description=desc,
        )
        custom = table[table.quantity == "custom"].set_index(["model", "modality"])["value"]
        assert (custom.xs("itself", level="modality") == 0).all()
        assert (custom.xs("past_joints", level="modality") > 0).all()


def test_prediction_error_equals_direct_numpy_computation(icub, trained, rows):
    desc = icub.description
    table = integration_measures(trained, rows, description=desc)
    with torch.no_grad():
        z, _ = trained.encode(torch.as_tensor(rows)[None].expand(3, -1, -1))
        mean, _ = trained.decode(z)
    x = np.asarray(rows)
    expected = [np.linalg.norm(x - mean[k].numpy(), axis=1).mean() for k in range(3)]
    got = table[table.quantity == "prediction_error"].sort_values("model").value.to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_ensemble_gives_the_same_numbers_as_each_model_alone(icub, trained, rows):
    desc = icub.description
    together = integration_measures(trained, rows, description=desc)
    alone = pd.concat(
        [integration_measures(trained.select([k]), rows, description=desc).assign(model=k) for k in range(3)]
    )
    pd.testing.assert_series_equal(as_series(together), as_series(alone), rtol=1e-10, atol=1e-14)
    # Different models give different numbers, so the comparison above is not vacuous.
    per_model = together[together.quantity == "baseline"].value.to_numpy()
    assert np.ptp(per_model) > 0


def test_batch_size_does_not_change_the_result(icub, trained, rows):
    desc = icub.description
    whole = integration_measures(trained, rows, description=desc)
    chunked = integration_measures(trained, rows, rows_per_pass=7, description=desc)
    pd.testing.assert_series_equal(as_series(whole), as_series(chunked), rtol=1e-10, atol=1e-14)
    gen = lambda: torch.Generator().manual_seed(4)  # noqa: E731
    sampled_whole = integration_measures(trained, rows, z_samples=2, generator=gen(), description=desc)
    sampled_chunked = integration_measures(
        trained, rows, z_samples=2, generator=gen(), rows_per_pass=13, description=desc
    )
    pd.testing.assert_series_equal(as_series(sampled_whole), as_series(sampled_chunked), rtol=1e-10, atol=1e-14)


def test_z_samples_are_reproducible_and_differ_from_the_mean_decoding(icub, trained, rows):
    desc = icub.description
    first = integration_measures(
        trained, rows, z_samples=4, generator=torch.Generator().manual_seed(3), description=desc
    )
    again = integration_measures(
        trained, rows, z_samples=4, generator=torch.Generator().manual_seed(3), description=desc
    )
    other = integration_measures(
        trained, rows, z_samples=4, generator=torch.Generator().manual_seed(4), description=desc
    )
    mean = integration_measures(trained, rows, description=desc)
    pd.testing.assert_frame_equal(first, again)
    kl = first.quantity != "prediction_error"
    assert (first[kl].value >= 0).all()
    assert not np.allclose(first[kl].value, other[kl].value)
    assert not np.allclose(first[kl].value, mean[kl].value)
    # Prediction error is documented to use the posterior mean in both modes.
    np.testing.assert_allclose(first[~kl].value, mean[~kl].value, rtol=1e-12)


def test_z_samples_equal_an_independent_computation_with_the_documented_noise(icub, trained, rows):
    desc = icub.description
    few = rows[:40]
    got = integration_measures(trained, few, z_samples=3, generator=torch.Generator().manual_seed(6), description=desc)
    noise = torch.randn(
        3, len(few), trained.latent_size, generator=torch.Generator().manual_seed(6), dtype=torch.float64
    )
    expected = reference_measures(trained, desc, few, standard_pairs_from_names(desc), noise=noise)
    pd.testing.assert_series_equal(as_series(got), as_series(expected), rtol=1e-9, atol=1e-12)


def test_z_samples_with_one_model_alone_match_the_ensemble(icub, trained, rows):
    desc = icub.description
    together = integration_measures(
        trained, rows[:50], z_samples=2, generator=torch.Generator().manual_seed(8), description=desc
    )
    alone = integration_measures(
        trained.select([2]), rows[:50], z_samples=2, generator=torch.Generator().manual_seed(8), description=desc
    )
    np.testing.assert_allclose(together[together.model == 2].value.to_numpy(), alone.value.to_numpy(), rtol=1e-10)


def test_float32_model_gives_float32_close_results(icub, trained, rows):
    desc = icub.description
    single = trained.select([0])
    as_float32 = MultimodalVAE(desc, single.architecture, 1, dtype=torch.float32)
    as_float32.load_state_dict({k: v.float() for k, v in single.state_dict().items()})
    got = integration_measures(as_float32, rows, description=desc)
    expected = integration_measures(single, rows, description=desc)
    np.testing.assert_allclose(got.value, expected.value, rtol=2e-3, atol=1e-6)


# ---------------------------------------------------------------------- description-generic
def test_a_user_description_gets_its_own_modalities():
    desc = small_description()
    assert desc.n_columns == 12 and desc.column_names() != desc.default_columns()
    rng = np.random.default_rng(0)
    rows = rng.uniform(0, 1, size=(60, 12))
    model = random_models(desc, 2, seed=3)
    table = integration_measures(model, rows, extra_pairs={"arm_now": (["arm@t"], ["arm@t"])}, description=desc)
    assert len(table) == 2 * (1 + 4 * 3 + 1 + 1)
    per_modality = table[table.quantity.isin(["single_modality_error", "loss_of_precision"])]
    assert sorted(set(per_modality.modality)) == ["arm", "bump", "camera"]
    assert set(table[table.quantity == "custom"].modality) == {"arm_now"}
    check_measure_properties(table, desc.modality_names)

    names = np.array(desc.column_names())
    arm_now = np.array([c.startswith("arm_t_") for c in names])
    pairs = standard_pairs_from_names(desc) + [("custom", "arm_now", "", arm_now, arm_now)]
    expected = reference_measures(model, desc, rows, pairs)
    pd.testing.assert_series_equal(as_series(table), as_series(expected), rtol=1e-9, atol=1e-12)

    masks = {(s.quantity, s.modality, s.scope): s for s in measure_specs(desc)}
    bump = names == np.array(
        ["bump_t_0" if c == "bump_t_0" else "bump_t-1_0" if c == "bump_t-1_0" else "" for c in names]
    )
    np.testing.assert_array_equal(masks[("loss_of_precision", "bump", "modality")].muted, bump)
    assert bump.sum() == 2 and masks[("single_modality_error", "camera", "all")].muted.sum() == 6


def test_the_muted_value_comes_from_the_description():
    """A model mutes with its description's value; a description with another muted value
    does not fit it (the check is the strict one every consumer of a model uses)."""
    desc = small_description()
    other = small_description(muted_value=5.0)
    rows = np.random.default_rng(1).uniform(0, 1, size=(30, 12))
    a = integration_measures(random_models(desc, 1, seed=4), rows)
    b = integration_measures(random_models(other, 1, seed=4), rows)
    baseline = lambda t: t[t.quantity == "baseline"].value.item()  # noqa: E731
    assert baseline(a) != pytest.approx(baseline(b))
    with pytest.raises(ModelError, match="muted value 5 where the model's is -1"):
        integration_measures(random_models(desc, 1, seed=4), rows, description=other)


# ---------------------------------------------------------------------- input errors
def test_rows_errors_are_clear(icub):
    desc = icub.description
    model = random_models(desc, 1, seed=0)
    good = icub.test[:10].copy()
    with pytest.raises(ValueError, match="n_columns = 28.*got 27 columns"):
        integration_measures(model, good[:, :27], description=desc)
    with pytest.raises(ValueError, match="shape"):
        integration_measures(model, good[0], description=desc)
    nan = good.copy()
    nan[3, 5] = np.nan
    with pytest.raises(ValueError, match="row 3, column 5.*nan.*finite"):
        integration_measures(model, nan, description=desc)
    with pytest.raises(ValueError, match="row 3, column 5"):
        latent_diagnostics(model, nan, description=desc)
    muted = good.copy()
    muted[2, 0] = desc.muted_value
    with pytest.raises(ValueError, match="muted value.*complete rows"):
        integration_measures(model, muted, description=desc)
    with pytest.raises(ValueError, match="no rows"):
        integration_measures(model, good[:0], description=desc)
    with pytest.raises(ValueError, match="z_samples"):
        integration_measures(model, good, z_samples=-1, description=desc)
    with pytest.raises(ValueError, match="rows_per_pass"):
        integration_measures(model, good, rows_per_pass=0, description=desc)
    with pytest.raises(ValueError, match="toy"):
        integration_measures(model, np.zeros((3, 12)), description=small_description())
    toy = small_description()
    reordered = small_description(columns=tuple(reversed(toy.column_names())))
    with pytest.raises(ValueError, match="another column order"):
        integration_measures(random_models(toy, 1, seed=0), np.zeros((3, 12)), description=reordered)


# ---------------------------------------------------------------------- evaluation rows
def test_evaluation_rows_modes():
    table = np.arange(50 * 3, dtype=float).reshape(50, 3)
    np.testing.assert_array_equal(evaluation_rows(table, n=10), table[:10])
    np.testing.assert_array_equal(evaluation_rows(table, "all"), table)
    picked = evaluation_rows(table, "random", n=20, seed=5)
    index = picked[:, 0].astype(int) // 3
    assert len(set(index)) == 20 and (np.diff(index) > 0).all()
    np.testing.assert_array_equal(picked, table[index])
    np.testing.assert_array_equal(picked, evaluation_rows(table, "random", n=20, seed=5))
    assert not np.array_equal(picked, evaluation_rows(table, "random", n=20, seed=6))
    as_tensor = evaluation_rows(torch.as_tensor(table), "random", n=20, seed=5)
    assert isinstance(as_tensor, torch.Tensor)
    np.testing.assert_array_equal(as_tensor.numpy(), picked)
    assert evaluation_rows(table, n=50).shape == (50, 3)


def test_evaluation_rows_errors():
    table = np.zeros((30, 4))
    for mode in ("first", "random"):
        with pytest.raises(ValueError, match="n=1024.*only 30 rows"):
            evaluation_rows(table, mode)
    with pytest.raises(ValueError, match=r"mode 'last'.*'first', 'random', 'all'"):
        evaluation_rows(table, "last")
    with pytest.raises(ValueError, match="n 0: expected a whole number >= 1"):
        evaluation_rows(table, n=0)


def test_icub_default_is_the_first_1024_test_rows(icub):
    rows = evaluation_rows(icub.test)
    assert rows.shape == (1024, 28)
    np.testing.assert_array_equal(rows, icub.test[:1024])


# ---------------------------------------------------------------------- posterior collapse
def test_latent_diagnostics_match_a_direct_computation(icub, trained, rows):
    desc = icub.description
    table = latent_diagnostics(trained, rows, description=desc)
    assert list(table.columns) == ["model", "latent_dim", "kl", "posterior_mean_variance", "active"]
    assert len(table) == 3 * trained.latent_size
    with torch.no_grad():
        mean, logvar = trained.encode(torch.as_tensor(rows)[None].expand(3, -1, -1))
    mean, var = mean.numpy(), np.exp(logvar.numpy())
    kl = (0.5 * (mean**2 + var - 1 - np.log(var))).mean(axis=1)  # [models, latent]
    table = table.sort_values(["model", "latent_dim"])
    np.testing.assert_allclose(table.kl.to_numpy(), kl.reshape(-1), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(table.posterior_mean_variance.to_numpy(), mean.var(axis=1).reshape(-1), rtol=1e-9)
    np.testing.assert_array_equal(table.active.to_numpy(), mean.var(axis=1).reshape(-1) > 0.01)
    # The latent loss of the training objective is the sum of the per-dimension terms.
    np.testing.assert_allclose(table.groupby("model").kl.sum().to_numpy(), kl.sum(axis=1), rtol=1e-9)


def test_a_collapsed_dimension_is_inactive_and_counted(icub, rows):
    desc = icub.description
    model = random_models(desc, 2, seed=2)
    latent = model.latent_size
    with torch.no_grad():
        # Model 1: dimensions 0..4 ignore the input and match the prior (mean 0, logvar ~ 0).
        for j in range(5):
            for column in (j, latent + j):
                model.weights["enc:latent"][1, :, column] = 0
                model.biases["enc:latent"][1, :, column] = 0
    table = latent_diagnostics(model, rows, description=desc)
    collapsed = table[(table.model == 1) & (table.latent_dim < 5)]
    assert (~collapsed.active).all() and (collapsed.posterior_mean_variance == 0).all()
    assert (collapsed.kl < 1e-6).all()
    counts = active_unit_counts(table).set_index("model")["active_units"].to_numpy()
    assert counts.shape == (2,)
    np.testing.assert_array_equal(counts, [int(table[table.model == m].active.sum()) for m in (0, 1)])
    assert counts[0] > 5 and counts[1] <= latent - 5
    assert counts[0] - counts[1] >= 1
    none_active = latent_diagnostics(model, rows, threshold=math.inf, description=desc)
    assert (active_unit_counts(none_active)["active_units"] == 0).all()
