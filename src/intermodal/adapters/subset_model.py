"""Any model that conditions on a subset of whole modalities, as a
:class:`~intermodal.model.protocol.LatentModel` (docs/own_model.md).

Most multimodal VAEs (MVAE, MMVAE, MoPoE and their kin) encode *a subset of modalities*
and decode a latent to every modality. The measures ask something finer: a posterior for
each row of a batch whose rows hide different columns. :func:`subsets` bridges the two and
avoids the traps a hand-written wrapper falls into:

- **Rows differ in what they hide.** The measures stack every muted copy of the rows in one
  call. The adapter groups the rows by which modalities they give and calls ``encode``
  once per group, so no row is encoded with another row's subset.
- **Everything hidden** is the baseline: the adapter returns the prior (``prior``,
  N(0, I) by default) without calling ``encode``, which many libraries refuse to do for an
  empty subset.
- **Only whole modalities can be hidden.** The adapter declares ``hideable =
  "modalities"``; a finer request (``vision@t-1``) is refused with a
  :class:`~intermodal.errors.ModelError` naming it, before the model is called.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from ..data.description import DatasetDescription
from ..errors import ModelError
from ..model.likelihoods import Likelihood, Outputs, as_likelihoods
from ..model.posterior import GaussianPosterior, MixturePosterior, Posterior

__all__ = ["SubsetModel", "subsets"]

Encode = Callable[[tuple[str, ...], dict[str, torch.Tensor]], object]
Decode = Callable[[torch.Tensor], object]


class SubsetModel:
    """A model that conditions on subsets of whole modalities, as a
    :class:`~intermodal.model.protocol.LatentModel` the measures, prediction, the diagnostics
    and :func:`~intermodal.evaluation.checks.check_model` accept (``subsets(...)`` is this
    class).

    Parameters
    ----------
    encode : ``encode(subset, inputs)``: ``subset`` a tuple of modality names (never empty),
        ``inputs`` a dict modality → tensor ``[n, columns of the modality]`` (its columns in
        the description's order: every time step) for the rows that give exactly that
        subset. Returns the posterior of those rows: a
        :class:`~intermodal.model.posterior.GaussianPosterior` or
        :class:`~intermodal.model.posterior.MixturePosterior` over ``[models, n]``, or a
        pair ``(mean, var)`` ``[n, latent]`` or ``[models, n, latent]``.
    decode : ``decode(z)``: ``z [models, m, latent]``; returns
        :class:`~intermodal.model.likelihoods.Outputs` in column order, or a dict modality →
        ``loc`` or ``(loc, scale)``, each ``[models, m, columns of the modality]`` (a
        modality with a fixed scale or no scale needs only ``loc``).
    description : the data set's description, whose modalities the model's are.
    latent_size : the latent's width.
    likelihoods : modality → :class:`~intermodal.model.likelihoods.Likelihood` (or family
        name); missing modalities are Gaussian with a learned scale.
    n_models : how many models ``encode`` and ``decode`` hold side by side.
    prior : the posterior when every modality is hidden: ``(mean, var)`` ``[latent]``, or a
        callable ``prior(n, dtype, device)`` returning a posterior over ``[models, n]`` (a
        learned or non-Gaussian prior); None: N(0, I).
    reference_log_weights : for mixture posteriors, the complete row's log weights ``[K]``
        (e.g. zeros: every expert alike), to couple a muted input's samples to the complete
        row's outside the measures (the measures use the complete rows' own).
    parameters : a callable giving the wrapped model's parameters (their dtype and device
        become the rows').
    name : how errors and checks name the model.
    """

    hideable = "modalities"

    def __init__(
        self,
        encode: Encode,
        decode: Decode,
        description: DatasetDescription,
        *,
        latent_size: int,
        likelihoods: Mapping[str, Likelihood | str] | None = None,
        n_models: int = 1,
        prior=None,
        reference_log_weights: Sequence[float] | torch.Tensor | None = None,
        parameters: Callable[[], Iterable[torch.Tensor]] | None = None,
        name: str = "SubsetModel",
    ):
        if not isinstance(description, DatasetDescription):
            raise ModelError(
                f"description: expected an intermodal DatasetDescription; got {type(description).__name__}"
            )
        for what, value in (("latent_size", latent_size), ("n_models", n_models)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ModelError(f"{what}: expected a whole number >= 1; got {value!r}")
        if not callable(encode) or not callable(decode):
            raise ModelError("encode and decode must be callables")
        self.description = description
        self.latent_size = latent_size
        self.n_models = n_models
        self.likelihoods = as_likelihoods(description, likelihoods)
        self._encode, self._decode = encode, decode
        self._prior = prior
        self._reference = None if reference_log_weights is None else torch.as_tensor(reference_log_weights)
        self._parameters = parameters
        self.name = name
        self._columns = {m: description.columns_of(m) for m in description.modality_names}

    def __repr__(self) -> str:
        return f"{self.name}(n_models={self.n_models}, modalities={self.description.modality_names})"

    def parameters(self):
        """The wrapped model's parameters (the measures give rows in their dtype and device)."""
        return iter(()) if self._parameters is None else iter(self._parameters())

    # ---------------------------------------------------------------- the protocol
    def posterior(self, rows: torch.Tensor, muted: torch.Tensor) -> Posterior:
        """Rows ``[n, columns]``, mask ``[n, columns]``: the rows are grouped by the
        modalities they give and each group encoded with that subset; the empty subset is
        the prior."""
        rows = torch.as_tensor(rows)
        mask = torch.as_tensor(muted, device=rows.device)
        if rows.ndim != 2 or mask.shape != rows.shape or mask.dtype != torch.bool:
            raise ModelError(
                f"{self.name}.posterior: rows [n, columns] and a bool mask of the same shape; got "
                f"{tuple(rows.shape)} and {tuple(mask.shape)}"
            )
        names = self.description.modality_names
        hidden = np.stack([self._hidden(mask, m) for m in names], axis=1)  # [n, modalities]
        patterns, group = np.unique(hidden, axis=0, return_inverse=True)
        group = group.reshape(-1)
        parts: list[tuple[np.ndarray, Posterior]] = []
        for g, pattern in enumerate(patterns):
            index = np.flatnonzero(group == g)
            subset = tuple(m for m, h in zip(names, pattern) if not h)
            parts.append((index, self._encode_subset(subset, rows, index)))
        return _combine(parts, rows.shape[0], self.n_models, self.latent_size, self._reference, rows.dtype)

    def decode(self, z: torch.Tensor) -> Outputs:
        """``z [models, m, latent]`` → :class:`~intermodal.model.likelihoods.Outputs`
        ``[models, m, columns]``."""
        out = self._decode(z)
        return self._as_outputs(out, z)

    # ---------------------------------------------------------------- helpers
    def _hidden(self, mask: torch.Tensor, modality: str) -> np.ndarray:
        part = mask[:, torch.as_tensor(self._columns[modality], device=mask.device)]
        whole, some = part.all(dim=1), part.any(dim=1)
        if bool((some & ~whole).any()):
            raise ModelError(
                f"{self.name} hides whole modalities only; these rows hide part of {modality!r} "
                f"(select {modality!r} whole, without '@step')"
            )
        return whole.cpu().numpy()

    def _encode_subset(self, subset: tuple[str, ...], rows: torch.Tensor, index: np.ndarray) -> Posterior:
        n = len(index)
        if not subset:
            if callable(self._prior):
                return self._prior(n, rows.dtype, rows.device)
            mean, var = self._prior_of(rows.dtype, rows.device)
            return GaussianPosterior(
                mean.expand(self.n_models, n, -1).contiguous(), var.expand(self.n_models, n, -1).contiguous()
            )
        take = torch.as_tensor(index, device=rows.device)
        inputs = {m: rows[take][:, torch.as_tensor(self._columns[m], device=rows.device)] for m in subset}
        post = self._encode(subset, inputs)
        if isinstance(post, Posterior):
            return post
        if isinstance(post, tuple) and len(post) == 2:
            mean, var = (torch.as_tensor(t) for t in post)
            if mean.ndim == 2:
                mean, var = mean[None], var[None]
            return GaussianPosterior(mean, var)
        raise ModelError(
            f"{self.name}: encode must return a GaussianPosterior, a MixturePosterior or (mean, var); "
            f"got {type(post).__name__}"
        )

    def _prior_of(self, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
        if self._prior is None:
            return (
                torch.zeros(self.latent_size, dtype=dtype, device=device),
                torch.ones(self.latent_size, dtype=dtype, device=device),
            )
        mean, var = (torch.as_tensor(t, dtype=dtype, device=device).reshape(-1) for t in self._prior)
        return mean, var

    def _as_outputs(self, out, z: torch.Tensor) -> Outputs:
        if isinstance(out, Outputs) or (isinstance(out, tuple) and len(out) == 2 and not isinstance(out[0], Mapping)):
            return Outputs(*out)
        if not isinstance(out, Mapping):
            raise ModelError(
                f"{self.name}: decode must return Outputs(loc, scale) in column order or a mapping modality -> "
                f"loc or (loc, scale); got {type(out).__name__}"
            )
        models, m = z.shape[0], z.shape[1]
        n_columns = self.description.n_columns
        loc = z.new_zeros(models, m, n_columns)
        scale = z.new_ones(models, m, n_columns)
        for modality, cols in self._columns.items():
            if modality not in out:
                raise ModelError(f"{self.name}: decode gave no output for the modality {modality!r}")
            value = out[modality]
            mod_loc, mod_scale = value if isinstance(value, tuple) else (value, None)
            index = torch.as_tensor(cols, device=z.device)
            loc[..., index] = torch.as_tensor(mod_loc, dtype=z.dtype, device=z.device).reshape(models, m, len(cols))
            if mod_scale is not None:
                scale[..., index] = torch.as_tensor(mod_scale, dtype=z.dtype, device=z.device).reshape(
                    models, m, len(cols)
                )
        return Outputs(loc, scale)


def _combine(parts, n: int, models: int, latent: int, reference, dtype) -> Posterior:
    """One posterior over all ``n`` rows, in ``dtype`` (the rows'), from each group's (row
    indices, posterior). Where any group is a mixture of ``K`` components, the result is a
    mixture of ``K + 1``: a Gaussian group (the prior) takes the last slot alone."""
    mixtures = [p for _, p in parts if isinstance(p, MixturePosterior)]
    first = parts[0][1]
    device = (first.mean() if not isinstance(first, MixturePosterior) else first.means).device
    if not mixtures:
        mean = torch.zeros(models, n, latent, dtype=dtype, device=device)
        var = torch.ones_like(mean)
        for index, p in parts:
            i = torch.as_tensor(index, device=device)
            mean[:, i], var[:, i] = p.mean().to(dtype).expand(models, -1, -1), p.var.to(dtype).expand(models, -1, -1)
        return GaussianPosterior(mean, var)
    k = mixtures[0].means.shape[2]
    if any(m.means.shape[2] != k for m in mixtures) or any(m.family != mixtures[0].family for m in mixtures):
        raise ModelError("encode returned mixtures with different numbers of components or families for two subsets")
    slot = any(not isinstance(p, MixturePosterior) for _, p in parts)  # a Gaussian's own last slot
    width = k + 1 if slot else k
    means = torch.zeros(models, n, width, latent, dtype=dtype, device=device)
    variances = torch.ones_like(means)
    log_weights = torch.full((models, n, width), -torch.inf, dtype=dtype, device=device)
    for index, p in parts:
        i = torch.as_tensor(index, device=device)
        if isinstance(p, MixturePosterior):
            means[:, i, :k] = p.means.to(dtype).expand(models, -1, -1, -1)
            variances[:, i, :k] = p.vars.to(dtype).expand(models, -1, -1, -1)
            log_weights[:, i, :k] = p.log_weights.to(dtype).expand(models, -1, -1)
        else:
            means[:, i, k] = p.mean().to(dtype).expand(models, -1, -1)
            variances[:, i, k] = p.var.to(dtype).expand(models, -1, -1)
            log_weights[:, i, k] = 0.0
    if reference is not None:
        reference = torch.as_tensor(reference, dtype=dtype, device=device)
        if slot and reference.shape[-1] == k:
            reference = torch.cat([reference, torch.full((1,), -torch.inf, dtype=dtype, device=device)])
    return MixturePosterior(means, variances, log_weights, reference, family=mixtures[0].family)


# The name the docs use: the class itself, called as a function.
subsets = SubsetModel
