"""Use a trained ensemble: prediction and control from partial information.

Zambelli, Cully & Demiris (2020) trained the multimodal VAE to fill in what an input lacks:
the columns a caller does not give are set to the muted value, and the decoder's output
holds a prediction of every column. This module does that for any data set description
(nothing here knows how many modalities or columns there are) ; the original work's
tests, built on it, are in :mod:`intermodal.prediction_tests`.

Units: every array is in data units (the description's ``value_range``, e.g. [-1, 1]);
``std`` is the standard deviation of the decoder's Gaussian, ``exp(logvar / 2)``, in the
same units. Shapes name the model axis first: ``[n_models, n_rows, n_columns]``.

Selectors are the project's (see :meth:`DatasetDescription.expand`): ``"vision"`` (every
time step), ``"joints@t-1"`` (one step), ``"*"`` (every modality, every step) and
``"*@STEP"`` (every modality at that step).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from ..data.description import DatasetDescription
from ..errors import DataError, ModelError
from ..model.group import groups_of
from ..model.likelihoods import Outputs
from ..model.protocol import check_protocol, description_for, view_of
from ..options import whole_number
from ..streams import MAX_SEED, Purpose, torch_generator
from ..training.config import key_columns
from .divergences import row_values
from .measures import as_model, stacked_rows_per_pass

if TYPE_CHECKING:
    from ..model.protocol import LatentModel, OutputGaussianModel, OutputModel

__all__ = [
    "MAX_ROLLOUT_STEPS",
    "Prediction",
    "given_mask",
    "predict",
    "rollout",
    "prediction_table",
    "combine_models",
    "two_steps",
    "shift_columns",
]

# The most steps a rollout chains (each a forward pass; the prediction holds steps x rows x
# columns per model): refused beyond, before anything is decoded (docs/reliability.md, "Limits").
MAX_ROLLOUT_STEPS = 10_000


# ---------------------------------------------------------------------- results
@dataclass(frozen=True)
class Prediction:
    """What :func:`predict` and :func:`rollout` return.

    ``mean``, ``std``: each column's output distribution per model, in data units (a
    Gaussian's mean and standard deviation; for other families their moments,
    docs/method.md §5b);
    ``[n_models, n_rows, n_columns]`` from :func:`predict`, ``[n_models, steps, n_rows,
    n_columns]`` from :func:`rollout` (intermodal's own models floor the variance at 1e-4,
    so their ``std >= 0.01``). ``given``: boolean ``[n_columns]``, True where
    the first step's input held the caller's values (every other column was muted).
    """

    mean: np.ndarray
    std: np.ndarray
    given: np.ndarray


# ---------------------------------------------------------------------- selectors
def given_mask(description: DatasetDescription, given: str | Sequence[str]) -> np.ndarray:
    """Boolean mask ``[n_columns]``, True for the columns ``given`` selects (an unknown
    selector raises a :class:`~intermodal.errors.DataError` naming it)."""
    try:
        return description.mask(given)
    except DataError as e:
        raise DataError(f"given: {e}") from None


def two_steps(description: DatasetDescription, what: str) -> tuple[str, str]:
    steps = list(description.time_steps)
    if len(steps) != 2:
        raise DataError(
            f"{what} needs a data set with exactly two time steps (the current one, then the previous one); "
            f"{description.name!r} has {steps}"
        )
    return steps[0], steps[1]


def shift_columns(description: DatasetDescription, current: str, previous: str) -> tuple[np.ndarray, np.ndarray]:
    """Column indices ``(src, dst)``: ``src[k]`` is a column at the current step and
    ``dst[k]`` the same modality and index at the previous step. By name, so a description
    with its own column order pairs the right columns."""
    names = description.column_names()
    position = {n: i for i, n in enumerate(names)}
    src, dst = [], []
    for m in description.modalities:
        for i in range(m.size):
            src.append(position[f"{m.name}_{current}_{i}"])
            dst.append(position[f"{m.name}_{previous}_{i}"])
    return np.array(src), np.array(dst)


# ---------------------------------------------------------------------- checks
def _rows_array(rows, description: DatasetDescription, mask: np.ndarray, n_models: int) -> np.ndarray:
    """``rows`` as float64 ``[n_rows, n_columns]`` or ``[n_models, n_rows, n_columns]``,
    checked where it matters: the width, and the given columns (finite, never muted)."""
    names = description.column_names()
    # Columns of a table by name, so that it needs to hold only the given columns.
    rows = row_values(rows, description, needed=mask)
    if isinstance(rows, torch.Tensor):
        rows = rows.detach().cpu().numpy()
    x = np.asarray(rows, dtype=np.float64)
    if x.ndim not in (2, 3) or x.shape[-1] != description.n_columns:
        got = f"{x.shape[-1]} columns" if x.ndim in (2, 3) else f"an array of shape {x.shape}"
        raise DataError(
            f"rows: expected [n_rows, n_columns] with n_columns = {description.n_columns} (the columns of "
            f"{description.name!r}: {', '.join(f'{m.name}×{m.size}' for m in description.modalities)} at steps "
            f"{list(description.time_steps)}); got {got}"
        )
    if x.ndim == 3 and x.shape[0] != n_models:
        raise DataError(f"rows: a 3-D array must be [n_models = {n_models}, n_rows, n_columns]; got shape {x.shape}")
    if x.shape[-2] == 0:
        raise DataError("rows: no rows given")
    part = x[..., mask]
    bad = ~np.isfinite(part) | (part == description.muted_value)
    if bad.any():
        where = np.argwhere(bad)[0]
        c = np.flatnonzero(mask)[where[-1]]
        at = f"row {where[-2]}" + (f" of model {where[0]}" if x.ndim == 3 else "")
        value = x[(*where[:-1], c)]
        why = f"holds the muted value {description.muted_value:g}" if np.isfinite(value) else f"is {value}"
        raise DataError(
            f"rows: {at}, column {c} ({names[c]}) {why} but is given; a given column must hold data "
            "(leave a column out of 'given' to mute it)"
        )
    return x


def _generators(model, seed: int | None) -> list[torch.Generator] | None:
    """One generator per group of ``model`` (one per fusion), each seeded alike from the
    stream ``(seed, Purpose.PREDICTION_SAMPLE)``, so a model's sample does not depend on
    the other fusions beside it; None decodes from the posterior's mean. A seed for a model
    that cannot sample (no latent posterior) is refused."""
    if seed is None:
        return None
    seed = whole_number(seed, "seed", maximum=MAX_SEED)
    for _, group in groups_of(model):
        view = view_of(group)
        if not view.can_sample:
            raise ModelError(
                f"seed {seed}: {view.name} cannot draw a latent sample (it has no latent posterior: "
                "intermodal.LatentModel); leave seed=None to predict from what it outputs"
            )
    return [torch_generator(Purpose.PREDICTION_SAMPLE, seed) for _ in groups_of(model)]


def _check_hidden(model, hidden: np.ndarray, what: str) -> None:
    for _, group in groups_of(model):
        view_of(group).check_hidden(hidden, what)


def _decode(
    model, inputs: np.ndarray, hidden: np.ndarray, generators: list[torch.Generator] | None
) -> tuple[np.ndarray, np.ndarray]:
    """The output distributions' means and standard deviations for ``inputs``
    (``[n_rows, n_columns]``, the same for every model, or ``[n_models, n_rows,
    n_columns]``) with the ``hidden [n_columns]`` columns muted, decoded from the
    posterior's mean, or from one latent sample per row when generators are given (one draw
    for all rows before any chunking, on the CPU, in the model's dtype: the same noise for
    every model, on every device). Returns float64 ``[n_models, n_rows, n_columns]``."""
    n_rows = inputs.shape[-2]
    means, stds = [], []
    with torch.no_grad():
        for index, (start, group) in enumerate(groups_of(model)):
            view = view_of(group)
            dtype, device = view.dtype_device()
            chunk = max(1, stacked_rows_per_pass(device) // model.n_models)
            x = torch.as_tensor(inputs, dtype=dtype)
            if x.ndim == 3:
                x = x[start : start + group.n_models]
            noise = None if generators is None else view.latent_noise(n_rows, 1, generators[index])
            mask = torch.as_tensor(hidden, device=device).expand(n_rows, -1)
            group_means, group_stds = [], []
            for a in range(0, n_rows, chunk):
                part = x[..., a : a + chunk, :].to(device)
                e = None if noise is None else noise[:, a : a + chunk].to(device)
                if part.ndim == 3 and not getattr(group, "rows_per_model", False):
                    # an input per model, for a model that takes one input for all: model k's
                    # outputs for its own input
                    outs = [_outputs(view, part[k], mask[a : a + chunk], e) for k in range(part.shape[0])]
                    out = Outputs(*(torch.stack([o[i][k] for k, o in enumerate(outs)]) for i in range(2)))
                else:
                    out = _outputs(view, part, mask[a : a + chunk], e)
                mean, std = view.layout.moments(out)
                group_means.append(mean.double().cpu())
                group_stds.append(std.double().cpu())
            means.append(torch.cat(group_means, 1))
            stds.append(torch.cat(group_stds, 1))
    return torch.cat(means, 0).numpy(), torch.cat(stds, 0).numpy()


def _outputs(view, rows: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor | None) -> Outputs:
    """The outputs ``[models, n, columns]`` from the posterior's mean, or one latent sample."""
    if noise is None:
        return view.outputs(rows, mask)
    out = view.sampled_outputs(rows, mask, noise)
    return Outputs(out.loc[:, 0], out.scale[:, 0])


