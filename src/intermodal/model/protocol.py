"""What every consumer of a trained model relies on, in one place: that a model and a data
set's description agree on the columns.

A model reads and writes rows in the layout of the description it was built for. Used with
rows of another layout (other columns, another order, another muted value) it would
silently mix columns up, so every function that takes a model and a description checks
them with :func:`description_for` first.
"""

from __future__ import annotations

from ..data.description import DatasetDescription
from ..errors import ModelError

__all__ = ["description_for"]


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
