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
``demo``
    The README's first command: the quick preset's gradient steps at half its computation
    (750 epochs in batches of 500, measures every 25 epochs).
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from pathlib import Path

from ..data.catalog import dataset_of
from ..data.dataset import Dataset
from ..errors import ConfigError
from ..evaluation.evaluator import make_evaluator
from ..outputs.report import figure_paths, write_report
from ..outputs.tracking import open_tracker
from ..training import runfolder
from ..training.config import RunConfig
from ..training.resume import resume
from ..training.runfolder import Run
from ..training.trainer import Progress, Trainer

__all__ = ["run_study", "resume_study", "estimate_duration", "human_duration", "Tracking", "log_figures"]

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


class Tracking:
    """Where and how a study is watched live (``--track``): the spec (``tensorboard[:DIR]``,
    ``mlflow[:URI]``), the folder of the local stores (default: the run folder's), the run's
    name in the tracker, and the parent run of a unit of a Ray study."""

    def __init__(self, spec: str, folder: str | Path, name: str, parent: str | None = None):
        self.spec, self.folder, self.name, self.parent = spec, Path(folder), name, parent

    def open(self):
        tracker = open_tracker(self.spec, default_dir=self.folder, run_name=self.name, parent=self.parent)
        logger.info("tracking: %s", tracker.location)
        return tracker


def run_study(
    config: RunConfig,
    out: str | Path,
    *,
    dataset: Dataset | None = None,
    progress: bool | Progress = False,
    announce: bool = True,
    report: bool = True,
    track: str | Tracking | None = None,
) -> Run:
    """Train, evaluate every ``config.eval_every`` epochs, then draw the figures and write
    ``report.html`` into ``out``. ``announce``: log the expected duration first and the time
    taken at the end (logger ``intermodal``); ``report``: write the figures and report;
    ``track``: watch it live (``"tensorboard[:DIR]"``, ``"mlflow[:URI]"``; local stores in
    ``out/tracking`` by default)."""
    out = Path(out)
    if not config.eval_every:
        raise ConfigError("a study needs --eval-every > 0 (how often to take the measures)")
    dataset = dataset if dataset is not None else dataset_of(config)
    evaluate = make_evaluator(config, dataset, say=announce)
    trainer = Trainer(config, dataset, out, evaluate=evaluate, progress=progress)
    return _train_and_report(trainer, evaluate, announce, report, _tracking(track, out))


def resume_study(
    run: str | Path,
    *,
    dataset: Dataset | None = None,
    progress: bool | Progress = False,
    announce: bool = True,
    report: bool = True,
    track: str | Tracking | None = None,
    device: str | None = None,
) -> Run:
    """Continue an interrupted study from its last checkpoint, then finish it (on
    ``device`` if given, else the run's)."""
    run = Path(run)
    config = runfolder.read_config(run)
    if device is not None:
        config = config.updated({"device": device})
    dataset = dataset if dataset is not None else dataset_of(config)
    evaluate = make_evaluator(config, dataset)
    trainer = resume(run, dataset, config=config, evaluate=evaluate, progress=progress)
    return _train_and_report(trainer, evaluate, announce, report, _tracking(track, run))


def _tracking(track: str | Tracking | None, out: Path) -> Tracking | None:
    if track is None or isinstance(track, Tracking):
        return track
    return Tracking(track, runfolder.tracking_path(out), out.resolve().name)


def _train_and_report(trainer: Trainer, evaluate, announce: bool, report: bool, tracking: Tracking | None) -> Run:
    start = time.monotonic()
    with tracking.open() if tracking is not None else nullcontext() as tracker:
        if tracker is not None:
            tracker.start(trainer.config.to_dict(), trainer.model_keys)
            trainer.tracker = tracker
        if trainer.epoch < trainer.config.epochs:
            if announce:
                _announce(trainer, evaluate)
            result = trainer.run()
        else:
            result = trainer.result()
        if report:
            assert trainer.out is not None  # a report goes in the run folder
            write_report(trainer.out, redraw=True)
            if tracker is not None:
                log_figures(tracker, trainer.out)
    if announce:
        logger.info("study: took %s", human_duration(time.monotonic() - start))
    return result


def log_figures(tracker, run: Path) -> None:
    """Hand a tracker the run's figures (the PNGs the report drew)."""
    paths = {stem: png for stem, (png, _svg) in figure_paths(run, True, True).items() if png.is_file()}
    paths.update({p.stem: p for p in sorted(runfolder.figures_path(run).glob("prediction_*.png"))})
    tracker.log_figures(paths)
