"""Training runs as the library offers them (``im.train``, ``im.run_study``, ``im.resume``):
what ``intermodal train`` and ``intermodal study`` do, on either backend, holding the run
folder's lock while they write it."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

from ..data.catalog import dataset_of
from ..data.dataset import Dataset
from ..errors import ConfigError
from ..evaluation.evaluator import make_evaluator
from ..options import instance_argument, path_argument
from ..training import runfolder
from ..training.config import RunConfig
from ..training.resume import resume as resume_trainer
from ..training.runfolder import Run
from ..training.trainer import Progress, Trainer
from . import controls, local

__all__ = ["train", "run_study", "resume"]


def train(
    config: RunConfig,
    dataset: Dataset | None = None,
    *,
    out: str | Path | None = None,
    evaluate: bool = False,
    progress: bool | Progress = False,
    track: str | None = None,
) -> Run:
    """Train every (schedule, seed) model of ``config`` as one batched computation.

    ``dataset``: the rows to train on (default: the data set ``config`` names).
    ``out``: a run folder to write (absent or empty; None keeps everything in memory).
    ``evaluate``: take the measures and latent diagnostics at epoch 0, every
    ``config.eval_every`` epochs and at the end (``result.results``, ``result.diagnostics``).
    ``progress``: False (silent), True (a bar on stderr) or a callback
    ``(epochs done, epochs in all, [models, 3] loss means)``. ``track``: watch it live,
    ``"tensorboard[:DIR]"`` or ``"mlflow[:URI]"`` (local stores in ``out/tracking`` by
    default; without ``out``, name the DIR or URI).

    Returns a :class:`~intermodal.training.runfolder.Run`: the trained ensemble
    (``.model``), its tables and each position's (fusion, schedule, seed) (``.models``)."""
    instance_argument(config, RunConfig, "config", hint=" (im.RunConfig(**values) from a mapping)")
    instance_argument(dataset, Dataset, "dataset", optional=True)
    out = path_argument(out, "out", optional=True)
    dataset = dataset if dataset is not None else dataset_of(config)
    evaluator = make_evaluator(config, dataset) if evaluate else None
    if out is None:
        tracking = _tracking(track, None)
        with tracking.open() if tracking is not None else nullcontext() as tracker:
            if tracker is not None:
                tracker.start(config.to_dict(), config.model_keys())
            return Trainer(config, dataset, None, evaluate=evaluator, progress=progress, tracker=tracker).run()
    with runfolder.writing(out, new=True) as folder:
        tracking = _tracking(track, folder)
        with tracking.open() if tracking is not None else nullcontext() as tracker:
            if tracker is not None:
                tracker.start(config.to_dict(), config.model_keys())
            return Trainer(config, dataset, folder, evaluate=evaluator, progress=progress, tracker=tracker).run()


def _tracking(track: str | None, out: Path | None) -> local.Tracking | None:
    if track is None:
        return None
    if out is None:
        if ":" not in track:
            raise ConfigError(
                f"--track {track}: a run kept in memory has no folder for the store; name one "
                f"('{track}:DIR' or '{track}:URI')"
            )
        return local.Tracking(track, Path.cwd(), "intermodal")
    return local.Tracking(track, runfolder.tracking_path(out), Path(out).resolve().name)


def run_study(
    config: RunConfig,
    out: str | Path,
    *,
    dataset: Dataset | None = None,
    backend: str = "local",
    address: str | None = None,
    progress: bool | Progress = False,
    report: bool = True,
    track: str | None = None,
) -> Run:
    """A study: train with the measures every ``config.eval_every`` epochs, then the
    figures and ``report.html`` in ``out`` (what ``intermodal study`` does). ``backend``:
    ``"local"`` (this process) or ``"ray"`` (units of models as Ray tasks, on the cluster
    at ``address``; docs/cluster.md; ``dataset`` must then be None, the tasks load it).
    ``track``: watch it live (see :func:`train`), from either backend. With
    ``ground_truth_controls`` on the simulator (the presets), the ground-truth controls
    (synergy, redundancy) are trained first, in ``out/controls/NAME``
    (:mod:`intermodal.study.controls`), and the report checks the lattice's synergy and
    redundancy on them too."""
    instance_argument(config, RunConfig, "config", hint=" (im.RunConfig(**values) from a mapping)")
    instance_argument(dataset, Dataset, "dataset", optional=True)
    out = path_argument(out, "out")
    if backend not in ("local", "ray"):
        raise ConfigError(f"backend {backend!r}: expected 'local' or 'ray'")
    if not config.eval_every:
        raise ConfigError("a study needs --eval-every > 0 (how often to take the measures)")
    if address is not None and backend != "ray":
        raise ConfigError("address names a Ray cluster; it goes with backend 'ray'")
    with runfolder.writing(out, new=True) as folder:
        if backend == "ray" and dataset is not None:
            raise ConfigError("backend 'ray' loads the data set the config names; pass dataset=None")
        # The ground-truth controls first (a minute, on this machine): a study interrupted
        # in them has no checkpoint yet and is removed, one interrupted later resumes as any.
        controls.train_controls(config, folder, dataset=dataset, progress=progress)
        if backend == "ray":
            from . import cluster

            return cluster.run_study(config, folder, address=address, progress=progress, track=track)
        return local.run_study(config, folder, dataset=dataset, progress=progress, report=report, track=track)


def resume(
    run: str | Path,
    *,
    backend: str = "local",
    address: str | None = None,
    progress: bool | Progress = False,
    report: bool | None = None,
    track: str | None = None,
    device: str | None = None,
) -> Run:
    """Continue an interrupted run (a training run or a study, on either backend) from
    its last checkpoint to its last epoch, exactly as it would have gone on. ``report``:
    rewrite the figures and report at the end (default: for a study, that is a run whose
    config takes measures). ``track``: watch the rest of it live (see :func:`train`).
    ``device``: go on on another device than the run's (``"cpu"``, ``"cuda"``,
    ``"cuda:N"``; the local backend): its config then names that device, and
    ``environment.json`` records where each stretch of training ran; the numbers agree
    with an unmoved run's to the tolerances of docs/performance.md."""
    run = path_argument(run, "run")
    if device is not None:
        device = RunConfig().updated({"device": device}, origin="resume").device
    with runfolder.writing(run, new=False):
        config = runfolder.read_config(run)
        study = bool(config.eval_every)
        if backend == "ray" or runfolder.is_cluster_run(run):
            from . import cluster

            if device is not None and device != "cpu":
                raise ConfigError(
                    f"--device {device}: a study trained with --backend ray goes on on CPUs (docs/cluster.md, 'GPUs')"
                )
            return cluster.resume_study(run, backend=backend, address=address, progress=progress, track=track)
        if study:
            return local.resume_study(
                run, progress=progress, report=study if report is None else report, track=track, device=device
            )
        tracking = _tracking(track, run)
        with tracking.open() if tracking is not None else nullcontext() as tracker:
            trainer = resume_trainer(run, dataset_of(config), config=config, progress=progress, device=device)
            if tracker is not None:
                tracker.start(config.to_dict(), config.model_keys())
                trainer.tracker = tracker
            return trainer.run()
