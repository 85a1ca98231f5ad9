"""Training: every (schedule, seed) model of a run in one batched computation.

Model ``k`` of a run is ``(schedules[k // n_seeds], seeds[k % n_seeds])``. Its
initialisation, its shuffling and its ε come from its seed alone (never from its position
or the group), and its loss is summed, not averaged, with the others', so each model gets
exactly the gradient it would get alone: a model trained in a group of 20 has the history
it has trained alone, to float tolerance.

Outputs in the run folder: ``config.json``, ``history.parquet`` (one row per schedule,
seed, epoch: ``beta, reconstruction_loss, latent_loss, loss``, each the mean over the
epoch's batches), ``checkpoint/`` (see :mod:`intermodal.checkpoint`) and, when an
``evaluate`` function is given, ``results.parquet`` and ``diagnostics.parquet``.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from .checkpoint import load_checkpoint, save_checkpoint
from .config import RunConfig
from .data import Dataset, atomic_write
from .model import MultimodalVAE, architecture_preset
from .schedules import parse_schedule

__all__ = ["Trainer", "model_keys", "data_generator", "HISTORY_COLUMNS"]

HISTORY_COLUMNS = ["schedule", "seed", "epoch", "beta", "reconstruction_loss", "latent_loss", "loss"]

# An evaluation function: (model ensemble, epochs trained) -> tables keyed by file stem,
# each with a column "model" (position in the ensemble).
Evaluate = Callable[[MultimodalVAE, int], dict[str, pd.DataFrame]]


def model_keys(config: RunConfig) -> list[tuple[str, int]]:
    """(schedule, seed) of each model position, schedule-major."""
    return [(s, seed) for s in config.schedules for seed in config.seeds]


def data_generator(seed: int) -> torch.Generator:
    """The generator that shuffles model ``seed``'s batches and draws its ε; a stream
    distinct from the one that initialises its weights."""
    state = np.random.SeedSequence([int(seed), 1]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & ((1 << 63) - 1))


@dataclass
class _Tables:
    """Rows accumulated during a run, written out at each checkpoint."""

    history: np.ndarray  # [epochs, models, 4]: beta, recon, latent, loss
    evaluations: dict[str, list[pd.DataFrame]]


class Trainer:
    """Train the ensemble a config describes on a data set; see the module docstring.

    ``out``: run folder (None = keep nothing on disk). ``evaluate`` is called at epoch 0
    and every ``config.eval_every`` epochs (and at the end) with the ensemble and the
    number of epochs trained.
    """

    def __init__(self, config: RunConfig, dataset: Dataset, out: str | Path | None = None, *,
                 evaluate: Evaluate | None = None, progress: bool = True):
        self.config = config.validate()
        self.dataset = dataset
        self.out = Path(out) if out is not None else None
        self.evaluate = evaluate
        self.progress = progress
        self.keys = model_keys(config)
        self.dtype = getattr(torch, config.dtype)
        self.device = torch.device(config.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA device is available to torch on this machine; use --device cpu")
        if config.threads:
            torch.set_num_threads(config.threads)
        desc = dataset.description
        inputs, targets = dataset.training_rows(config.patterns)
        self.inputs = torch.as_tensor(inputs, dtype=self.dtype, device=self.device)
        self.targets = torch.as_tensor(targets, dtype=self.dtype, device=self.device)
        self.n_batches = len(inputs) // config.batch_size
        if self.n_batches < 1:
            raise ValueError(
                f"--batch-size {config.batch_size} is larger than the {len(inputs)} training rows "
                f"({len(dataset.train)} complete rows × {len(inputs) // len(dataset.train)} muting patterns)"
            )
        self.architecture = architecture_preset(config.architecture, desc)
        self.model = MultimodalVAE(desc, self.architecture, len(self.keys), dtype=self.dtype, device=self.device)
        horizon = config.schedule_horizon
        betas = np.stack([parse_schedule(s).betas(config.epochs, horizon) for s, _ in self.keys])
        self.betas = torch.as_tensor(betas, dtype=self.dtype, device=self.device)  # [models, epochs]
        self._betas_host = betas
        self.optimizer = self._make_optimizer(self.model.parameters())
        self.model.reset_parameters([seed for _, seed in self.keys])
        self.generators = [data_generator(seed) for _, seed in self.keys]
        self.epoch = 0
        self.tables = _Tables(np.full((config.epochs, len(self.keys), 4), np.nan), {})

    def _make_optimizer(self, params):
        # Adam's update is elementwise, so one optimiser over stacked parameters is exactly
        # one Adam per model.
        return torch.optim.Adam(params, lr=self.config.lr, foreach=True)

    # ------------------------------------------------------------------ resume
    @classmethod
    def resume(cls, run: str | Path, dataset: Dataset, *, evaluate: Evaluate | None = None,
               progress: bool = True, device: str | None = None) -> "Trainer":
        """Continue a run from its last checkpoint: weights, Adam state, every model's
        generator and the tables written so far."""
        run = Path(run)
        config = RunConfig.from_dict(json.loads((run / "config.json").read_text()), origin=str(run / "config.json"))
        if device is not None:
            config.device = device
        trainer = cls(config, dataset, run, evaluate=evaluate, progress=progress)
        model, state, optimizer, generators = load_checkpoint(run / "checkpoint", device=config.device,
                                                              optimizer_factory=trainer._make_optimizer)
        if [tuple(k) for k in state["models"]] != trainer.keys:
            raise ValueError(f"{run}/checkpoint holds models {state['models']}; config.json names {trainer.keys}")
        trainer.model, trainer.optimizer, trainer.generators = model, optimizer, generators
        trainer.epoch = int(state["epochs_done"])
        history = pd.read_parquet(run / "history.parquet")
        history = history[history["epoch"] < trainer.epoch]
        trainer._restore_history(history)
        for stem in state.get("tables", []):
            table = pd.read_parquet(run / f"{stem}.parquet")
            trainer.tables.evaluations[stem] = [table[table["epoch"] <= trainer.epoch]]
        return trainer

    def _restore_history(self, history: pd.DataFrame) -> None:
        position = {k: i for i, k in enumerate(self.keys)}
        idx = np.array([position[(s, int(seed))] for s, seed in zip(history["schedule"], history["seed"])], dtype=int)
        values = history[["beta", "reconstruction_loss", "latent_loss", "loss"]].to_numpy()
        self.tables.history[history["epoch"].to_numpy(int), idx] = values

    # ------------------------------------------------------------------ training
    def _epoch_batches(self):
        """Per model, this epoch's shuffled row indices and ε, drawn from its generator."""
        n = self.n_batches * self.config.batch_size
        rows = len(self.inputs)
        perms = torch.stack([torch.randperm(rows, generator=g)[:n] for g in self.generators])
        eps = torch.stack([
            torch.randn(n, self.model.latent_size, generator=g, dtype=self.dtype) for g in self.generators
        ])
        shape = (len(self.keys), self.n_batches, self.config.batch_size)
        return perms.to(self.device).view(shape), eps.to(self.device).view(*shape, -1)

    def train_epoch(self) -> torch.Tensor:
        """One epoch for every model; returns ``[models, 3]`` batch means of
        reconstruction loss, latent loss and weighted loss (on the device)."""
        model, opt = self.model, self.optimizer
        perms, eps = self._epoch_batches()
        beta = self.betas[:, self.epoch]
        sums = torch.zeros(len(self.keys), 3, dtype=self.dtype, device=self.device)
        for b in range(self.n_batches):
            idx = perms[:, b]
            x, y = self.inputs[idx], self.targets[idx]
            out_mean, out_logvar, z_mean, z_logvar = model(x, eps[:, b])
            recon, latent = model.losses(y, out_mean, out_logvar, z_mean, z_logvar)
            recon, latent = recon.mean(1), latent.mean(1)
            loss = recon + beta * latent
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()  # summed over models: each model keeps its own gradient
            opt.step()
            sums += torch.stack([recon, latent, loss], 1).detach()
        return sums / self.n_batches

    def run(self) -> "Trainer":
        """Train until ``config.epochs``, evaluating and checkpointing on the way."""
        cfg = self.config
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write(self.out / "config.json", lambda p: Path(p).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n"))
            atomic_write(self.out / "description.json",
                         lambda p: Path(p).write_text(json.dumps(self.dataset.description.to_dict(), indent=2) + "\n"))
        if self.evaluate is not None and self.epoch == 0 and not self.tables.evaluations:
            self._run_evaluation()
        bar = _progress_bar(cfg.epochs, self.epoch, len(self.keys), enabled=self.progress)
        last_shown = 0.0
        try:
            while self.epoch < cfg.epochs:
                means = self.train_epoch()
                self.tables.history[self.epoch, :, 0] = self._betas_host[:, self.epoch]
                self.tables.history[self.epoch, :, 1:] = means.cpu().numpy()
                self.epoch += 1
                if self.evaluate is not None and cfg.eval_every and (self.epoch % cfg.eval_every == 0 or self.epoch == cfg.epochs):
                    self._run_evaluation()
                if self.out is not None and (self.epoch % cfg.checkpoint_every == 0 or self.epoch == cfg.epochs):
                    self.save()
                if bar is not None:
                    bar.update(1)
                    now = time.monotonic()
                    if now - last_shown > 0.5 or self.epoch == cfg.epochs:
                        last_shown = now
                        h = self.tables.history[self.epoch - 1]
                        bar.set_postfix(recon=f"{np.mean(h[:, 1]):.3f}", latent=f"{np.mean(h[:, 2]):.3f}",
                                        loss=f"{np.mean(h[:, 3]):.3f}", refresh=False)
        finally:
            if bar is not None:
                bar.close()
        return self

    def _run_evaluation(self) -> None:
        self.model.eval()
        tables = self.evaluate(self.model, self.epoch)
        self.model.train()
        for stem, table in tables.items():
            table = table.copy()
            keys = [self.keys[i] for i in table.pop("model")]
            table.insert(0, "epoch", self.epoch)
            table.insert(0, "seed", [k[1] for k in keys])
            table.insert(0, "schedule", [k[0] for k in keys])
            self.tables.evaluations.setdefault(stem, []).append(table)

    # ------------------------------------------------------------------ output
    def history_frame(self) -> pd.DataFrame:
        """The history so far, one row per (schedule, seed, epoch) in that order."""
        h = self.tables.history[: self.epoch]  # [epochs, models, 4]
        n_epochs, n_models = h.shape[:2]
        frame = pd.DataFrame({
            "schedule": np.repeat([k[0] for k in self.keys], n_epochs),
            "seed": np.repeat(np.array([k[1] for k in self.keys], dtype=np.int64), n_epochs),
            "epoch": np.tile(np.arange(n_epochs, dtype=np.int64), n_models),
        })
        values = h.transpose(1, 0, 2).reshape(-1, 4)
        for j, name in enumerate(HISTORY_COLUMNS[3:]):
            frame[name] = values[:, j]
        return frame

    def table(self, stem: str) -> pd.DataFrame:
        parts = self.tables.evaluations.get(stem, [])
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    def save(self) -> None:
        """Write history, evaluation tables and the checkpoint, each atomically."""
        out = self.out
        atomic_write(out / "history.parquet", lambda p: self.history_frame().to_parquet(p, index=False))
        for stem in self.tables.evaluations:
            table = self.table(stem)
            atomic_write(out / f"{stem}.parquet", lambda p, t=table: t.to_parquet(p, index=False))
        state = {
            "epochs_done": self.epoch,
            "models": [list(k) for k in self.keys],
            "config": self.config.to_dict(),
            "tables": sorted(self.tables.evaluations),
        }
        save_checkpoint(out / "checkpoint", self.model, self.optimizer, self.generators, state)


def _progress_bar(total: int, done: int, n_models: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, unit="epoch", desc=f"training {n_models} model{'s' * (n_models != 1)}",
                mininterval=0.5, dynamic_ncols=True)
