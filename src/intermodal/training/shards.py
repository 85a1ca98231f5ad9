"""The models of a run in shards while they train: groups of models that each train as one
batched computation with their own Adam and generators, in parallel threads, one core
each; a model whose loss becomes non-finite is frozen and leaves its shard, so that the
others train on exactly as they would without it. A run of several fusions has an ensemble
per fusion; a shard holds models of one fusion.

:class:`Shards` knows positions, shards, frozen models, the Adam state and the
generators; the loop of epochs and evaluations is :mod:`intermodal.training.trainer`'s.
Divergence is worded here and only here (:func:`divergence_line`).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import torch

from ..model.base import EnsembleVAE
from ..model.group import ModelGroups, concatenate_models
from .config import ModelKey
from .noise import EpochNoise, prefetch_threads

__all__ = [
    "Shards",
    "Divergence",
    "divergence_line",
    "default_workers",
    "draws_ahead",
    "MODELS_PER_CPU_SHARD",
]

# The largest shard on a CPU: larger shards outgrow the cache, smaller ones pay Python's
# overhead per step more often (docs/performance.md).
MODELS_PER_CPU_SHARD = 6
# Whether a CPU run draws the next epoch's noise while this one trains. Off: on a CPU the
# threads that would draw ahead take cores from training, and the draws are a small part
# of an epoch. The tests turn it on to show that the numbers are the same either way.
DRAW_AHEAD_ON_CPU = False


def draws_ahead(device: torch.device | str) -> bool:
    """Whether a shard on ``device`` draws each epoch's noise ahead (on a GPU, always)."""
    return torch.device(device).type != "cpu" or DRAW_AHEAD_ON_CPU


class Divergence(NamedTuple):
    """When a model's training diverged (its epoch loss became non-finite) and the likely
    cause, in words; the model keeps its parameters from before that epoch."""

    epoch: int
    cause: str


def divergence_line(key: ModelKey, divergence: Divergence | None = None, *, epoch: int | None = None) -> str:
    """One line saying that the model ``key`` diverged (with its cause where known)."""
    epoch = divergence.epoch if divergence is not None else epoch
    fusion = f"fusion {key.fusion}, " if key.fusion != "concat" else ""
    line = (
        f"model ({fusion}schedule {key.schedule}, seed {key.seed}) diverged at epoch {epoch} "
        "(its loss became non-finite)"
    )
    return f"{line} and was stopped there: {divergence.cause}" if divergence is not None else line


def default_workers(workers: int | None, device: str, n_models: int) -> int:
    """Worker threads: ``workers`` if set, else one per usable core on a CPU and one on a
    GPU; never more than the models."""
    if workers is not None:
        return max(1, min(workers, n_models))
    if device != "cpu":
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, n_models))


