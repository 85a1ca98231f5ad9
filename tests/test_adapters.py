"""The adapters against real MultiVae models (MVAE, MMVAE, MoPoE), trained for a few seconds
here on the simulator's data: what a careful hand-written wrapper computes, what check_model
says, what the traps of docs/own_model.md would have done, predict, rollout and the
diagnostics through the adapter. Skipped where MultiVae is not installed (the README's test
command installs it; tests/conftest.py says why torchvision is a stand-in here)."""

from __future__ import annotations

import copy
import itertools
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import intermodal as im
from intermodal.data.catalog import load_dataset
from intermodal.model.protocol import view_of

multivae = pytest.importorskip("multivae", reason="MultiVae is not installed (pip install --no-deps multivae pythae)")

from multivae.data import MultimodalBaseDataset  # noqa: E402
from multivae.data.datasets.base import DatasetOutput  # noqa: E402
from multivae.models import MMVAE, MVAE, MMVAEConfig, MoPoE, MoPoEConfig, MVAEConfig  # noqa: E402
from pythae.models.base.base_utils import ModelOutput  # noqa: E402
from pythae.models.nn.base_architectures import BaseDecoder, BaseEncoder  # noqa: E402

LATENT, HIDDEN = 6, 32
SIM = {"distractors": ["noise", "copy-vision"], "n_train": 1000, "n_test": 300}
EPOCHS = {"MVAE": 60, "MMVAE": 30, "MoPoE": 60}


class Encoder(BaseEncoder):
    def __init__(self, d_in: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(d_in, HIDDEN), nn.ReLU())
        self.mu, self.logvar = nn.Linear(HIDDEN, LATENT), nn.Linear(HIDDEN, LATENT)

    def forward(self, x):
        h = self.body(x)
        return ModelOutput(embedding=self.mu(h), log_covariance=self.logvar(h))


class Decoder(BaseDecoder):
    def __init__(self, d_out: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(LATENT, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, d_out))

    def forward(self, z):
        return ModelOutput(reconstruction=self.net(z))


@pytest.fixture(scope="module")
def sim():
    return load_dataset("sim", sim=SIM)


def _inputs(dataset, rows):
    d = dataset.description
    return {m: torch.as_tensor(rows[:, d.columns_of(m)], dtype=torch.float32) for m in d.modality_names}


def _build(kind: str, dataset, seed: int = 0, scale: float = 0.25):
    torch.manual_seed(seed)
    d = dataset.description
    dims = {m: len(d.columns_of(m)) for m in d.modality_names}
    common = dict(
        n_modalities=len(dims),
        latent_dim=LATENT,
        input_dims={m: (n,) for m, n in dims.items()},
        decoders_dist={m: "normal" for m in dims},
        decoder_dist_params={m: {"scale": scale} for m in dims},
    )
    encoders, decoders = {m: Encoder(n) for m, n in dims.items()}, {m: Decoder(n) for m, n in dims.items()}
    if kind == "MVAE":
        return MVAE(MVAEConfig(**common, warmup=0), encoders, decoders)
    if kind == "MMVAE":
        return MMVAE(MMVAEConfig(**common, K=4), encoders, decoders)  # its default Laplace posterior
    return MoPoE(MoPoEConfig(**common), encoders, decoders)


def _train(model, dataset, epochs: int):
    data = _inputs(dataset, dataset.train)
    n = dataset.train.shape[0]
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for epoch in range(1, epochs + 1):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, 250):
            index = order[start : start + 250]
            loss = model(MultimodalBaseDataset(data={m: v[index] for m, v in data.items()}), epoch=epoch).loss
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return model


@pytest.fixture(scope="module")
def trained(sim):
    return {kind: _train(_build(kind, sim), sim, epochs) for kind, epochs in EPOCHS.items()}


@pytest.fixture(scope="module")
def rows(sim):
    return sim.test[:64]


