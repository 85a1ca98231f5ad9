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
with the model axis handled by the model's batched layers (no loop over models).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from ..data.description import DatasetDescription
from ..errors import ConfigError, DataError, ModelError
from ..model.group import groups_of
from ..model.likelihoods import Outputs, gaussian_kl_per_column
from ..model.posterior import MIXTURE_Z_SAMPLES
from ..model.protocol import ModelView, check_protocol, description_for, view_of
from ..options import whole_number
from ..streams import Purpose, numpy_generator
from ..training.runfolder import Ensemble

__all__ = [
    "QUANTITIES",
    "DIVERGENCES",
    "SCOPES",
    "MeasureSpec",
    "gaussian_kl",
    "as_model",
    "measure_specs",
    "integration_measures",
    "evaluation_rows",
    "EVALUATION_MODES",
    "as_rows",
    "labelled",
    "stacked_rows_per_pass",
]

QUANTITIES = ("single_modality_error", "loss_of_precision", "baseline", "prediction_error", "custom")
# How latent samples become a divergence (integration_measures, docs/method.md §5c).
DIVERGENCES = ("per-sample", "predictive")
SCOPES = ("modality", "all", "")
EVALUATION_MODES = ("first", "random", "all")

# Stacked rows (models x muted variants x rows x z samples) in one pass when ``rows_per_pass``
# is None: on a CPU, passes this small keep the activations in cache, which is faster than
# one big pass (docs/performance.md); on a GPU, where a pass costs a few launches whatever
# its size, 32 times more (the activations still a few hundred MB).
STACKED_ROWS_PER_PASS, STACKED_ROWS_PER_GPU_PASS = 8192, 1 << 18


def stacked_rows_per_pass(device: torch.device | str) -> int:
    """Stacked rows (models × variants × rows × samples) a pass takes on ``device``."""
    return STACKED_ROWS_PER_PASS if torch.device(device).type == "cpu" else STACKED_ROWS_PER_GPU_PASS


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
        items = []
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
            MeasureSpec("single_modality_error", name, "modality", ~own, own.copy()),
            MeasureSpec("single_modality_error", name, "all", ~own, everything.copy()),
            MeasureSpec("loss_of_precision", name, "modality", own.copy(), own.copy()),
            MeasureSpec("loss_of_precision", name, "all", own.copy(), everything.copy()),
        ]
    specs.append(MeasureSpec("baseline", "", "", everything.copy(), everything.copy()))
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
        specs.append(MeasureSpec("custom", name, "", muted_mask, compared_mask))
    return specs


# ---------------------------------------------------------------------- checks
def as_rows(rows, description: DatasetDescription, *, dtype, device) -> torch.Tensor:
    """Complete evaluation rows (array or tensor ``[n_rows, n_columns]``) as a tensor of
    ``dtype`` on ``device``; a wrong shape, a non-finite value or a muted entry raises a
    :class:`~intermodal.errors.DataError` naming the row and column."""
    x = torch.as_tensor(rows)
    if x.ndim != 2 or x.shape[-1] != description.n_columns:
        got = f"{x.shape[-1]} columns" if x.ndim == 2 else f"an array of shape {tuple(x.shape)}"
        raise DataError(
            f"rows: expected a 2-D array [rows, n_columns] with n_columns = {description.n_columns} "
            f"(the columns of {description.name!r}); got {got}"
        )
    if x.shape[0] == 0:
        raise DataError("rows: no rows given")
    if not (x.dtype.is_floating_point or x.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)):
        raise DataError(f"rows: expected numbers, got dtype {x.dtype}")
    finite = torch.isfinite(x) if x.dtype.is_floating_point else torch.ones_like(x, dtype=torch.bool)
    if not bool(finite.all()):
        r, c = (int(i) for i in torch.nonzero(~finite)[0])
        raise DataError(
            f"rows: row {r}, column {c} ({description.column_names()[c]}) is {float(x[r, c])}; every value must "
            "be finite (no NaN rows)"
        )
    muted = x == description.muted_value
    if bool(muted.any()):
        r, c = (int(i) for i in torch.nonzero(muted)[0])
        raise DataError(
            f"rows: row {r}, column {c} ({description.column_names()[c]}) holds the muted value "
            f"{description.muted_value:g}; the measures need complete rows (the muting is done here)"
        )
    return x.to(dtype=dtype, device=device)


