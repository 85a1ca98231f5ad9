"""The fusions beside Zambelli's: the experts, the product of experts against its closed
form, the mixture's density and its sampled latent loss against a numerically integrated
KL, the measures of a model of one's own with known Gaussian conditionals against the
closed-form KL divergences, the measures' invariants for every fusion, a model training
alone as in its group, and a run of every fusion checkpointed and resumed exactly."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import integrate, stats

import intermodal as im
from intermodal.data.description import DatasetDescription, Modality
from intermodal.evaluation.measures import measure_specs
from intermodal.model.architecture import Architecture, architecture_preset
from intermodal.model.fusions.experts import experts_of
from intermodal.model.fusions.moe import mixture_log_density
from intermodal.model.group import FUSIONS, build_model
from intermodal.model.posterior import MIXTURE_Z_SAMPLES

torch.set_default_dtype(torch.float32)


def random_model(description, fusion: str, n_models: int = 2, seed: int = 0, dtype=torch.float64):
    model = build_model(description, architecture_preset("1", description), fusion, n_models, dtype=dtype)
    model.reset_parameters(list(range(seed, seed + n_models)))
    with torch.no_grad():  # larger weights and biases off zero: outputs that depend on the input
        gen = torch.Generator().manual_seed(seed)
        for weight in model.weights.values():
            weight.mul_(3.0)
        for bias in model.biases.values():
            bias.copy_(0.3 * torch.randn(bias.shape, generator=gen, dtype=torch.float64))
    return model


def rows_of(description, n: int, seed: int = 0) -> np.ndarray:
    return np.tanh(np.random.default_rng(seed).normal(size=(n, description.n_columns)))


# ---------------------------------------------------------------------- experts
def test_experts_are_the_parts_the_patterns_and_modalities_mute(tiny_description, icub):
    # tiny: a pattern mutes every modality at t, so each modality splits into its two steps
    assert [e.name for e in experts_of(tiny_description)] == [
        "arm@t",
        "arm@t-1",
        "bump@t",
        "bump@t-1",
        "eye@t",
        "eye@t-1",
    ]
    names = tiny_description.column_names()
    assert [names[c] for c in experts_of(tiny_description)[0].columns] == ["arm_t_0", "arm_t_1"]
    assert len(experts_of(icub.description)) == 10
    # patterns that never split the steps: one expert per modality
    whole = tiny_description.replace(muting_patterns={"complete": (), "eye-only": ("arm", "bump")})
    assert [e.name for e in experts_of(whole)] == ["arm", "bump", "eye"]


def test_an_experts_encoder_has_its_share_of_the_modalitys_widths(icub):
    model = build_model(icub.description, architecture_preset("1", icub.description), "poe", 1)
    shapes = {name: (n_in, n_out) for name, n_in, n_out in model.layer_shapes}
    # joints 8 -> 40 -> 20 in Zambelli's encoder; joints at t (4 columns): 4 -> 20 -> 10 -> latent
    assert shapes["enc:joints@t:0"] == (4, 20) and shapes["enc:joints@t:1"] == (20, 10)
    assert shapes["enc:joints@t:latent"] == (10, 2 * 28)
    assert shapes["enc:motor@t-1:1"] == (20, 5)  # motor's encoder ends at 10: half of it
    # the decoder is Zambelli's
    assert shapes["dec:shared:0"] == (28, 100) and shapes["dec:joints:head"] == (8, 16)


# ---------------------------------------------------------------------- product of experts
def _experts(model, rows):
    x_ff = torch.as_tensor(rows.T)[None].expand(model.n_models, -1, -1).contiguous()
    with torch.no_grad():
        mean, var = model._experts_ff(x_ff)  # [models, experts, latent, n]
    return mean.numpy(), var.numpy()


def _decode_mean(model, z):
    """The output mean for latents z [models, n, latent]."""
    with torch.no_grad():
        return model.decode(torch.as_tensor(z))[0].numpy()


def test_the_product_of_experts_is_the_closed_form_product(tiny_description):
    model = random_model(tiny_description, "poe")
    rows = rows_of(tiny_description, 7)
    mean, var = _experts(model, rows)
    experts = experts_of(tiny_description)

    def product(keep):
        precision = 1.0 + sum(1.0 / var[:, e] for e in keep)  # the prior expert: precision 1, mean 0
        return sum(mean[:, e] / var[:, e] for e in keep) / precision, 1.0 / precision  # [models, latent, n]

    everything = np.zeros_like(rows, dtype=bool)
    out_mean, _ = model.output_gaussian(torch.as_tensor(rows), torch.as_tensor(everything))
    mu, _ = product(range(len(experts)))
    np.testing.assert_allclose(
        out_mean.detach().numpy(), _decode_mean(model, mu.transpose(0, 2, 1)), rtol=1e-10, atol=1e-12
    )
    # leaving an expert out is fusing without it
    for e, expert in enumerate(experts):
        muted = everything.copy()
        muted[:, list(expert.columns)] = True
        out_mean, _ = model.output_gaussian(torch.as_tensor(rows), torch.as_tensor(muted))
        mu, _ = product([k for k in range(len(experts)) if k != e])
        np.testing.assert_allclose(out_mean.detach().numpy(), _decode_mean(model, mu.transpose(0, 2, 1)), rtol=1e-10)
    # with every expert muted only the prior is left: z = 0, and its samples are N(0, I)
    out_mean, _ = model.output_gaussian(torch.as_tensor(rows), torch.ones(rows.shape, dtype=torch.bool))
    np.testing.assert_allclose(
        out_mean.detach().numpy(), _decode_mean(model, np.zeros((2, 7, model.latent_size))), rtol=1e-12
    )
    noise = model.latent_noise(7, 3, torch.Generator().manual_seed(1))
    sampled, _ = model.output_gaussian(torch.as_tensor(rows), torch.ones(rows.shape, dtype=torch.bool), noise)
    for s in range(3):
        z = noise[s, :, : model.latent_size].numpy()[None].repeat(2, 0)  # ε, then the two picks
        np.testing.assert_allclose(sampled[:, s].detach().numpy(), _decode_mean(model, z), rtol=1e-10)


def test_a_hidden_part_of_an_expert_is_refused(tiny_description):
    model = random_model(tiny_description, "poe")
    rows = rows_of(tiny_description, 3)
    muted = np.zeros(rows.shape, dtype=bool)
    muted[:, tiny_description.column_names().index("arm_t_0")] = True  # arm@t has two columns
    with pytest.raises(im.IntermodalError, match="part of the expert 'arm@t'"):
        model.output_gaussian(torch.as_tensor(rows), torch.as_tensor(muted))


# ---------------------------------------------------------------------- mixture of experts
def test_the_mixtures_density_is_the_mean_of_the_experts_densities():
    rng = np.random.default_rng(3)
    mean, var = rng.normal(size=(4, 3)), rng.uniform(0.2, 2.0, size=(4, 3))  # 4 components, 3 latent dims
    present = np.array([True, False, True, True])
    z = rng.normal(size=3)
    got = mixture_log_density(
        torch.as_tensor(z)[None, :, None],
        torch.as_tensor(mean)[None, :, :, None],
        torch.as_tensor(var)[None, :, :, None],
        torch.as_tensor(present)[None, :, None],
    )
    densities = [np.prod(stats.norm.pdf(z, mean[c], np.sqrt(var[c]))) for c in range(4) if present[c]]
    assert float(got) == pytest.approx(math.log(np.mean(densities)), rel=1e-10)


def _two_experts_one_latent():
    """Two modalities of one column at one step, a one-dimensional latent, experts that are
    linear maps: with inputs 0 each expert's Gaussian is its head's biases."""
    description = DatasetDescription(
        name="two", modalities=(Modality("a", 1), Modality("b", 1)), time_steps=("t",), muting_patterns={"all": ()}
    )
    arch = Architecture(
        encoders={"a": [], "b": []},
        shared_encoder=[4],
        shared_decoder=[4],
        slices={"a": 2, "b": 2},
        decoders={"a": [], "b": []},
        latent=1,
    )
    return description, arch


def test_the_sampled_latent_loss_converges_to_the_integrated_kl():
    description, arch = _two_experts_one_latent()
    model = build_model(description, arch, "moe", 1, dtype=torch.float64)
    model.reset_parameters([0])
    components = {"enc:a:latent": (1.5, math.log(0.3)), "enc:b:latent": (-1.0, math.log(0.5))}
    with torch.no_grad():
        for name, (mu, raw) in components.items():
            model.weights[name].zero_()
            model.biases[name].copy_(torch.tensor([[[mu, raw]]]))
    n = 400_000
    x = torch.zeros(1, 2, n, dtype=torch.float64)
    noise = model.training_noise(torch.Generator().manual_seed(0), n, torch.float64).T[None]
    with torch.no_grad():
        _, latent = model.training_losses(x, x, noise)
    estimate, error = float(latent.mean()), float(latent.std() / math.sqrt(n))
    var = {k: math.exp(raw) + 1e-4 for k, (_, raw) in components.items()}
    q = lambda z: 0.5 * sum(stats.norm.pdf(z, mu, math.sqrt(var[k])) for k, (mu, _) in components.items())  # noqa: E731
    kl, _ = integrate.quad(lambda z: q(z) * (math.log(q(z)) - stats.norm.logpdf(z)), -12, 12, limit=200)
    assert abs(estimate - kl) < 4 * error and error < 0.01 * kl, (estimate, kl, error)


# ---------------------------------------------------------------------- a model of one's own
class LinearGaussian:
    """A model of one's own, known in closed form: the columns are jointly Gaussian, and the
    output for a row with some columns hidden is each column's Gaussian given the visible
    ones (plus a small observation variance). It answers the protocol and nothing more."""

    def __init__(self, description, n_models: int = 2, seed: int = 0, noise: float = 0.05):
        rng = np.random.default_rng(seed)
        d = description.n_columns
        self.description, self.n_models, self.noise = description, n_models, noise
        self.mean = rng.normal(scale=0.3, size=(n_models, d))
        a = rng.normal(size=(n_models, d, d))
        self.cov = a @ a.transpose(0, 2, 1) / d + 0.1 * np.eye(d)

    def conditional(self, k: int, row: np.ndarray, visible: np.ndarray):
        mu, cov = self.mean[k], self.cov[k]
        v = np.flatnonzero(visible)
        if len(v) == 0:
            return mu.copy(), np.diag(cov) + self.noise
        gain = cov[:, v] @ np.linalg.inv(cov[np.ix_(v, v)])
        return mu + gain @ (row[v] - mu[v]), np.diag(cov - gain @ cov[v, :]) + self.noise

    def output_gaussian(self, rows, muted):
        rows, muted = np.asarray(rows, dtype=np.float64), np.asarray(muted, dtype=bool)
        means = np.empty((self.n_models, *rows.shape))
        variances = np.empty_like(means)
        for k in range(self.n_models):
            for r in range(len(rows)):
                means[k, r], variances[k, r] = self.conditional(k, rows[r], ~muted[r])
        return torch.as_tensor(means), torch.as_tensor(variances)


def _kl(mean_p, var_p, mean_q, var_q):
    return 0.5 * (np.log(var_q / var_p) + (var_p + (mean_p - mean_q) ** 2) / var_q - 1.0)


def test_the_measures_of_a_model_of_ones_own_are_the_closed_form_divergences(tiny_description):
    model = LinearGaussian(tiny_description)
    rows = rows_of(tiny_description, 25, seed=4)
    pairs = {"arm-now": {"muted": ["arm@t"], "compared": ["arm@t", "eye@t-1"]}}
    table = im.integration_measures(model, rows, extra_pairs=pairs)
    everything = np.ones(tiny_description.n_columns, dtype=bool)
    for spec in measure_specs(tiny_description, pairs):
        for k in range(model.n_models):
            total = 0.0
            for row in rows:
                mp, vp = model.conditional(k, row, everything)
                mq, vq = model.conditional(k, row, ~spec.muted)
                total += _kl(mp, vp, mq, vq)[spec.compared].sum()
            got = table[
                (table.model == k)
                & (table.quantity == spec.quantity)
                & (table.modality == spec.modality)
                & (table.scope == spec.scope)
            ].value.item()
            assert got == pytest.approx(total / len(rows), rel=1e-10, abs=1e-13), spec[:3]
    # and the prediction error: the distance to the complete input's mean
    error = np.mean([np.linalg.norm(row - model.conditional(0, row, everything)[0]) for row in rows])
    assert table[(table.model == 0) & (table.quantity == "prediction_error")].value.item() == pytest.approx(error)


def test_a_model_of_ones_own_is_refused_for_what_it_cannot_do(tiny_description):
    model = LinearGaussian(tiny_description)
    with pytest.raises(im.IntermodalError, match="z_samples 4: this model"):
        im.integration_measures(model, rows_of(tiny_description, 5), z_samples=4)
    with pytest.raises(im.IntermodalError, match="lacks n_models, output_gaussian"):
        im.integration_measures(object.__new__(type("Half", (), {"description": tiny_description})), np.zeros((2, 12)))
    assert isinstance(model, im.OutputGaussianModel)


# ---------------------------------------------------------------------- every fusion
@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("z_samples", [0, None])
def test_the_measures_keep_their_properties_for_every_fusion(tiny_description, fusion, z_samples):
    model = random_model(tiny_description, fusion, dtype=torch.float32)
    rows = rows_of(tiny_description, 40, seed=2)
    pairs = {"nothing": {"muted": [], "compared": ["*"]}}
    table = im.integration_measures(
        model,
        rows,
        z_samples=z_samples,
        generator=torch.Generator().manual_seed(0),
        extra_pairs=pairs,
        standard_error=True,
    )
    kl = table[table.quantity != "prediction_error"]
    assert (kl.value >= 0).all()
    assert (table[table.quantity == "custom"].value == 0).all()  # compared with itself: exactly 0
    measures = kl[kl.scope.isin(["modality", "all"])]
    assert measures.value.max() > 1e-3  # a test of something
    wide = measures.pivot_table(index=["model", "quantity", "modality"], columns="scope", values="value")
    error = measures.pivot_table(index=["model", "quantity", "modality"], columns="scope", values="standard_error")
    predictive = z_samples is None and fusion in ("moe", "mopoe")
    assert (error.to_numpy() > 0).any() == predictive  # only the predictive estimate has an error
    # A marginal divergence is at most the joint one: exactly for the closed forms; for the
    # predictive estimate, within its Monte Carlo error.
    slack = 4 * (error["modality"] + error["all"])
    assert (wide["modality"] <= wide["all"] * (1 + 1e-6) + 1e-9 + slack).all()
    # a mixture decodes from samples by default
    if z_samples is None and fusion in ("moe", "mopoe"):
        assert model.default_z_samples == MIXTURE_Z_SAMPLES


def _grid_noise(model, picks: int, repicks: int) -> torch.Tensor:
    """Noise for ``picks × repicks`` copies of one row (one sample each): ε = 0, so that a
    sample is its component's mean, and the two picking numbers at the centres of a
    ``picks × repicks`` grid, so that frequencies are exact counts."""
    pick = (torch.arange(picks, dtype=torch.float64) + 0.5) / picks
    repick = (torch.arange(repicks, dtype=torch.float64) + 0.5) / repicks
    pick, repick = torch.meshgrid(pick, repick, indexing="ij")
    noise = torch.zeros(1, picks * repicks, model.latent_size + 2, dtype=torch.float64)
    noise[0, :, -2], noise[0, :, -1] = pick.flatten(), repick.flatten()
    return noise


@pytest.mark.parametrize("fusion", ["moe", "mopoe"])
def test_a_mixtures_samples_are_coupled_to_the_complete_rows(tiny_description, fusion):
    """Muting an expert that the complete row's sample did not use leaves that sample's z
    (and so its output) unchanged; a muted input still draws its own components uniformly."""
    model = random_model(tiny_description, fusion, n_models=1)
    n_experts = len(experts_of(tiny_description))
    last = experts_of(tiny_description)[-1]
    k = n_experts - 1  # the muted input's experts
    # moe: the pick is one of E experts, the repick one of K; mopoe: one of 2^E - 1 subsets, of 2^K - 1
    picks, repicks = (n_experts, k) if fusion == "moe" else (2**n_experts - 1, 2**k - 1)
    noise = _grid_noise(model, picks, repicks)
    rows = np.repeat(rows_of(tiny_description, 1, seed=3), noise.shape[1], axis=0)
    complete = np.zeros(rows.shape, dtype=bool)
    muted = complete.copy()
    muted[:, list(last.columns)] = True
    with torch.no_grad():
        full = model.output_gaussian(rows, torch.as_tensor(complete), noise)[0][0, 0].numpy()  # [rows, columns]
        part = model.output_gaussian(rows, torch.as_tensor(muted), noise)[0][0, 0].numpy()
    pick = noise[0, :, -2].numpy()
    if fusion == "moe":  # the complete row's component: expert floor(pick · E)
        untouched = np.floor(pick * n_experts) < n_experts - 1
    else:  # its subset number 1 + floor(pick · (2^E − 1)) leaves the last expert's bit clear
        untouched = ((1 + np.floor(pick * picks).astype(int)) >> (n_experts - 1)) & 1 == 0
    assert untouched.any() and (~untouched).any()
    np.testing.assert_array_equal(part[untouched], full[untouched])
    assert not np.allclose(part[~untouched], full[~untouched])
    # The muted input's own components (moe) or subsets (mopoe), each equally often: the
    # coupling leaves its samples exact samples of its own posterior.
    outcomes, counts = np.unique(np.round(part, 9), axis=0, return_counts=True)
    assert len(outcomes) == (k if fusion == "moe" else 2**k - 1)
    assert (counts == counts[0]).all(), counts


@pytest.mark.parametrize("fusion", ["poe", "moe", "mopoe"])
def test_a_model_trains_alone_as_it_does_in_its_group(tiny, fusion):
    def history(seeds):
        config = im.RunConfig(fusions=[fusion], seeds=seeds, epochs=3, lr=1e-3, batch_size=200, dtype="float64")
        return im.train(config, tiny).history

    group, alone = history([0, 1]), history([1])
    columns = ["reconstruction_loss", "latent_loss", "loss"]
    np.testing.assert_allclose(group[group.seed == 1][columns].to_numpy(), alone[columns].to_numpy(), rtol=1e-10)
    assert not np.allclose(group[group.seed == 0][columns].to_numpy(), alone[columns].to_numpy())


def test_a_run_of_every_fusion_is_checkpointed_and_resumed_exactly(tmp_path, tiny):
    from intermodal.training.resume import resume

    config = im.RunConfig(
        fusions=list(FUSIONS),
        seeds=[0],
        epochs=6,
        lr=1e-3,
        batch_size=200,
        dtype="float64",
        eval_every=3,
        checkpoint_every=2,
        z_samples=2,
    )
    whole = im.train(config, tiny, out=tmp_path / "whole", evaluate=True)
    assert list(whole.models.fusion) == list(FUSIONS)

    class Stop(Exception):
        pass

    from intermodal.evaluation.evaluator import make_evaluator

    evaluate = make_evaluator(config, tiny)

    def stop_at_5(model, epoch):
        if epoch == 5:
            raise Stop
        return evaluate(model, epoch)

    from intermodal.training.trainer import Trainer

    with pytest.raises(Stop):
        Trainer(config.updated({"eval_every": 1}), tiny, tmp_path / "cut", evaluate=stop_at_5).run()
    state = json.loads((tmp_path / "cut" / "checkpoint" / "state.json").read_text())
    assert [g["fusion"] for g in state["groups"]] == list(FUSIONS) and state["epochs_done"] == 4
    resumed = resume(tmp_path / "cut", tiny, evaluate=evaluate).run()
    columns = ["reconstruction_loss", "latent_loss", "loss"]
    np.testing.assert_allclose(resumed.history[columns].to_numpy(), whole.history[columns].to_numpy(), rtol=1e-12)
    from intermodal.training.runfolder import load_checkpoint

    loaded = load_checkpoint(tmp_path / "whole")
    again = im.integration_measures(loaded.model, tiny.test[:30], z_samples=0)
    direct = im.integration_measures(whole.model, tiny.test[:30], z_samples=0)
    pd.testing.assert_frame_equal(again, direct)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_every_tensor_of_a_model_lives_on_its_device(tiny_description, fusion):
    """Built on the meta device, every parameter and buffer is there: none is left on the CPU
    (where a GPU model would meet a CPU index and fail), for every fusion, and after select."""
    model = build_model(tiny_description, architecture_preset("1", tiny_description), fusion, 2, device="meta")
    tensors = dict(model.named_parameters()) | dict(model.named_buffers())
    assert any("index" in name or "columns" in name for name in tensors)
    assert {name: t.device.type for name, t in tensors.items() if t.device.type != "meta"} == {}
    picked = model.select([1])
    tensors = dict(picked.named_parameters()) | dict(picked.named_buffers())
    assert {name: t.device.type for name, t in tensors.items() if t.device.type != "meta"} == {}


def test_a_registered_fusion_is_accepted_and_listed_without_editing_anything_else(tiny_description, capsys):
    """The registry is the only list of fusions: a fusion registered (here a test's own, a
    renamed concat) is accepted by the run config, built by name and listed in the command
    line's help; once removed, it is refused again, the message listing the registered."""
    from intermodal.cli import main
    from intermodal.errors import ConfigError
    from intermodal.model.fusions import register_fusion, unregister_fusion
    from intermodal.model.fusions.concat import MultimodalVAE

    class Tiny(MultimodalVAE):
        fusion = "tinyfusion"
        summary = "a test's own fusion"

    register_fusion(Tiny)
    try:
        config = im.RunConfig.from_mapping({"fusions": ["concat", "tinyfusion"]})
        assert config.fusions == ["concat", "tinyfusion"]
        assert isinstance(random_model(tiny_description, "tinyfusion", 1), Tiny)
        with pytest.raises(SystemExit):
            main(["train", "--help"])
        shown = " ".join(capsys.readouterr().out.split())
        assert "tinyfusion (a test's own fusion)" in shown
    finally:
        unregister_fusion("tinyfusion")
    assert "tinyfusion" not in FUSIONS
    with pytest.raises(ConfigError, match="fusion 'tinyfusion': expected one of concat, poe, moe, mopoe"):
        im.RunConfig.from_mapping({"fusions": ["tinyfusion"]})


