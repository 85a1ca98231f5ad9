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
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
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


class _Shard:
    """A contiguous block of the run's models with its own ensemble, Adam and generators.

    Shards train in parallel threads, one core each: these layers are too small to split
    one product across cores, but independent models split perfectly.
    """

    def __init__(self, model: MultimodalVAE, betas: torch.Tensor, generators: list[torch.Generator], lr: float):
        self.model, self.betas, self.generators = model, betas, generators
        # Adam's update is elementwise, so one optimiser over stacked parameters is exactly
        # one Adam per model. The fused form makes one pass over each parameter, its
        # gradient and moments (foreach: several): 4-14 % faster here, and with it small
        # shards pay (MODELS_PER_CPU_SHARD). torch has it on both devices a config allows.
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=True)

    def train_epoch(self, epoch: int, inputs_t: torch.Tensor, targets_t: torch.Tensor, n_batches: int, batch_size: int):
        """One epoch on the training rows given features-first (``[columns, rows]``);
        returns ``[models, 3]`` batch means of reconstruction loss, latent loss and weighted
        loss (on the device)."""
        model, opt = self.model, self.optimizer
        n = n_batches * batch_size
        # Each model's shuffle and ε come from its own generator, in a fixed order, so they
        # do not depend on which shard or group the model is in.
        dtype, device = inputs_t.dtype, inputs_t.device
        perms = torch.stack([torch.randperm(inputs_t.shape[1], generator=g)[:n] for g in self.generators])
        eps = torch.stack([torch.randn(n, model.latent_size, generator=g, dtype=dtype) for g in self.generators])
        perms = perms.to(device).view(model.n_models, n_batches, batch_size)
        # The model computes features-first ([models, features, rows]); one copy an epoch.
        eps = eps.to(device).view(model.n_models, n_batches, batch_size, -1).permute(1, 0, 3, 2).contiguous()
        beta = self.betas[:, epoch]
        sums = torch.zeros(model.n_models, 3, dtype=dtype, device=device)
        for b in range(n_batches):
            # Gathering rows of [columns, rows] gives [columns, models, batch]; index_select
            # with flat indices is 4-5x faster here than indexing with the 2-D idx.
            shape = (-1, model.n_models, batch_size)
            idx = perms[:, b].reshape(-1)
            x = inputs_t.index_select(1, idx).view(shape).transpose(0, 1)
            y = targets_t.index_select(1, idx).view(shape).transpose(0, 1)
            recon, latent = model.training_losses(x, y, eps[b])
            recon, latent = recon.mean(1), latent.mean(1)
            loss = recon + beta * latent
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()  # summed over models: each model keeps its own gradient
            opt.step()
            sums += torch.stack([recon, latent, loss], 1).detach()
        return sums / n_batches

    def optimizer_state(self) -> dict[str, torch.Tensor]:
        names = {id(p): n for n, p in self.model.named_parameters()}
        return {f"{k}.{names[id(p)]}": torch.as_tensor(v) for p, st in self.optimizer.state.items() for k, v in st.items()}

    def load_optimizer_state(self, tensors: dict[str, torch.Tensor]) -> None:
        for n, p in self.model.named_parameters():
            entry = {k.split(".", 1)[0]: v for k, v in tensors.items() if k.split(".", 1)[1] == n}
            if "step" in entry:
                entry["step"] = entry["step"].to(p.device)  # the fused Adam keeps its count there
            if entry:
                self.optimizer.state[p] = entry


# The largest shard on a CPU. Measured on 2 cores with the fused Adam (model-epochs/s,
# 80 models / 20 models): shards of at most 4 models 62.6 / 67.8, 5: 68.7 / 69.5-72.0,
# 6: 68.2 / 70.3, 8: 66.8 / 70.8, 16: 64.0-65.2 / 68.7-68.9. Larger shards outgrow the cache;
# smaller ones pay Python's overhead per step more often.
MODELS_PER_CPU_SHARD = 6


def default_workers(config: RunConfig, n_models: int) -> int:
    """One worker thread per usable core (CPU), one on a GPU; never more than models."""
    if config.workers is not None:
        return max(1, min(config.workers, n_models))
    if config.device != "cpu":
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, n_models))


