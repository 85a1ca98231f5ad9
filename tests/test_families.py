"""Each modality trained with its own output family (docs/method.md §5b): the reconstruction
term of every family against its closed form, a Bernoulli and a categorical modality that
follow from another one learned from it, every fusion trained and resumed exactly with a
mixed description, data a family cannot have refused with the column named, the
``--likelihood`` option, and a data set of one time step through study, report and compare."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import special

import intermodal as im
from intermodal.cli import main
from intermodal.data.catalog import write_dataset
from intermodal.data.dataset import Dataset
from intermodal.data.description import DatasetDescription, Modality
from intermodal.errors import DataError
from intermodal.model.architecture import architecture_preset
from intermodal.model.group import FUSIONS, build_model
from intermodal.training import runfolder
from intermodal.training.config import RunConfig
from intermodal.training.resume import resume
from intermodal.training.trainer import Trainer

# Two time steps, every family, the categorical modality between others; data in [0, 1].
MIXED = DatasetDescription(
    name="mixed-families",
    modalities=(
        Modality("g", 2),
        Modality("c", 3, "categorical"),
        Modality("l", 2, "laplace"),
        Modality("b", 2, "bernoulli"),
    ),
    value_range=(0.0, 1.0),
    muted_value=-1.0,
    muting_patterns={"complete": (), "no-b": ("b",), "no-c": ("c",), "only-g": ("c", "l", "b")},
)


def mixed_rows(rng, n: int) -> np.ndarray:
    """Rows a mixed model can have: Gaussian and Laplace values in [0, 1], Bernoulli
    probabilities (soft targets), each step's categorical values one-hot."""
    names = MIXED.column_names()
    rows = rng.uniform(0, 1, size=(n, MIXED.n_columns))
    for step in MIXED.time_steps:
        cols = [names.index(f"c_{step}_{i}") for i in range(3)]
        rows[:, cols] = np.eye(3)[rng.integers(0, 3, size=n)]
    return rows


def test_reconstruction_matches_each_familys_closed_form():
    """The training loss's reconstruction term per row: each column's negative
    log-likelihood under its family, weighted by 1/d_m (Zambelli's weighting), plus the
    original's constant for the Gaussian modalities only."""
    model = build_model(MIXED, architecture_preset("1", MIXED), "concat", 2, dtype=torch.float64)
    rng = np.random.default_rng(0)
    target = mixed_rows(rng, 7)  # [rows, columns]
    loc, raw = rng.normal(size=(2, 7, MIXED.n_columns)), rng.normal(size=(2, 7, MIXED.n_columns))
    ff = [torch.as_tensor(a).transpose(-1, -2).contiguous() for a in (target[None].repeat(2, 0), loc, raw)]
    got = model._reconstruction(*ff).numpy()  # [models, rows]

    names = MIXED.column_names()
    nll = np.zeros_like(loc)
    var = np.exp(raw) + 1e-4
    for m in MIXED.modalities:
        cols = MIXED.columns_of(m.name)
        x, mu, v = target[None, :, cols], loc[..., cols], var[..., cols]
        if m.likelihood == "gaussian":
            nll[..., cols] = 0.5 * ((x - mu) ** 2 / v + np.log(v))  # the original's form, without ½ log 2π
        elif m.likelihood == "laplace":
            nll[..., cols] = np.abs(x - mu) / np.sqrt(v) + np.log(2 * np.sqrt(v))
        elif m.likelihood == "bernoulli":
            p = special.expit(mu)
            nll[..., cols] = -(x * np.log(p) + (1 - x) * np.log(1 - p))
        else:
            for step in MIXED.time_steps:
                group = [names.index(f"{m.name}_{step}_{i}") for i in range(m.size)]
                log_p = special.log_softmax(loc[..., group], axis=-1)
                nll[..., group] = -target[None, :, group] * log_p
    widths = {m.name: MIXED.columns_of(m.name).size for m in MIXED.modalities}
    weight = np.array([1.0 / widths[n.split("_")[0]] for n in names])
    constant = 0.5 * (model.latent_size / 2) * math.log(2 * math.pi) / widths["g"]
    np.testing.assert_allclose(got, (nll * weight).sum(-1) + constant, rtol=1e-12)
    assert model.likelihoods["b"].family == "bernoulli" and model.likelihoods["c"].family == "categorical"
    # A logits head has one output per column; a scaled family's a location and a scale.
    heads = {m: model.weights[f"dec:{m}:head"].shape[-1] for m in "gclb"}
    assert heads == {"g": 8, "c": 6, "l": 8, "b": 4}


