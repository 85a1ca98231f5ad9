"""What every consumer of a trained model relies on, in one place: the model protocols, the
one view of a model the measures, prediction and the checks work through, and that a
model and a data set's description agree on the columns (docs/own_model.md).

A model is measured through one of three protocols, from the richest to the plainest:

- :class:`LatentModel`: gives its latent posterior for rows with some columns hidden
  (``posterior(rows, muted)``, a :class:`~intermodal.model.posterior.GaussianPosterior`
  or :class:`~intermodal.model.posterior.MixturePosterior`) and decodes a latent to its
  output distributions (``decode(z)``). It gets everything: the measures from the
  posterior's mean or from latent samples, the latent diagnostics, prediction with a seed.
  Every fusion of intermodal answers it; so do the adapters (:mod:`intermodal.adapters`).
- :class:`OutputModel`: gives its output distributions directly (``outputs(rows,
  muted)``), per modality of the family its ``likelihoods`` name.
- :class:`OutputGaussianModel`: gives a Gaussian's mean and variance per column
  (``output_gaussian(rows, muted)``), the plainest wrapper.

Each declares ``description`` (the :class:`~intermodal.data.description.DatasetDescription`
whose columns it reads and writes) and ``n_models`` (how many models it holds; 1 for one).
``likelihoods`` maps a modality to its :class:`~intermodal.model.likelihoods.Likelihood`
(a modality it leaves out is Gaussian with a learned scale). ``hideable`` (optional) says
what it can hide: ``"columns"`` (any column, the default) or ``"modalities"`` (whole
modalities only); a finer request is then refused with a :class:`ModelError` before the
model is called.

**Everything hidden.** A latent model given rows with every column hidden must return its
prior (the baseline measure decodes it); an output model, what it predicts from nothing.

A model reads and writes rows in the layout of the description it was built for. Used with
rows of another layout it would silently mix columns up, so every function that takes a
model and a description checks them with :func:`description_for` first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from ..data.description import DatasetDescription
from ..errors import DataError, ModelError
from .likelihoods import Likelihood, OutputLayout, Outputs
from .posterior import MixturePosterior, Posterior, latent_noise

__all__ = [
    "OutputGaussianModel",
    "OutputModel",
    "LatentModel",
    "ModelView",
    "view_of",
    "description_for",
    "check_protocol",
    "HIDEABLE",
]

HIDEABLE = ("columns", "modalities")


@runtime_checkable
class OutputGaussianModel(Protocol):
    """A model that gives a Gaussian per output column.

    ``output_gaussian(rows, muted)``: ``rows [n, columns]`` complete rows (a tensor);
    ``muted [n, columns]`` bool, True where the column is hidden from the model; returns the
    mean and the variance of the model's output Gaussian, each ``[models, n, columns]``, in
    the data's units (variance in units squared, > 0).
    """

    # Read-only members (an attribute or a property answers each).
    @property
    def description(self) -> DatasetDescription: ...

    @property
    def n_models(self) -> int: ...

    def output_gaussian(self, rows: Tensor, muted: Tensor) -> tuple[Tensor, Tensor]:
        """rows [n, columns], complete; muted [n, columns] bool (True: hidden from the
        model). Returns the mean and the variance [models, n, columns]."""
        ...


@runtime_checkable
class OutputModel(Protocol):
    """A model that gives its output distributions, per modality of its ``likelihoods``.

    ``outputs(rows, muted)``: as :meth:`OutputGaussianModel.output_gaussian`; returns an
    :class:`~intermodal.model.likelihoods.Outputs` ``(loc, scale)``, each ``[models, n,
    columns]`` (``loc``: Gaussian mean, Laplace location, Bernoulli or categorical logits;
    ``scale``: Gaussian standard deviation or Laplace scale, ignored elsewhere and where the
    scale is fixed).
    """

    # Read-only members (an attribute or a property answers each).
    @property
    def description(self) -> DatasetDescription: ...

    @property
    def n_models(self) -> int: ...

    @property
    def likelihoods(self) -> Mapping[str, Likelihood]: ...

    def outputs(self, rows: Tensor, muted: Tensor) -> Outputs: ...


@runtime_checkable
class LatentModel(Protocol):
    """A model with a latent posterior and a decoder.

    ``posterior(rows, muted)``: rows and mask as above; returns a
    :class:`~intermodal.model.posterior.Posterior` for ``[models, n]`` (the prior where every
    column is hidden). ``decode(z)``: ``z [models, m, latent_size]``; returns
    :class:`~intermodal.model.likelihoods.Outputs` ``[models, m, columns]``.
    """

    # Read-only members (an attribute or a property answers each).
    @property
    def description(self) -> DatasetDescription: ...

    @property
    def n_models(self) -> int: ...

    @property
    def likelihoods(self) -> Mapping[str, Likelihood]: ...

    @property
    def latent_size(self) -> int: ...

    def posterior(self, rows: Tensor, muted: Tensor) -> Posterior: ...

    def decode(self, z: Tensor) -> Outputs: ...


def check_protocol(model) -> None:
    """Refuse, with a :class:`~intermodal.errors.ModelError` saying what is missing, an
    object that answers none of the protocols."""
    base = [name for name in ("description", "n_models") if not hasattr(model, name)]
    has = {
        "latent": hasattr(model, "posterior") and hasattr(model, "decode"),
        "outputs": hasattr(model, "outputs"),
        "gaussian": hasattr(model, "output_gaussian"),
    }
    if base or not any(has.values()):
        missing = base + ([] if any(has.values()) else ["output_gaussian"])
        raise ModelError(
            f"{type(model).__name__} is not a model the measures can use: it lacks {', '.join(missing)} "
            "(see intermodal.LatentModel, intermodal.OutputModel or intermodal.OutputGaussianModel)"
        )
    if not isinstance(model.description, DatasetDescription):
        raise ModelError(f"{type(model).__name__}.description must be an intermodal DatasetDescription")
    if isinstance(model.n_models, bool) or not isinstance(model.n_models, int) or model.n_models < 1:
        raise ModelError(f"{type(model).__name__}.n_models must be a whole number >= 1; got {model.n_models!r}")
    hideable = getattr(model, "hideable", "columns")
    if hideable not in HIDEABLE:
        raise ModelError(f"{type(model).__name__}.hideable must be one of {HIDEABLE}; got {hideable!r}")


class ModelView:
    """One model (or one fusion's group) as the measures, prediction and the checks use
    it, whichever protocol it answers: ``kind`` is ``"latent"``, ``"outputs"`` or
    ``"gaussian"``; ``layout`` its :class:`~intermodal.model.likelihoods.OutputLayout`."""

    def __init__(self, model):
        check_protocol(model)
        self.model = model
        self.description: DatasetDescription = model.description
        self.n_models: int = model.n_models
        if hasattr(model, "posterior") and hasattr(model, "decode"):
            self.kind = "latent"
        elif hasattr(model, "outputs"):
            self.kind = "outputs"
        else:
            self.kind = "gaussian"
        self.layout = OutputLayout(self.description, getattr(model, "likelihoods", None))
        if self.kind == "gaussian" and not self.layout.all_gaussian:
            raise ModelError(f"{type(model).__name__} gives Gaussians (output_gaussian) but names other likelihoods")
        self.hideable = getattr(model, "hideable", "columns")
        self.name = type(model).__name__
        # intermodal's own models give valid outputs by construction: their checks (a pass
        # over every output) are skipped on the measures' hot path.
        self._check = not getattr(model, "valid_outputs", False)

    @property
    def can_sample(self) -> bool:
        return self.kind == "latent"

    def dtype_device(self, rows=None) -> tuple[torch.dtype, torch.device]:
        """The dtype and device rows are given to the model in: its parameters', else a
        tensor's own, else float64 on the CPU."""
        parameters = getattr(self.model, "parameters", None)
        if callable(parameters):
            first = next(iter(parameters()), None)
            if first is not None:
                return first.dtype, first.device
        if isinstance(rows, torch.Tensor) and rows.dtype.is_floating_point:
            return rows.dtype, rows.device
        return torch.float64, torch.device("cpu")

    # ---------------------------------------------------------------- what it can hide
    def check_hidden(self, hidden: np.ndarray, what: str) -> None:
        """Refuse a hidden set ``[n_columns]`` bool the model cannot hide: part of a
        categorical group, or for a model that hides whole modalities, part of one."""
        self.layout.check_hidden(hidden, what)
        if self.hideable == "modalities":
            for m in self.description.modality_names:
                part = hidden[self.description.columns_of(m)]
                if part.any() and not part.all():
                    raise ModelError(
                        f"{what}: {self.name} hides whole modalities only, and this hides part of {m!r}; "
                        f"select {m!r} whole (no '@step') or leave it out"
                    )

    # ---------------------------------------------------------------- the calls
    def posterior(self, rows: Tensor, muted: Tensor) -> Posterior:
        post = self.model.posterior(rows, muted)
        if not isinstance(post, Posterior):
            raise ModelError(
                f"{self.name}.posterior must return an intermodal GaussianPosterior or MixturePosterior; "
                f"got {type(post).__name__}"
            )
        return post

    def decode(self, z: Tensor) -> Outputs:
        """``z [models, ..., m, latent]`` → outputs ``[models, ..., m, columns]``."""
        lead = z.shape[:-1]
        out = self.model.decode(z.reshape(z.shape[0], -1, z.shape[-1]))
        shape = (*lead, self.description.n_columns)
        if self._check:
            flat = (z.shape[0], int(np.prod(lead[1:])), self.description.n_columns)
            self.layout.check_outputs(out, flat, self.name)
        return self.layout.with_fixed_scales(Outputs(out[0].reshape(shape), out[1].reshape(shape)))

    def outputs(self, rows: Tensor, muted: Tensor) -> Outputs:
        """The outputs decoded from the posterior's mean (a latent model), or the model's own
        (an output model), ``[models, n, columns]``."""
        shape = (self.n_models, rows.shape[-2], self.description.n_columns)
        if self.kind == "latent":
            return self.decode(self.posterior(rows, muted).mean())
        if self.kind == "outputs":
            out = self.model.outputs(rows, muted)
            self.layout.check_outputs(out, shape, f"{self.name}.outputs")
            return self.layout.with_fixed_scales(Outputs(*out))
        mean, var = self.model.output_gaussian(rows, muted)
        for name, t in (("mean", mean), ("variance", var)):
            if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape:
                got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ModelError(f"{self.name}.output_gaussian: the {name} is {got}; expected a tensor {shape}")
        return Outputs(mean, torch.sqrt(var))

    def sampled_outputs(self, rows: Tensor, muted: Tensor, noise: Tensor, reference_rows: int | None = None):
        """Outputs decoded from latent samples, ``[models, samples, n, columns]``, with
        ``noise [samples, n, latent + 2]``. ``reference_rows``: the rows are blocks of
        copies of the first ``reference_rows`` rows, the first block the complete rows;
        each copy's mixture component is then coupled to the complete row's."""
        if not self.can_sample:
            raise ModelError(
                f"{self.name} cannot decode latent samples: that needs a model with a latent posterior "
                "(intermodal.LatentModel: posterior(rows, muted) and decode(z))"
            )
        post = self.posterior(rows, muted)
        reference = None
        if reference_rows is not None and post.is_mixture:
            reference = _first_block(post, reference_rows, rows.shape[-2] // reference_rows)
        return self.decode(post.sample(noise, reference))

    def latent_noise(self, n_rows: int, samples: int, generator: torch.Generator | None) -> Tensor:
        dtype, _ = self.dtype_device()
        return latent_noise(n_rows, samples, int(self.model.latent_size), dtype=dtype, generator=generator)


def _first_block(post: Posterior, n: int, times: int) -> Posterior:
    """The posterior of the first ``n`` rows, repeated ``times`` (the complete rows' posterior
    laid out as a stacked batch of muted copies)."""
    if type(post) is MixturePosterior:
        first = MixturePosterior(post.means[:, :n], post.vars[:, :n], post.log_weights[:, :n], family=post.family)
        return first.repeat(times)
    return post  # a posterior that couples by its own rule (mopoe's subsets) ignores the reference


def view_of(model) -> ModelView:
    """The :class:`ModelView` of ``model`` (checked against the protocols)."""
    return model if isinstance(model, ModelView) else ModelView(model)


def description_for(model, description: DatasetDescription | None = None) -> DatasetDescription:
    """The description to use ``model`` with: its own (``model.description``) when
    ``description`` is None, else ``description`` after checking that it has the model's
    columns, in the model's order, and the model's muted value; otherwise a
    :class:`~intermodal.errors.ModelError` saying how they differ."""
    built_for = model.description
    if description is None or description is built_for:
        return built_for
    if not isinstance(description, DatasetDescription):
        raise DataError(f"description: expected an intermodal DatasetDescription; got {type(description).__name__}")
    ours, theirs = built_for.column_names(), description.column_names()
    if ours != theirs or description.muted_value != built_for.muted_value:
        if sorted(ours) == sorted(theirs) and ours != theirs:
            how = "the same columns in another column order"
        elif ours == theirs:
            how = f"muted value {description.muted_value:g} where the model's is {built_for.muted_value:g}"
        else:
            how = f"modalities {description.modality_names} ({len(theirs)} columns)"
        raise ModelError(
            f"the model was built for {built_for.name!r} (modalities {built_for.modality_names}, {len(ours)} "
            f"columns, muted value {built_for.muted_value:g}); the description {description.name!r} has {how}"
        )
    return description
