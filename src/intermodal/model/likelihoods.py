"""What a model outputs for each modality: its likelihood family (docs/method.md §5b).

The list of families, :data:`FAMILIES`, is the data description's
(:data:`~intermodal.data.description.LIKELIHOODS`: a data set names each modality's family,
Gaussian by default); this module owns what each family means. A model says, per modality,
which distribution its decoder outputs (a :class:`Likelihood`); every family is
*factorised* over the modality's columns except ``categorical``, which is one distribution
over a one-hot group of columns (a modality's columns at one time step). Everything that
reads a model's outputs goes through :class:`OutputLayout`, which knows which columns hold
which family:

- ``gaussian``: ``N(loc, scale²)`` per column; ``scale`` learned (the model outputs it) or
  fixed (a number the model declares, e.g. MultiVae's ``scale`` 0.75 for a normal decoder).
- ``laplace``: ``Laplace(loc, scale)`` per column, learned or fixed scale.
- ``bernoulli``: ``Bernoulli(logits = loc)`` per column, on values 0 and 1: a data value
  ``x`` is read as the probability ``(x − low)/(high − low)`` of the value range's upper end
  (a soft target), and a mean is given back in data units, ``low + p·(high − low)``.
- ``categorical``: ``Categorical(logits = loc[group])`` over each one-hot group (the
  modality's columns at one time step), on one-hot rows, read and given back on the value
  range's scale likewise.

The Laplace divergence is ``torch.distributions``' registered KL divergence. The Gaussian's
is written as ``(expm1(d) - d)/2 + ...`` with ``d`` the log-variance difference: the
textbook form ``log(σ_q/σ_p) + ...`` that torch uses cancels to rounding noise where
``p ≈ q``, the case the measures meet most (a muted input that changes little). The
Bernoulli's and the categorical's are written from the logits, in an expm1 form where p ≈ q:
torch's go through probabilities that round to 0 or 1 for a confident decoder and then give
inf or NaN for a finite divergence. Tests check each against its closed form.

A model's outputs for a batch of rows are an :class:`Outputs` pair of tensors in column
order, ``loc`` and ``scale``, each ``[..., n, columns]``; for the Bernoulli and
categorical columns ``loc`` holds logits and ``scale`` is ignored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch.distributions import Laplace, kl_divergence

from ..data.description import LIKELIHOODS, DatasetDescription
from ..errors import DataError, ModelError

__all__ = [
    "FAMILIES",
    "FACTORISED",
    "SCALED_FAMILIES",
    "Likelihood",
    "Outputs",
    "OutputLayout",
    "gaussian_kl_per_column",
    "bernoulli_kl_from_logits",
    "categorical_kl_from_logits",
    "as_likelihoods",
]

FAMILIES = LIKELIHOODS
FACTORISED = ("gaussian", "laplace", "bernoulli")  # one distribution per column
SCALED_FAMILIES = ("gaussian", "laplace")  # families with a scale, learned or fixed
_LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class Likelihood:
    """One modality's output distribution: ``family`` (one of :data:`FAMILIES`) and, for
    ``gaussian`` and ``laplace``, a fixed ``scale`` (σ, or the Laplace scale ``b``, in data
    units) or None when the model outputs the scale per column (learned)."""

    family: str = "gaussian"
    scale: float | None = None

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ModelError(f"likelihood family {self.family!r}: expected one of {', '.join(FAMILIES)}")
        if self.scale is not None:
            if self.family not in SCALED_FAMILIES:
                raise ModelError(f"likelihood {self.family!r} has no scale; got scale={self.scale!r}")
            if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)):
                raise ModelError(f"likelihood scale: expected a positive number; got {self.scale!r}")
            if not (math.isfinite(self.scale) and self.scale > 0):
                raise ModelError(f"likelihood scale: expected a finite number > 0; got {self.scale!r}")

    @property
    def label(self) -> str:
        """How the tables name it: ``gaussian``, ``gaussian(scale=0.75)``, ``bernoulli``."""
        return self.family if self.scale is None else f"{self.family}(scale={self.scale:g})"


class Outputs(NamedTuple):
    """A model's output distributions for a batch of rows, in column order: ``loc``
    (Gaussian mean, Laplace location, Bernoulli or categorical logits) and ``scale`` (the
    Gaussian's standard deviation or the Laplace scale, > 0; ignored for the other
    families), each ``[..., n, columns]``, in the model's dtype."""

    loc: torch.Tensor
    scale: torch.Tensor


