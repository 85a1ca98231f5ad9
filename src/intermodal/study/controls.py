"""The ground-truth controls a study trains beside its models: small runs whose truth the
models do learn, so that the report can check a measure where the study's own models are
too short-trained to show it (docs/simulator.md, "Where the synergy is found").

One control so far, ``synergy``: the simulator's ``xor`` triple alone (the arm's modalities
dropped, each bit in four columns), concat models under constant-0, six seeds, trained with
the lattice measures. In the default simulator study the arm's sharp Gaussians dominate the
loss, and in a short run no model learns the product from the bits (with the triple added,
the arm's own checks weaken too); on the triple alone every model does, in about a minute,
and the report's ``bits-synergy`` check is decided on them. A study asks for it with
``synergy_control`` (the presets do) on the simulator with ``ground_truth``; it is trained
first, on this machine whatever the backend, in ``RUN/controls/synergy``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..data.dataset import Dataset
from ..data.sim import BASE_MODALITIES, DESCRIPTION_NAME
from ..training import runfolder
from ..training.config import RunConfig
from ..training.runfolder import Run
from ..training.trainer import Progress

__all__ = ["SYNERGY", "SYNERGY_CONTROL", "control_configs", "train_controls"]

logger = logging.getLogger("intermodal")

SYNERGY = "synergy"
# The synergy control's recipe (RunConfig keys): the xor triple alone, each bit in four columns
# (one column is not learned in this time), lr 1e-3 and constant-0 (the other schedules
# collapse on so small a world: their baselines are 0). Every model learned the product from
# the bits with it (docs/simulator.md has the numbers).
SYNERGY_CONTROL: dict = {
    "data": "sim",
    "sim": {"drop": [name for name, _ in BASE_MODALITIES], "distractors": ["xor:4"]},
    "fusions": ["concat"],
    "schedules": ["constant-0"],
    "seeds": list(range(6)),
    "epochs": 600,
    "lr": 1e-3,
    "batch_size": 1000,
    "eval_every": 50,
    "checkpoint_every": 600,
    "ground_truth": True,
    "shares": "modalities",
}
# What a control keeps of the study's config: where and how it computes, not what it trains.
_INHERITED = ("dtype", "device", "threads", "workers")


def control_configs(config: RunConfig, dataset: Dataset | None = None) -> dict[str, RunConfig]:
    """The controls a study of ``config`` trains, by name: the synergy control with
    ``synergy_control`` and ``ground_truth`` on the simulator's data (``dataset``, where the
    study is given one, the simulator's too), else none."""
    on_sim = config.data == "sim" and (dataset is None or dataset.description.name == DESCRIPTION_NAME)
    if not (config.synergy_control and config.ground_truth and on_sim):
        return {}
    inherited = {key: getattr(config, key) for key in _INHERITED}
    return {SYNERGY: RunConfig.from_mapping({**SYNERGY_CONTROL, **inherited}, origin="the synergy control")}


def train_controls(
    config: RunConfig, out: str | Path, *, dataset: Dataset | None = None, progress: bool | Progress = False
) -> dict[str, Run]:
    """Train the controls of ``config`` (:func:`control_configs`) into ``out/controls/NAME``,
    each a study without figures or report; the study's report reads them."""
    from . import local

    runs = {}
    for name, control in control_configs(config, dataset).items():
        folder = runfolder.controls_path(out) / name
        logger.info(
            "study: the %s control first: %d %s models of the xor triple alone × %d epochs, in %s",
            name,
            len(control.model_keys()),
            ",".join(control.fusions),
            control.epochs,
            folder,
        )
        with runfolder.writing(folder, new=True):
            runs[name] = local.run_study(control, folder, progress=progress, announce=False, report=False)
    return runs
