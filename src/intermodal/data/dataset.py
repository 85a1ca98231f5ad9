"""A data set in memory (its description with its complete train and test rows) and the
training augmentation that turns complete rows into (muted input, complete target) pairs
(Zambelli et al. 2020, Table 1; docs/method.md §1)."""

from __future__ import annotations

import dataclasses

import numpy as np

from .description import DatasetDescription

__all__ = ["Dataset", "augment"]


def augment(
    complete: np.ndarray, description: DatasetDescription, patterns: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Training rows from complete rows: each row once per muting pattern (Zambelli Table 1).

    Parameters
    ----------
    complete : array ``[n, n_columns]``
    patterns : pattern names, default all of the description's, in its order.

    Returns
    -------
    inputs, targets : arrays ``[n_patterns * n, n_columns]``, pattern-major (block ``k`` is
        every row with pattern ``k`` applied); muted entries of ``inputs`` hold ``muted_value``.
    """
    masks = description.pattern_masks(patterns)
    targets = np.tile(complete, (len(masks), 1))
    inputs = targets.copy()
    block = np.repeat(masks, len(complete), axis=0)
    inputs[block] = description.muted_value
    return inputs, targets


@dataclasses.dataclass
class Dataset:
    """Complete rows of a data set with its description.

    ``train``: ``[n_train, n_columns]``; ``test``: ``[n_test, n_columns]`` (time-ordered
    where the source is), float64 in the description's value range.
    """

    description: DatasetDescription
    train: np.ndarray
    test: np.ndarray
    origin: str = ""

    def training_rows(self, patterns: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        return augment(self.train, self.description, patterns)