def labelled(table: pd.DataFrame, model) -> pd.DataFrame:
    """``table`` (one row per ``model`` position, ...) with the model's ``model_keys``
    columns after ``model``, where the model knows them (a trained or loaded ensemble)."""
    keys = getattr(model, "model_keys", None)
    if keys is None:
        return table
    positions = table["model"].to_numpy()
    for index, column in reversed(list(enumerate(keys[0]._fields))):
        table.insert(1, column, [keys[p][index] for p in positions])
    return table


# ---------------------------------------------------------------------- the measures
def as_model(model):
    """The model itself: a run's trained models as :meth:`Run.load_ensemble` gives them
    (an :class:`~intermodal.training.runfolder.Ensemble`, with its data set) are measured
    as their ``model``; anything else is taken as it is."""
    return model.model if isinstance(model, Ensemble) else model


def has_mixture_posterior(view: ModelView, rows: torch.Tensor) -> bool:
    """Whether ``view``'s model is a latent model whose posterior is a mixture (asked of its
    first row)."""
    if view.kind != "latent":
        return False
    with torch.no_grad():
        none = torch.zeros(1, rows.shape[-1], dtype=torch.bool, device=rows.device)
        return view.posterior(rows[:1], none).is_mixture


def default_z_samples(view: ModelView, mixture: bool) -> int:
    """What a model decodes from when ``z_samples`` is None: its own ``default_z_samples``
    where it declares one (intermodal's fusions); else :data:`MIXTURE_Z_SAMPLES` for a
    latent model whose posterior is a mixture, 0 (the posterior's mean) otherwise."""
    own = getattr(view.model, "default_z_samples", None)
    if own is not None:
        return int(own)
    return MIXTURE_Z_SAMPLES if mixture else 0


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
    model = as_model(model)
    check_protocol(model)
    description = description_for(model, description)
    if rows_per_pass is not None:
        rows_per_pass = whole_number(rows_per_pass, "rows_per_pass", minimum=1)
    if z_samples is not None:
        z_samples = whole_number(z_samples, "z_samples")
    if divergence is not None and divergence not in DIVERGENCES:
        raise ConfigError(f"divergence {divergence!r}: expected one of {', '.join(DIVERGENCES)}")
    specs = measure_specs(description, extra_pairs)
    n_columns = description.n_columns
    # Measures sharing a muted set share one muted copy; copy 0 is the full input (p).
    variant_of_key: dict[bytes, int] = {np.zeros(n_columns, dtype=bool).tobytes(): 0}
    variant_masks = [np.zeros(n_columns, dtype=bool)]
    spec_variant = []
    for spec in specs:
        key = spec.muted.tobytes()
        if key not in variant_of_key:
            variant_of_key[key] = len(variant_masks)
            variant_masks.append(spec.muted)
        spec_variant.append(variant_of_key[key])
    compared = np.stack([s.compared for s in specs])
    values, errors, labels = [], [], []
    for _, group in groups_of(model):
        view = view_of(group)
        for spec in specs:
            what = f"{spec.quantity} {spec.modality}".rstrip()
            view.layout.check_compared(spec.compared, what)
            view.check_hidden(spec.muted, what)
        value, error = _measure_group(
            view,
            rows,
            description,
            np.stack(variant_masks),
            np.asarray(spec_variant),
            compared,
            z_samples,
            divergence,
            generator,
            rows_per_pass,
        )
        values.append(value)
        errors.append(error)
        labels += [[""] + [view.layout.label_of(c) for c in compared]] * view.n_models
    values, errors = np.concatenate(values), np.concatenate(errors)
    n_models = model.n_models
    quantities = ["prediction_error"] + [s.quantity for s in specs]
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
    return labelled(table, model)


