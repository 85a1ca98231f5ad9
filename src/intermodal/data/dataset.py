"""A data set in memory (its description with its complete train and test rows) and the
training augmentation that turns complete rows into (muted input, complete target) pairs
(Zambelli et al. 2020, Table 1; docs/method.md §1)."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import DataError
from .description import DatasetDescription

__all__ = ["Dataset", "augment", "check_family_values"]

# How far a categorical modality's values at one step may sum from 1 (on the value range's
# scale) and still count as a probability vector: rounding in the file, not a wrong row.
CATEGORICAL_SUM_TOLERANCE = 1e-6


def check_family_values(rows: np.ndarray, description: DatasetDescription, what: str) -> None:
    """Refuse rows ``[n, n_columns]`` that a modality's output family cannot have, naming
    ``what``, the row and the column: a Bernoulli modality's values must lie in the value
    range (each is read as the probability of its upper end); a categorical modality's
    values at one time step must be one-hot or a probability vector on the value range's
    scale (``(x − low)/(high − low)``, each in [0, 1], summing to 1)."""
    low, high = description.value_range
    names = description.column_names()
    for m in description.modalities:
        if m.likelihood == "bernoulli":
            cols = description.columns_of(m.name)
            values = rows[:, cols]
            bad = ~((values >= low) & (values <= high))
            if bad.any():
                r, c = np.argwhere(bad)[0]
                raise DataError(
                    f"{what}: row {r}, column {names[cols[c]]} is {values[r, c]:g}; the modality {m.name!r} is "
                    f"Bernoulli (each value the probability of {high:g}): expected values in [{low:g}, {high:g}]"
                )
        elif m.likelihood == "categorical":
            for step in description.time_steps:
                cols = description.columns_of(f"{m.name}@{step}")
                t = (rows[:, cols] - low) / (high - low)
                sums = t.sum(axis=1)
                bad = ~((t >= 0) & (t <= 1)).all(axis=1) | ~(np.abs(sums - 1) <= CATEGORICAL_SUM_TOLERANCE)
                if bad.any():
                    r = int(np.flatnonzero(bad)[0])
                    raise DataError(
                        f"{what}: row {r}, columns {names[cols[0]]}..{names[cols[-1]]} (the modality {m.name!r} at "
                        f"{step}) are {np.round(rows[r, cols], 6).tolist()}; the modality is categorical: expected "
                        f"one-hot values or probabilities ({low:g} for 0, {high:g} for 1, summing to 1 on that scale)"
                    )


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

    def __post_init__(self):
        if not set(self.description.likelihoods.values()) & {"bernoulli", "categorical"}:
            return  # the value range, checked on reading, is all a Gaussian or Laplace modality needs
        where = self.origin or self.description.name
        for part, rows in (("train", self.train), ("test", self.test)):
            if np.ndim(rows) == 2 and len(rows):
                check_family_values(np.asarray(rows), self.description, f"{where}: {part}")

    def with_likelihoods(self, likelihoods: dict[str, str], *, origin: str = "likelihoods") -> Dataset:
        """This data set with some modalities' output families changed (see
        :meth:`DatasetDescription.with_likelihoods`); rows a family cannot have are refused."""
        if not likelihoods:
            return self
        description = self.description.with_likelihoods(likelihoods, origin=origin)
        try:
            return dataclasses.replace(self, description=description)
        except DataError as e:
            given = ",".join(f"{m}={f}" for m, f in likelihoods.items())
            raise DataError(f"{origin} {given}: {e}") from None

    def training_rows(self, patterns: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        return augment(self.train, self.description, patterns)