def test_all_gaussian_takes_the_fused_form_with_the_same_values():
    """A description left at its default (every modality Gaussian) keeps the fused
    reconstruction, whose values are the per-family form's."""
    gaussian = MIXED.with_likelihoods({"c": "gaussian", "l": "gaussian", "b": "gaussian"})
    model = build_model(gaussian, architecture_preset("1", gaussian), "concat", 1, dtype=torch.float64)
    assert model.all_gaussian
    rng = np.random.default_rng(1)
    ff = [torch.as_tensor(rng.normal(size=(1, gaussian.n_columns, 5))) for _ in range(3)]
    fused = model._reconstruction(*ff)
    model.all_gaussian = False
    model._family_names, model._n_groups = ["gaussian"], 0
    model.register_buffer("_family_gaussian", torch.arange(gaussian.n_columns), persistent=False)
    torch.testing.assert_close(model._reconstruction(*ff), fused, rtol=1e-12, atol=1e-12)


# A data set of one time step where the answer is known: b (two bits) and c (a class) are
# fixed functions of x.
KNOWN = DatasetDescription(
    name="known",
    modalities=(Modality("x", 2), Modality("b", 2, "bernoulli"), Modality("c", 3, "categorical")),
    time_steps=("t",),
    value_range=(0.0, 1.0),
    muted_value=-1.0,
    muting_patterns={"complete": (), "no-b": ("b",), "no-c": ("c",), "x-only": ("b", "c")},
)


def known_rows(rng, n: int) -> np.ndarray:
    x = rng.uniform(0, 1, size=(n, 2))
    c = np.eye(3)[np.minimum((x[:, 1] * 3).astype(int), 2)]
    return np.concatenate([x, (x > 0.5).astype(float), c], 1)


@pytest.fixture(scope="module")
def known():
    rng = np.random.default_rng(0)
    return Dataset(KNOWN, known_rows(rng, 2000), known_rows(rng, 300), origin="known")


@pytest.mark.slow
def test_a_bernoulli_and_a_categorical_modality_follow_from_the_one_that_fixes_them(known):
    """Trained with b Bernoulli and c categorical, the model predicts both from x alone far
    above chance (b: 0.5, c: 1/3); its predictions are in the data's units (probabilities
    of the value range's upper end) and the measures name each family."""
    config = RunConfig.from_dict({"epochs": 200, "lr": 3e-3, "batch_size": 500, "eval_every": 200, "n_eval_rows": 300})
    result = im.train(config, known, evaluate=True)
    prediction = im.predict(result.model, known.test, ["x"])
    mean = prediction.mean[0]
    b_accuracy = ((mean[:, 2:4] > 0.5) == (known.test[:, 2:4] > 0.5)).mean()
    c_accuracy = (mean[:, 4:7].argmax(1) == known.test[:, 4:7].argmax(1)).mean()
    assert b_accuracy > 0.8 and c_accuracy > 0.9, (b_accuracy, c_accuracy)
    assert ((mean[:, 2:] >= 0) & (mean[:, 2:] <= 1)).all()
    np.testing.assert_allclose(mean[:, 4:7].sum(1), 1.0, rtol=1e-5)
    labels = result.results.query("scope == 'modality'").groupby("modality")["likelihood"].first().to_dict()
    assert labels == {"x": "gaussian", "b": "bernoulli", "c": "categorical"}


