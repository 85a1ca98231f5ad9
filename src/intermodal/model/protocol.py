"""What every consumer of a trained model relies on, in one place: the model protocol, and
that a model and a data set's description agree on the columns.

:class:`OutputGaussianModel` is the contract the measures, prediction and the report code
against: any object that says which description it was built for, how many models it
holds, and gives the decoder's Gaussian for rows with some columns hidden. Every fusion of
intermodal's answers it, and so can a user's own model (docs/own_model.md).

A model reads and writes rows in the layout of the description it was built for. Used with
rows of another layout (other columns, another order, another muted value) it would
silently mix columns up, so every function that takes a model and a description checks
them with :func:`description_for` first.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor

from ..data.description import DatasetDescription
from ..errors import ModelError

__all__ = ["OutputGaussianModel", "description_for", "check_protocol"]


@runtime_checkable
class OutputGaussianModel(Protocol):
    """A multimodal model as the measures see it.

    ``description``: the data set description whose columns it reads and writes.
    ``n_models``: how many models it holds (an ensemble; 1 for a single model).
    ``output_gaussian(rows, muted)``: ``rows [n, columns]`` complete rows (a tensor);
    ``muted [n, columns]`` bool, True where the column is hidden from the model; returns the
    mean and the variance of the model's output Gaussian, each ``[models, n, columns]``, in
    the data's units (variance in units squared, > 0).
    """

    description: DatasetDescription  # the columns it reads and writes
    n_models: int

    def output_gaussian(self, rows: Tensor, muted: Tensor) -> tuple[Tensor, Tensor]:
        """rows [n, columns], complete; muted [n, columns] bool (True: hidden from the
        model). Returns the mean and the variance [models, n, columns]."""
        ...


def check_protocol(model) -> None:
    """Refuse, with a :class:`~intermodal.errors.ModelError` saying what is missing, an
    object that does not answer :class:`OutputGaussianModel`."""
    missing = [name for name in ("description", "n_models", "output_gaussian") if not hasattr(model, name)]
    if missing:
        raise ModelError(
            f"{type(model).__name__} is not a model the measures can use: it lacks {', '.join(missing)} "
            "(see intermodal.OutputGaussianModel)"
        )
    if not isinstance(model.description, DatasetDescription):
        raise ModelError(f"{type(model).__name__}.description must be an intermodal DatasetDescription")
    if isinstance(model.n_models, bool) or not isinstance(model.n_models, int) or model.n_models < 1:
        raise ModelError(f"{type(model).__name__}.n_models must be a whole number >= 1; got {model.n_models!r}")


def description_for(model, description: DatasetDescription | None = None) -> DatasetDescription:
    """The description to use ``model`` with: its own (``model.description``) when
    ``description`` is None, else ``description`` after checking that it has the model's
    columns, in the model's order, and the model's muted value; otherwise a
    :class:`~intermodal.errors.ModelError` saying how they differ."""
    built_for = model.description
    if description is None or description is built_for:
        return built_for
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
