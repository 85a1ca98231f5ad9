"""Each epoch's random draws for a shard of models: every model's shuffle of the training
rows and its noise (ε), from the model's own CPU generator, in a fixed order (a shuffle,
then the noise, epoch after epoch), so that the numbers do not depend on the device, the
shard or when they are drawn.

On a GPU the draws are the slow part of an epoch (one CPU thread draws for every model
while the GPU's work is short; docs/performance.md, "Costs behind the code"), so :class:`EpochNoise` can draw the
next epoch's while this one trains (``prefetch``): in worker threads, one model's
generator in one thread at a time, into pinned memory, copied to the device without
blocking. The streams are consumed exactly as without it. A draw made ahead is undone
(:meth:`EpochNoise.rewind`: each generator is set back to its state before it) whenever
anything outside needs the generators (a checkpoint, a model that leaves the shard, the
end of training), so that a checkpoint holds the states a run without prefetching would
have saved, and a resumed run goes on exactly.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple

import torch

__all__ = ["EpochNoise", "Draws", "prefetch_threads"]


class Draws(NamedTuple):
    """One epoch's draws for ``models`` models: ``perms [models, rows]`` (int64, the
    training rows each model visits, in order) and ``noise [models, rows, width]``."""

    perms: torch.Tensor
    noise: torch.Tensor


def prefetch_threads(n_models: int) -> int:
    """Threads that draw ahead on a GPU machine: every core but the one that launches the
    GPU's work, never more than the models."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(n_models, cores - 1))


class EpochNoise:
    """The draws of a shard's models, epoch after epoch (see the module docstring).

    ``generators``: each model's training stream; ``width(generator, n)`` draws one model's
    noise ``[n, width]`` (the model's ``training_noise``); ``n_rows``: the training rows a
    shuffle permutes; ``n``: the rows an epoch uses (the first ``n`` of each shuffle);
    ``device``: where the draws go; ``prefetch``: draw the next epoch's ahead, in
    ``threads`` threads (pinned memory and copies that do not block on a GPU)."""

    def __init__(
        self,
        generators: list[torch.Generator],
        draw_noise,
        *,
        n_rows: int,
        n: int,
        dtype: torch.dtype,
        device: torch.device,
        prefetch: bool = False,
        threads: int = 1,
    ):
        self.generators, self.draw_noise = generators, draw_noise
        self.n_rows, self.n, self.dtype, self.device = n_rows, n, dtype, torch.device(device)
        self.prefetch, self.threads = prefetch, max(1, threads)
        self._pin = self.device.type == "cuda"
        # Started when first needed, stopped by close(): one thread that draws ahead, and the
        # threads it spreads the models over.
        self._runner: ThreadPoolExecutor | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: tuple[int, Future, list[torch.Tensor]] | None = None  # (epoch, draws, states before)

    # ------------------------------------------------------------------ drawing
    def _draw_one(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        perm = torch.randperm(self.n_rows, generator=generator)[: self.n]
        return perm, self.draw_noise(generator, self.n, self.dtype)

    def _draw(self) -> Draws:
        """Every model's draws for one epoch, on the host (pinned for a GPU)."""
        if self.prefetch and self.threads > 1 and len(self.generators) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="intermodal-noise")
            parts = list(self._pool.map(self._draw_one, self.generators))
        else:
            parts = [self._draw_one(g) for g in self.generators]
        perms = [p for p, _ in parts]
        noise = [e for _, e in parts]
        if not self._pin:
            return Draws(torch.stack(perms), torch.stack(noise))
        pinned_perms = torch.empty((len(perms), *perms[0].shape), dtype=perms[0].dtype, pin_memory=True)
        pinned_noise = torch.empty((len(noise), *noise[0].shape), dtype=noise[0].dtype, pin_memory=True)
        torch.stack(perms, out=pinned_perms)
        torch.stack(noise, out=pinned_noise)
        return Draws(pinned_perms, pinned_noise)

    def _states(self) -> list[torch.Tensor]:
        return [g.get_state() for g in self.generators]

    # ------------------------------------------------------------------ the epochs
    def take(self, epoch: int) -> Draws:
        """Epoch ``epoch``'s draws on the device (the ones drawn ahead for it, if any; else
        drawn now), and, with ``prefetch``, the next epoch's started."""
        if self._ahead is not None and self._ahead[0] == epoch:
            draws = self._ahead[1].result()
            self._ahead = None
        else:
            self.rewind()
            draws = self._draw()
        # From pinned memory the copies do not wait for the GPU (nor it for them).
        return Draws(*(t.to(self.device, non_blocking=self._pin) for t in draws))

    def draw_ahead(self, epoch: int) -> None:
        """Start drawing epoch ``epoch``'s draws in the background (with ``prefetch``)."""
        if not self.prefetch or self._ahead is not None:
            return
        if self._runner is None:
            self._runner = ThreadPoolExecutor(1, thread_name_prefix="intermodal-noise-ahead")
        states = self._states()
        self._ahead = (epoch, self._runner.submit(self._draw), states)

    def rewind(self) -> None:
        """Undo a draw made ahead: wait for it and set every generator back to its state
        before it, as if it had never been made."""
        if self._ahead is None:
            return
        _, future, states = self._ahead
        self._ahead = None
        future.result()
        for g, state in zip(self.generators, states):
            g.set_state(state)

    def close(self) -> None:
        """Undo any draw made ahead and stop the threads."""
        self.rewind()
        for pool in (self._runner, self._pool):
            if pool is not None:
                pool.shutdown()
        self._runner = self._pool = None
