"""The measures against the simulator's known structure: a modality of pure noise carries
nothing about the others and cannot be predicted, and vision (a fixed function of the
joints) predicts the rest. Trains 2 small models for 150 epochs (about 10 s)."""

from __future__ import annotations

import pytest

from intermodal.data.catalog import load_dataset
from intermodal.evaluation.measures import integration_measures
from intermodal.training.config import RunConfig
from intermodal.training.trainer import Trainer

SIM = {"distractors": ["noise"], "n_train": 1000, "n_test": 300}


@pytest.fixture(scope="module")
def measures():
    dataset = load_dataset("sim", sim=SIM)
    config = RunConfig(data="sim", sim=SIM, schedules=["constant-0"], seeds=[0, 1], epochs=150, lr=1e-3, batch_size=500)
    trainer = Trainer(config, dataset, None, progress=False).run()
    table = integration_measures(trainer.model, dataset.test[:256], description=dataset.description)
    return table.groupby(["quantity", "scope", "modality"]).value.mean()


def test_a_noise_modality_is_uninformative(measures):
    lop_all = measures["loss_of_precision", "all"]
    lop_own = measures["loss_of_precision", "modality"]
    # muting the noise changes nothing the model predicts, not even the noise itself
    assert lop_own["noise"] < 0.05
    assert (lop_own.drop("noise") > 5 * lop_own["noise"]).all()
    assert lop_all["noise"] < 0.01 * lop_all["vision"]


def test_vision_predicts_the_rest(measures):
    sme_all = measures["single_modality_error", "all"]
    assert sme_all.idxmin() == "vision"
    assert (sme_all.drop("vision") > 10 * sme_all["vision"]).all()