# ---------------------------------------------------------------------- what it reads
@pytest.mark.parametrize("kind", list(EPOCHS))
def test_the_adapter_passes_check_model(trained, sim, rows, kind):
    model = im.adapters.multivae(trained[kind], sim.description)
    result = im.check_model(model, rows)
    assert result.ok, str(result)
    assert model.hideable == "modalities" and model.n_models == 1
    assert all(lik.label == "gaussian(scale=0.25)" for lik in model.likelihoods.values())
    text = str(result)
    assert "PASS  no leak from hidden columns" in text and "refused" in text


def test_check_model_finds_a_leaking_wrapper(trained, sim, rows):
    """The first trap of a hand-written wrapper, a model that is never told what is hidden:
    check_model fails it and names the leak."""
    adapted = view_of(im.adapters.multivae(trained["MVAE"], sim.description))

    class Leaky:  # an OutputModel that ignores the mask
        description, n_models, likelihoods = sim.description, 1, adapted.layout.likelihoods

        def outputs(self, rows, muted):
            return adapted.outputs(rows, torch.zeros_like(muted))

        def parameters(self):
            return adapted.model.parameters()

    result = im.check_model(Leaky(), rows)
    assert not result.ok
    assert "FAIL  no leak from hidden columns" in str(result)


# ---------------------------------------------------------------------- the numbers
def _mvae_by_hand(model, dataset, rows, subset, scale):
    """The output means for the rows given ``subset``, from MultiVae's own calls."""
    inputs = DatasetOutput(data=_inputs(dataset, rows))
    with torch.no_grad():
        if subset:
            mu, _ = model.compute_mu_log_var_subset(inputs, list(subset))
        else:
            mu = torch.zeros(rows.shape[0], LATENT)
        return {m: model.decoders[m](mu).reconstruction.double().numpy() for m in dataset.description.modality_names}


def test_mvae_measures_equal_a_careful_hand_written_wrapper(trained, sim, rows):
    """Every measure from the posterior mean: the closed-form KL between Gaussians of the
    fixed scale σ, ‖μ_p − μ_q‖²/(2σ²), with μ from MultiVae's compute_mu_log_var_subset."""
    d, model = sim.description, trained["MVAE"]
    table = im.integration_measures(im.adapters.multivae(model, d), rows, z_samples=0)
    names = d.modality_names
    full = _mvae_by_hand(model, sim, rows, names, 0.25)

    def kl(subset, compared):
        part = _mvae_by_hand(model, sim, rows, subset, 0.25)
        return np.mean(sum(((full[m] - part[m]) ** 2).sum(1) for m in compared) / (2 * 0.25**2))

    got = table.set_index(["quantity", "modality", "scope"]).value
    for m in names:
        others = [n for n in names if n != m]
        np.testing.assert_allclose(got["single_modality_error", m, "modality"], kl([m], [m]), rtol=1e-4)
        np.testing.assert_allclose(got["single_modality_error", m, "all"], kl([m], names), rtol=1e-4)
        np.testing.assert_allclose(got["loss_of_precision", m, "all"], kl(others, names), rtol=1e-4)
    np.testing.assert_allclose(got["baseline", "", ""], kl([], names), rtol=1e-4)


def test_a_fixed_output_scale_divides_every_measure_by_its_square(trained, sim, rows):
    d = sim.description
    wide = copy.deepcopy(trained["MVAE"])
    for m in d.modality_names:
        wide.model_config.decoder_dist_params[m]["scale"] = 0.5
    narrow = im.integration_measures(im.adapters.multivae(trained["MVAE"], d), rows, z_samples=0)
    broad = im.integration_measures(im.adapters.multivae(wide, d), rows, z_samples=0)
    kl = narrow.quantity != "prediction_error"
    np.testing.assert_allclose(broad.value[kl], narrow.value[kl] * (0.25 / 0.5) ** 2, rtol=1e-5)
    assert set(broad.likelihood[kl]) == {"gaussian(scale=0.5)"}


