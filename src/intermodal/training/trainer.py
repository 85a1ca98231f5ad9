"""Training: every model of a run in one batched computation, as a loop of epochs with
evaluations and checkpoints on the way.

Model ``k`` of a run is ``config.model_keys()[k]``. Its initialisation, its shuffling and
its ε come from its seed alone (never from its position or the group), and its loss is
summed, not averaged, with the others', so each model gets exactly the gradient it would
get alone: a model trained in a group of 20 has the history it has trained alone, to float
tolerance (docs/method.md §3).

The parts: :class:`~intermodal.training.shards.Shards` holds the models;
:class:`Trainer` runs the loop (one epoch, the history, an evaluation, a checkpoint) and
continues a run from a checkpoint (:meth:`Trainer.restore`; :mod:`intermodal.training.resume`
reads it from a run folder); it returns a :class:`~intermodal.training.runfolder.Run`, as
both backends of a study do. What is written goes through :mod:`intermodal.training.runfolder`.

A trainer leaves the process as it found it: torch's thread count is set for the run and
restored after it, a handler for SIGTERM is installed for the run only (it lets the current
epoch finish, saves a checkpoint and raises :class:`~intermodal.errors.Terminated`), and it
prints nothing unless ``progress`` asks for a bar or a callback.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data.dataset import Dataset
from ..errors import CheckpointError, ConfigError, ScheduleError, Terminated
from ..model.architecture import architecture_preset
from ..model.group import build_model, groups_of
from ..streams import Purpose, numpy_generator, torch_generator
from . import runfolder
from .checkpoint import Checkpoint
from .config import MODEL_KEY_COLUMNS, RunConfig, key_columns, label_models
from .device import check_device, environment, exact_float32
from .runfolder import HISTORY_VALUES, Run
from .schedules import parse_schedule
from .shards import Divergence, Shards, default_workers

__all__ = [
    "Trainer",
    "Evaluate",
    "Progress",
    "TRACKED_EPOCHS",
    "training_generator",
    "muting_generator",
    "progress_interval",
]

logger = logging.getLogger("intermodal")

# An evaluation function: (model ensemble, epochs trained) -> tables keyed by stem, each
# with a column "model" (position in the ensemble).
Evaluate = Callable[[object, int], dict[str, pd.DataFrame]]
# A progress callback: (epochs done, epochs in all, [models, 3] loss means of the last epoch).
Progress = Callable[[int, int, np.ndarray], None]
# A tracker (intermodal.outputs.tracking) receives the history at most this many times per
# run (every epoch of a run this long or shorter; a paper run of 80 000 epochs every 40th),
# and every evaluation: a store such as MLflow's pays for every value it is sent
# (docs/performance.md, "Costs behind the code").
TRACKED_EPOCHS = 2000


def training_generator(seed: int) -> torch.Generator:
    """The generator that shuffles model ``seed``'s batches and draws its ε; a stream
    distinct from the one that initialises its weights."""
    return torch_generator(Purpose.TRAINING, seed)


def muting_generator() -> np.random.Generator:
    """The stream ``--muting subsets`` draws each copy's subset of modalities from, once per
    run: ``(0, MUTING_SUBSETS)``, the same for every run. The training rows are shared by
    every model of a run, so the draw must not depend on which models a run (or a unit of
    the Ray backend) holds; a model trains as it does alone, and resuming draws it again."""
    return numpy_generator(Purpose.MUTING_SUBSETS, 0)


class Trainer:
    """Train the ensemble a config describes on a data set; see the module docstring.

    ``out``: run folder (None = keep nothing on disk). ``evaluate`` is called at epoch 0
    and every ``config.eval_every`` epochs (and at the end) with the whole ensemble and the
    number of epochs trained. ``progress``: False (nothing), True (a bar on stderr) or a
    :data:`Progress` callback. ``tracker``: an object with ``log_history(rows)`` and
    ``log_evaluation(epoch, tables)`` (:mod:`intermodal.outputs.tracking`), given the history
    every ``max(1, epochs // TRACKED_EPOCHS)`` epochs and every evaluation's tables.
    """

    def __init__(
        self,
        config: RunConfig,
        dataset: Dataset,
        out: str | Path | None = None,
        *,
        evaluate: Evaluate | None = None,
        progress: bool | Progress = False,
        tracker=None,
    ):
        self.config = config
        self.dataset = dataset
        self.out = Path(out) if out is not None else None
        self.evaluate = evaluate
        self.progress = progress
        self.tracker = tracker
        self.model_keys = config.model_keys()
        self.dtype = getattr(torch, config.dtype)
        self.device = check_device(config.device, self.dtype)
        subsets = muting_generator() if config.muting == "subsets" else None
        inputs, targets = dataset.training_rows(config.patterns, config.muting, subsets)
        # features-first, as the model computes: [columns, rows]
        self.inputs_ff = torch.as_tensor(inputs.T, dtype=self.dtype, device=self.device).contiguous()
        self.targets_ff = torch.as_tensor(targets.T, dtype=self.dtype, device=self.device).contiguous()
        self.n_batches = len(inputs) // config.batch_size
        if self.n_batches < 1:
            raise ConfigError(
                f"--batch-size {config.batch_size} is larger than the {len(inputs)} training rows "
                f"({len(dataset.train)} complete rows × {len(inputs) // len(dataset.train)} "
                f"{'copies (--muting subsets)' if subsets is not None else 'muting patterns'})"
            )
        self.architecture = architecture_preset(config.architecture, dataset.description)
        betas = np.stack(
            [parse_schedule(k.schedule).betas(config.epochs, config.schedule_horizon) for k in self.model_keys]
        )
        # A β the dtype cannot hold can only diverge: refuse it before training starts.
        largest = float(torch.finfo(self.dtype).max)
        for k, key in enumerate(self.model_keys):
            if not np.all(np.isfinite(betas[k])) or np.abs(betas[k]).max() >= largest:
                raise ScheduleError(
                    f"schedule {key.schedule!r}: β reaches {np.abs(betas[k]).max():g}, beyond what "
                    f"--dtype {config.dtype} holds ({largest:g})"
                )
        self.betas = betas  # [models, epochs]
        self.diverged: dict[int, Divergence] = {}
        models = []
        for fusion in config.fusions:
            keys = [k for k in self.model_keys if k.fusion == fusion]
            model = build_model(
                dataset.description, self.architecture, fusion, len(keys), dtype=self.dtype, device=self.device
            )
            model.model_keys = keys
            model.reset_parameters([k.seed for k in keys])
            models.append(model)
        self.shards = self._shards(models, [training_generator(k.seed) for k in self.model_keys])
        self.epoch = 0
        # [epochs, models, HISTORY_VALUES]
        self.history = np.full((config.epochs, len(self.model_keys), len(HISTORY_VALUES)), np.nan)
        self.evaluations: dict[str, list[pd.DataFrame]] = {}
        self._stop_requested = False

    def _shards(self, models: list, generators: list[torch.Generator]) -> Shards:
        workers = default_workers(self.config.workers, self.device.type, len(self.model_keys))
        return Shards(models, generators, self.betas, lr=self.config.lr, workers=workers)

    @property
    def model(self):
        """The whole ensemble in position order, ``model_keys`` set (several fusions as
        :class:`~intermodal.model.group.ModelGroups`)."""
        return self.shards.model

    def close(self) -> None:
        """Stop the worker threads (a run ends, or fails); training again restarts them."""
        self.shards.close()

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ steps
    def train_epoch(self) -> np.ndarray:
        """One epoch for every model (shards in parallel); returns ``[models, 3]`` batch
        means of reconstruction loss, latent loss and weighted loss."""
        return self.shards.train_epoch(
            self.epoch, self.inputs_ff, self.targets_ff, self.n_batches, self.config.batch_size
        )

    def _record_epoch(self, means: np.ndarray) -> None:
        """The epoch's history; models whose loss became non-finite are frozen first."""
        bad = [int(k) for k in np.flatnonzero(~np.isfinite(means).all(1)) if k not in self.shards.frozen]
        if bad:
            self.shards.freeze(bad)
            for k in bad:
                self.diverged[k] = Divergence(self.epoch, self._cause(k))
        self.history[self.epoch, :, 0] = self.betas[:, self.epoch]
        self.history[self.epoch, :, 1:] = means
        self.epoch += 1

    def _cause(self, k: int) -> str:
        """The likely cause of model ``k``'s divergence at this epoch, in words."""
        beta = float(self.betas[k, self.epoch])
        if beta > 1e3:
            return f"its schedule's β is {beta:g} at this epoch; choose a schedule with a smaller β"
        if self.config.lr > 1e-2:
            return f"the learning rate --lr {self.config.lr:g} is large; try a smaller one"
        return (
            f"β is {beta:g} and --lr {self.config.lr:g}; look at its data (values far from the others?), or try "
            "a smaller --lr or --dtype float64"
        )

    def evaluate_now(self) -> None:
        """Call ``evaluate`` on the whole ensemble and keep its tables (diverged models left out)."""
        # The shards are idle now: let the evaluation use every worker's core.
        threads = torch.get_num_threads()
        if self.device.type == "cpu":
            torch.set_num_threads(max(threads, self.shards.n_workers))
        model = self.model
        model.eval()
        assert self.evaluate is not None  # called only for a run that evaluates
        try:
            tables = self.evaluate(model, self.epoch)
        finally:
            torch.set_num_threads(threads)
        for stem, table in tables.items():
            table = label_models(table[~table["model"].isin(list(self.diverged))].copy(), self.model_keys)
            table = table.drop(columns="model")
            table.insert(len(MODEL_KEY_COLUMNS), "epoch", self.epoch)
            self.evaluations.setdefault(stem, []).append(table)
        if self.tracker is not None:
            self.tracker.log_evaluation(self.epoch, {stem: parts[-1] for stem, parts in self.evaluations.items()})

    def _evaluation_due(self) -> bool:
        every = self.config.eval_every
        return (
            self.evaluate is not None and bool(every) and (self.epoch % every == 0 or self.epoch == self.config.epochs)
        )

    def _checkpoint_due(self) -> bool:
        return self.out is not None and (
            self.epoch % self.config.checkpoint_every == 0 or self.epoch == self.config.epochs
        )

    # ------------------------------------------------------------------ the loop
    def run(self) -> Run:
        """Train until ``config.epochs``, evaluating and checkpointing on the way."""
        cfg = self.config
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            runfolder.start_run(self.out, cfg, self.dataset.description)
        threads = torch.get_num_threads()
        if cfg.threads:
            torch.set_num_threads(cfg.threads)  # per worker: torch's pool is process-wide
        previous_handler = self._catch_sigterm()
        report = _progress(self.progress, cfg.epochs, self.epoch, len(self.model_keys))
        track_every = max(1, cfg.epochs // TRACKED_EPOCHS)
        try:
            # Full float32 on every device (no TF32), torch's setting restored after the run.
            with exact_float32():
                if self.out is not None:  # what is in force for this stretch of training
                    runfolder.record_environment(self.out, environment(self.device, self.dtype, self.epoch))
                self._loop(report, track_every)
        finally:
            report.close()
            if previous_handler is not None:
                signal.signal(signal.SIGTERM, previous_handler)
            # The worker threads are joined before torch's process-wide thread count is
            # restored, so that no worker is alive while its pool is resized.
            self.close()
            torch.set_num_threads(threads)
        return self.result()

    def _loop(self, report, track_every: int) -> None:
        cfg = self.config
        if self.evaluate is not None and self.epoch == 0 and not self.evaluations:
            self.evaluate_now()
        while self.epoch < cfg.epochs:
            means = self.train_epoch()
            self._record_epoch(means)
            if self.tracker is not None and (self.epoch % track_every == 0 or self.epoch == cfg.epochs):
                self.tracker.log_history(self.history_frame(self.epoch - 1))
            if self._evaluation_due():
                self.evaluate_now()
            if self._checkpoint_due():
                self.save()
            report(self.epoch, cfg.epochs, means)
            if self._stop_requested:
                self._stop()

    def _catch_sigterm(self):
        """Install the SIGTERM handler for the run (main thread only); returns the one it replaces."""
        if threading.current_thread() is not threading.main_thread():
            return None

        def request_stop(signum, frame):
            self._stop_requested = True

        return signal.signal(signal.SIGTERM, request_stop)

    def _stop(self) -> None:
        if self.out is not None and not self._checkpoint_due():
            self.save()
        where = (
            f"; the checkpoint in {self.out} holds it"
            if self.out is not None
            else " (nothing was saved: no run folder)"
        )
        raise Terminated(f"stopped by SIGTERM after epoch {self.epoch}{where}", run=self.out)

    def result(self) -> Run:
        """The run as it stands, with the ensemble, its data set and tables in memory."""
        tables = {"history": self.history_frame(), **{stem: self.table(stem) for stem in self.evaluations}}
        return Run(
            self.config,
            self.out,
            model_keys=self.model_keys,
            epochs_done=self.epoch,
            diverged=dict(self.diverged),
            description=self.dataset.description,
            model=self.model,
            dataset=self.dataset,
            tables=tables,
        )

    # ------------------------------------------------------------------ continuing
    def restore(
        self,
        checkpoint: Checkpoint,
        history: pd.DataFrame | None = None,
        tables: dict[str, pd.DataFrame] | None = None,
    ) -> None:
        """Continue from ``checkpoint`` (of this trainer's models, in its order): its weights,
        every model's Adam state and generator, the epochs done and the models that
        diverged; ``history`` and ``tables`` (the evaluation tables by stem) are the run's
        tables so far, their rows after the checkpoint's epoch left out. The run then goes
        on exactly as if it had never stopped (docs/reliability.md)."""
        if checkpoint.model_keys != self.model_keys:
            raise CheckpointError(
                f"the checkpoint holds models {checkpoint.model_keys}; this run's are {self.model_keys}"
            )
        if checkpoint.rng_states is None:
            raise CheckpointError("the checkpoint holds no generator states to continue from")
        generators = []
        for state in checkpoint.rng_states:
            generator = torch.Generator()
            generator.set_state(state.clone())
            generators.append(generator)
        model = checkpoint.model
        model.model_keys = self.model_keys
        self.shards.close()
        self.shards = self._shards([g for _, g in groups_of(model)], generators)
        self.shards.load_optimizer_state(checkpoint.optimizer_state)
        self.epoch = checkpoint.epochs_done
        self.diverged = {int(k): Divergence(**v) for k, v in checkpoint.state.get("diverged", {}).items()}
        if self.diverged:
            self.shards.freeze(sorted(self.diverged))
        if history is not None:
            history = history[history["epoch"] < self.epoch]
            position = {k: i for i, k in enumerate(self.model_keys)}
            models = [position[k] for k in runfolder.row_model_keys(history)]
            self.history[history["epoch"].to_numpy(int), models] = history[list(HISTORY_VALUES)].to_numpy()
        for stem, table in (tables or {}).items():
            self.evaluations[stem] = [table[table["epoch"] <= self.epoch]]

    @classmethod
    def from_checkpoint(
        cls,
        run: str | Path,
        dataset: Dataset,
        *,
        config: RunConfig | None = None,
        evaluate: Evaluate | None = None,
        progress: bool | Progress = False,
        device: str | None = None,
    ) -> Trainer:
        """A trainer that continues the run in the folder ``run`` from its last checkpoint
        (falling back to the one before it if the last is damaged), ready to :meth:`run`.
        ``config``: the run's, if already read; ``device``: train on another device than
        the run was started on. A run that stopped before its first checkpoint starts again."""
        run = Path(run)
        config = config or runfolder.read_config(run)
        if device is not None:
            config = config.updated({"device": device})
        trainer = cls(config, dataset, run, evaluate=evaluate, progress=progress)
        if not runfolder.has_checkpoint(run):
            logger.info("%s: stopped before its first checkpoint; starting it again from epoch 0", run)
            return trainer
        checkpoint = runfolder.load_checkpoint(run, device=config.device, fallback=True)
        if checkpoint.model_keys != trainer.model_keys:
            raise CheckpointError(
                f"{runfolder.checkpoint_path(run)} holds models {checkpoint.model_keys}; "
                f"{run / runfolder.CONFIG} names {trainer.model_keys}"
            )
        if checkpoint.rng_states is None:
            raise CheckpointError(f"{runfolder.checkpoint_path(run)} holds no generator states to continue from")
        tables = {stem: runfolder.read_evaluation_table(run, stem) for stem in checkpoint.state.get("tables", [])}
        trainer.restore(checkpoint, runfolder.read_history(run), tables)
        return trainer

    # ------------------------------------------------------------------ output
    def history_frame(self, epoch: int | None = None) -> pd.DataFrame:
        """The history so far, one row per model and epoch, model-major (only ``epoch``'s
        rows when it is given)."""
        first = 0 if epoch is None else epoch
        h = self.history[first : self.epoch if epoch is None else epoch + 1]  # [epochs, models, 4]
        n_epochs, n_models = h.shape[:2]
        frame = pd.DataFrame(key_columns(self.model_keys, n_epochs))
        frame["epoch"] = np.tile(np.arange(first, first + n_epochs, dtype=np.int64), n_models)
        values = h.transpose(1, 0, 2).reshape(-1, len(HISTORY_VALUES))
        for j, name in enumerate(HISTORY_VALUES):
            frame[name] = values[:, j]
        diverged = np.zeros((n_models, n_epochs), dtype=bool)
        for k, what in self.diverged.items():
            diverged[k, max(what.epoch - first, 0) :] = True
        frame["diverged"] = diverged.reshape(-1)
        return frame

    def table(self, stem: str) -> pd.DataFrame:
        parts = self.evaluations.get(stem, [])
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    def save(self) -> None:
        """Write history, evaluation tables and the checkpoint, each atomically."""
        assert self.out is not None  # called only for a run with a folder
        runfolder.save_tables(self.out, self.history_frame(), {stem: self.table(stem) for stem in self.evaluations})
        state = {
            "epochs_done": self.epoch,
            "model_keys": self.model_keys,
            "config": self.config.to_dict(),
            "tables": sorted(self.evaluations),
            "diverged": {str(k): d._asdict() for k, d in sorted(self.diverged.items())},
        }
        rng_states = torch.stack([g.get_state() for g in self.shards.generators()])
        runfolder.save_checkpoint(self.out, self.model, self.shards.optimizer_state(), rng_states, state)


# --------------------------------------------------------------------------- progress
def progress_interval(stream) -> float:
    """Seconds between progress updates: twice a second on a terminal, once a minute into
    a log file, where every update is kept (a paper study runs for a day)."""
    return 0.5 if stream.isatty() else 60.0


class _NoProgress:
    def __call__(self, done: int, total: int, means: np.ndarray) -> None:
        pass

    def close(self) -> None:
        pass


class _Callback(_NoProgress):
    def __init__(self, callback: Progress):
        self.callback = callback

    def __call__(self, done, total, means) -> None:
        self.callback(done, total, means)


class _Bar(_NoProgress):
    """A tqdm bar on stderr, its loss means refreshed every :func:`progress_interval`."""

    def __init__(self, total: int, done: int, n_models: int):
        from tqdm.auto import tqdm

        self.interval = progress_interval(sys.stderr)
        self.last_shown = 0.0
        self.bar = tqdm(
            total=total,
            initial=done,
            unit="epoch",
            desc=f"training {n_models} model{'s' * (n_models != 1)}",
            mininterval=self.interval,
            maxinterval=max(self.interval, 10.0),
            dynamic_ncols=True,
        )

    def __call__(self, done, total, means) -> None:
        self.bar.update(done - self.bar.n)
        now = time.monotonic()
        if (now - self.last_shown > self.interval or done == total) and np.isfinite(means).any():
            self.last_shown = now
            self.bar.set_postfix(
                recon=f"{np.nanmean(means[:, 0]):.3f}",
                latent=f"{np.nanmean(means[:, 1]):.3f}",
                loss=f"{np.nanmean(means[:, 2]):.3f}",
                refresh=False,
            )

    def close(self) -> None:
        self.bar.close()


def _progress(progress: bool | Progress, total: int, done: int, n_models: int) -> _NoProgress:
    if callable(progress):
        return _Callback(progress)
    return _Bar(total, done, n_models) if progress else _NoProgress()
