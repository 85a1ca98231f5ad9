"""Two data sets side by side, column by column (:func:`compare_with`): how the simulator's
signals compare with the iCub recordings, or one simulator configuration with another.
``intermodal.data.sim.compare_with`` is the same function."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .dataset import Dataset

__all__ = ["compare_with"]


def compare_with(dataset_a: Dataset, dataset_b: Dataset, *, part: str = "all", labels: tuple[str, str] | None = None):
    """Per-column statistics of two data sets side by side, as a pandas DataFrame.

    One row per column name of either data set (union, in ``dataset_a``'s order then the
    rest), columns ``"<label> min|max|mean|std"`` for each (NaN where a data set lacks the
    column), then one row ``"<modality> on-frequency"`` each for touch and sound (whichever
    exist): the fraction of rows whose value at ``t`` is above 0, in the ``mean`` columns.
    ``part``: ``"train"``, ``"test"`` or ``"all"`` (both parts stacked).
    """
    import pandas as pd

    if part not in ("train", "test", "all"):
        raise ConfigError(f"part: {part!r}; expected 'train', 'test' or 'all'")
    labels = labels or (dataset_a.description.name, dataset_b.description.name)
    if labels[0] == labels[1]:
        labels = (f"{labels[0]} (a)", f"{labels[1]} (b)")

    def rows(ds):
        return {"train": ds.train, "test": ds.test, "all": np.concatenate([ds.train, ds.test])}[part]

    frames = []
    for label, ds in zip(labels, (dataset_a, dataset_b)):
        values = pd.DataFrame(rows(ds), columns=ds.description.column_names())
        stats = pd.DataFrame({"min": values.min(), "max": values.max(), "mean": values.mean(), "std": values.std()})
        for modality in ("touch", "sound"):
            if modality in ds.description.modality_names:
                on = (values[ds.description.column_names()[ds.description.columns_of(f"{modality}@t")[0]]] > 0).mean()
                stats.loc[f"{modality} on-frequency"] = [np.nan, np.nan, on, np.nan]
        frames.append(stats.add_prefix(f"{label} "))
    order = list(frames[0].index) + [i for i in frames[1].index if i not in frames[0].index]
    frequency_rows = [i for i in order if i.endswith("on-frequency")]
    order = [i for i in order if i not in frequency_rows] + frequency_rows
    return pd.concat(frames, axis=1).reindex(order)
