"""Continuing a run from its folder: the last checkpoint's weights, every model's Adam state
and generator, the models that diverged, and the tables written so far, so that the run
goes on exactly as if it had never stopped (docs/reliability.md).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..data.dataset import Dataset
from ..errors import CheckpointError
from ..model.group import groups_of
from . import runfolder
from .config import RunConfig
from .ensemble import Divergence
from .trainer import Evaluate, Progress, Trainer

__all__ = ["resume"]

logger = logging.getLogger("intermodal")


def resume(
    run: str | Path,
    dataset: Dataset,
    *,
    config: RunConfig | None = None,
    evaluate: Evaluate | None = None,
    progress: bool | Progress = False,
    device: str | None = None,
) -> Trainer:
    """A trainer that continues the run in ``run`` from its last checkpoint (falling back
    to the one before it if the last is damaged), ready to :meth:`~Trainer.run`.
    ``config``: the run's, if already read; ``device``: train on another device than the
    run was started on. A run that stopped before its first checkpoint starts again."""
    run = Path(run)
    config = config or runfolder.read_config(run)
    if device is not None:
        config = config.updated({"device": device})
    trainer = Trainer(config, dataset, run, evaluate=evaluate, progress=progress)
    if not runfolder.has_checkpoint(run):
        logger.info("%s: stopped before its first checkpoint; starting it again from epoch 0", run)
        return trainer
    model, state, optimizer_state, rng_states = runfolder.load_checkpoint(run, device=config.device, fallback=True)
    if state["model_keys"] != trainer.model_keys:
        raise CheckpointError(
            f"{runfolder.checkpoint_path(run)} holds models {state['model_keys']}; "
            f"{run / runfolder.CONFIG} names {trainer.model_keys}"
        )
    if rng_states is None:
        raise CheckpointError(f"{runfolder.checkpoint_path(run)} holds no generator states to continue from")
    generators = []
    for s in rng_states:
        g = torch.Generator()
        g.set_state(s.clone())
        generators.append(g)
    model.model_keys = trainer.model_keys
    trainer.ensemble.close()
    trainer.ensemble = trainer._ensemble([g for _, g in groups_of(model)], generators)
    trainer.ensemble.load_optimizer_state(optimizer_state)
    trainer.epoch = int(state["epochs_done"])
    diverged = {int(k): Divergence(**v) for k, v in state.get("diverged", {}).items()}
    if diverged:
        trainer.ensemble.freeze(sorted(diverged))
        trainer.diverged = diverged
    history = runfolder.read_history(run)
    _restore_history(trainer, history[history["epoch"] < trainer.epoch])
    for stem in state.get("tables", []):
        table = runfolder.read_evaluation_table(run, stem)
        trainer.evaluations[stem] = [table[table["epoch"] <= trainer.epoch]]
    return trainer


def _restore_history(trainer: Trainer, history) -> None:
    position = {k: i for i, k in enumerate(trainer.model_keys)}
    idx = [position[k] for k in runfolder.row_model_keys(history)]
    values = history[["beta", "reconstruction_loss", "latent_loss", "loss"]].to_numpy()
    trainer.history[history["epoch"].to_numpy(int), idx] = values
