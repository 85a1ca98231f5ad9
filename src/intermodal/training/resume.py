"""Continuing a run from its folder: the last checkpoint's weights, every model's Adam state
and generator, the models that diverged, and the tables written so far, so that the run
goes on exactly as if it had never stopped (docs/reliability.md). The trainer does it
(:meth:`~intermodal.training.trainer.Trainer.from_checkpoint`, :meth:`~intermodal.training.trainer.Trainer.restore`).
"""

from __future__ import annotations

from pathlib import Path

from ..data.dataset import Dataset
from .config import RunConfig
from .trainer import Evaluate, Progress, Trainer

__all__ = ["resume"]


def resume(
    run: str | Path,
    dataset: Dataset,
    *,
    config: RunConfig | None = None,
    evaluate: Evaluate | None = None,
    progress: bool | Progress = False,
    device: str | None = None,
) -> Trainer:
    """A trainer that continues the run in ``run`` from its last checkpoint
    (:meth:`Trainer.from_checkpoint <intermodal.training.trainer.Trainer.from_checkpoint>`)."""
    return Trainer.from_checkpoint(run, dataset, config=config, evaluate=evaluate, progress=progress, device=device)