class Trainer:
    """Train the ensemble a config describes on a data set; see the module docstring.

    ``out``: run folder (None = keep nothing on disk). ``evaluate`` is called at epoch 0
    and every ``config.eval_every`` epochs (and at the end) with the whole ensemble and the
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
            torch.set_num_threads(config.threads)  # per worker: torch's pool is process-wide
        inputs, targets = dataset.training_rows(config.patterns)
        # features-first, as the model computes: [columns, rows]
        self.inputs_t = torch.as_tensor(inputs.T, dtype=self.dtype, device=self.device).contiguous()
        self.targets_t = torch.as_tensor(targets.T, dtype=self.dtype, device=self.device).contiguous()
        self.n_batches = len(inputs) // config.batch_size
        if self.n_batches < 1:
            raise ValueError(
                f"--batch-size {config.batch_size} is larger than the {len(inputs)} training rows "
                f"({len(dataset.train)} complete rows × {len(inputs) // len(dataset.train)} muting patterns)"
            )
        self.architecture = architecture_preset(config.architecture, dataset.description)
        betas = np.stack([parse_schedule(s).betas(config.epochs, config.schedule_horizon) for s, _ in self.keys])
        self._betas_host = betas  # [models, epochs]
        model = MultimodalVAE(dataset.description, self.architecture, len(self.keys), dtype=self.dtype, device=self.device)
        model.reset_parameters([seed for _, seed in self.keys])
        self._build_shards(model, [data_generator(seed) for _, seed in self.keys])
        self.epoch = 0
        self.tables = _Tables(np.full((config.epochs, len(self.keys), 4), np.nan), {})

    def _build_shards(self, model: MultimodalVAE, generators: list[torch.Generator]) -> None:
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown()  # rebuilt on resume: the fresh model's shards are replaced
        n_workers = default_workers(self.config, len(self.keys))
        n_shards = n_workers
        if self.device.type == "cpu":
            # Small shards keep a step's activations in the cache; each worker thread trains
            # its shards one after the other.
            n_shards = max(n_workers, -(-len(self.keys) // MODELS_PER_CPU_SHARD))
            n_shards = -(-n_shards // n_workers) * n_workers  # the same number for every worker
        n_shards = min(n_shards, len(self.keys))
        bounds = np.linspace(0, len(self.keys), n_shards + 1).round().astype(int)
        betas = torch.as_tensor(self._betas_host, dtype=self.dtype, device=self.device)
        self.shards = [
            _Shard(model.select(list(range(a, b))), betas[a:b], generators[a:b], self.config.lr)
            for a, b in zip(bounds, bounds[1:])
        ]
        self._pool = ThreadPoolExecutor(n_workers) if n_workers > 1 else None
        self.n_workers = n_workers

    @property
    def model(self) -> MultimodalVAE:
        """The whole ensemble (a copy when it trains in several shards)."""
        if len(self.shards) == 1:
            return self.shards[0].model
        return MultimodalVAE.concatenate([s.model for s in self.shards])

    # ------------------------------------------------------------------ resume
    @classmethod
    def resume(cls, run: str | Path, dataset: Dataset, *, config: RunConfig | None = None,
               evaluate: Evaluate | None = None, progress: bool = True, device: str | None = None) -> "Trainer":
        """Continue a run from its last checkpoint: weights, Adam state, every model's
        generator and the tables written so far. ``config``: the run's, if already read."""
        run = Path(run)
        config = config or RunConfig.from_run(run)
        if device is not None:
            config.device = device
        trainer = cls(config, dataset, run, evaluate=evaluate, progress=progress)
        if not any((run / name / "state.json").exists() for name in ("checkpoint", "checkpoint.old")):
            print(f"{run}: stopped before its first checkpoint; starting it again from epoch 0", flush=True)
            return trainer
        model, state, optimizer_state, rng_states = load_checkpoint(run / "checkpoint", device=config.device)
        if [tuple(k) for k in state["models"]] != trainer.keys:
            raise ValueError(f"{run}/checkpoint holds models {state['models']}; config.json names {trainer.keys}")
        generators = []
        for s in rng_states:
            g = torch.Generator()
            g.set_state(s.clone())
            generators.append(g)
        trainer._build_shards(model, generators)
        start = 0
        for shard in trainer.shards:
            stop = start + shard.model.n_models
            # Copies, not views: Adam updates its state in place, and the step count is one
            # tensor per parameter that each shard must own.
            part = {k: (v if k.startswith("step.") else v[start:stop]).clone() for k, v in optimizer_state.items()}
            shard.load_optimizer_state(part)
            start = stop
        trainer.epoch = int(state["epochs_done"])
        history = pd.read_parquet(run / "history.parquet")
        trainer._restore_history(history[history["epoch"] < trainer.epoch])
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
    def train_epoch(self) -> np.ndarray:
        """One epoch for every model (shards in parallel); returns ``[models, 3]`` batch
        means of reconstruction loss, latent loss and weighted loss."""
        args = (self.epoch, self.inputs_t, self.targets_t, self.n_batches, self.config.batch_size)
        if self._pool is None:
            parts = [shard.train_epoch(*args) for shard in self.shards]
        else:
            parts = list(self._pool.map(lambda shard: shard.train_epoch(*args), self.shards))
        return torch.cat(parts).cpu().numpy()

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
        interval = progress_interval(sys.stderr)
        bar = _progress_bar(cfg.epochs, self.epoch, len(self.keys), interval, enabled=self.progress)
        last_shown = 0.0
        try:
            while self.epoch < cfg.epochs:
                means = self.train_epoch()
                if not np.isfinite(means).all():
                    k = int(np.flatnonzero(~np.isfinite(means).all(1))[0])
                    raise FloatingPointError(
                        f"model {self.keys[k]} (schedule, seed) has a non-finite loss at epoch {self.epoch}; "
                        f"try a smaller --lr (now {cfg.lr:g}) or --dtype float64"
                    )
                self.tables.history[self.epoch, :, 0] = self._betas_host[:, self.epoch]
                self.tables.history[self.epoch, :, 1:] = means
                self.epoch += 1
                if self.evaluate is not None and cfg.eval_every and (self.epoch % cfg.eval_every == 0 or self.epoch == cfg.epochs):
                    self._run_evaluation()
                if self.out is not None and (self.epoch % cfg.checkpoint_every == 0 or self.epoch == cfg.epochs):
                    self.save()
                if bar is not None:
                    bar.update(1)
                    now = time.monotonic()
                    if now - last_shown > interval or self.epoch == cfg.epochs:
                        last_shown = now
                        bar.set_postfix(recon=f"{means[:, 0].mean():.3f}", latent=f"{means[:, 1].mean():.3f}",
                                        loss=f"{means[:, 2].mean():.3f}", refresh=False)
        finally:
            if bar is not None:
                bar.close()
        return self

    def _run_evaluation(self) -> None:
        # The shards are idle now: let the evaluation use every worker's core.
        threads = torch.get_num_threads()
        if self.device.type == "cpu":
            torch.set_num_threads(max(threads, self.n_workers))
        model = self.model
        model.eval()
        try:
            tables = self.evaluate(model, self.epoch)
        finally:
            torch.set_num_threads(threads)
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
        parts = [s.optimizer_state() for s in self.shards]
        optimizer_state = {k: (torch.cat([p[k] for p in parts]) if not k.startswith("step.") else parts[0][k])
                           for k in parts[0]} if parts[0] else None
        rng_states = torch.stack([g.get_state() for s in self.shards for g in s.generators])
        save_checkpoint(out / "checkpoint", self.model, optimizer_state, rng_states, state)


def progress_interval(stream) -> float:
    """Seconds between progress updates: twice a second on a terminal, once a minute into
    a log file, where every update is kept (a paper study runs for a day)."""
    return 0.5 if stream.isatty() else 60.0


def _progress_bar(total: int, done: int, n_models: int, interval: float, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, unit="epoch", desc=f"training {n_models} model{'s' * (n_models != 1)}",
                mininterval=interval, maxinterval=max(interval, 10.0), dynamic_ncols=True)