def test_the_run_records_what_its_measures_decoded_from_and_the_report_reads_it(tiny):
    """Each row of a run's results says what its model's measures decoded from (the config's
    None resolved per fusion); the report reads it, and falls back to the config and the
    fusions' defaults for results recorded before the columns were."""
    from intermodal.outputs.report import _decoding

    config = im.RunConfig(
        fusions=["concat", "moe"], seeds=[0], epochs=2, lr=1e-3, batch_size=200, eval_every=2, n_eval_rows=20
    )
    results = im.train(config, tiny, evaluate=True).results
    recorded = results.groupby("fusion")[["z_samples", "divergence"]].agg(set)
    assert recorded.loc["concat"].tolist() == [{0}, {""}]
    assert recorded.loc["moe"].tolist() == [{MIXTURE_Z_SAMPLES}, {"predictive"}]
    # the record wins over the config's guess; without it, the guess
    changed = results.assign(divergence=np.where(results["fusion"] == "moe", "per-sample", ""))
    assert "moe: 16 latent samples per row, shared by p and q; the mean of the samples'" in _decoding(
        {}, ["concat", "moe"], changed
    )
    old = results.drop(columns=["z_samples", "divergence"])
    words = _decoding({}, ["concat", "moe"], old)
    assert words.startswith("concat: the posterior's mean; moe: 16 latent samples per row")
    assert "between the predictive mixtures" in words
