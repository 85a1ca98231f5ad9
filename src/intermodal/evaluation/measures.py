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
from ..model.protocol import check_protocol, description_for
from ..options import whole_number
from ..streams import Purpose, numpy_generator
from ..training.runfolder import Ensemble

__all__ = [
    "QUANTITIES",
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
    "model_dtype_device",
]

QUANTITIES = ("single_modality_error", "loss_of_precision", "baseline", "prediction_error", "custom")
SCOPES = ("modality", "all", "")
EVALUATION_MODES = ("first", "random", "all")

# Stacked rows (models x muted variants x rows x z samples) in one pass when ``rows_per_pass``
# is None: passes this small keep the activations in cache, which is faster on a CPU than one
# big pass (docs/performance.md), and they bound the memory.
STACKED_ROWS_PER_PASS = 8192


# ---------------------------------------------------------------------- KL divergence
def _kl_per_column(
    mean_p: torch.Tensor, logvar_p: torch.Tensor, mean_q: torch.Tensor, logvar_q: torch.Tensor
) -> torch.Tensor:
    """Element-wise KL(N(mean_p, exp(logvar_p)) || N(mean_q, exp(logvar_q))), broadcast."""
    # log(s_q/s_p) + s_p^2/(2 s_q^2) - 1/2 = (exp(d) - 1 - d)/2 with d = logvar_p - logvar_q;
    # expm1 stays accurate near d = 0, where the literal form cancels to rounding noise. It is
    # accurate to about an ulp, so for |d| below ~1e-7 the difference can still land an ulp
    # under 0 although its true value is >= 0: hence the clamp.
    d = logvar_p - logvar_q
    variance_term = (torch.expm1(d) - d).clamp_min(0.0)
    return 0.5 * (variance_term + (mean_p - mean_q) ** 2 * torch.exp(-logvar_q))


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
    per_column = _kl_per_column(*tensors)
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


def integration_measures(
    model,
    rows,
    *,
    description: DatasetDescription | None = None,
    z_samples: int | None = None,
    generator: torch.Generator | None = None,
    extra_pairs=None,
    rows_per_pass: int | None = None,
) -> pd.DataFrame:
    """Every integration measure, for every model of an ensemble, on the given rows.

    Parameters
    ----------
    model : any :class:`~intermodal.model.protocol.OutputGaussianModel` (``description``,
        ``n_models``, ``output_gaussian(rows, muted)``): an ensemble of any fusion, one
        loaded from a run folder, several fusions at once, or a model of one's own.
    rows : array or tensor ``[n_rows, n_columns]`` of complete rows (no muted entries), in
        any dtype: they are cast to the model's (its parameters' dtype and device; for a
        model without parameters, float64 on the CPU, or the tensor's own).
    description : None (the model's own), or a description checked to have the model's
        columns in its order (:func:`~intermodal.model.protocol.description_for`).
    z_samples : what the output Gaussians are decoded from. 0 decodes from the posterior's
        mean (as the original evaluation code; for a mixture posterior, the mixture's
        mean). ``S > 0`` draws ``S`` latent samples per row and input (for a mixture, each
        sample picks its component), decodes each, and averages ``KL(p_s || q_s)`` over
        ``s``. The same noise ``eps_s`` serves the full input (``p_s``), every muted copy
        (``q_s``) and every model: identical inputs then give exactly 0, the estimate is
        less noisy, and a model gives the same numbers alone as in its ensemble. Averaging
        the per-sample divergences keeps the closed form, every term >= 0 and "regarding m"
        <= "regarding all" sample by sample; by the joint convexity of KL it is an upper
        bound on the divergence between the two mixtures. None (default): each fusion's
        own default, 0 for concat and poe, 16 for moe and mopoe (docs/method.md §5); a model
        of one's own decodes as it does (0). The prediction error always uses the mean.
    generator : torch generator for the latent noise, on any device (the noise is drawn on
        the generator's device, then moved to the model's: a CPU generator gives the same
        numbers for a model on a GPU); None = torch's global CPU generator. Each fusion of
        a mixed ensemble draws from a copy of it, so its numbers do not depend on the
        others. The noise is drawn once for all rows, by the model's ``latent_noise``
        (for concat and poe ``torch.randn(z_samples, n_rows, latent, generator=generator)``
        in the model's dtype, ``eps_s`` being ``noise[s]``).
    extra_pairs : user pairs, see :func:`measure_specs`; reported with quantity
        ``"custom"`` and the pair's name as ``modality``.
    rows_per_pass : evaluation rows per forward pass (each pass stacks every muted copy and
        sample of those rows, for every model); None picks a size that keeps one pass near
        8192 stacked rows in all. Results do not depend on it beyond rounding.

    Returns
    -------
    DataFrame, one row per (model, quantity, modality, scope), columns ``model`` (int,
    position in the ensemble), then the model's ``model_keys`` columns (``fusion``,
    ``schedule``, ``seed``) where it has them (a trained or loaded ensemble), ``quantity``
    (one of :data:`QUANTITIES`), ``modality`` (modality name; ``""`` for baseline and
    prediction_error; the pair's name for custom), ``scope`` (``"modality"``, ``"all"`` or
    ``""``), ``value`` (float: nats for the KL measures, data units for the prediction
    error; each a mean over the rows). Model-major; within a model: prediction_error, then
    the order of :func:`measure_specs`.
    """
    model = as_model(model)
    check_protocol(model)
    description = description_for(model, description)
    if rows_per_pass is not None:
        rows_per_pass = whole_number(rows_per_pass, "rows_per_pass", minimum=1)
    if z_samples is not None:
        z_samples = whole_number(z_samples, "z_samples")
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
    values = []
    for _, group in groups_of(model):
        kl_mean, distance = _divergences(
            group, rows, description, np.stack(variant_masks), z_samples, generator, rows_per_pass
        )
        c = torch.as_tensor(compared, dtype=torch.float64, device=kl_mean.device)
        per_spec = torch.einsum("mvc,vc->mv", kl_mean[:, spec_variant], c)
        values.append(torch.cat([distance[:, None], per_spec], dim=1).cpu().numpy())
    values = np.concatenate(values)
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
        }
    )
    return labelled(table, model)