def _measure_group(
    view: ModelView,
    rows,
    description,
    variant_masks,
    spec_variant,
    compared,
    z_samples,
    divergence,
    generator,
    rows_per_pass,
):
    """For one model of one fusion (or one of a user's): every spec's divergence and the
    prediction error ``[models, 1 + specs]`` (float64, numpy), and their standard errors."""
    dtype, device = view.dtype_device(rows)
    x = as_rows(rows, description, dtype=dtype, device=device)
    mixture = has_mixture_posterior(view, x)
    samples = z_samples if z_samples is not None else default_z_samples(view, mixture)
    if samples and not view.can_sample:
        raise ModelError(
            f"z_samples {samples}: this model ({view.name}) decodes as it does; sampling needs a model with a "
            "latent posterior (intermodal.LatentModel: posterior(rows, muted) and decode(z))"
        )
    if samples and divergence is None:
        divergence = "predictive" if mixture else "per-sample"
    n_models = view.n_models
    with torch.no_grad():
        distance = None
        if samples and divergence == "predictive":
            per_spec, error = _predictive(
                view, x, variant_masks, spec_variant, compared, samples, generator, rows_per_pass
            )
        else:
            kl, distance = _closed_form(view, x, variant_masks, samples, generator, rows_per_pass)
            c = torch.as_tensor(compared, dtype=torch.float64, device=kl.device)
            per_spec = torch.einsum("mvc,vc->mv", kl[:, torch.as_tensor(spec_variant)], c)
            error = torch.zeros_like(per_spec)
        if distance is None:
            distance = _prediction_error(view, x, rows_per_pass)
    value = torch.cat([distance[:, None], per_spec], dim=1).cpu().numpy()
    error = torch.cat([torch.zeros(n_models, 1, dtype=torch.float64, device=error.device), error], 1).cpu().numpy()
    return value, error