# ---------------------------------------------------------------------- predict, rollout
def predict(
    model: LatentModel | OutputModel | OutputGaussianModel,
    rows: np.ndarray | pd.DataFrame,
    given: str | Sequence[str],
    *,
    description: DatasetDescription | None = None,
    seed: int | None = None,
) -> Prediction:
    """Predict every column from the ``given`` ones, for every model of an ensemble.

    Every column not given is set to ``description.muted_value`` before encoding.

    Parameters
    ----------
    model : any model of the protocols (:mod:`intermodal.model.protocol`; an ensemble of
        ``n_models``: any fusion, a loaded run, a model of one's own).
    rows : array ``[n_rows, n_columns]`` in data units: complete rows, or rows where only
        the given columns matter (the others may hold anything, NaN included). Also
        accepted: ``[n_models, n_rows, n_columns]`` (an input per model), or a DataFrame
        whose columns are named as ``description.column_names()`` (it needs only the given
        ones).
    given : a selector or list of selectors (``"vision"``, ``"joints@t-1"``, ``"*@t-1"``,
        ``"*"``); an empty list gives nothing (every column muted).
    description : the data set's description (None = the model's own); it must have the
        model's columns in the model's order.
    seed : None decodes from the latent mean (as the original's evaluation). An integer
        decodes one latent sample per row, ``z = mean + exp(logvar/2)·eps`` with ``eps``
        drawn as ``torch.randn(n_rows, latent)`` in the model's dtype from the stream
        ``(seed, Purpose.PREDICTION_SAMPLE)`` of :mod:`intermodal.streams`, the same ``eps``
        for every model.

    Returns
    -------
    :class:`Prediction` with ``mean``, ``std`` ``[n_models, n_rows, n_columns]`` (float64,
    data units) and the ``given`` mask ``[n_columns]``.

    Raises
    ------
    DataError for an unknown selector, rows of the wrong width, or a given column that
    holds the muted value or a non-finite number (naming the row and column); ModelError
    for a description that does not fit the model.
    """
    model = as_model(model)
    check_protocol(model)
    description = description_for(model, description)
    mask = given_mask(description, given)
    _check_hidden(model, ~mask, f"given {given!r}")
    generators = _generators(model, seed)
    x = _rows_array(rows, description, mask, model.n_models)
    inputs = np.where(mask, x, description.muted_value)
    mean, std = _decode(model, inputs, ~mask, generators)
    return Prediction(mean, std, mask)


