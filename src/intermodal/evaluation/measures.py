"""Information-theoretic integration measures (Langer et al. 2024, Section 2.3; docs/method.md §5).

For an evaluation row ``x`` (complete), ``p = N(mu_p, diag sigma_p^2)`` is the decoder's
output for input ``x`` and ``q = N(mu_q, diag sigma_q^2)`` its output for a muted copy of
``x``. Over an index set ``I`` of output columns::

    D_I(p||q) = sum_{i in I} [ log(sigma_q,i / sigma_p,i)
                               + (sigma_p,i^2 + (mu_p,i - mu_q,i)^2) / (2 sigma_q,i^2) - 1/2 ]

averaged over the evaluation rows. Values are in nats. For each modality ``m`` (both of its
time steps) the standard set is:

==========================================  =====================  ===============
measure                                      input muted            I
==========================================  =====================  ===============
single modality error, regarding m           everything except m    columns of m
single modality error, regarding all         everything except m    all columns
loss of precision, regarding m               only m                 columns of m
loss of precision, regarding all             only m                 all columns
baseline (once, not per modality)            everything             all columns
==========================================  =====================  ===============

plus the prediction error (mean over rows of the Euclidean distance between ``x`` and
``mu_p``, in data units) and any user-named pair of (muted selectors, compared selectors).

Everything is computed for a whole ensemble at once: every muted copy of the evaluation
rows is stacked into one batch and encoded and decoded in a single pass per chunk of rows,
with the model axis handled by the model's batched layers (no loop over models); the engine
that does it is :mod:`intermodal.evaluation.divergences`, shared with the lattice measures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch

from ..data.description import DatasetDescription
from ..errors import ConfigError, DataError
from ..model.group import groups_of
from ..model.likelihoods import gaussian_kl_per_column
from ..model.posterior import MAX_Z_SAMPLES
from ..model.protocol import check_protocol, description_for, view_of
from ..options import whole_number
from ..streams import Purpose, numpy_generator
from ..training.config import label_models
from ..training.runfolder import Run
from .catalogue import BASELINE, CUSTOM, LOSS_OF_PRECISION, MEASURED_QUANTITIES, PREDICTION_ERROR, SINGLE_MODALITY_ERROR
from .divergences import as_rows, divergences, stacked_rows_per_pass

__all__ = [
    "QUANTITIES",
    "DIVERGENCES",
    "MeasureSpec",
    "gaussian_kl",
    "as_model",
    "measure_specs",
    "integration_measures",
    "evaluation_rows",
    "EVALUATION_MODES",
    "as_rows",
    "stacked_rows_per_pass",
    "evaluate_specs",
    "checked_options",
]

QUANTITIES = MEASURED_QUANTITIES  # the catalogue's (evaluation/catalogue.py), in the rows' order
# How latent samples become a divergence (integration_measures, docs/method.md §5c).
DIVERGENCES = ("per-sample", "predictive")
EVALUATION_MODES = ("first", "random", "all")


# ---------------------------------------------------------------------- KL divergence
def gaussian_kl(mean_p, logvar_p, mean_q, logvar_q, columns=None):
    """KL(p || q) between diagonal Gaussians, summed over output columns, per row.

    Parameters
    ----------
    mean_p, logvar_p, mean_q, logvar_q : tensors or arrays ``[..., n_columns]``
        Means and natural-log variances of ``p`` and ``q``; broadcast against each other.
    columns : index array, boolean mask ``[n_columns]``, or None
        The output columns ``I`` summed over; None = all columns.

    Returns
    -------
    KL in nats, shape of the broadcast inputs without the last axis: a tensor if any input
    is a tensor, else a numpy array.
    """
    as_numpy = not any(isinstance(a, torch.Tensor) for a in (mean_p, logvar_p, mean_q, logvar_q))
    tensors = [torch.as_tensor(a) for a in (mean_p, logvar_p, mean_q, logvar_q)]
    dtype = torch.promote_types(
        torch.promote_types(tensors[0].dtype, tensors[1].dtype), torch.promote_types(tensors[2].dtype, tensors[3].dtype)
    )
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    tensors = [t.to(dtype) for t in tensors]
    per_column = gaussian_kl_per_column(*tensors)
    if columns is not None:
        index = torch.as_tensor(np.asarray(columns))
        n = per_column.shape[-1]
        if index.dtype == torch.bool:
            if index.ndim != 1 or index.numel() != n:
                raise ConfigError(
                    f"columns: boolean mask of length {index.numel()}; expected one of length {n} (the last axis)"
                )
            index = torch.nonzero(index).flatten()
        elif index.numel() and (index.dtype.is_floating_point or index.min() < -n or index.max() >= n):
            raise ConfigError(
                f"columns: expected integer indices in [0, {n}) or a boolean mask of length {n}; "
                f"got {np.asarray(columns)!r}"
            )
        per_column = per_column.index_select(-1, index.to(per_column.device).long().remainder(n).flatten())
    kl = per_column.sum(-1)
    return kl.numpy() if as_numpy else kl


# ---------------------------------------------------------------------- which measures
class MeasureSpec(NamedTuple):
    """One KL measure: which input columns are muted for ``q`` and which output columns
    ``I`` the divergence sums over.

    ``quantity``: one of :data:`QUANTITIES` (never ``prediction_error``, which is no KL);
    ``modality``: the modality name, ``""`` for the baseline, the pair's name for a custom
    pair; ``scope``: ``"modality"``, ``"all"`` or ``""``; ``muted``, ``compared``: boolean
    masks ``[n_columns]``.
    """

    quantity: str
    modality: str
    scope: str
    muted: np.ndarray
    compared: np.ndarray


def _normalise_pairs(extra_pairs) -> list[tuple[str, object, object]]:
    if extra_pairs is None:
        return []
    if isinstance(extra_pairs, Mapping):
        items: list[tuple[Any, ...]] = []
        for name, pair in extra_pairs.items():
            if isinstance(pair, Mapping):
                if sorted(pair) != ["compared", "muted"]:
                    raise ConfigError(
                        f"extra pair {name!r}: expected the keys 'muted' and 'compared'; got {sorted(pair)}"
                    )
                items.append((name, pair["muted"], pair["compared"]))
            elif isinstance(pair, (tuple, list)) and len(pair) == 2:
                items.append((name, *pair))
            else:
                items.append((name, pair))
    elif isinstance(extra_pairs, Iterable) and not isinstance(extra_pairs, (str, bytes)):
        items = [tuple(p) if isinstance(p, (tuple, list)) else (p,) for p in extra_pairs]
    else:
        items = [(extra_pairs,)]
    out = []
    for item in items:
        if len(item) != 3:
            raise ConfigError(
                "extra_pairs: each pair must be (name, muted selectors, compared selectors), or a mapping "
                f"name -> (muted selectors, compared selectors); got {item!r}"
            )
        out.append(item)
    return out


def _selector_mask(description: DatasetDescription, selectors, what: str) -> np.ndarray:
    try:
        return description.mask(selectors)
    except DataError as e:
        raise DataError(f"{what}: {e}") from None


def measure_specs(description: DatasetDescription, extra_pairs=None) -> list[MeasureSpec]:
    """The KL measures computed by :func:`integration_measures`, with their masks.

    Parameters
    ----------
    description : the data set's description.
    extra_pairs : optional user pairs: a mapping ``name -> (muted, compared)`` or
        ``name -> {"muted": ..., "compared": ...}`` (the run configuration's JSON form), or a
        list of ``(name, muted, compared)``; ``muted`` and ``compared`` are selector lists
        (``"modality"`` or ``"modality@step"``), e.g.
        ``{"joints_t-1_only": (["joints@t-1"], ["joints@t-1"])}``. An empty muted list is
        allowed (the measure is then 0); an empty compared list is not.

    Returns
    -------
    list of :class:`MeasureSpec` ``(quantity, modality, scope, muted[n_columns],
    compared[n_columns])``: per modality, in the description's order, single modality
    error regarding the modality and regarding all, then loss of precision regarding the
    modality and regarding all; then the baseline; then the custom pairs in the order given.
    """
    everything = np.ones(description.n_columns, dtype=bool)
    specs: list[MeasureSpec] = []
    for name in description.modality_names:
        own = description.mask(name)
        specs += [
            MeasureSpec(SINGLE_MODALITY_ERROR, name, "modality", ~own, own.copy()),
            MeasureSpec(SINGLE_MODALITY_ERROR, name, "all", ~own, everything.copy()),
            MeasureSpec(LOSS_OF_PRECISION, name, "modality", own.copy(), own.copy()),
            MeasureSpec(LOSS_OF_PRECISION, name, "all", own.copy(), everything.copy()),
        ]
    specs.append(MeasureSpec(BASELINE, "", "", everything.copy(), everything.copy()))
    seen = set()
    for name, muted, compared in _normalise_pairs(extra_pairs):
        if not isinstance(name, str) or not name:
            raise ConfigError(f"extra_pairs: a pair's name must be a non-empty string; got {name!r}")
        if name in seen:
            raise ConfigError(f"extra_pairs: the name {name!r} is used twice")
        seen.add(name)
        muted_mask = _selector_mask(description, muted, f"extra pair {name!r}, muted selectors")
        compared_mask = _selector_mask(description, compared, f"extra pair {name!r}, compared selectors")
        if not compared_mask.any():
            raise ConfigError(
                f"extra pair {name!r}: the compared selectors are empty, so the divergence would be 0 by "
                "construction; name at least one modality"
            )
        specs.append(MeasureSpec(CUSTOM, name, "", muted_mask, compared_mask))
    return specs


# ---------------------------------------------------------------------- checks
# ---------------------------------------------------------------------- the measures
def as_model(model):
    """The model itself: a trained run (a :class:`~intermodal.training.runfolder.Run`, in
    memory or read back) is measured as its ``model``; anything else is taken as it is."""
    return model.model if isinstance(model, Run) else model


def integration_measures(
    model,
    rows,
    *,
    description: DatasetDescription | None = None,
    z_samples: int | None = None,
    divergence: str | None = None,
    generator: torch.Generator | None = None,
    extra_pairs=None,
    rows_per_pass: int | None = None,
    standard_error: bool = False,
) -> pd.DataFrame:
    """Every integration measure, for every model of an ensemble, on the given rows.

    Parameters
    ----------
    model : any model the protocols of :mod:`intermodal.model.protocol` describe
        (:class:`~intermodal.model.protocol.LatentModel`,
        :class:`~intermodal.model.protocol.OutputModel` or
        :class:`~intermodal.model.protocol.OutputGaussianModel`): an ensemble of any
        fusion, one loaded from a run folder, several fusions at once, an adapted model
        (:mod:`intermodal.adapters`) or a model of one's own.
    rows : array or tensor ``[n_rows, n_columns]`` of complete rows (no muted entries), in
        any dtype: they are cast to the model's (its parameters' dtype and device; for a
        model without parameters, float64 on the CPU, or the tensor's own).
    description : None (the model's own), or a description checked to have the model's
        columns in its order (:func:`~intermodal.model.protocol.description_for`).
    z_samples : what the output distributions are decoded from. 0 decodes from the
        posterior's mean (as the original evaluation code; for a mixture posterior, the
        mixture's mean) and the divergences are closed-form. ``S > 0`` draws ``S`` latent
        samples per row and input (needs a latent model); the same noise serves the full
        input, every muted copy and every model, and a mixture's muted copies keep the
        complete row's component where they have it (docs/method.md §5c). None (default):
        the model's own default, 0 for a Gaussian posterior and 16 for a mixture
        (``moe``, ``mopoe``, an adapted MMVAE or MoPoE).
    divergence : with ``S > 0``, how the samples become a divergence (one of
        :data:`DIVERGENCES`). ``"per-sample"``: the mean over ``s`` of the closed-form
        ``KL(p_s ‖ q_s)`` between the outputs decoded from the ``s``-th samples (an upper
        bound of the divergence between the predictive mixtures, by joint convexity).
        ``"predictive"``: the divergence between what the model predicts as a whole, the
        predictive mixtures ``P = (1/S) Σ_s p_s`` and ``Q = (1/S) Σ_s q_s``, estimated by
        drawing one ``y_t`` from each ``p_t`` and averaging ``log P(y_t) − log Q(y_t)``
        (an estimate below 0, noise around a divergence near 0, is reported as 0;
        docs/method.md §5c gives its error). None (default): ``"predictive"`` for a
        mixture posterior, ``"per-sample"`` for a Gaussian one.
    generator : torch generator for the latent noise (and, for ``"predictive"``, the output
        draws), on any device; None = torch's global CPU generator. Each fusion of a mixed
        ensemble draws from a copy of it, so its numbers do not depend on the others. The
        noise is drawn once for all rows (``latent_noise``: ``torch.randn(z_samples,
        n_rows, latent)`` then two uniforms per sample and row).
    extra_pairs : user pairs, see :func:`measure_specs`; reported with quantity
        ``"custom"`` and the pair's name as ``modality``.
    rows_per_pass : evaluation rows per forward pass (each pass stacks every muted copy and
        sample of those rows, for every model); None picks a size that keeps one pass near
        8192 stacked rows in all on a CPU, 262 144 on a GPU (:func:`stacked_rows_per_pass`).
        Results do not depend on it beyond rounding.
    standard_error : add a column ``standard_error``: the Monte Carlo standard error of a
        ``"predictive"`` estimate (the standard deviation over rows of the per-row estimate,
        over ``sqrt(n_rows)``), 0 for the closed forms.

    Returns
    -------
    DataFrame, one row per (model, quantity, modality, scope), columns ``model`` (int,
    position in the ensemble), then the model's ``model_keys`` columns (``fusion``,
    ``schedule``, ``seed``) where it has them (a trained or loaded ensemble), ``quantity``
    (one of :data:`QUANTITIES`), ``modality`` (modality name; ``""`` for baseline and
    prediction_error; the pair's name for custom), ``scope`` (``"modality"``, ``"all"`` or
    ``""``), ``value`` (float: nats for the KL measures, data units for the prediction
    error; each a mean over the rows), ``likelihood`` (the output families of the compared
    columns, with a fixed scale where the model has one, e.g. ``gaussian(scale=0.75)``;
    several joined by ``+``), then ``standard_error`` when asked. Model-major; within a
    model: prediction_error, then the order of :func:`measure_specs`.
    """
    model, description, z_samples, divergence, rows_per_pass = checked_options(
        model, description, z_samples, divergence, rows_per_pass
    )
    specs = measure_specs(description, extra_pairs)
    values, errors, labels = evaluate_specs(
        model, rows, description, specs, z_samples, divergence, generator, rows_per_pass
    )
    n_models = model.n_models
    quantities = [PREDICTION_ERROR] + [s.quantity for s in specs]
    modalities = [""] + [s.modality for s in specs]
    scopes = [""] + [s.scope for s in specs]
    per_model = len(quantities)
    table = pd.DataFrame(
        {
            "model": np.repeat(np.arange(n_models, dtype=np.int64), per_model),
            "quantity": np.tile(np.array(quantities, dtype=object), n_models),
            "modality": np.tile(np.array(modalities, dtype=object), n_models),
            "scope": np.tile(np.array(scopes, dtype=object), n_models),
            "value": values.reshape(-1).astype(np.float64),
            "likelihood": np.array([label for per in labels for label in per], dtype=object),
        }
    )
    if standard_error:
        table["standard_error"] = errors.reshape(-1).astype(np.float64)
    return label_models(table, getattr(model, "model_keys", None))


def checked_options(model, description, z_samples, divergence, rows_per_pass) -> tuple:
    """The model (a run's ensemble as its model), its description and the measures'
    options as :func:`integration_measures` takes them, each checked: a bad one raises a
    :class:`~intermodal.errors.ConfigError` naming it."""
    model = as_model(model)
    check_protocol(model)
    description = description_for(model, description)
    if rows_per_pass is not None:
        rows_per_pass = whole_number(rows_per_pass, "rows_per_pass", minimum=1)
    if z_samples is not None:
        z_samples = whole_number(z_samples, "z_samples", maximum=MAX_Z_SAMPLES)
    if divergence is not None and divergence not in DIVERGENCES:
        raise ConfigError(f"divergence {divergence!r}: expected one of {', '.join(DIVERGENCES)}")
    return model, description, z_samples, divergence, rows_per_pass


def evaluate_specs(
    model,
    rows,
    description: DatasetDescription,
    specs: list[MeasureSpec],
    z_samples,
    divergence,
    generator,
    rows_per_pass,
) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """The prediction error and every spec's divergence for each model of ``model`` (its
    fusions' ensembles one after another): ``values, errors`` float64 ``[models, 1 + specs]``
    (see :func:`~intermodal.evaluation.divergences.divergences`) and, per model, the output
    families of each column-set compared (``""`` for the prediction error)."""
    muted = np.stack([s.muted for s in specs])
    compared = np.stack([s.compared for s in specs])
    values, errors, labels = [], [], []
    for _, group in groups_of(model):
        view = view_of(group)
        for spec in specs:
            what = f"{spec.quantity} {spec.modality}".rstrip()
            view.layout.check_compared(spec.compared, what)
            view.check_hidden(spec.muted, what)
        value, error = divergences(
            view,
            rows,
            description,
            muted,
            compared,
            z_samples=z_samples,
            divergence=divergence,
            generator=generator,
            rows_per_pass=rows_per_pass,
        )
        values.append(value)
        errors.append(error)
        labels += [[""] + [view.layout.label_of(c) for c in compared]] * view.n_models
    return np.concatenate(values), np.concatenate(errors), labels


# ---------------------------------------------------------------------- evaluation rows
def evaluation_rows(test_rows, mode: str = "first", n: int = 1024, seed: int = 0):
    """The rows the measures are evaluated on.

    Parameters
    ----------
    test_rows : array or tensor ``[n_rows, n_columns]``.
    mode : ``"first"`` (the first ``n`` rows; default, as the paper's first 1024 test
        rows), ``"random"`` (``n`` rows drawn without replacement with ``seed``, kept in
        their original order) or ``"all"`` (every row; ``n`` is ignored).
    n : number of rows for ``"first"`` and ``"random"``.
    seed : seed of the ``"random"`` draw (its stream: ``intermodal.streams.Purpose.EVALUATION_ROWS``).

    Returns
    -------
    The selected rows ``[n, n_columns]``, of the same type as ``test_rows``.
    """
    if mode not in EVALUATION_MODES:
        raise ConfigError(
            f"evaluation rows: unknown mode {mode!r}; expected one of {', '.join(repr(m) for m in EVALUATION_MODES)}"
        )
    available = len(test_rows)
    if mode == "all":
        return test_rows
    n = whole_number(n, "evaluation rows: n", minimum=1)
    if n > available:
        raise ConfigError(
            f"evaluation rows: asked for n={n} rows with mode {mode!r}, but there are only {available} rows; "
            f"pass n <= {available} or mode 'all'"
        )
    if mode == "first":
        return test_rows[:n]
    index = np.sort(numpy_generator(Purpose.EVALUATION_ROWS, seed).choice(available, size=n, replace=False))
    if isinstance(test_rows, torch.Tensor):
        return test_rows[torch.as_tensor(index, device=test_rows.device)]
    return test_rows[index]
