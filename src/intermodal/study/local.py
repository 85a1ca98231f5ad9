"""The study of Langer et al. (2024) on this machine: schedules × seeds trained together,
the integration measures taken every K epochs, then figures and a report.

Presets (``intermodal study --preset NAME``; every option can still be overridden; why
they are as they are: docs/study.md):

``paper``
    The paper's protocol: the four schedules × 20 seeds × 80 000 epochs, Adam 5e-5,
    measures every 200 epochs on the first 1024 test rows.
``quick`` (default)
    Minutes on 2 CPU cores: the four schedules × 3 seeds × 1500 epochs, measures every 50
    epochs, learning rate 3e-4, the schedules scaled to the run's length.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ..data.catalog import dataset_of
from ..data.dataset import Dataset
from ..errors import ConfigError
from ..evaluation.evaluator import make_evaluator
from ..outputs.report import write_report
from ..training import runfolder
from ..training.config import RunConfig
from ..training.resume import resume
from ..training.trainer import Progress, Trainer, TrainingResult

__all__ = ["run_study", "resume_study", "estimate_duration", "human_duration"]

logger = logging.getLogger("intermodal")


def estimate_duration(trainer: Trainer, evaluate=None, epochs: int = 2) -> dict:
    """Time a few epochs (and one evaluation) of a throwaway copy of the ensemble and
    project the rest of the run. Returns seconds per epoch, per evaluation and in total,
    and the model-epochs per second measured."""
    import torch

    threads = torch.get_num_threads()
    if trainer.config.threads:
        torch.set_num_threads(trainer.config.threads)
    try:
        with Trainer(trainer.config, trainer.dataset, None) as probe:
            probe.train_epoch()  # warm-up: first-call allocations
            start = time.perf_counter()
            for _ in range(epochs):
                probe.train_epoch()
            per_epoch = (time.perf_counter() - start) / epochs
            per_eval = 0.0
            if evaluate is not None:
                start = time.perf_counter()
                evaluate(probe.model, 0)
                per_eval = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    cfg = trainer.config
    remaining = cfg.epochs - trainer.epoch
    n_evals = (remaining // cfg.eval_every + 1) if cfg.eval_every else 0
    return dict(
        per_epoch=per_epoch,
        per_evaluation=per_eval,
        total=per_epoch * remaining + per_eval * n_evals,
        model_epochs_per_second=len(trainer.model_keys) / per_epoch,
    )


def human_duration(seconds: float) -> str:
    """Seconds as a person reads them: "42 s", "6.5 min", "2.1 h"."""
    if seconds > 5400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds > 90 else f"{seconds:.0f} s"


def _announce(trainer: Trainer, evaluate) -> None:
    e = estimate_duration(trainer, evaluate)
    logger.info(
        "study: %d models × %d epochs to go; measured %.1f model-epochs/s and %.2f s per evaluation; "
        "expected duration about %s",
        len(trainer.model_keys),
        trainer.config.epochs - trainer.epoch,
        e["model_epochs_per_second"],
        e["per_evaluation"],
        human_duration(e["total"]),
    )


def run_study(
    config: RunConfig,
    out: str | Path,
    *,
    dataset: Dataset | None = None,
    progress: bool | Progress = False,
    announce: bool = True,
    report: bool = True,
) -> TrainingResult:
    """Train, evaluate every ``config.eval_every`` epochs, then draw the figures and write
    ``report.html`` into ``out``. ``announce``: log the expected duration first (logger
    ``intermodal``); ``report``: write the figures and report at the end."""
    out = Path(out)
    if not config.eval_every:
        raise ConfigError("a study needs --eval-every > 0 (how often to take the measures)")
    dataset = dataset if dataset is not None else dataset_of(config)
    evaluate = make_evaluator(config, dataset, say=announce)
    trainer = Trainer(config, dataset, out, evaluate=evaluate, progress=progress)
    return _train_and_report(trainer, evaluate, announce, report)


def resume_study(
    run: str | Path,
    *,
    dataset: Dataset | None = None,
    progress: bool | Progress = False,
    announce: bool = True,
    report: bool = True,
) -> TrainingResult:
    """Continue an interrupted study from its last checkpoint, then finish it."""
    run = Path(run)
    config = runfolder.read_config(run)
    dataset = dataset if dataset is not None else dataset_of(config)
    evaluate = make_evaluator(config, dataset)
    trainer = resume(run, dataset, config=config, evaluate=evaluate, progress=progress)
    return _train_and_report(trainer, evaluate, announce, report)


def _train_and_report(trainer: Trainer, evaluate, announce: bool, report: bool) -> TrainingResult:
    start = time.monotonic()
    if trainer.epoch < trainer.config.epochs:
        if announce:
            _announce(trainer, evaluate)
        result = trainer.run()
    else:
        result = trainer.result()
    if report:
        write_report(trainer.out, redraw=True)
    if announce:
        logger.info("study: took %s", human_duration(time.monotonic() - start))
    return result