def test_mopoes_posterior_is_the_mixture_over_the_given_subsets(trained, sim, rows):
    """The trap: MoPoE's encode(return_mean=True) gives a subset's own product for a subset,
    not the mixture over that subset's subsets. The adapter's mean is the mixture's, checked
    against MultiVae's inference() (every subset's product)."""
    d, model = sim.description, trained["MoPoE"]
    adapted = im.adapters.multivae(model, d)
    with torch.no_grad():
        lat = model.inference(DatasetOutput(data=_inputs(sim, rows)))
    given = ("joints", "vision")
    keys = ["_".join(sorted(s)) for r in (1, 2) for s in itertools.combinations(given, r)]
    expected = torch.stack([lat["subsets"][k][0] for k in keys]).mean(0)
    muted = torch.as_tensor(~d.mask(list(given)), dtype=torch.bool).expand(rows.shape[0], -1)
    with torch.no_grad():
        got = adapted.posterior(torch.as_tensor(rows, dtype=torch.float32), muted).mean()[0]
        subset_product = model.encode(DatasetOutput(data=_inputs(sim, rows)), cond_mod=list(given), return_mean=True).z
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(got.numpy(), subset_product.numpy(), atol=1e-3)  # what encode would have given


def test_mmvaes_mean_is_its_mixtures(trained, sim, rows):
    d, model = sim.description, trained["MMVAE"]
    adapted = im.adapters.multivae(model, d)
    given = ["vision", "touch"]
    muted = torch.as_tensor(~d.mask(given), dtype=torch.bool).expand(rows.shape[0], -1)
    with torch.no_grad():
        got = adapted.posterior(torch.as_tensor(rows, dtype=torch.float32), muted).mean()[0]
        expected = model.encode(DatasetOutput(data=_inputs(sim, rows)), cond_mod=given, return_mean=True).z
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_several_models_side_by_side_give_each_its_own_numbers(sim, rows):
    models = [_train(_build("MVAE", sim, seed=s), sim, 5) for s in (1, 2)]
    both = im.integration_measures(im.adapters.multivae(models, sim.description), rows, z_samples=0)
    for k, model in enumerate(models):
        alone = im.integration_measures(im.adapters.multivae(model, sim.description), rows, z_samples=0)
        np.testing.assert_allclose(both[both.model == k].value.to_numpy(), alone.value.to_numpy(), rtol=1e-6)


# ---------------------------------------------------------------------- what it refuses
def test_a_part_of_a_modality_is_refused_before_the_model_is_called(trained, sim, rows):
    adapted = im.adapters.multivae(trained["MVAE"], sim.description)
    with pytest.raises(im.IntermodalError, match="hides whole modalities only.*'vision'"):
        im.predict(adapted, rows, given="vision@t-1")
    with pytest.raises(im.IntermodalError, match="whole modalities only"):
        im.integration_measures(adapted, rows, extra_pairs={"past": (["joints@t-1"], ["joints"])})
    with pytest.raises(im.IntermodalError, match="rollout: every step after the first"):
        im.rollout(adapted, rows[:4], 3, given="vision")  # each later step gives only t-1


def test_a_model_of_another_kind_or_modalities_is_refused(trained, sim):
    with pytest.raises(im.IntermodalError, match="modalities"):
        im.adapters.multivae(trained["MVAE"], load_dataset("sim").description)  # no distractors
    with pytest.raises(im.IntermodalError, match="one kind"):
        im.adapters.multivae([trained["MVAE"], trained["MoPoE"]], sim.description)


# ---------------------------------------------------------------------- everything else
@pytest.mark.parametrize("kind", list(EPOCHS))
def test_predict_and_the_diagnostics_work_through_the_adapter(trained, sim, rows, kind):
    model = trained[kind]
    mode = model.training
    adapted = im.adapters.multivae(model, sim.description)
    prediction = im.predict(adapted, rows, given="vision")
    assert prediction.mean.shape == (1, rows.shape[0], sim.description.n_columns)
    np.testing.assert_allclose(prediction.std, 0.25, rtol=1e-6)  # the fixed scale
    sampled = im.predict(adapted, rows, given=["vision", "touch"], seed=3)
    again = im.predict(adapted, rows, given=["vision", "touch"], seed=3)
    np.testing.assert_array_equal(sampled.mean, again.mean)
    assert not np.allclose(sampled.mean, prediction.mean)
    diagnostics = im.latent_diagnostics(adapted, rows)
    assert len(diagnostics) == LATENT and (diagnostics.kl >= 0).all()
    assert model.training == mode  # the adapter leaves the model's mode as it found it


