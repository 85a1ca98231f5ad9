"""The engine behind every KL measure (docs/method.md §5, §5c): given a model and complete
rows, the divergence between the output of the full input and the output of each muted copy,
over each copy's compared columns, for every model of an ensemble at once.

A measure is a pair of boolean masks over the columns: ``muted`` (what the copy hides) and
``compared`` (the output columns the divergence sums over). Measures sharing a muted set share
one decoded copy; the copies of a chunk of rows are stacked into one batch and decoded in one
pass (no loop over models). :mod:`intermodal.evaluation.measures` names the paper's measures
and :mod:`intermodal.evaluation.lattice` the lattice of subsets; both come here for numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..data.description import DatasetDescription
from ..errors import DataError, ModelError
from ..model.likelihoods import Outputs
from ..model.posterior import MIXTURE_Z_SAMPLES
from ..model.protocol import ModelView

__all__ = [
    "STACKED_ROWS_PER_PASS",
    "STACKED_ROWS_PER_GPU_PASS",
    "stacked_rows_per_pass",
    "row_values",
    "as_rows",
    "has_mixture_posterior",
    "default_z_samples",
    "resolved_decoding",
    "divergences",
]

# Stacked rows (models x muted variants x rows x z samples) in one pass when ``rows_per_pass``
# is None: on a CPU, passes this small keep the activations in cache, which is faster than
# one big pass (docs/performance.md); on a GPU, where a pass costs a few launches whatever
# its size, 32 times more (the activations still a few hundred MB).
STACKED_ROWS_PER_PASS, STACKED_ROWS_PER_GPU_PASS = 8192, 1 << 18


def stacked_rows_per_pass(device: torch.device | str) -> int:
    """Stacked rows (models × variants × rows × samples) a pass takes on ``device``."""
    return STACKED_ROWS_PER_PASS if torch.device(device).type == "cpu" else STACKED_ROWS_PER_GPU_PASS


def row_values(rows, description: DatasetDescription, *, needed: np.ndarray | None = None):
    """The one door through which rows given to the library become numbers: ``rows`` (a
    tensor, an array, nested lists, or a DataFrame whose columns are the description's
    column names, in any order) as a tensor or a numeric array, shape unchecked. A tensor
    or a numeric array passes as it is. A DataFrame must hold every column (``needed``, a
    mask: those columns only; the others become NaN). Text, ``None`` or another non-number
    in a cell, rows of different lengths, or something that is not a table raise a
    :class:`~intermodal.errors.DataError` naming the row and column."""
    if isinstance(rows, torch.Tensor) or (isinstance(rows, np.ndarray) and rows.dtype.kind in "biufc"):
        return rows
    names = description.column_names()
    if isinstance(rows, pd.DataFrame):
        unknown = [c for c in rows.columns if c not in names]
        if unknown:
            raise DataError(
                f"rows: a table's columns must be named as the columns of {description.name!r} (like "
                f"{names[:3]}); it has unknown column(s) {unknown[:5]}"
            )
        wanted = names if needed is None else [n for n, m in zip(names, needed) if m]
        missing = [n for n in wanted if n not in rows.columns]
        if missing:
            raise DataError(f"rows: the table lacks column(s) {missing[:5]} of {description.name!r}")
        rows = rows.reindex(columns=names).to_numpy(copy=True)
        if rows.dtype.kind in "biufc":
            return rows
    elif isinstance(rows, (str, bytes)) or not hasattr(rows, "__len__"):
        raise DataError(
            f"rows: expected a table of numbers [n_rows, n_columns] (an array, a tensor, a list of rows or a "
            f"DataFrame); got {type(rows).__name__} {rows!r:.60}"
        )
    else:
        lengths = [len(r) if hasattr(r, "__len__") and not isinstance(r, (str, bytes)) else None for r in rows]
        if len(set(lengths)) > 1:
            first = next(i for i, n in enumerate(lengths) if n != lengths[0])
            raise DataError(
                f"rows: rows have different lengths (row 0 has {lengths[0]} values, row {first} has "
                f"{lengths[first]}); expected n_columns = {description.n_columns} values in every row"
            )
        try:
            values = np.asarray(rows)
            if values.dtype.kind in "biufc":
                return values
            rows = np.asarray(rows, dtype=object)  # each cell as given, to name the first non-number
        except ValueError:  # ragged deeper down
            raise DataError(
                "rows: expected a table of numbers [n_rows, n_columns]; got nested lists of different lengths"
            ) from None
    # An array of objects: every cell must be a real number.
    for index, cell in np.ndenumerate(rows):
        if not isinstance(cell, (int, float, np.integer, np.floating)) or isinstance(cell, bool):
            at = f"row {index[0]}, column {index[1]}" if len(index) == 2 else f"position {list(index)}"
            if len(index) == 2 and index[1] < len(names):
                at += f" ({names[index[1]]})"
            raise DataError(f"rows: {at} holds {cell!r:.40} ({type(cell).__name__}); expected a number")
    return rows.astype(np.float64)


def as_rows(rows, description: DatasetDescription, *, dtype, device) -> torch.Tensor:
    """Complete evaluation rows (array or tensor ``[n_rows, n_columns]``, nested lists, or a
    DataFrame of the description's columns: :func:`row_values`) as a tensor of ``dtype``
    on ``device``; a wrong shape, a non-number, a non-finite value or a muted entry raises
    a :class:`~intermodal.errors.DataError` naming the row and column."""
    x = torch.as_tensor(row_values(rows, description))
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


def resolved_decoding(view: ModelView, x: torch.Tensor, z_samples: int | None, divergence: str | None):
    """What ``view``'s model decodes from for the measures and how samples become a
    divergence, the options' None resolved (docs/method.md §5, §5c): ``(samples,
    divergence)``, ``samples`` 0 for the posterior's mean (``divergence`` then None: closed
    forms), else the samples and ``"per-sample"`` or ``"predictive"`` (the latter by default
    for a mixture posterior). ``x``: the rows, as :func:`as_rows` gives them."""
    mixture = has_mixture_posterior(view, x)
    samples = z_samples if z_samples is not None else default_z_samples(view, mixture)
    if samples and not view.can_sample:
        raise ModelError(
            f"z_samples {samples}: this model ({view.name}) decodes as it does; sampling needs a model with a "
            "latent posterior (intermodal.LatentModel: posterior(rows, muted) and decode(z))"
        )
    if not samples:
        return 0, None
    return samples, divergence if divergence is not None else ("predictive" if mixture else "per-sample")


def divergences(
    view: ModelView,
    rows,
    description: DatasetDescription,
    muted: np.ndarray,
    compared: np.ndarray,
    *,
    z_samples: int | None,
    divergence: str | None,
    generator: torch.Generator | None,
    rows_per_pass: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """For one model (or one fusion's ensemble) seen through ``view``: the prediction error
    and the divergence of every measure ``k`` (``muted[k]``, ``compared[k]``, boolean masks
    ``[measures, n_columns]``), mean over ``rows`` ``[n_rows, n_columns]``.

    Returns ``values, errors``, float64 arrays ``[models, 1 + measures]``: column 0 the
    prediction error (data units), then each measure's divergence (nats); ``errors`` the
    Monte Carlo standard errors (0 for closed forms and the prediction error). The options
    are those of :func:`intermodal.evaluation.measures.integration_measures`."""
    muted = np.asarray(muted, dtype=bool).reshape(-1, description.n_columns)
    compared = np.asarray(compared, dtype=bool).reshape(-1, description.n_columns)
    # Measures sharing a muted set share one muted copy; copy 0 is the full input (p).
    variant_of_key: dict[bytes, int] = {np.zeros(description.n_columns, dtype=bool).tobytes(): 0}
    variant_masks = [np.zeros(description.n_columns, dtype=bool)]
    spec_variant = []
    for mask in muted:
        key = mask.tobytes()
        if key not in variant_of_key:
            variant_of_key[key] = len(variant_masks)
            variant_masks.append(mask)
        spec_variant.append(variant_of_key[key])
    return _measure_group(
        view,
        rows,
        description,
        np.stack(variant_masks),
        np.asarray(spec_variant, dtype=np.int64),
        compared,
        z_samples,
        divergence,
        generator,
        rows_per_pass,
    )


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
    """:func:`divergences` once the muted copies are deduplicated: ``variant_masks
    [variants, columns]`` (row 0 nothing muted), ``spec_variant [measures]`` the copy each
    measure reads."""
    dtype, device = view.dtype_device(rows)
    x = as_rows(rows, description, dtype=dtype, device=device)
    samples, divergence = resolved_decoding(view, x, z_samples, divergence)
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
        if noise is not None:  # samples
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