def model_dtype_device(model, rows=None) -> tuple[torch.dtype, torch.device]:
    """The dtype and device rows are given to ``model`` in: its parameters', else a tensor's
    own, else float64 on the CPU."""
    parameters = getattr(model, "parameters", None)
    if callable(parameters):
        first = next(iter(parameters()), None)
        if first is not None:
            return first.dtype, first.device
    if isinstance(rows, torch.Tensor) and rows.dtype.is_floating_point:
        return rows.dtype, rows.device
    return torch.float64, torch.device("cpu")


def _divergences(model, rows, description, variant_masks, z_samples, generator, rows_per_pass):
    """For one model of one fusion (or one of a user's), the KL divergence per column
    between the full input's output and each muted copy's, mean over the rows
    ``[models, variants, columns]``, and the prediction error ``[models]``, float64."""
    dtype, device = model_dtype_device(model, rows)
    x = as_rows(rows, description, dtype=dtype, device=device)
    n_rows, n_columns, n_models = x.shape[0], description.n_columns, model.n_models
    samples = z_samples if z_samples is not None else getattr(model, "default_z_samples", 0)
    if samples and not hasattr(model, "latent_noise"):
        raise ModelError(
            f"z_samples {samples}: this model ({type(model).__name__}) decodes as it does; sampling needs a model "
            "with latent_noise(n_rows, samples, generator) and output_gaussian(rows, muted, noise)"
        )
    n_variants = len(variant_masks)
    muted = torch.as_tensor(variant_masks, device=device)  # [variants, columns]
    if rows_per_pass is None:
        rows_per_pass = max(1, STACKED_ROWS_PER_PASS // (n_models * n_variants * max(samples, 1)))
    no_mask = torch.zeros(1, n_columns, dtype=torch.bool, device=device)
    with torch.no_grad():
        noise = None
        if samples:
            # Drawn once for all rows, so that the numbers do not depend on rows_per_pass; from
            # a copy of the generator, so that each fusion of a mixed ensemble draws the same.
            noise = model.latent_noise(n_rows, samples, _copy(generator)).to(device)
        kl_sum = torch.zeros(n_models, n_variants, n_columns, dtype=torch.float64, device=device)
        distance_sum = torch.zeros(n_models, dtype=torch.float64, device=device)
        for start in range(0, n_rows, rows_per_pass):
            chunk = x[start : start + rows_per_pass]
            n = chunk.shape[0]
            stacked = chunk.repeat(n_variants, 1)  # [variants * n, columns], variant-major
            masks = muted.repeat_interleave(n, dim=0)
            if samples:
                eps = noise[:, start : start + n].repeat(1, n_variants, 1)  # the same noise for every copy
                out_mean, out_var = model.output_gaussian(stacked, masks, eps)  # [models, samples, v*n, columns]
                out_mean = out_mean.reshape(n_models, samples, n_variants, n, n_columns)
                out_logvar = torch.log(out_var).reshape(n_models, samples, n_variants, n, n_columns)
                kl = _kl_per_column(out_mean[:, :, :1], out_logvar[:, :, :1], out_mean, out_logvar)
                kl_sum += kl.sum(dim=3, dtype=torch.float64).mean(dim=1)
                full_mean, _ = model.output_gaussian(chunk, no_mask.expand(n, -1))
            else:
                out_mean, out_var = model.output_gaussian(stacked, masks)
                out_mean = out_mean.reshape(n_models, n_variants, n, n_columns)
                out_logvar = torch.log(out_var).reshape(n_models, n_variants, n, n_columns)
                kl = _kl_per_column(out_mean[:, :1], out_logvar[:, :1], out_mean, out_logvar)
                kl_sum += kl.sum(dim=2, dtype=torch.float64)
                full_mean = out_mean[:, 0]
            distance = torch.linalg.vector_norm(chunk[None].to(torch.float64) - full_mean.to(torch.float64), dim=-1)
            distance_sum += distance.sum(dim=-1)
    return kl_sum / n_rows, distance_sum / n_rows


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