class _Shard:
    """Some of the run's models (``positions`` in the run) with their own ensemble, Adam
    and generators."""

    def __init__(
        self, positions: list[int], model: EnsembleVAE, betas: torch.Tensor, generators: list[torch.Generator], lr
    ):
        self.positions, self.model, self.betas, self.generators = positions, model, betas, generators
        self.snapshot: dict[str, torch.Tensor] | None = None
        self.noise: EpochNoise | None = None  # made on the first epoch
        # Adam's update is elementwise, so one optimiser over stacked parameters is exactly
        # one Adam per model. The fused form makes one pass over each parameter, its
        # gradient and moments; torch has it on both devices a config allows.
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=True)

    def train_epoch(
        self, epoch: int, inputs_ff: torch.Tensor, targets_ff: torch.Tensor, n_batches: int, batch_size: int
    ) -> torch.Tensor:
        """One epoch on the training rows given features-first (``[columns, rows]``);
        returns ``[models, 3]`` batch means of reconstruction loss, latent loss and weighted
        loss (on the device)."""
        model, opt = self.model, self.optimizer
        # The parameters as they were before this epoch: what a model that diverges in it
        # is frozen at.
        self.snapshot = {n: p.detach().clone() for n, p in model.named_parameters()}
        n = n_batches * batch_size
        dtype, device = inputs_ff.dtype, inputs_ff.device
        # Each model's shuffle and ε come from its own generator, in a fixed order, so they
        # do not depend on which shard or group the model is in, nor on the device or
        # whether they were drawn ahead (intermodal.training.noise).
        if self.noise is None:
            self.noise = EpochNoise(
                self.generators,
                model.training_noise,
                n_rows=inputs_ff.shape[1],
                n=n,
                dtype=dtype,
                device=device,
                prefetch=draws_ahead(device),
                threads=prefetch_threads(model.n_models),
            )
        draws = self.noise.take(epoch)
        perms = draws.perms.view(model.n_models, n_batches, batch_size)
        # The model computes features-first ([models, features, rows]); one copy an epoch.
        eps = draws.noise.view(model.n_models, n_batches, batch_size, -1).permute(1, 0, 3, 2).contiguous()
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
        # The next epoch's draws, while the device works through this one's steps.
        self.noise.draw_ahead(epoch + 1)
        return sums / n_batches

    def rewind(self) -> None:
        """Undo the draws made ahead (every generator as if they had not been made) and
        stop their threads."""
        if self.noise is not None:
            self.noise.close()

    def optimizer_state(self) -> dict[str, torch.Tensor]:
        names = {id(p): n for n, p in self.model.named_parameters()}
        return {
            f"{k}.{names[id(p)]}": torch.as_tensor(v) for p, st in self.optimizer.state.items() for k, v in st.items()
        }

    def load_optimizer_state(self, tensors: dict[str, torch.Tensor]) -> None:
        for n, p in self.model.named_parameters():
            entry = {k.split(".", 1)[0]: v for k, v in tensors.items() if k.split(".", 1)[1] == n}
            if "step" in entry:
                entry["step"] = entry["step"].to(p.device)  # the fused Adam keeps its count there
            if entry:
                self.optimizer.state[p] = entry

    def without(self, local: list[int], lr: float) -> _Shard | None:
        """This shard less the models at ``local`` positions (None if none is left); the
        others keep their parameters, Adam state and generators exactly."""
        self.rewind()
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

    def frozen_model(self, j: int) -> EnsembleVAE:
        """Model ``j`` as it was before the last epoch (from the snapshot)."""
        frozen = self.model.select([j])
        if self.snapshot is not None:
            with torch.no_grad():
                for n, p in frozen.named_parameters():
                    p.copy_(self.snapshot[n][j : j + 1])
        return frozen


