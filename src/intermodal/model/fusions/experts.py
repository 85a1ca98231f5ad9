"""What the expert fusions share (docs/method.md §2b): a row's *experts*, each with its own
Gaussian over the latent, and the base class of the fusions that fuse them
(:mod:`.poe`, :mod:`.moe`, :mod:`.mopoe`). The decoder is Zambelli's
(:class:`~intermodal.model.base.EnsembleVAE`), so fusion is the only thing that differs
from ``concat``.

The experts are the parts of a row that the data set's muting patterns and the measures
mute: the columns that every pattern and every modality treats alike (for the iCub set,
each modality at each time step, since a pattern mutes "everything at t"). A muted
expert is left out of the fusion, not given a value; with none left, the posterior is the
prior N(0, I). Each expert's encoder has the architecture's widths for its modality,
scaled to the expert's share of the modality's columns, and ends in a mean and a floored
log-variance over the latent, as Zambelli's encoder does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ...data.description import DatasetDescription
from ...errors import ModelError
from ..base import VARIANCE_FLOOR, EnsembleVAE
from ..posterior import MIXTURE_Z_SAMPLES

__all__ = ["Expert", "experts_of", "ExpertsVAE", "MixtureVAE", "product_of_experts", "gaussian_kl"]


@dataclass(frozen=True)
class Expert:
    """One expert: a modality's columns at some of its time steps (``name``: the modality,
    or ``modality@step+step`` for part of its steps); ``columns`` ascending."""

    name: str
    modality: str
    columns: tuple[int, ...]


def experts_of(description: DatasetDescription) -> list[Expert]:
    """The experts of a data set: the columns grouped by how every muting pattern and every
    modality treats them (the atoms of the sets they mute), in modality order, then column
    order."""
    masks = [description.mask(list(s)) for s in description.muting_patterns.values()]
    masks += [description.mask(m) for m in description.modality_names]
    signature = np.stack(masks, axis=1)  # [columns, masks]
    names = description.column_names()
    groups: dict[bytes, list[int]] = {}
    for c in range(description.n_columns):
        groups.setdefault(signature[c].tobytes(), []).append(c)
    experts = []
    for m in description.modality_names:
        own = set(np.flatnonzero(description.mask(m)).tolist())
        for columns in groups.values():
            if columns[0] not in own:
                continue
            steps = [s for s in description.time_steps if any(names[c].startswith(f"{m}_{s}_") for c in columns)]
            name = m if len(columns) == len(own) else f"{m}@{'+'.join(steps)}"
            experts.append(Expert(name, m, tuple(sorted(columns))))
    return experts


class ExpertsVAE(EnsembleVAE):
    """Expert encoders (``enc:<expert>:<i>``, ``enc:<expert>:latent``) before Zambelli's decoder."""

    _membership: torch.Tensor  # a buffer (register_buffer below), declared for type checkers

    def _build_encoder(self) -> None:
        self.experts = experts_of(self.description)
        self.expert_layers, self.expert_heads = [], []
        sizes = {m: len(c) for m, c in zip(self.modalities, self.modality_columns)}
        for e in self.experts:
            share = len(e.columns) / sizes[e.modality]
            widths = [len(e.columns)] + [max(1, math.ceil(w * share)) for w in self.architecture.encoders[e.modality]]
            self.expert_layers.append(self._stack(f"enc:{e.name}", widths))
            self.expert_heads.append(self._add(f"enc:{e.name}:latent", widths[-1], 2 * self.latent_size, paired=True))
        # Buffers on the model's device, so that they follow it (and a CPU index never meets
        # a GPU tensor): each expert's columns, and which columns each expert holds.
        for k, e in enumerate(self.experts):
            columns = torch.as_tensor(e.columns, device=self._device)
            self.register_buffer(f"_expert_columns_{k}", columns, persistent=False)
        membership = torch.zeros(self.n_columns, len(self.experts))
        for k, e in enumerate(self.experts):
            membership[list(e.columns), k] = 1.0
        self.register_buffer("_membership", membership.to(self._device), persistent=False)

    @property
    def _expert_columns(self) -> list[torch.Tensor]:
        return [getattr(self, f"_expert_columns_{k}") for k in range(len(self.experts))]

    @property
    def n_experts(self) -> int:
        return len(self.experts)

    # ---------------------------------------------------------------- experts
    def _experts_ff(self, x_ff: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every expert's mean and variance ``[models, experts, latent, n]`` (the variance
        floored as Zambelli's: ``exp(raw) + 1e-4``), whether present or not."""
        means, raws = [], []
        for columns, layers, head in zip(self._expert_columns, self.expert_layers, self.expert_heads):
            h = self._mlp(layers, x_ff.index_select(1, columns))
            mean, raw = self._linear(head, h).chunk(2, dim=1)
            means.append(mean)
            raws.append(raw)
        return torch.stack(means, 1), torch.exp(torch.stack(raws, 1)) + VARIANCE_FLOOR

    def present_experts(self, muted_ff: torch.Tensor, *, whole: bool = False) -> torch.Tensor:
        """Which experts an input gives, ``[models or 1, experts, n]``, from which of its
        columns are muted, ``muted_ff [models or 1, columns, n]`` bool: an expert is given
        when none of its columns is muted. The one way every expert fusion detects muting,
        in training (the mask of a training input, whose muted columns hold the muted value)
        and in :meth:`posterior` (the caller's mask). ``whole``: refuse a mask that mutes
        part of an expert (a caller's mask; training's are the data set's patterns and
        modalities, whose atoms the experts are)."""
        hidden = torch.matmul(self._membership.T, muted_ff.to(self._membership.dtype))  # [.., experts, n]
        if whole:
            partial = (hidden > 0) & (hidden < self._membership.sum(0)[:, None])
            if bool(partial.any()):
                expert = self.experts[int(torch.nonzero(partial)[0, 1])]
                names = self.description.column_names()
                raise ModelError(
                    f"the {self.fusion} model leaves out whole experts, and these columns hide part of the expert "
                    f"{expert.name!r} ({', '.join(names[c] for c in expert.columns)}); hide all of them or none "
                    "(the experts are the parts the data set's muting patterns and modalities mute)"
                )
        return hidden == 0

    def _present_in_training(self, x_ff: torch.Tensor) -> torch.Tensor:
        """:meth:`present_experts` of training inputs ``x_ff [models, columns, n]``, whose
        mask is where they hold the muted value: training rows are muted that way
        (:func:`~intermodal.data.dataset.augment`), and no data value equals it (it lies
        outside the description's value range)."""
        return self.present_experts(x_ff == self.description.muted_value)

    def _present_in_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """:meth:`present_experts` of a caller's mask ``[n, columns]`` (True where muted),
        refused where it mutes part of an expert; ``[1, experts, n]``."""
        return self.present_experts(mask.T.unsqueeze(0), whole=True)


def product_of_experts(
    mean: torch.Tensor, var: torch.Tensor, members: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The product of the member experts' Gaussians and the prior N(0, I): precision
    ``1 + Σ 1/var_e``, mean ``Σ (mean_e/var_e) / precision``. ``mean, var [.., experts,
    latent, n]``, ``members [.., experts, n]`` (broadcast); returns ``[.., latent, n]``."""
    weight = members.unsqueeze(-2).to(var.dtype) / var
    precision = 1.0 + weight.sum(-3)
    return (weight * mean).sum(-3) / precision, 1.0 / precision


def gaussian_kl(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, var) ‖ N(0, 1)) elementwise."""
    return 0.5 * (var + mean * mean - 1.0 - torch.log(var))


class MixtureVAE(ExpertsVAE):
    """A mixture posterior: the measures decode from samples by default (docs/method.md §2b).

    The samples of every input are *coupled* to those of the complete row: the first
    uniform of a noise row picks the component the complete row's sample comes from; a
    muted input keeps that component (for ``mopoe``, the part of the subset it still has)
    when it has it, and otherwise the second picks one of its own. Each input's samples
    remain exact samples of its own posterior (the coupling keeps the marginals uniform),
    and a component the muting leaves untouched gives the same z for both inputs, as it
    should: an expert sees only its own columns."""

    mixture_posterior = True
    default_z_samples = MIXTURE_Z_SAMPLES