def rollout(
    model: LatentModel | OutputModel | OutputGaussianModel,
    start_rows: np.ndarray | pd.DataFrame,
    steps: int,
    given: str | Sequence[str],
    *,
    description: DatasetDescription | None = None,
    seed: int | None = None,
) -> Prediction:
    """Chained prediction: Zambelli et al.'s "use the VAE for prediction" (reconstruct,
    shift, predict again), for any number of steps.

    Step 0 is ``predict(model, description, start_rows, given)``. Each further step ``k``
    feeds the model an input that gives only the previous time step: its columns at the
    previous step (the description's second time step, e.g. ``t-1``) hold step ``k-1``'s
    predicted means at the current step (the first, e.g. ``t``), column for column by
    modality and index; every column at the current step is muted. Each model is fed its
    own prediction, so from step 1 on the inputs are ``[n_models, n_rows, n_columns]``.
    The shifted means are used as they are (not clipped to the value range), as the
    original does.

    Parameters
    ----------
    start_rows, given, description : as :func:`predict` (``given`` applies to step 0 only).
    steps : number of steps, >= 1 (1 = just :func:`predict`).
    seed : None decodes every step from the latent mean; an integer seeds one
        ``torch.Generator`` once, and every step draws its ``eps [n_rows, latent]`` from it
        in turn (the same eps for every model).

    Returns
    -------
    :class:`Prediction` with ``mean``, ``std`` ``[n_models, steps, n_rows, n_columns]``;
    ``given`` is step 0's mask. Needs a description with exactly two time steps.
    """
    model = as_model(model)
    check_protocol(model)
    description = description_for(model, description)
    current, previous = two_steps(description, "rollout")
    steps = whole_number(steps, "rollout: steps", minimum=1, maximum=MAX_ROLLOUT_STEPS)
    src, dst = shift_columns(description, current, previous)
    mask = given_mask(description, given)
    hidden = np.ones(description.n_columns, dtype=bool)
    hidden[dst] = False
    _check_hidden(model, ~mask, f"given {given!r}")
    if steps > 1:
        _check_hidden(model, hidden, f"rollout: every step after the first gives only {previous!r}, which")
    generators = _generators(model, seed)
    x = _rows_array(start_rows, description, mask, model.n_models)
    mean, std = _decode(model, np.where(mask, x, description.muted_value), ~mask, generators)
    means, stds = [mean], [std]
    for _ in range(1, int(steps)):
        shifted = np.full(mean.shape, description.muted_value)
        shifted[..., dst] = means[-1][..., src]
        mean, std = _decode(model, shifted, hidden, generators)
        means.append(mean)
        stds.append(std)
    return Prediction(np.stack(means, 1), np.stack(stds, 1), mask)