class Shards:
    """Every model of a run (positions ``0 .. n-1``), in shards that train in parallel.

    ``models``: one freshly initialised or loaded ensemble per fusion, in position order
    (a run's positions are fusion-major); ``generators``: each model's training stream in
    position order; ``betas``: ``[models, epochs]`` (float64). ``workers``: threads, one
    core each (each trains its shards one after the other).
    """

    def __init__(
        self,
        models: list[EnsembleVAE],
        generators: list[torch.Generator],
        betas: np.ndarray,
        *,
        lr: float,
        workers: int,
    ):
        self.n_models = sum(m.n_models for m in models)
        self.lr, self.n_workers = lr, workers
        self.model_keys = [k for m in models for k in (m.model_keys or [None] * m.n_models)]
        self.fusions = [m.fusion for m in models]
        self.group_bounds: list[tuple[int, int]] = []
        self.shards: list[_Shard] = []
        start = 0
        p = next(models[0].parameters())
        betas_t = torch.as_tensor(betas, dtype=p.dtype, device=p.device)
        groups_shards = []
        for model in models:
            self.group_bounds.append((start, start + model.n_models))
            groups_shards.append(max(1, round(workers * model.n_models / self.n_models)))
            start += model.n_models
        for (a0, _), model, n_shards in zip(self.group_bounds, models, groups_shards):
            if p.device.type == "cpu":
                # Small shards keep a step's activations in the cache.
                n_shards = max(n_shards, -(-model.n_models // MODELS_PER_CPU_SHARD))
                if len(models) == 1:
                    n_shards = -(-max(n_shards, workers) // workers) * workers  # the same number for every worker
            n_shards = min(n_shards, model.n_models)
            bounds = np.linspace(0, model.n_models, n_shards + 1).round().astype(int)
            for a, b in zip(bounds, bounds[1:]):
                local = list(range(a, b))
                positions = [a0 + j for j in local]
                self.shards.append(
                    _Shard(positions, model.select(local), betas_t[a0 + a : a0 + b], generators[a0 + a : a0 + b], lr)
                )
        self.frozen: dict[int, EnsembleVAE] = {}  # diverged models by position, no longer trained
        self._frozen_generators: dict[int, torch.Generator] = {}
        self._pool: ThreadPoolExecutor | None = None  # started on the first epoch

    # ------------------------------------------------------------------ training
    def train_epoch(
        self, epoch: int, inputs_ff: torch.Tensor, targets_ff: torch.Tensor, n_batches: int, batch_size: int
    ) -> np.ndarray:
        """One epoch for every model still training (shards in parallel); returns
        ``[models, 3]`` batch means of reconstruction loss, latent loss and weighted loss,
        NaN for frozen models."""
        args = (epoch, inputs_ff, targets_ff, n_batches, batch_size)
        if self._pool is None and self.n_workers > 1:
            self._pool = ThreadPoolExecutor(self.n_workers)
        if self._pool is None:
            parts = [shard.train_epoch(*args) for shard in self.shards]
        else:
            parts = list(self._pool.map(lambda shard: shard.train_epoch(*args), self.shards))
        means = np.full((self.n_models, 3), np.nan)
        if parts:
            means[[k for shard in self.shards for k in shard.positions]] = torch.cat(parts).cpu().numpy()
        return means

    def freeze(self, positions: list[int]) -> None:
        """Stop training the models at these positions: each keeps the parameters it had
        before the last epoch and leaves its shard."""
        shards = []
        for shard in self.shards:
            local = [j for j, k in enumerate(shard.positions) if k in positions]
            for j in local:
                k = shard.positions[j]
                self.frozen[k] = shard.frozen_model(j)
                self._frozen_generators[k] = shard.generators[j]
            rest = shard.without(local, self.lr) if local else shard
            if rest is not None:
                shards.append(rest)
        self.shards = shards

    def close(self) -> None:
        """Stop the worker threads and undo the draws made ahead; training again restarts
        them."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown()
        for shard in self.shards:
            shard.rewind()

    # ------------------------------------------------------------------ gathering
    def _group_of(self, position: int) -> int:
        return next(g for g, (a, b) in enumerate(self.group_bounds) if a <= position < b)

    @property
    def model(self):
        """The whole ensemble in position order (a copy when it trains in several shards or
        has frozen models; several fusions as :class:`~intermodal.model.group.ModelGroups`),
        with ``model_keys`` set."""
        if len(self.shards) == 1 and not self.frozen:
            whole: EnsembleVAE | ModelGroups = self.shards[0].model
        else:
            pieces = [(s.positions, s.model) for s in self.shards] + [([k], m) for k, m in self.frozen.items()]
            pieces.sort(key=lambda piece: piece[0][0])
            singles = []
            for positions, model in pieces:
                if positions == list(range(positions[0], positions[0] + len(positions))):
                    singles.append((positions[0], model))
                else:  # a shard that lost a model in its middle: its models one by one
                    singles += [(k, model.select([j])) for j, k in enumerate(positions)]
            singles.sort(key=lambda piece: piece[0])
            whole = concatenate_models([m for _, m in singles])
        whole.model_keys = self.model_keys
        return whole

    def generators(self) -> list[torch.Generator]:
        """Every model's generator, in position order, in its state after the last epoch
        trained (a draw made ahead is undone)."""
        by_position = dict(self._frozen_generators)
        for shard in self.shards:
            shard.rewind()
            by_position.update(zip(shard.positions, shard.generators))
        return [by_position[k] for k in range(self.n_models)]

    def optimizer_state(self) -> dict[str, torch.Tensor] | None:
        """Every model's Adam state, per fusion and in position order (zeros for frozen
        models): tensors named ``<fusion>/<kind>.<parameter>``, the model axis first; None
        when no model is training."""
        out: dict[str, torch.Tensor] = {}
        for g, (a0, b0) in enumerate(self.group_bounds):
            parts = [(s.positions, s.optimizer_state()) for s in self.shards if a0 <= s.positions[0] < b0]
            parts = [(positions, state) for positions, state in parts if state]
            if not parts:
                continue
            for name, first in parts[0][1].items():
                key = f"{self.fusions[g]}/{name}"
                if name.startswith("step."):
                    out[key] = first
                    continue
                full = first.new_zeros((b0 - a0, *first.shape[1:]))
                for positions, state in parts:
                    full[[k - a0 for k in positions]] = state[name]
                out[key] = full
        return out or None

    def load_optimizer_state(self, state: dict[str, torch.Tensor]) -> None:
        """Hand each shard its models' part of the ensemble's Adam state (as
        :meth:`optimizer_state` gives it), before any model is frozen."""
        for g, (a0, _) in enumerate(self.group_bounds):
            prefix = f"{self.fusions[g]}/"
            mine = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            for shard in self.shards:
                if self._group_of(shard.positions[0]) != g:
                    continue
                a, b = shard.positions[0] - a0, shard.positions[-1] + 1 - a0
                # Copies, not views: Adam updates its state in place, and the step count is one
                # tensor per parameter that each shard must own.
                part = {k: (v if k.startswith("step.") else v[a:b]).clone() for k, v in mine.items()}
                shard.load_optimizer_state(part)
