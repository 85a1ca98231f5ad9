"""A second real data set, offline: scikit-learn's 8×8 handwritten digits (1 797 images by
43 writers, shipped inside the scikit-learn package, so nothing is downloaded; docs/data.md)
as three modalities at one time step: the image's ``top`` half (rows 0-3, 32 pixels), its
``bottom`` half (rows 4-7, 32 pixels), both Bernoulli (each pixel's ink 0-16 read as a
probability, ink/16), and the ``label``, categorical (one-hot over the ten digits).

The muting patterns teach the model to fill each modality in from the others: every
modality alone, every pair, and the complete row. The split is fixed: a permutation of the
1 797 images by ``numpy.random.default_rng(0)``, the first 1 438 (80 %, rounded) for
training and the last 359 for testing.

What the data make true, and the measure pairs that check it (the checks and their rules
are :mod:`intermodal.evaluation.findings`'s): the label follows from either half; the label
gives the class but not the writer's style (the image given the label alone is closer than
given nothing, but far from the image itself); the two halves are partly redundant (each
tells something of the other, not all of it).
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from .dataset import Dataset
from .description import DatasetDescription, Modality

__all__ = ["DIGITS", "digits_description", "load_digits", "digits_pairs", "TRAIN_SHARE", "SPLIT_SEED"]

DIGITS = "digits"
SPLIT_SEED = 0
TRAIN_SHARE = 0.8
_MODALITIES = ("top", "bottom", "label")


def digits_description() -> DatasetDescription:
    """The description of the digits data set (one time step, values in [0, 1])."""
    patterns: dict[str, tuple[str, ...]] = {"complete": ()}
    for kept in _MODALITIES:  # each modality alone
        patterns[f"{kept}-only"] = tuple(m for m in _MODALITIES if m != kept)
    for muted in _MODALITIES:  # each pair
        patterns[f"no-{muted}"] = (muted,)
    return DatasetDescription(
        name=DIGITS,
        modalities=(
            Modality("top", 32, "bernoulli"),
            Modality("bottom", 32, "bernoulli"),
            Modality("label", 10, "categorical"),
        ),
        time_steps=("t",),
        value_range=(0.0, 1.0),
        muted_value=-1.0,
        muting_patterns=patterns,
        source={"package": "scikit-learn", "function": "sklearn.datasets.load_digits"},
    )


def load_digits() -> Dataset:
    """The digits data set (see the module docstring); needs scikit-learn (``pip install
    'intermodal[digits]'``), imported only here."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise DataError(
            "--data digits needs scikit-learn, which ships the images: pip install 'intermodal[digits]' "
            "(or pip install scikit-learn)"
        ) from None
    bunch = sklearn_digits()
    images = np.asarray(bunch.data, dtype=np.float64) / 16.0  # [1797, 64], row-major 8×8
    labels = np.eye(10)[np.asarray(bunch.target, dtype=int)]
    rows = np.concatenate([images[:, :32], images[:, 32:], labels], axis=1)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(rows))
    n_train = int(round(TRAIN_SHARE * len(rows)))
    train, test = rows[order[:n_train]], rows[order[n_train:]]
    return Dataset(digits_description(), train, test, origin="scikit-learn digits")


def digits_pairs(description: DatasetDescription) -> dict[str, dict[str, list[str]]] | None:
    """The measure pairs the digits checks need, name -> ``{"muted", "compared"}`` (None for
    any other data set)."""
    if description.name != DIGITS or set(description.modality_names) != set(_MODALITIES):
        return None
    every = list(_MODALITIES)
    return {
        "label-from-top": {"muted": ["bottom", "label"], "compared": ["label"]},
        "label-from-bottom": {"muted": ["top", "label"], "compared": ["label"]},
        "label-from-nothing": {"muted": every, "compared": ["label"]},
        "image-from-label": {"muted": ["top", "bottom"], "compared": ["top", "bottom"]},
        "image-from-nothing": {"muted": every, "compared": ["top", "bottom"]},
        "bottom-from-top": {"muted": ["bottom", "label"], "compared": ["bottom"]},
        "bottom-from-nothing": {"muted": every, "compared": ["bottom"]},
        "top-from-bottom": {"muted": ["top", "label"], "compared": ["top"]},
        "top-from-nothing": {"muted": every, "compared": ["top"]},
    }
