"""Every random stream intermodal draws from, each named by its purpose.

A stream is keyed by four whole numbers, ``(seed, purpose, i, j)``: the seed it belongs to
(a model's, the evaluation's, the simulator's), the purpose's code below, and two indices
whose meaning the purpose states (0 where unused). The key seeds a NumPy
:class:`~numpy.random.SeedSequence`. Keys have a fixed length because a SeedSequence treats
``[a, b]`` and ``[a, b, 0]`` alike: with keys of varying length, two purposes could end up
with one stream (the evaluation noise of epoch 2 and the third baseline network of the same
seed would). A purpose's code sits in the second place, so two purposes never share a
key, whatever their seeds and indices.

Every purpose is a member of its own; its ``code`` (the key's second number) is stated with
it. The codes 1-5 are the simulator's and 1 is also a model's training stream: the data
and training numbers depend on the keys ``(seed, 1)`` and ``(seed, 1..5, part, name)`` bit
for bit (tests/test_pinned.py), so they stay as they are. That leaves one code shared, on
purpose: the simulator's training trajectory with data seed *s* and the training stream of
the model with seed *s* have the same key. They feed different generators (NumPy's PCG64
makes the trajectory; the model's shuffles and ε come from a torch Mersenne Twister seeded
with the key's first 64 bits) and different kinds of draw. Every purpose added since uses
a code of its own (6 and up).

A model's initial weights come from ``torch.Generator().manual_seed(seed)`` (as the
original code seeds its initialiser), not from a key: :func:`initialisation`.
"""

from __future__ import annotations

from enum import Enum

import numpy as np
import torch

from .errors import ConfigError

__all__ = ["MAX_SEED", "Purpose", "key", "torch_generator", "numpy_generator", "initialisation"]

# The largest seed: run tables store seeds as 64-bit signed integers, and torch's
# manual_seed takes no more than 64 bits (docs/reliability.md, "Limits").
MAX_SEED = 2**63 - 1


class Purpose(Enum):
    """What a stream is for. Each purpose is its own member; ``code`` is the key's second
    number (``TRAINING`` and ``SIM_TRAJECTORY`` share code 1: see the module docstring)."""

    def __init__(self, code: int, doc: str):
        self.code = code
        self.__doc__ = doc

    TRAINING = (1, "A model's shuffles, ε and (for the mixture fusions) component draws: ``(model seed, 1)``.")
    SIM_TRAJECTORY = (1, "Simulator: the trajectory of part ``i`` (0 train, 1 test); code 1 as TRAINING's.")
    SIM_PIXEL_NOISE = (2, "Simulator: pixel noise of part ``i``.")
    SIM_MODALITY_NOISE = (3, "Simulator: a modality's noise, part ``i``, modality ``j`` (CRC-32 of its name).")
    SIM_DISTRACTOR = (4, "Simulator: a noise distractor's values, part ``i``, distractor ``j`` (CRC-32 of its name).")
    SIM_SHUFFLE = (5, "Simulator: the shuffle of the training rows.")
    EVALUATION_NOISE = (
        6,
        "The latent noise (``--z-samples``) of the evaluation after ``i`` epochs: ``(eval seed, 6, epoch)``.",
    )
    BASELINE = (7, "Feed-forward baseline network ``i`` of a seed: ``(seed, 7, network)``.")
    EVALUATION_ROWS = (8, "Which test rows ``--eval-rows random`` takes: ``(eval seed, 8)``.")
    PREDICTION_SAMPLE = (9, "The latent sample a prediction decodes from (``--sample-seed``): ``(sample seed, 9)``.")
    MUTING_SUBSETS = (
        10,
        "Which modalities each copy of a training row gives under ``--muting subsets``: ``(0, 10)``, seed 0 "
        "always (the rows are the run's, shared by every model; see "
        ":func:`intermodal.training.trainer.muting_generator`).",
    )


def key(purpose: Purpose, seed: int, i: int = 0, j: int = 0) -> tuple[int, int, int, int]:
    """The fixed-length key of a stream (see the module docstring)."""
    values = (int(seed), purpose.code, int(i), int(j))
    if any(v < 0 for v in values):
        raise ConfigError(f"stream keys are whole numbers >= 0; got {values}")
    if values[0] > MAX_SEED:
        raise ConfigError(f"seed {values[0]} is larger than the largest seed, {MAX_SEED} (2**63 - 1)")
    return values


def torch_generator(purpose: Purpose, seed: int, i: int = 0, j: int = 0) -> torch.Generator:
    """A CPU torch generator for one stream, seeded with the first 64 bits (less the top
    one) of its key's SeedSequence state."""
    state = np.random.SeedSequence(key(purpose, seed, i, j)).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & ((1 << 63) - 1))


def numpy_generator(purpose: Purpose, seed: int, i: int = 0, j: int = 0) -> np.random.Generator:
    """A NumPy generator (PCG64) for one stream."""
    return np.random.default_rng(np.random.SeedSequence(key(purpose, seed, i, j)))


def initialisation(seed: int) -> torch.Generator:
    """The generator a model's initial weights are drawn from: ``manual_seed(seed)``."""
    if not 0 <= int(seed) <= MAX_SEED:
        raise ConfigError(f"seed {seed}: expected a whole number from 0 to {MAX_SEED} (2**63 - 1)")
    return torch.Generator().manual_seed(int(seed))