def _rows_per_pass(rows_per_pass, stacked_per_row: int, device: torch.device) -> int:
    if rows_per_pass is not None:
        return rows_per_pass
    return max(1, stacked_rows_per_pass(device) // stacked_per_row)


def _prediction_error(view: ModelView, x: torch.Tensor, rows_per_pass) -> torch.Tensor:
    """Mean over rows of the Euclidean distance between a row and the mean of the output
    decoded from its complete input (the posterior's mean), ``[models]`` float64."""
    n_rows = x.shape[0]
    step = _rows_per_pass(rows_per_pass, view.n_models, x.device)
    total = torch.zeros(view.n_models, dtype=torch.float64, device=x.device)
    no_mask = torch.zeros(1, x.shape[1], dtype=torch.bool, device=x.device)
    for start in range(0, n_rows, step):
        chunk = x[start : start + step]
        total += _distance_sum(view, chunk, view.outputs(chunk, no_mask.expand(chunk.shape[0], -1)))
    return total / n_rows


def _distance_sum(view: ModelView, rows: torch.Tensor, outputs: Outputs) -> torch.Tensor:
    """Sum over ``rows [n, columns]`` of the Euclidean distance between a row and its
    outputs' mean (``outputs [models, n, columns]``), ``[models]`` float64."""
    mean, _ = view.layout.moments(outputs)
    return torch.linalg.vector_norm(rows[None].to(torch.float64) - mean.to(torch.float64), dim=-1).sum(dim=-1)


def _closed_form(view, x, variant_masks, samples, generator, rows_per_pass):
    """The KL divergence per column between the full input's output and each muted copy's,
    mean over the rows (and over the latent samples) ``[models, variants, columns]``; and,
    decoding from the posterior's mean, the prediction error ``[models]`` from the same
    pass (None with samples)."""
    n_rows, n_columns, n_models = x.shape[0], x.shape[1], view.n_models
    n_variants = len(variant_masks)
    device = x.device
    muted = torch.as_tensor(variant_masks, device=device)  # [variants, columns]
    step = _rows_per_pass(rows_per_pass, n_models * n_variants * max(samples, 1), device)
    noise = None
    if samples:
        # Drawn once for all rows, so that the numbers do not depend on rows_per_pass; from
        # a copy of the generator, so that each fusion of a mixed ensemble draws the same.
        noise = view.latent_noise(n_rows, samples, _copy(generator)).to(device)
    kl_sum = torch.zeros(n_models, n_variants, n_columns, dtype=torch.float64, device=device)
    distance_sum = torch.zeros(n_models, dtype=torch.float64, device=device)
    for start in range(0, n_rows, step):
        chunk = x[start : start + step]
        n = chunk.shape[0]
        stacked = chunk.repeat(n_variants, 1)  # [variants * n, columns], variant-major
        masks = muted.repeat_interleave(n, dim=0)
        if samples:
            eps = noise[:, start : start + n].repeat(1, n_variants, 1)  # the same noise for every copy
            out = view.sampled_outputs(stacked, masks, eps, reference_rows=n)  # [models, samples, v*n, columns]
            out = Outputs(*(t.reshape(n_models, samples, n_variants, n, n_columns) for t in out))
            p = Outputs(out.loc[:, :, :1], out.scale[:, :, :1])
            kl = view.layout.kl_per_column(p, out)
            kl_sum += kl.sum(dim=3, dtype=torch.float64).mean(dim=1)
        else:
            out = view.outputs(stacked, masks)
            out = Outputs(*(t.reshape(n_models, n_variants, n, n_columns) for t in out))
            p = Outputs(out.loc[:, :1], out.scale[:, :1])
            kl = view.layout.kl_per_column(p, out)
            kl_sum += kl.sum(dim=2, dtype=torch.float64)
            distance_sum += _distance_sum(view, chunk, Outputs(out.loc[:, 0], out.scale[:, 0]))
    return kl_sum / n_rows, (None if samples else distance_sum / n_rows)


def _predictive(view, x, variant_masks, spec_variant, compared, samples, generator, rows_per_pass):
    """The divergence between the predictive mixtures of the full input and each spec's
    muted copy over the spec's compared columns, mean over rows ``[models, specs]``, and
    its standard error over rows (docs/method.md §5c)."""
    n_rows, n_columns, n_models = x.shape[0], x.shape[1], view.n_models
    n_variants = len(variant_masks)
    device = x.device
    muted = torch.as_tensor(variant_masks, device=device)
    # The compared sets, each once: [sets, columns]; which set each spec reads.
    set_of: dict[bytes, int] = {}
    spec_set = []
    for c in compared:
        spec_set.append(set_of.setdefault(c.tobytes(), len(set_of)))
    sets = np.stack([np.frombuffer(k, dtype=bool) for k in set_of])
    sets_t = torch.as_tensor(sets, device=device, dtype=x.dtype).T  # [columns, sets]
    spec_variant_t = torch.as_tensor(spec_variant, device=device)
    spec_set_t = torch.as_tensor(spec_set, device=device)
    step = _rows_per_pass(rows_per_pass, n_models * n_variants * samples * samples, device)
    copy = _copy(generator)
    noise = view.latent_noise(n_rows, samples, copy).to(device)
    draw_device = copy.device if copy is not None else "cpu"
    u = torch.rand(samples, n_rows, n_columns, generator=copy, dtype=x.dtype, device=draw_device).to(device)
    total = torch.zeros(n_models, len(spec_set), dtype=torch.float64, device=device)
    squares = torch.zeros_like(total)
    log_s = float(np.log(samples))
    for start in range(0, n_rows, step):
        chunk = x[start : start + step]
        n = chunk.shape[0]
        stacked = chunk.repeat(n_variants, 1)
        masks = muted.repeat_interleave(n, dim=0)
        eps = noise[:, start : start + n].repeat(1, n_variants, 1)
        out = view.sampled_outputs(stacked, masks, eps, reference_rows=n)  # [models, S, v*n, columns]
        out = Outputs(*(t.reshape(n_models, samples, n_variants, n, n_columns) for t in out))
        full = Outputs(out.loc[:, :, 0], out.scale[:, :, 0])  # [models, S, n, columns]
        y = view.layout.sample(full, u[:, start : start + n].unsqueeze(0).expand(n_models, -1, -1, -1))
        # log q_s(y_t) per column: [models, t, s, v, n, columns], then summed over each set.
        expanded = Outputs(out.loc.unsqueeze(1), out.scale.unsqueeze(1))
        log_prob = view.layout.log_prob_per_column(expanded, y[:, :, None, None])
        per_set = torch.matmul(log_prob, sets_t).to(torch.float64)  # [models, t, s, v, n, sets]
        log_mixture = torch.logsumexp(per_set, dim=2) - log_s  # [models, t, v, n, sets]
        diff = log_mixture[:, :, :1] - log_mixture  # log P(y_t) - log Q(y_t)
        per_row = diff.mean(dim=1)  # [models, v, n, sets]
        per_spec = per_row[:, spec_variant_t, :, spec_set_t]  # [specs, models, n]
        per_spec = per_spec.permute(1, 0, 2)
        total += per_spec.sum(-1)
        squares += (per_spec**2).sum(-1)
    mean = total / n_rows
    variance = (squares / n_rows - mean**2).clamp_min(0.0) * (n_rows / max(n_rows - 1, 1))
    # The divergence is >= 0; an estimate below 0 is noise, and 0 is closer to the truth.
    return mean.clamp_min(0.0), torch.sqrt(variance / n_rows)


def _copy(generator: torch.Generator | None) -> torch.Generator | None:
    if generator is None:
        return None
    copy = torch.Generator(device=generator.device)
    copy.set_state(generator.get_state())
    return copy


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