@pytest.mark.parametrize("kind", list(EPOCHS))
def test_the_simulators_ground_truth_holds_for_adapted_models(trained, sim, kind):
    """What the simulator makes certain, as intermodal's fusions are held to it
    (tests/test_ground_truth.py), with the mixtures' predictive divergence: the noise alone
    tells nothing (its single modality error regarding all is at least half the baseline);
    muting vision leaves the output over the noise as it was; the exact copy of vision is
    redundant (muting it while vision is given moves its own output far less than muting
    everything does). At a few seconds of training vision does not yet predict the rest."""
    pairs = {
        "noise_when_vision_muted": (["vision"], ["noise"]),
        "copy_from_nothing": (["*"], ["copy-vision"]),
    }
    table = im.integration_measures(
        im.adapters.multivae(trained[kind], sim.description),
        sim.test[:128],
        generator=torch.Generator().manual_seed(0),
        extra_pairs=pairs,
    )
    values = table.set_index(["quantity", "modality", "scope"]).value
    baseline = values["baseline", "", ""]
    assert values["single_modality_error", "noise", "all"] > 0.5 * baseline
    assert values["custom", "noise_when_vision_muted", ""] < 0.02 * baseline
    assert values["loss_of_precision", "copy-vision", "modality"] < 0.1 * values["custom", "copy_from_nothing", ""]


@pytest.mark.parametrize("kind", list(EPOCHS))
def test_adapted_models_have_shares_that_add_up_to_their_baseline(trained, sim, kind):
    """The lattice measures reach an adapted MultiVae model as they reach intermodal's
    fusions: the shares regarding all add up to the baseline the measures give with the same
    noise, each target's to its own baseline; and for MVAE the noise, which tells nothing
    about vision, informs vision far less than vision and its copy do (the mixtures' shares,
    from a predictive estimate on 64 rows after seconds of training, are too noisy for it)."""
    model = im.adapters.multivae(trained[kind], sim.description)
    rows = sim.test[:64]
    table = im.modality_shares(model, rows, generator=torch.Generator().manual_seed(0), measures=True)
    values = table.set_index(["quantity", "modality", "scope"])["value"]
    shares = table[table["quantity"] == "share"]
    assert shares[shares["scope"] == "all"]["value"].sum() == pytest.approx(values["baseline", "", ""], rel=1e-9)
    lattice = im.lattice_values(model, rows, generator=torch.Generator().manual_seed(0))
    for target, total in shares.groupby("scope")["value"].sum().items():
        if target != "all":
            assert total == pytest.approx(lattice.set_index(["modality", "scope"])["value"]["", target], rel=1e-9)
    if kind == "MVAE":  # a product of experts, decoded from its mean: no Monte Carlo noise in the shares
        informs_vision = shares[shares["scope"] == "vision"].set_index("modality")["value"]
        assert abs(informs_vision["noise"]) < 0.1 * (informs_vision["vision"] + informs_vision["copy-vision"])


def test_the_own_model_pages_multivae_example_runs(capsys):
    """docs/own_model.md's worked example, executed as a user would paste it."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "own_model.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", page, re.S) if "im.adapters.multivae(" in b)
    namespace: dict = {}
    exec(compile(block, "docs/own_model.md", "exec"), namespace)
    assert "every check passed" in capsys.readouterr().out
    table = namespace["table"]
    assert set(table.likelihood[table.quantity != "prediction_error"]) == {"gaussian(scale=0.25)"}
    assert namespace["vision_only"].mean.shape == (1, 256, namespace["description"].n_columns)
