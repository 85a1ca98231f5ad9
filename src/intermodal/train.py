"""Training: every (schedule, seed) model of a run in one batched computation.

Model ``k`` of a run is ``config.model_keys()[k]`` (schedule-major). Its initialisation,
its shuffling and its ε come from its seed alone (never from its position or the group),
and its loss is summed, not averaged, with the others', so each model gets exactly the
gradient it would get alone: a model trained in a group of 20 has the history it has
trained alone, to float tolerance (docs/method.md §3).

What it writes goes through :mod:`intermodal.runfolder`: the config, the history (each
epoch's batch means), the evaluation tables an ``evaluate`` function returns, and the
checkpoint (:mod:`intermodal.checkpoint`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import runfolder
from .checkpoint import load_checkpoint, save_checkpoint
from .config import RunConfig
from .data import Dataset
from .model import MultimodalVAE, architecture_preset, seeded_generator
from .runfolder import HISTORY_COLUMNS
from .schedules import ScheduleError, parse_schedule

__all__ = ["Trainer", "data_generator", "progress_interval"]

# An evaluation function: (model ensemble, epochs trained) -> tables keyed by file stem,
# each with a column "model" (position in the ensemble).
Evaluate = Callable[[MultimodalVAE, int], dict[str, pd.DataFrame]]


def data_generator(seed: int) -> torch.Generator:
    """The generator that shuffles model ``seed``'s batches and draws its ε; a stream
    distinct from the one that initialises its weights."""
    return seeded_generator(seed, 1)


@dataclass
class _Tables:
    """Rows accumulated during a run, written out at each checkpoint."""

    history: np.ndarray  # [epochs, models, 4]: beta, recon, latent, loss
    evaluations: dict[str, list[pd.DataFrame]]


class _Shard:
    """Some of the run's models (``positions`` in the run) with their own ensemble, Adam
    and generators.

    Shards train in parallel threads, one core each: these layers are too small to split
    one product across cores, but independent models split perfectly.
    """

    def __init__(
        self,
        positions: list[int],
        model: MultimodalVAE,
        betas: torch.Tensor,
        generators: list[torch.Generator],
        lr: float,
    ):
        self.positions, self.model, self.betas, self.generators = positions, model, betas, generators
        self.snapshot: dict[str, torch.Tensor] | None = None
        # Adam's update is elementwise, so one optimiser over stacked parameters is exactly
        # one Adam per model. The fused form makes one pass over each parameter, its
        # gradient and moments (docs/performance.md); torch has it on both devices a
        # config allows.
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=True)

    def train_epoch(
        self, epoch: int, inputs_ff: torch.Tensor, targets_ff: torch.Tensor, n_batches: int, batch_size: int
    ):
        """One epoch on the training rows given features-first (``[columns, rows]``);
        returns ``[models, 3]`` batch means of reconstruction loss, latent loss and weighted
        loss (on the device)."""
        model, opt = self.model, self.optimizer
        # The parameters as they were before this epoch: what a model that diverges in it
        # is frozen at.
        self.snapshot = {n: p.detach().clone() for n, p in model.named_parameters()}
        n = n_batches * batch_size
        # Each model's shuffle and ε come from its own generator, in a fixed order, so they
        # do not depend on which shard or group the model is in.
        dtype, device = inputs_ff.dtype, inputs_ff.device
        perms = torch.stack([torch.randperm(inputs_ff.shape[1], generator=g)[:n] for g in self.generators])
        eps = torch.stack([torch.randn(n, model.latent_size, generator=g, dtype=dtype) for g in self.generators])
        perms = perms.to(device).view(model.n_models, n_batches, batch_size)
        # The model computes features-first ([models, features, rows]); one copy an epoch.
        eps = eps.to(device).view(model.n_models, n_batches, batch_size, -1).permute(1, 0, 3, 2).contiguous()
        beta = self.betas[:, epoch]
        sums = torch.zeros(model.n_models, 3, dtype=dtype, device=device)
        for b in range(n_batches):
            # Gathering rows of [columns, rows] gives [columns, models, batch]; index_select
            # with flat indices is much faster than indexing with the 2-D idx.
            shape = (-1, model.n_models, batch_size)
            idx = perms[:, b].reshape(-1)
            x = inputs_ff.index_select(1, idx).view(shape).transpose(0, 1)
            y = targets_ff.index_select(1, idx).view(shape).transpose(0, 1)
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
        return {
            f"{k}.{names[id(p)]}": torch.as_tensor(v) for p, st in self.optimizer.state.items() for k, v in st.items()
        }

    def without(self, local: list[int], lr: float) -> _Shard | None:
        """This shard less the models at ``local`` positions (None if none is left); the
        others keep their parameters, Adam state and generators exactly."""
        keep = [j for j in range(self.model.n_models) if j not in local]
        if not keep:
            return None
        state = self.optimizer_state()
        shard = _Shard(
            [self.positions[j] for j in keep],
            self.model.select(keep),
            self.betas[keep],
            [self.generators[j] for j in keep],
            lr,
        )
        index = torch.as_tensor(keep, device=self.betas.device)
        shard.load_optimizer_state(
            {k: v.clone() if k.startswith("step.") else v.index_select(0, index) for k, v in state.items()}
        )
        return shard

    def frozen_model(self, j: int) -> MultimodalVAE:
        """Model ``j`` as it was before the last epoch (from the snapshot)."""
        frozen = self.model.select([j])
        if self.snapshot is not None:
            with torch.no_grad():
                for n, p in frozen.named_parameters():
                    p.copy_(self.snapshot[n][j : j + 1])
        return frozen

    def load_optimizer_state(self, tensors: dict[str, torch.Tensor]) -> None:
        for n, p in self.model.named_parameters():
            entry = {k.split(".", 1)[0]: v for k, v in tensors.items() if k.split(".", 1)[1] == n}
            if "step" in entry:
                entry["step"] = entry["step"].to(p.device)  # the fused Adam keeps its count there
            if entry:
                self.optimizer.state[p] = entry


# The largest shard on a CPU: larger shards outgrow the cache, smaller ones pay Python's
# overhead per step more often (measurements in docs/performance.md).
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

    def __init__(
        self,
        config: RunConfig,
        dataset: Dataset,
        out: str | Path | None = None,
        *,
        evaluate: Evaluate | None = None,
        progress: bool = True,
    ):
        self.config = config
        self.dataset = dataset
        self.out = Path(out) if out is not None else None
        self.evaluate = evaluate
        self.progress = progress
        self.keys = config.model_keys()
        self.dtype = getattr(torch, config.dtype)
        self.device = torch.device(config.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA device is available to torch on this machine; use --device cpu")
        if config.threads:
            torch.set_num_threads(config.threads)  # per worker: torch's pool is process-wide
        inputs, targets = dataset.training_rows(config.patterns)
        # features-first, as the model computes: [columns, rows]
        self.inputs_ff = torch.as_tensor(inputs.T, dtype=self.dtype, device=self.device).contiguous()
        self.targets_ff = torch.as_tensor(targets.T, dtype=self.dtype, device=self.device).contiguous()
        self.n_batches = len(inputs) // config.batch_size
        if self.n_batches < 1:
            raise ValueError(
                f"--batch-size {config.batch_size} is larger than the {len(inputs)} training rows "
                f"({len(dataset.train)} complete rows × {len(inputs) // len(dataset.train)} muting patterns)"
            )
        self.architecture = architecture_preset(config.architecture, dataset.description)
        betas = np.stack([parse_schedule(s).betas(config.epochs, config.schedule_horizon) for s, _ in self.keys])
        # A β the dtype cannot hold can only diverge: refuse it before training starts.
        largest = float(torch.finfo(self.dtype).max)
        for k, (schedule, _) in enumerate(self.keys):
            if not np.all(np.isfinite(betas[k])) or np.abs(betas[k]).max() >= largest:
                raise ScheduleError(
                    f"schedule {schedule!r}: β reaches {np.abs(betas[k]).max():g}, beyond what "
                    f"--dtype {config.dtype} holds ({largest:g})"
                )
        self._betas_host = betas  # [models, epochs]
        self.diverged: dict[int, dict] = {}  # position -> {"epoch", "cause"}
        model = MultimodalVAE(
            dataset.description, self.architecture, len(self.keys), dtype=self.dtype, device=self.device
        )
        model.reset_parameters([seed for _, seed in self.keys])
        self._build_shards(model, [data_generator(seed) for _, seed in self.keys])
        self.epoch = 0
        self.tables = _Tables(np.full((config.epochs, len(self.keys), 4), np.nan), {})

    def _build_shards(self, model: MultimodalVAE, generators: list[torch.Generator]) -> None:
        self.close()  # rebuilt on resume: the fresh model's shards and their workers are replaced
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
            _Shard(list(range(a, b)), model.select(list(range(a, b))), betas[a:b], generators[a:b], self.config.lr)
            for a, b in zip(bounds, bounds[1:])
        ]
        self.frozen: dict[int, MultimodalVAE] = {}  # diverged models by position, no longer trained
        self._frozen_generators: dict[int, torch.Generator] = {}
        self._pool = None  # started on the first epoch (see _workers)
        self.n_workers = n_workers

    def close(self) -> None:
        """Stop the worker threads (a run ends, or fails); training again restarts them."""
        pool, self._pool = getattr(self, "_pool", None), None
        if pool is not None:
            pool.shutdown()

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _workers(self) -> ThreadPoolExecutor | None:
        if self._pool is None and self.n_workers > 1:
            self._pool = ThreadPoolExecutor(self.n_workers)
        return self._pool

    @property
    def model(self) -> MultimodalVAE:
        """The whole ensemble in position order (a copy when it trains in several shards or
        has frozen models)."""
        if len(self.shards) == 1 and not self.frozen:
            return self.shards[0].model
        pieces = [(s.positions, s.model) for s in self.shards] + [([k], m) for k, m in self.frozen.items()]
        positions = [k for ps, _ in pieces for k in ps]
        whole = MultimodalVAE.concatenate([m for _, m in pieces])
        if positions == sorted(positions):
            return whole
        return whole.select([int(i) for i in np.argsort(positions)])

    def _generators(self) -> list[torch.Generator]:
        """Every model's generator, in position order."""
        by_position = dict(self._frozen_generators)
        for shard in self.shards:
            by_position.update(zip(shard.positions, shard.generators))
        return [by_position[k] for k in range(len(self.keys))]

    def _freeze(self, diverged: dict[int, str]) -> None:
        """Stop training the models at these positions (position -> cause): each keeps the
        parameters it had before the epoch its loss became non-finite, and leaves its shard,
        so that the other models train on exactly as they would without it."""
        shards = []
        for shard in self.shards:
            local = [j for j, k in enumerate(shard.positions) if k in diverged]
            for j in local:
                k = shard.positions[j]
                self.frozen[k] = shard.frozen_model(j)
                self._frozen_generators[k] = shard.generators[j]
            rest = shard.without(local, self.config.lr) if local else shard
            if rest is not None:
                shards.append(rest)
        self.shards = shards
        for k, cause in diverged.items():
            self.diverged[k] = {"epoch": self.epoch, "cause": cause}

    def divergence_lines(self) -> list[str]:
        """One line per model that diverged: which, when, and the likely cause."""
        return [
            f"model (schedule {self.keys[k][0]}, seed {self.keys[k][1]}) diverged at epoch {what['epoch']} "
            f"(its loss became non-finite) and was stopped there: {what['cause']}"
            for k, what in sorted(self.diverged.items())
        ]

    def _cause(self, k: int) -> str:
        """The likely cause of model ``k``'s divergence at this epoch, in words."""
        beta = float(self._betas_host[k, self.epoch])
        if beta > 1e3:
            return f"its schedule's β is {beta:g} at this epoch; choose a schedule with a smaller β"
        if self.config.lr > 1e-2:
            return f"the learning rate --lr {self.config.lr:g} is large; try a smaller one"
        return (
            f"β is {beta:g} and --lr {self.config.lr:g}; look at its data (values far from the others?), or try "
            "a smaller --lr or --dtype float64"
        )

    # ------------------------------------------------------------------ resume
    @classmethod
    def resume(
        cls,
        run: str | Path,
        dataset: Dataset,
        *,
        config: RunConfig | None = None,
        evaluate: Evaluate | None = None,
        progress: bool = True,
        device: str | None = None,
    ) -> Trainer:
        """Continue a run from its last checkpoint: weights, Adam state, every model's
        generator and the tables written so far. ``config``: the run's, if already read."""
        run = Path(run)
        config = config or runfolder.read_config(run)
        if device is not None:
            config = config.updated({"device": device})
        trainer = cls(config, dataset, run, evaluate=evaluate, progress=progress)
        if not any((run / name / "state.json").exists() for name in ("checkpoint", "checkpoint.old")):
            print(f"{run}: stopped before its first checkpoint; starting it again from epoch 0", flush=True)
            return trainer
        model, state, optimizer_state, rng_states = load_checkpoint(
            run / runfolder.CHECKPOINT, device=config.device, fallback=True
        )
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
        diverged = {int(k): v for k, v in state.get("diverged", {}).items()}
        if diverged:
            trainer._freeze({k: v["cause"] for k, v in diverged.items()})
            trainer.diverged = diverged
        history = runfolder.read_history(run)
        trainer._restore_history(history[history["epoch"] < trainer.epoch])
        for stem in state.get("tables", []):
            table = runfolder.read_table(run / f"{stem}.parquet")
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
        args = (self.epoch, self.inputs_ff, self.targets_ff, self.n_batches, self.config.batch_size)
        pool = self._workers()
        if pool is None:
            parts = [shard.train_epoch(*args) for shard in self.shards]
        else:
            parts = list(pool.map(lambda shard: shard.train_epoch(*args), self.shards))
        means = np.full((len(self.keys), 3), np.nan)  # frozen models: no losses
        if parts:
            means[[k for shard in self.shards for k in shard.positions]] = torch.cat(parts).cpu().numpy()
        return means

    def run(self) -> Trainer:
        """Train until ``config.epochs``, evaluating and checkpointing on the way."""
        cfg = self.config
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            runfolder.start_run(self.out, cfg, self.dataset.description)
        if self.evaluate is not None and self.epoch == 0 and not self.tables.evaluations:
            self._run_evaluation()
        interval = progress_interval(sys.stderr)
        bar = _progress_bar(cfg.epochs, self.epoch, len(self.keys), interval, enabled=self.progress)
        last_shown = 0.0
        try:
            while self.epoch < cfg.epochs:
                means = self.train_epoch()
                bad = [k for k in np.flatnonzero(~np.isfinite(means).all(1)) if k not in self.frozen]
                if bad:
                    self._freeze({int(k): self._cause(int(k)) for k in bad})
                self.tables.history[self.epoch, :, 0] = self._betas_host[:, self.epoch]
                self.tables.history[self.epoch, :, 1:] = means
                self.epoch += 1
                if (
                    self.evaluate is not None
                    and cfg.eval_every
                    and (self.epoch % cfg.eval_every == 0 or self.epoch == cfg.epochs)
                ):
                    self._run_evaluation()
                if self.out is not None and (self.epoch % cfg.checkpoint_every == 0 or self.epoch == cfg.epochs):
                    self.save()
                if bar is not None:
                    bar.update(1)
                    now = time.monotonic()
                    if (now - last_shown > interval or self.epoch == cfg.epochs) and np.isfinite(means).any():
                        last_shown = now
                        bar.set_postfix(
                            recon=f"{np.nanmean(means[:, 0]):.3f}",
                            latent=f"{np.nanmean(means[:, 1]):.3f}",
                            loss=f"{np.nanmean(means[:, 2]):.3f}",
                            refresh=False,
                        )
        finally:
            if bar is not None:
                bar.close()
            self.close()
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
            table = table[~table["model"].isin(list(self.diverged))].copy()  # diverged models are not measured
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
        frame = pd.DataFrame(
            {
                "schedule": np.repeat([k[0] for k in self.keys], n_epochs),
                "seed": np.repeat(np.array([k[1] for k in self.keys], dtype=np.int64), n_epochs),
                "epoch": np.tile(np.arange(n_epochs, dtype=np.int64), n_models),
            }
        )
        values = h.transpose(1, 0, 2).reshape(-1, 4)
        for j, name in enumerate(HISTORY_COLUMNS[3:7]):
            frame[name] = values[:, j]
        diverged = np.zeros((n_models, n_epochs), dtype=bool)
        for k, what in self.diverged.items():
            diverged[k, what["epoch"] :] = True
        frame["diverged"] = diverged.reshape(-1)
        return frame

    def table(self, stem: str) -> pd.DataFrame:
        parts = self.tables.evaluations.get(stem, [])
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    def save(self) -> None:
        """Write history, evaluation tables and the checkpoint, each atomically."""
        out = self.out
        runfolder.save_tables(out, self.history_frame(), {stem: self.table(stem) for stem in self.tables.evaluations})
        state = {
            "epochs_done": self.epoch,
            "models": [list(k) for k in self.keys],
            "config": self.config.to_dict(),
            "tables": sorted(self.tables.evaluations),
            "diverged": {str(k): v for k, v in sorted(self.diverged.items())},
        }
        rng_states = torch.stack([g.get_state() for g in self._generators()])
        save_checkpoint(out / runfolder.CHECKPOINT, self.model, self._optimizer_state(), rng_states, state)

    def _optimizer_state(self) -> dict[str, torch.Tensor] | None:
        """Every model's Adam state in position order (zeros for frozen models), or None
        when no model is training."""
        parts = [(s.positions, s.optimizer_state()) for s in self.shards]
        parts = [(positions, state) for positions, state in parts if state]
        if not parts:
            return None
        out = {}
        for name, first in parts[0][1].items():
            if name.startswith("step."):
                out[name] = first
                continue
            full = first.new_zeros((len(self.keys), *first.shape[1:]))
            for positions, state in parts:
                full[positions] = state[name]
            out[name] = full
        return out


def progress_interval(stream) -> float:
    """Seconds between progress updates: twice a second on a terminal, once a minute into
    a log file, where every update is kept (a paper study runs for a day)."""
    return 0.5 if stream.isatty() else 60.0


def _progress_bar(total: int, done: int, n_models: int, interval: float, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=done,
        unit="epoch",
        desc=f"training {n_models} model{'s' * (n_models != 1)}",
        mininterval=interval,
        maxinterval=max(interval, 10.0),
        dynamic_ncols=True,
    )
