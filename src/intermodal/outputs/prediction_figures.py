"""Figures of the prediction tests: a test segment's true trajectory against the prediction.

One panel per modality, one colour per column of the modality: the true values of the
consecutive test rows (solid), the predicted mean (dashed) and a band of ±2 standard
deviations of the prediction. Only the columns at one time step are drawn (default the
current one, ``t``: what the tests predict). The prediction is one model's, or the
equal-weight mixture of several (e.g. one schedule's seeds; see
:func:`intermodal.predict.combine_models`), whose std includes the spread between models.

Built on :class:`matplotlib.figure.Figure` with the Agg canvas, never ``pyplot``, so no
interactive backend is touched and nothing stays open in pyplot's registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..data.description import DatasetDescription
from ..errors import DataError
from ..evaluation.predict import combine_models
from ..evaluation.prediction_tests import PredictionTest, Segment, prediction_for_test
from ..model.protocol import description_for
from .plotting import MODALITY_COLOURS

if TYPE_CHECKING:
    from ..model.protocol import OutputGaussianModel

__all__ = ["trajectory_figure", "prediction_test_figure"]

BAND_SD = 2.0  # the band is mean ± 2 std: about 95 % of a Gaussian


def trajectory_figure(
    description: DatasetDescription,
    truth: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    *,
    row_index: Sequence[int] | np.ndarray | None = None,
    given: np.ndarray | None = None,
    step: str | None = None,
    title: str | None = None,
) -> Figure:
    """True trajectory against a prediction, one panel per modality.

    Parameters
    ----------
    truth : ``[n_rows, n_columns]``, consecutive rows, data units.
    mean, std : ``[n_rows, n_columns]`` (one prediction) or ``[n_models, n_rows,
        n_columns]`` (combined into their mixture's mean and std).
    row_index : x values (default 0..n_rows-1), e.g. the test row numbers.
    given : optional boolean ``[n_columns]``: panels whose drawn columns were given say so.
    step : the time step drawn (default the description's first, the current step).
    title : the figure's title.
    """
    truth = np.asarray(truth, dtype=np.float64)
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    if mean.ndim == 3:
        mean, std = combine_models(mean, std)
    n_rows, n_cols = truth.shape
    if mean.shape != truth.shape or std.shape != truth.shape or n_cols != description.n_columns:
        raise DataError(
            f"truth, mean and std must be [n_rows, {description.n_columns}] (mean, std may have a leading "
            f"model axis); got {truth.shape}, {mean.shape}, {std.shape}"
        )
    x = np.arange(n_rows) if row_index is None else np.asarray(row_index)
    step = step or description.time_steps[0]
    modalities = description.modality_names
    figure = Figure(figsize=(8.0, 1.9 * len(modalities) + 0.9), layout="constrained")
    FigureCanvasAgg(figure)  # explicit Agg canvas: no interactive backend involved
    axes = figure.subplots(len(modalities), 1, squeeze=False, sharex=True)[:, 0]
    low, high = description.value_range
    for ax, m in zip(axes, modalities):
        cols = description.columns_of(f"{m}@{step}")
        for j, c in enumerate(cols):
            colour = MODALITY_COLOURS[j % len(MODALITY_COLOURS)]
            ax.fill_between(
                x,
                mean[:, c] - BAND_SD * std[:, c],
                mean[:, c] + BAND_SD * std[:, c],
                color=colour,
                alpha=0.15,
                linewidth=0,
            )
            ax.plot(x, truth[:, c], color=colour, linewidth=1.2)
            ax.plot(x, mean[:, c], color=colour, linewidth=1.2, linestyle="--")
        is_given = given is not None and bool(np.asarray(given)[cols].all())
        ax.set_title(f"{m} at {step}" + (" (given)" if is_given else ""), fontsize=9, loc="left")
        ax.set_ylim(low - 0.15 * (high - low), high + 0.15 * (high - low))
        ax.tick_params(labelsize=8)
    axes[-1].set_xlabel("test row")
    handles = [
        Line2D([], [], color="0.2", linewidth=1.2, label="true"),
        Line2D([], [], color="0.2", linewidth=1.2, linestyle="--", label="predicted mean"),
        Patch(color="0.2", alpha=0.15, label=f"±{BAND_SD:g} std"),
    ]
    axes[0].legend(handles=handles, fontsize=8, loc="upper right", ncol=3, frameon=False)
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


def prediction_test_figure(
    model: OutputGaussianModel,
    test_rows: np.ndarray,
    test: PredictionTest,
    *,
    description: DatasetDescription | None = None,
    models: Sequence[int] | None = None,
    segment: Segment = (0, 200),
    title: str | None = None,
) -> Figure:
    """One test on a segment of consecutive test rows: the truth against the prediction of
    the models at positions ``models`` (None = all; e.g. one schedule's seeds), combined.
    ``segment``: as :func:`intermodal.evaluation.prediction_tests.prediction_for_test` (default
    rows 0..199). For a chained test each drawn row ``r + 1`` is predicted from row ``r``."""
    desc = description_for(model, description)
    pred, truth, rows = prediction_for_test(model, test_rows, test, description=desc, segment=segment)
    pick = list(range(pred.mean.shape[0])) if models is None else list(models)
    mean, std = combine_models(pred.mean[pick], pred.std[pick])
    given = None if test.chained else pred.given
    what = f"{len(pick)} models combined" if len(pick) > 1 else "one model"
    if title is None:
        chained = " (chained)" if test.chained else ""
        title = f"test {test.name!r}: given {', '.join(test.given) or 'nothing'}{chained}; {what}"
    return trajectory_figure(desc, truth, mean, std, row_index=rows, given=given, title=title)