# ---------------------------------------------------------------------- tidy tables
def prediction_table(
    mean: np.ndarray,
    std: np.ndarray,
    description: DatasetDescription,
    model_keys: Sequence | None = None,
    truth: np.ndarray | None = None,
    row_index: Sequence | None = None,
) -> pd.DataFrame:
    """A prediction as a long table, one line per model, (step,) row and column.

    Parameters
    ----------
    mean, std : ``[n_models, n_rows, n_columns]`` (from :func:`predict`) or
        ``[n_models, steps, n_rows, n_columns]`` (from :func:`rollout`; adds a ``step``
        column, 0-based).
    model_keys : the :class:`~intermodal.training.config.ModelKey` of each model position
        (e.g. ``model.model_keys``); None: a column ``model`` of positions instead.
    truth : optional true values, broadcastable to ``mean.shape[1:]`` (``[n_rows,
        n_columns]``; for a rollout ``[steps, n_rows, n_columns]`` where step ``k`` of
        start row ``r`` is compared with the row ``k`` later); adds a ``true`` column.
    row_index : labels of the rows (default 0..n_rows-1), e.g. test row numbers.

    Returns
    -------
    DataFrame ``schedule, seed, [step,] row, column, mean, std[, true]`` (``model`` in place
    of the keys without them); ``column`` is the column's name
    (``description.column_names()``), values in data units.
    """
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    if mean.shape != std.shape or mean.ndim not in (3, 4) or mean.shape[-1] != description.n_columns:
        raise DataError(
            f"mean and std must both be [n_models, (steps,) n_rows, {description.n_columns}]; "
            f"got {mean.shape} and {std.shape}"
        )
    if model_keys is not None and len(model_keys) != mean.shape[0]:
        raise ModelError(f"model_keys: {len(model_keys)} keys for {mean.shape[0]} models")
    n_rows, n_cols = mean.shape[-2], mean.shape[-1]
    rows = np.arange(n_rows) if row_index is None else np.asarray(row_index)
    if len(rows) != n_rows:
        raise DataError(f"row_index: {len(rows)} labels for {n_rows} rows")
    lead = mean.shape[:-2]  # (models,) or (models, steps)
    n_lead = int(np.prod(lead))
    per_lead = n_rows * n_cols
    per_model = per_lead * (n_lead // mean.shape[0])
    if model_keys is None:
        frame = {"model": np.repeat(np.arange(mean.shape[0], dtype=np.int64), per_model)}
    else:
        frame = key_columns(model_keys, per_model)
    if mean.ndim == 4:
        frame["step"] = np.tile(np.repeat(np.arange(lead[1], dtype=np.int64), per_lead), lead[0])
    frame["row"] = np.tile(np.repeat(rows, n_cols), n_lead)
    frame["column"] = np.tile(np.asarray(description.column_names(), dtype=object), n_lead * n_rows)
    frame["mean"] = mean.reshape(-1)
    frame["std"] = std.reshape(-1)
    if truth is not None:
        truth = np.broadcast_to(np.asarray(truth, dtype=np.float64), mean.shape[1:])
        frame["true"] = np.broadcast_to(truth, mean.shape).reshape(-1)
    return pd.DataFrame(frame)


def combine_models(mean: np.ndarray, std: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the equal-weight mixture of the models' Gaussians along ``axis``
    (the model axis): ``mean = E[mean_k]``, ``std = sqrt(E[std_k² + mean_k²] − mean²)``,
    so the spread between models adds to each model's own. Same units as the inputs."""
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    mixture_mean = mean.mean(axis)
    second = (std**2 + mean**2).mean(axis)
    return mixture_mean, np.sqrt(np.maximum(second - mixture_mean**2, 0.0))
