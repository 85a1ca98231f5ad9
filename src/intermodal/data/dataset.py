"""A data set in memory (its description with its complete train and test rows) and the
training augmentation that turns complete rows into (muted input, complete target) pairs:
by the description's muting patterns (Zambelli et al. 2020, Table 1), or by random subsets
of the modalities (``--muting subsets``; docs/method.md §1)."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import ConfigError, DataError
from .description import DatasetDescription

__all__ = ["Dataset", "augment", "augment_subsets", "check_muting", "MUTING", "check_family_values"]

# How training rows are muted (the run config's ``muting``): "patterns", the description's
# muting patterns (Zambelli's, the default); "subsets", random subsets of the modalities.
MUTING = ("patterns", "subsets")

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


def augment_subsets(
    complete: np.ndarray, description: DatasetDescription, copies: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Training rows from complete rows by random subsets of the modalities: each row
    ``copies`` times, the first copy complete, each other with a random non-empty proper
    subset of the modalities given (every time step of them) and the rest muted, drawn
    uniformly over the ``2^M − 2`` such subsets from ``rng``.

    Returns
    -------
    inputs, targets : arrays ``[copies * n, n_columns]``, copy-major as :func:`augment`'s
        (block 0 the complete rows; in block ``k ≥ 1`` each row has its own subset).

    A data set of one modality has no such subset: :class:`~intermodal.errors.ConfigError`.
    """
    check_muting(description, "subsets")
    n = len(complete)
    given = _draw_subsets(rng, (copies - 1) * n, len(description.modalities))  # [rows, modalities]
    muted = ~given[:, description.modality_of_column()]  # [rows, columns]
    targets = np.tile(complete, (copies, 1))
    inputs = targets.copy()
    inputs[n:][muted] = description.muted_value
    return inputs, targets


def check_muting(description: DatasetDescription, muting: str, patterns: list[str] | None = None) -> None:
    """Refuse, with a :class:`~intermodal.errors.ConfigError` (a
    :class:`~intermodal.errors.DataError` for an unknown pattern), a muting this data set
    cannot have: patterns it does not have, or ``"subsets"`` with one modality (no non-empty
    proper subset to give) or with ``patterns``."""
    if muting not in MUTING:
        raise ConfigError(f"muting {muting!r}: expected one of {', '.join(MUTING)}")
    if muting == "patterns":
        description.pattern_masks(patterns)
        return
    if patterns is not None:
        raise ConfigError("patterns and muting 'subsets' exclude each other: give one of --patterns, --muting subsets")
    names = description.modality_names
    if len(names) < 2:
        raise ConfigError(
            f"--muting subsets: data set {description.name!r} has one modality ({names[0]!r}), so no "
            "non-empty proper subset of its modalities to give; use --muting patterns"
        )


def _draw_subsets(rng: np.random.Generator, n: int, m: int) -> np.ndarray:
    """``n`` subsets of ``m`` items, ``[n, m]`` bool (True = in the subset), uniform over the
    non-empty proper ones: each item in or out with probability 1/2, rows that come out
    empty or whole drawn again (in order, until none is), for any ``m``."""
    given = rng.integers(0, 2, size=(n, m), dtype=np.int8).astype(bool)
    while True:
        again = np.flatnonzero(~given.any(1) | given.all(1))
        if not len(again):
            return given
        given[again] = rng.integers(0, 2, size=(len(again), m), dtype=np.int8).astype(bool)


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

    def training_rows(
        self, patterns: list[str] | None = None, muting: str = "patterns", rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The (muted input, complete target) pairs a run trains on: ``muting="patterns"``
        (default): :func:`augment` by ``patterns`` (None = all of the description's);
        ``"subsets"``: :func:`augment_subsets`, as many copies of each row as the description
        has muting patterns (an epoch as long as the default's), subsets drawn from ``rng``."""
        if muting == "patterns":
            return augment(self.train, self.description, patterns)
        check_muting(self.description, muting, patterns)
        if rng is None:
            raise ConfigError("muting 'subsets' needs a random generator (rng) to draw the subsets from")
        return augment_subsets(self.train, self.description, len(self.description.muting_patterns), rng)
