"""Ensembles of several fusions as one, and building a model by its fusion's name (from
the registry, :data:`~intermodal.model.fusions.FUSIONS`).

Models of one fusion share their layers' shapes and train as one batched ensemble; a run
of several fusions holds one ensemble per fusion. :class:`ModelGroups` puts them side by
side, positions in order, and answers the model protocol for all of them; what needs one
fusion at a time (latent noise, checkpoints) walks :func:`groups_of`.
"""

from __future__ import annotations

from typing import Any

import torch

from ..data.description import DatasetDescription
from ..errors import ModelError
from .architecture import Architecture
from .base import EnsembleVAE
from .fusions import FUSIONS

__all__ = ["FUSIONS", "build_model", "ModelGroups", "groups_of", "concatenate_models"]


def build_model(
    description: DatasetDescription,
    arch: Architecture,
    fusion: str,
    n_models: int,
    *,
    dtype=torch.float32,
    device="cpu",
) -> EnsembleVAE:
    """An ensemble of ``n_models`` models of ``fusion`` (a name in the registry,
    :data:`~intermodal.model.fusions.FUSIONS`), parameters zero."""
    if fusion not in FUSIONS:
        raise ModelError(f"fusion {fusion!r}: expected one of {', '.join(FUSIONS)}")
    return FUSIONS[fusion](description, arch, n_models, dtype=dtype, device=device)


class ModelGroups:
    """Ensembles of different fusions side by side as one model (positions in order: the
    first group's models, then the second's, ...). It answers the model protocol
    (``description``, ``n_models``, :meth:`output_gaussian` from the posteriors' means) and
    carries the groups' ``model_keys``."""

    def __init__(self, groups: list[EnsembleVAE]):
        if len(groups) < 2:
            raise ModelError("ModelGroups holds two or more ensembles; use the ensemble itself")
        names = [g.description.column_names() for g in groups]
        if any(n != names[0] for n in names):
            raise ModelError("the ensembles of one run must have the same data set's columns")
        self.groups = list(groups)
        self.description = groups[0].description

    @property
    def n_models(self) -> int:
        return sum(g.n_models for g in self.groups)

    @property
    def model_keys(self) -> list | None:
        keys = [g.model_keys for g in self.groups]
        known = [k for k in keys if k is not None]
        return [k for ks in known for k in ks] if len(known) == len(keys) else None

    @model_keys.setter
    def model_keys(self, keys: list | None) -> None:
        start = 0
        for g in self.groups:
            g.model_keys = None if keys is None else list(keys[start : start + g.n_models])
            start += g.n_models

    @property
    def fusion(self) -> str:
        return ",".join(g.fusion for g in self.groups)

    def output_gaussian(self, rows, muted, noise=None):
        """The groups' :meth:`~intermodal.model.base.EnsembleVAE.output_gaussian`, models
        concatenated. Latent noise differs by fusion: give it to one group at a time."""
        if noise is not None:
            raise ModelError(
                "noise differs by fusion: decode samples group by group (intermodal.model.group.groups_of)"
            )
        means, variances = zip(*(g.output_gaussian(rows, muted) for g in self.groups))
        dtype = torch.promote_types(means[0].dtype, torch.float64) if len(set(m.dtype for m in means)) > 1 else None
        if dtype is not None:
            means, variances = tuple(m.to(dtype) for m in means), tuple(v.to(dtype) for v in variances)
        return torch.cat(means, 0), torch.cat(variances, 0)

    def select(self, models: list[int]):
        """The models at these positions, as one ensemble or several groups."""
        pieces, start = [], 0
        bounds = []
        for g in self.groups:
            bounds.append((start, start + g.n_models, g))
            start += g.n_models
        for position in models:
            for a, b, g in bounds:
                if a <= position < b:
                    pieces.append(g.select([position - a]))
                    break
            else:
                raise ModelError(f"position {position}: the groups hold {start} models")
        return concatenate_models(pieces)

    def eval(self) -> ModelGroups:
        for g in self.groups:
            g.eval()
        return self

    def parameters(self):
        for g in self.groups:
            yield from g.parameters()


def groups_of(model) -> list[tuple[int, Any]]:
    """``(first position, ensemble)`` of each group of ``model`` (one, for an ensemble, or for
    any other model the measures take: the model itself)."""
    out, start = [], 0
    for g in getattr(model, "groups", [model]):
        out.append((start, g))
        start += g.n_models
    return out


def concatenate_models(models: list) -> EnsembleVAE | ModelGroups:
    """Ensembles (or groups) in order as one: consecutive ensembles of the same kind
    concatenated, a :class:`ModelGroups` where kinds change."""
    flat = [g for m in models for _, g in groups_of(m)]
    runs: list[list[EnsembleVAE]] = []
    for g in flat:
        if runs and runs[-1][0].same_kind(g):
            runs[-1].append(g)
        else:
            runs.append([g])
    merged = [r[0].concatenate(r) if len(r) > 1 else r[0] for r in runs]
    return merged[0] if len(merged) == 1 else ModelGroups(merged)