def as_likelihoods(description: DatasetDescription, likelihoods=None) -> dict[str, Likelihood]:
    """Every modality's :class:`Likelihood`: ``likelihoods`` a mapping modality → Likelihood
    (or family name); a modality it leaves out (all of them with None) has the family its
    description names, with a learned scale. An unknown modality is refused with a
    :class:`~intermodal.errors.ModelError`."""
    given = {} if likelihoods is None else likelihoods
    if not isinstance(given, Mapping):
        raise ModelError(f"likelihoods: expected a mapping modality -> Likelihood; got {type(given).__name__}")
    unknown = [m for m in given if m not in description.modality_names]
    if unknown:
        raise ModelError(
            f"likelihoods: unknown modality {unknown[0]!r}; the modalities are {description.modality_names}"
        )
    out = {}
    for m in description.modality_names:
        value = given.get(m, description.modality(m).likelihood)
        if isinstance(value, str):
            value = Likelihood(value)
        if not isinstance(value, Likelihood):
            raise ModelError(f"likelihoods[{m!r}]: expected an intermodal Likelihood or a family name; got {value!r}")
        out[m] = value
    return out


def gaussian_kl_per_column(
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


# Where every logit differs by less than this, the divergences take their expm1 forms
# (precise where p ≈ q); beyond it the direct forms are the precise ones.
_NEAR = 1.0


def bernoulli_kl_from_logits(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """KL(Bernoulli(logits a) ‖ Bernoulli(logits b)) elementwise, broadcast, from the logits.

    Near p ≈ q (``|δ| < 1``, ``δ = b − a``): ``log1p(σ(a)·expm1(δ)) − σ(a)·δ``, two terms of
    the size of δ, so the result keeps its precision as the Gaussian's expm1 form does
    (the direct form is a difference of numbers near 1 there). Elsewhere the direct form
    ``σ(a)(log σ(a) − log σ(b)) + σ(−a)(log σ(−a) − log σ(−b))`` with ``log σ(x) =
    −softplus(−x)``. Finite for any finite logits; torch's form goes through probabilities,
    which round to 0 or 1 once a logit passes about ±17 in float32, and then gives inf or NaN."""
    a, b = torch.broadcast_tensors(a, b)
    delta = b - a
    p = torch.sigmoid(a)
    near = torch.log1p(p * torch.expm1(delta.clamp(-_NEAR, _NEAR))) - p * delta
    softplus = torch.nn.functional.softplus
    far = p * (softplus(-b) - softplus(-a)) + torch.sigmoid(-a) * (softplus(b) - softplus(a))
    return torch.where(delta.abs() < _NEAR, near, far)


def categorical_kl_from_logits(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """KL(Categorical(logits a) ‖ Categorical(logits b)) over the last axis, from the logits:
    near p ≈ q (every ``|δ_c| < 1``, ``δ = b − a``) ``log1p(Σ_c p_c·expm1(δ_c)) − Σ_c p_c δ_c``,
    precise there; elsewhere ``Σ_c p_c (log_softmax(a) − log_softmax(b))_c``. Finite for
    finite logits, where torch's form is inf once a class's probability rounds to 0."""
    a, b = torch.broadcast_tensors(a, b)
    delta = b - a
    log_p = torch.log_softmax(a, -1)
    p = torch.exp(log_p)
    near = torch.log1p((p * torch.expm1(delta.clamp(-_NEAR, _NEAR))).sum(-1)) - (p * delta).sum(-1)
    far = (p * (log_p - torch.log_softmax(b, -1))).sum(-1)
    return torch.where((delta.abs() < _NEAR).all(-1), near, far)


class OutputLayout:
    """Which columns of a description hold which family, and the operations the measures,
    prediction and the checks need on :class:`Outputs` of that layout.

    ``likelihoods``: modality → :class:`Likelihood` (see :func:`as_likelihoods`).
    """

    def __init__(self, description: DatasetDescription, likelihoods=None):
        self.description = description
        self.likelihoods = as_likelihoods(description, likelihoods)
        n = description.n_columns
        family_of = np.empty(n, dtype=object)
        fixed = np.full(n, np.nan)
        for m, lik in self.likelihoods.items():
            cols = description.columns_of(m)
            family_of[cols] = lik.family
            if lik.scale is not None:
                fixed[cols] = lik.scale
        self.family_of_column = family_of
        self._columns = {f: np.flatnonzero(family_of == f) for f in FAMILIES}
        self._fixed = fixed
        # One-hot groups of the categorical modalities: a modality's columns at one step.
        names = description.column_names()
        groups = []
        for m, lik in self.likelihoods.items():
            if lik.family != "categorical":
                continue
            for step in description.time_steps:
                # By exact name: a prefix test would also take another modality's columns
                # ("c_t_..." begins the columns of a modality "c_t" as well as "c" at step t).
                wanted = {f"{m}_{step}_{i}" for i in range(description.modality(m).size)}
                groups.append(np.array([i for i, c in enumerate(names) if c in wanted]))
        self.categorical_groups = groups
        self.all_gaussian = all(lik.family == "gaussian" and lik.scale is None for lik in self.likelihoods.values())

    # ---------------------------------------------------------------- labels
    def label_of(self, compared: np.ndarray) -> str:
        """The likelihoods of the compared columns ``[n_columns]`` bool, as the tables give
        them: one label, or several joined by ``+`` in modality order."""
        labels = []
        for m, lik in self.likelihoods.items():
            if compared[self.description.columns_of(m)].any() and lik.label not in labels:
                labels.append(lik.label)
        return "+".join(labels)

    def check_compared(self, compared: np.ndarray, what: str) -> None:
        """Refuse a compared set that holds part of a categorical modality: a categorical
        modality is one distribution over its columns and is compared whole."""
        for m, lik in self.likelihoods.items():
            if lik.family != "categorical":
                continue
            part = compared[self.description.columns_of(m)]
            if part.any() and not part.all():
                raise DataError(
                    f"{what}: the modality {m!r} is categorical (one distribution over its one-hot columns) and is "
                    "compared whole; select it without a time step or leave it out"
                )

    def check_hidden(self, hidden: np.ndarray, what: str) -> None:
        """Refuse hiding part of a categorical modality's group (its columns at one step)."""
        for group in self.categorical_groups:
            part = hidden[group]
            if part.any() and not part.all():
                names = self.description.column_names()
                raise DataError(f"{what}: hides part of the one-hot group {names[group[0]]}..{names[group[-1]]}")

    # ---------------------------------------------------------------- fixed scales
    def with_fixed_scales(self, outputs: Outputs) -> Outputs:
        """``outputs`` with the fixed scales put in their columns (a model with a fixed
        scale may return anything there)."""
        if np.isnan(self._fixed).all():
            return outputs
        fixed = torch.as_tensor(self._fixed, dtype=outputs.loc.dtype, device=outputs.loc.device)
        return Outputs(outputs.loc, torch.where(torch.isnan(fixed), outputs.scale, fixed))

    # ---------------------------------------------------------------- divergences
    def kl_per_column(self, p: Outputs, q: Outputs) -> torch.Tensor:
        """KL(p ‖ q) per column, broadcast, ``[..., n, columns]`` in nats: each factorised
        column its family's divergence; a categorical group's divergence spread evenly over
        its columns (so it adds up over the whole group, which is compared whole). Each is
        >= 0: where p ≈ q torch's forms can land a rounding error below 0, which is cut."""
        if self.all_gaussian:
            return gaussian_kl_per_column(p.loc, 2 * torch.log(p.scale), q.loc, 2 * torch.log(q.scale))
        shape = torch.broadcast_shapes(p.loc.shape, q.loc.shape)
        out = p.loc.new_zeros(shape)
        cols = self._columns
        if len(cols["gaussian"]):
            c = self._index(cols["gaussian"], p.loc)
            pl, ps, ql, qs = (t.index_select(-1, c) for t in (p.loc, p.scale, q.loc, q.scale))
            out[..., c] = gaussian_kl_per_column(pl, 2 * torch.log(ps), ql, 2 * torch.log(qs)).expand(*shape[:-1], -1)
        if len(cols["laplace"]):
            c = self._index(cols["laplace"], p.loc)
            pl, ps, ql, qs = (t.index_select(-1, c) for t in (p.loc, p.scale, q.loc, q.scale))
            kl = kl_divergence(Laplace(pl, ps, validate_args=False), Laplace(ql, qs, validate_args=False))
            out[..., c] = kl.clamp_min(0.0).expand(*shape[:-1], -1)
        if len(cols["bernoulli"]):
            c = self._index(cols["bernoulli"], p.loc)
            pl, ql = p.loc.index_select(-1, c), q.loc.index_select(-1, c)
            out[..., c] = bernoulli_kl_from_logits(pl, ql).clamp_min(0.0).expand(*shape[:-1], -1)
        for group in self.categorical_groups:
            c = self._index(group, p.loc)
            pl, ql = p.loc.index_select(-1, c), q.loc.index_select(-1, c)
            kl = categorical_kl_from_logits(pl, ql)
            out[..., c] = (kl.clamp_min(0.0) / len(group)).unsqueeze(-1).expand(*shape[:-1], len(group))
        return out

    # ---------------------------------------------------------------- densities and draws
    def log_prob_per_column(self, outputs: Outputs, y: torch.Tensor) -> torch.Tensor:
        """``log p(y)`` per column, broadcast, ``[..., n, columns]``: a factorised column
        its own density (Bernoulli: ``y`` in {0, 1}); a categorical group's log-probability
        of its one-hot ``y`` is ``Σ_c y_c log softmax(loc)_c``, each column its term, so
        the group's columns add up to it."""
        loc, scale = outputs.loc, outputs.scale
        if self.all_gaussian:
            return -0.5 * ((y - loc) / scale) ** 2 - torch.log(scale) - 0.5 * _LOG_2PI
        shape = torch.broadcast_shapes(loc.shape, y.shape)
        out = loc.new_zeros(shape)
        cols = self._columns
        for family in ("gaussian", "laplace", "bernoulli"):
            if not len(cols[family]):
                continue
            c = self._index(cols[family], loc)
            lo, yy = loc.index_select(-1, c), y.index_select(-1, c)
            if family == "gaussian":
                s = scale.index_select(-1, c)
                lp = -0.5 * ((yy - lo) / s) ** 2 - torch.log(s) - 0.5 * _LOG_2PI
            elif family == "laplace":
                s = scale.index_select(-1, c)
                lp = -torch.abs(yy - lo) / s - torch.log(2 * s)
            else:
                lp = -torch.nn.functional.binary_cross_entropy_with_logits(
                    lo.expand(torch.broadcast_shapes(lo.shape, yy.shape)),
                    yy.expand(torch.broadcast_shapes(lo.shape, yy.shape)),
                    reduction="none",
                )
            out[..., c] = lp.expand(*shape[:-1], -1)
        for group in self.categorical_groups:
            c = self._index(group, loc)
            lo, yy = loc.index_select(-1, c), y.index_select(-1, c)
            out[..., c] = (yy * torch.log_softmax(lo, -1)).expand(*shape[:-1], -1)
        return out

    def sample(self, outputs: Outputs, u: torch.Tensor) -> torch.Tensor:
        """One draw of every column from uniform numbers ``u`` in (0, 1) of the outputs'
        shape, by the inverse CDF: Gaussian and Laplace values, Bernoulli 0 or 1, a
        categorical group one-hot (the group's first column's ``u`` picks its class)."""
        loc, scale = outputs.loc, outputs.scale
        u = u.clamp(1e-12, 1 - 1e-12)
        if self.all_gaussian:
            return loc + scale * math.sqrt(2) * torch.erfinv(2 * u - 1)
        out = loc.new_zeros(torch.broadcast_shapes(loc.shape, u.shape))
        cols = self._columns
        if len(cols["gaussian"]):
            c = self._index(cols["gaussian"], loc)
            out[..., c] = loc[..., c] + scale[..., c] * math.sqrt(2) * torch.erfinv(2 * u[..., c] - 1)
        if len(cols["laplace"]):
            c = self._index(cols["laplace"], loc)
            v = u[..., c] - 0.5
            out[..., c] = loc[..., c] - scale[..., c] * torch.sign(v) * torch.log1p(-2 * torch.abs(v))
        if len(cols["bernoulli"]):
            c = self._index(cols["bernoulli"], loc)
            out[..., c] = (u[..., c] < torch.sigmoid(loc[..., c])).to(loc.dtype)
        for group in self.categorical_groups:
            c = self._index(group, loc)
            cdf = torch.cumsum(torch.softmax(loc[..., c], -1), -1)
            pick = (cdf < u[..., c[:1]]).sum(-1, keepdim=True).clamp_max(len(group) - 1)
            out[..., c] = torch.zeros_like(cdf).scatter_(-1, pick, 1.0)
        return out

    def moments(self, outputs: Outputs) -> tuple[torch.Tensor, torch.Tensor]:
        """Each column's mean and standard deviation in data units: Gaussian ``loc`` and
        ``scale``; Laplace ``loc`` and ``√2·scale``; Bernoulli, with ``p`` the probability
        of the value range's upper end, ``low + p·(high − low)`` and ``(high − low)·√(p(1−p))``;
        categorical the class probabilities ``p_c`` on the same scale."""
        loc, scale = outputs.loc, outputs.scale
        if self.all_gaussian:
            return loc, scale
        mean, std = loc.clone(), scale.clone()
        cols = self._columns
        low, high = self.description.value_range
        if len(cols["laplace"]):
            c = self._index(cols["laplace"], loc)
            std[..., c] = math.sqrt(2) * scale[..., c]
        if len(cols["bernoulli"]):
            c = self._index(cols["bernoulli"], loc)
            p = torch.sigmoid(loc[..., c])
            mean[..., c], std[..., c] = low + (high - low) * p, (high - low) * torch.sqrt(p * (1 - p))
        for group in self.categorical_groups:
            c = self._index(group, loc)
            p = torch.softmax(loc[..., c], -1)
            mean[..., c], std[..., c] = low + (high - low) * p, (high - low) * torch.sqrt(p * (1 - p))
        return mean, std

    def check_outputs(self, outputs: Outputs, shape: tuple[int, ...], who: str) -> None:
        """Refuse outputs of the wrong type or shape, or a non-positive scale, with a
        :class:`~intermodal.errors.ModelError` naming ``who``."""
        if not (isinstance(outputs, tuple) and len(outputs) == 2):
            raise ModelError(f"{who}: expected Outputs(loc, scale); got {type(outputs).__name__}")
        for name, t in zip(("loc", "scale"), outputs):
            if not isinstance(t, torch.Tensor):
                raise ModelError(f"{who}: {name} must be a tensor; got {type(t).__name__}")
            if tuple(t.shape) != tuple(shape):
                raise ModelError(f"{who}: {name} has shape {tuple(t.shape)}; expected {tuple(shape)}")
        # Learned scales only: a fixed scale's columns may hold anything (with_fixed_scales).
        scaled = np.flatnonzero(np.isin(self.family_of_column, SCALED_FAMILIES) & np.isnan(self._fixed))
        if len(scaled):
            s = outputs.scale.index_select(-1, self._index(scaled, outputs.scale))
            if not bool((s > 0).all()) or not bool(torch.isfinite(s).all()):
                raise ModelError(f"{who}: every Gaussian or Laplace scale must be finite and > 0")

    @staticmethod
    def _index(columns: np.ndarray, like: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(columns, dtype=torch.long, device=like.device)