@pytest.mark.slow
def test_every_fusion_trains_and_resumes_exactly_with_mixed_families(tmp_path):
    """All four fusions on the mixed description: a run stopped at its checkpoint and
    resumed gives the history and measures of a run never stopped, bit for bit."""
    rng = np.random.default_rng(2)
    data = Dataset(MIXED, mixed_rows(rng, 300), mixed_rows(rng, 60), origin="mixed")
    config = RunConfig.from_dict(
        {
            "fusions": list(FUSIONS),
            "seeds": [0, 1],
            "epochs": 6,
            "batch_size": 100,
            "checkpoint_every": 3,
            "eval_every": 3,
            "n_eval_rows": 40,
            "z_samples": 2,
        }
    )
    whole = im.train(config, data, out=tmp_path / "whole", evaluate=True)
    assert np.isfinite(whole.history["loss"]).all()

    class Stop(Exception):
        pass

    def stop_after_4(done, total, means):
        if done == 4:
            raise Stop

    from intermodal.evaluation.evaluator import make_evaluator

    evaluate = make_evaluator(config, data)
    with pytest.raises(Stop):
        Trainer(config, data, tmp_path / "cut", evaluate=evaluate, progress=stop_after_4).run()
    resumed = resume(tmp_path / "cut", data, evaluate=evaluate).run()
    pd.testing.assert_frame_equal(resumed.history, whole.history, check_exact=True)
    pd.testing.assert_frame_equal(resumed.results, whole.results, check_exact=True)
    saved = json.loads((tmp_path / "whole" / "description.json").read_text())
    assert [m.get("likelihood", "gaussian") for m in saved["modalities"]] == list(MIXED.likelihoods.values())


def test_values_a_family_cannot_have_are_refused_naming_the_column():
    rng = np.random.default_rng(3)
    rows = mixed_rows(rng, 20)
    names = MIXED.column_names()
    bad = rows.copy()
    bad[4, names.index("b_t-1_1")] = 1.5  # outside the value range
    with pytest.raises(DataError, match=r"row 4, column b_t-1_1 is 1\.5; the modality 'b' is Bernoulli"):
        Dataset(MIXED, bad, rows, origin="mine")
    bad = rows.copy()
    bad[7, names.index("c_t_0")] = 0.5  # a row of c at t that sums to more than 1
    with pytest.raises(DataError, match=r"mine: test: row 7, columns c_t_0..c_t_2 \(the modality 'c' at t\)"):
        Dataset(MIXED, rows, bad, origin="mine")
    # the simulator's vision is not one-hot: asked to be categorical, it is refused
    with pytest.raises(DataError, match="--likelihood vision=categorical: .*the modality is categorical"):
        im.load_dataset("sim").with_likelihoods({"vision": "categorical"}, origin="--likelihood")


def test_the_likelihood_option_sets_a_runs_families(tmp_path, capsys):
    """``--likelihood touch=bernoulli`` (a config key too): the run's description records
    it, the tables name it; an unknown modality or family is refused naming it."""
    sim = '{"n_train": 300, "n_test": 100}'
    out = tmp_path / "run"
    argv = ["train", "--sim", sim, "--epochs", "2", "--batch-size", "100", "--eval-every", "2", "--quiet"]
    assert main([*argv, "--likelihood", "touch=bernoulli,sound=laplace", "--out", str(out)]) == 0
    description = runfolder.read_run(out).description
    assert description.likelihoods["touch"] == "bernoulli" and description.likelihoods["sound"] == "laplace"
    results = runfolder.read_run(out).results
    assert set(results.query("modality == 'touch' and scope == 'modality'")["likelihood"]) == {"bernoulli"}
    assert runfolder.read_config(out).likelihoods == {"touch": "bernoulli", "sound": "laplace"}
    capsys.readouterr()
    assert main([*argv, "--likelihood", "tuch=bernoulli", "--out", str(tmp_path / "a")]) == 2
    assert "'tuch'" in capsys.readouterr().err
    assert main([*argv, "--likelihood", "touch=binary", "--out", str(tmp_path / "b")]) == 2
    assert "binary" in capsys.readouterr().err and not (tmp_path / "b").exists()


@pytest.mark.slow
def test_a_data_set_of_one_time_step_goes_through_study_report_and_compare(known, tmp_path, capsys):
    """One time step is enough for training, the measures, the report and compare; what
    needs two (a rollout, the prediction tests) says so."""
    data = write_dataset(known, tmp_path / "known")
    common = ["--data", str(data), "--epochs", "6", "--eval-every", "3", "--seeds", "2", "--quiet"]
    assert main(["study", *common, "--out", str(tmp_path / "a")]) == 0
    assert main(["study", *common, "--likelihood", "b=gaussian", "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "a" / "report.html").is_file()
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "ab")]) == 0
    model = runfolder.load_checkpoint(tmp_path / "a").model
    with pytest.raises(DataError, match="exactly two time steps.*'known' has \\['t'\\]"):
        im.rollout(model, known.test[:5], 2, ["x"])
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "a"), "--tests"]) == 2
    assert "two time steps" in capsys.readouterr().err
