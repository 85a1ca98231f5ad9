"""The ground-truth controls a study on the simulator trains beside its models: small worlds
whose truth the models do learn, so that the report can check a lattice measure where the
study's own models, short-trained on the whole arm, do not show it (docs/simulator.md,
"Teaching the copy" and "Where the synergy is found").

``synergy``: the ``xor`` triple alone (the arm's modalities dropped, each bit in four
columns). In the full simulator the arm's sharp Gaussians dominate the loss, and in a short
run no model learns the product from the bits (with the triple added, the arm's own checks
weaken too); on the triple alone the models do, and the report's ``bits-synergy`` check is
decided on them. ``redundancy``: vision and its exact copy alone, the copy taught alone
(``teach_copies``): the presets' models never read the copy, so their lattice cannot show
the two redundant; these models read both, and ``copy-shares-split`` is decided on them too.

Each is six concat models under constant-0 (the other schedules collapse on so small a
world: their baselines are 0), lr 1e-3, 600 epochs, with the lattice measures: about a
minute each on this project's machine. A study asks for them with ``ground_truth_controls``
(the presets do) on the simulator with ``ground_truth``; they are trained first, on this
machine whatever the backend, in ``RUN/controls/NAME``.
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

__all__ = ["SYNERGY", "REDUNDANCY", "CONTROLS", "control_configs", "train_controls"]

logger = logging.getLogger("intermodal")

SYNERGY = "synergy"
REDUNDANCY = "redundancy"
_ARM = [name for name, _ in BASE_MODALITIES]
# What every control trains (RunConfig keys); its world is its own. With these, every control
# model learned its truth but one synergy model of six (docs/simulator.md has the numbers).
_TRAINING: dict = {
    "data": "sim",
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
# Each control's world (simulator options) and, in words, what it is. One bit in one column
# is not learned in this time; in four it is. Vision and its copy with the bits beside them:
# vision's sharp Gaussians drown the bits again, so the two truths need two worlds.
CONTROLS: dict[str, tuple[dict, str]] = {
    SYNERGY: ({"drop": _ARM, "distractors": ["xor:4"]}, "the xor triple alone"),
    REDUNDANCY: (
        {"drop": [m for m in _ARM if m != "vision"], "distractors": ["copy-vision"], "teach_copies": True},
        "vision and its copy alone, the copy taught alone",
    ),
}
# What a control keeps of the study's config: where and how it computes, not what it trains.
_INHERITED = ("dtype", "device", "threads", "workers")


def control_configs(config: RunConfig, dataset: Dataset | None = None) -> dict[str, RunConfig]:
    """The controls a study of ``config`` trains, by name: :data:`CONTROLS` with
    ``ground_truth_controls`` and ``ground_truth`` on the simulator's data (``dataset``,
    where the study is given one, the simulator's too), else none."""
    on_sim = config.data == "sim" and (dataset is None or dataset.description.name == DESCRIPTION_NAME)
    if not (config.ground_truth_controls and config.ground_truth and on_sim):
        return {}
    inherited = {key: getattr(config, key) for key in _INHERITED}
    return {
        name: RunConfig.from_mapping({**_TRAINING, "sim": sim, **inherited}, origin=f"the {name} control")
        for name, (sim, _) in CONTROLS.items()
    }


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
            "study: the %s control first: %d %s models of %s × %d epochs, in %s",
            name,
            len(control.model_keys()),
            ",".join(control.fusions),
            CONTROLS[name][1],
            control.epochs,
            folder,
        )
        with runfolder.writing(folder, new=True):
            runs[name] = local.run_study(control, folder, progress=progress, announce=False, report=False)
    return runs
