"""The original work's prediction tests (Zambelli et al. 2020) on a trained ensemble, as
one table of selectors (:data:`DEFAULT_TESTS`; a data set's description may name its
own), their errors as tidy tables, and the persistence baseline (docs/prediction.md).
Prediction itself is :mod:`intermodal.evaluation.predict`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..data.description import DatasetDescription, PredictionTest
from ..errors import ConfigError, DataError, ModelError
from ..model.protocol import description_for
from ..training.config import MODEL_KEY_COLUMNS, ModelKey
from .predict import Prediction, given_mask, predict, rollout, shift_columns, two_steps

if TYPE_CHECKING:
    from ..model.protocol import OutputGaussianModel

__all__ = [
    "ERROR_COLUMNS",
    "PredictionTest",
    "DEFAULT_TESTS",
    "Segment",
    "Tests",
    "applicable_tests",
    "normalise_tests",
    "prediction_for_test",
    "continuing_rows",
    "run_prediction_tests",
    "persistence_baseline",
    "summarise_errors",
]

# Columns of every error table here and in :mod:`intermodal.evaluation.baselines`, so they
# concatenate: the model's key columns (a baseline: no fusion, its name as the schedule, no
# seed where it has none), then the test's.
ERROR_COLUMNS = [*MODEL_KEY_COLUMNS, "test", "modality", "time_step", "given", "rmse"]

# Consecutive test rows: None (all), a slice, or (start, stop).
Segment = slice | tuple[int, int] | None
# Tests: PredictionTest records, or a mapping name -> {"given", "chained", "about"}.
Tests = Sequence[PredictionTest] | Mapping[str, Mapping] | None

# The original work's tests (Zambelli et al. 2020; test_final_completeloss.py of their code
# runs them as "Test 1" .. "Test 4" and "using VAE for predictions"), as selectors, so a data
# set with other modalities names its own (see applicable_tests()).
DEFAULT_TESTS: list[PredictionTest] = [
    PredictionTest(
        name="complete",
        about="Every modality at both steps given: the model reconstructs the complete row (original test 1).",
        given=("*",),
    ),
    PredictionTest(
        name="vision-only",
        about="Only vision (both steps) given: every other modality is inferred from what the robot sees "
        "(original test 2).",
        given=("vision",),
    ),
    PredictionTest(
        name="control",
        about="Joints at t-1 and vision at both steps given: the motor command at t-1 that moves the arm to the "
        "seen position at t is inferred, as for control (original test 3).",
        given=("joints@t-1", "vision"),
    ),
    PredictionTest(
        name="forward",
        about="Every modality at t-1 given, nothing at t: the next step is predicted, a forward model "
        "(original test 4).",
        given=("*@t-1",),
    ),
    PredictionTest(
        name="vision-chained",
        about="Vision only, then chained: the predicted step t is shifted to t-1 and the next step predicted "
        "from it alone, compared with the next test row (original 'use the VAE for prediction').",
        given=("vision",),
        chained=True,
    ),
]


# ---------------------------------------------------------------------- the tests
def _as_test(name: str, spec) -> PredictionTest:
    if isinstance(spec, PredictionTest):
        return spec if spec.name == name else PredictionTest(spec.given, spec.chained, spec.about, name)
    if not isinstance(spec, Mapping):
        raise ConfigError(f"prediction test {name!r}: expected a mapping of 'given', 'chained' and 'about'")
    unknown = sorted(set(spec) - {"given", "chained", "about"})
    if unknown or "given" not in spec:
        raise ConfigError(
            f"prediction test {name!r}: expected the keys 'given' (required), 'chained' and 'about'; got {sorted(spec)}"
        )
    given = spec["given"]
    given = (given,) if isinstance(given, str) else tuple(given)
    return PredictionTest(given, spec.get("chained", False), spec.get("about", "") or "", str(name))


def normalise_tests(tests: Sequence[PredictionTest] | Mapping[str, Mapping]) -> list[PredictionTest]:
    """Tests given as records or as a mapping ``name -> {"given", "chained", "about"}``, as
    records; their names must differ."""
    if isinstance(tests, Mapping):
        out = [_as_test(n, s) for n, s in tests.items()]
    else:
        out = [t if isinstance(t, PredictionTest) else _as_test("?", t) for t in tests]
    names = [t.name for t in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"prediction tests: names repeat: {names}")
    return out


def _runs_on(test: PredictionTest, description: DatasetDescription) -> bool:
    try:
        description.expand(test.given)
    except DataError:
        return False
    return not test.chained or len(description.time_steps) == 2


def applicable_tests(description: DatasetDescription) -> list[PredictionTest]:
    """The prediction tests to run on a data set: the description's own
    (``prediction_tests``, each checked when the description was made; a chained one needs
    two time steps), else :data:`DEFAULT_TESTS` minus those that cannot run on it (a test
    naming a modality or time step the data set lacks, a chained test on a data set
    without exactly two time steps)."""
    own = description.prediction_tests
    if own is not None:
        tests = list(own.values())
        for t in tests:
            if t.chained:
                two_steps(description, f"the chained prediction test {t.name!r}")
        return tests
    return [t for t in DEFAULT_TESTS if _runs_on(t, description)]


def _segment_bounds(segment: Segment, n: int) -> tuple[int, int]:
    if segment is None:
        return 0, n
    if isinstance(segment, slice):
        if segment.step not in (None, 1):
            raise DataError(f"segment: a slice with step {segment.step}; the rows must be consecutive")
        start, stop, _ = segment.indices(n)
    else:
        try:
            start, stop = (int(v) for v in segment)
        except (TypeError, ValueError):
            raise DataError(f"segment: expected None, a slice or (start, stop); got {segment!r}") from None
        start, stop, _ = slice(start, stop).indices(n)
    if stop <= start:
        raise DataError(f"segment {segment!r} holds no rows of the {n} test rows")
    return start, stop


def continuing_rows(description: DatasetDescription, rows: np.ndarray, *, tolerance: float = 1e-6) -> np.ndarray:
    """Indices ``r`` of ``rows [n_rows, n_columns]`` whose next row continues them: row
    ``r + 1``'s columns at the previous step equal row ``r``'s at the current step (within
    ``tolerance`` times the value range's width). In a time-ordered test part every ``r``
    but the last; a break between two trajectories drops one pair."""
    current, previous = two_steps(description, "a chained test")
    src, dst = shift_columns(description, current, previous)
    rows = np.asarray(rows, dtype=np.float64)
    low, high = description.value_range
    gap = np.abs(rows[1:, dst] - rows[:-1, src]).max(axis=1) if len(rows) > 1 else np.zeros(0)
    return np.flatnonzero(gap <= tolerance * (high - low))


def prediction_for_test(
    model: OutputGaussianModel,
    test_rows: np.ndarray,
    test: PredictionTest,
    *,
    description: DatasetDescription | None = None,
    segment: Segment = None,
) -> tuple[Prediction, np.ndarray, np.ndarray]:
    """One test's prediction, with the truth it is compared with.

    A test that is not chained: :func:`predict` on the rows of ``segment`` with the test's
    selectors given; the truth is those rows.

    A chained test (Zambelli's "use the VAE for prediction"): for every row ``r`` of the
    segment whose next row continues it (see :func:`continuing_rows`; both rows in the
    segment), a two-step :func:`rollout` from row ``r`` with the test's selectors given.
    Step 1 predicts the step after row ``r``'s current step, which is row ``r + 1``'s
    current step: the prediction is step 1, the truth row ``r + 1``. Only its columns at
    the current step are a prediction (those at the previous step reconstruct the shifted
    input), so only they are scored.

    Parameters
    ----------
    test_rows : complete rows ``[n_rows, n_columns]``, time-ordered for a chained test.
    segment : None (all rows), a slice, or ``(start, stop)``: the consecutive rows used.

    Returns
    -------
    ``(prediction, truth, row_index)``: ``prediction.mean``/``std`` ``[n_models, n,
    n_columns]``, ``truth [n, n_columns]``, ``row_index [n]`` (the truth rows' positions
    in ``test_rows``). ``prediction.given`` is the mask of the input the scored step saw
    (for a chained test: every column at the previous step, holding predicted values).
    """
    description = description_for(model, description)
    test_rows = np.asarray(test_rows, dtype=np.float64)
    start, stop = _segment_bounds(segment, len(test_rows))
    rows = test_rows[start:stop]
    if not test.chained:
        return predict(model, rows, test.given, description=description), rows, np.arange(start, stop)
    starts = continuing_rows(description, rows)
    if len(starts) == 0:
        raise DataError(
            f"chained test {test.name!r}: no row of the {len(rows)} test rows is continued by the next one "
            f"(row r+1's columns at {description.time_steps[1]} must repeat row r's at "
            f"{description.time_steps[0]}); a chained test needs time-ordered test rows"
        )
    chained = rollout(model, rows[starts], 2, test.given, description=description)
    step1 = Prediction(chained.mean[:, 1], chained.std[:, 1], given_mask(description, f"*@{description.time_steps[1]}"))
    return step1, rows[starts + 1], starts + 1 + start


def _rmse_rows(
    mean: np.ndarray, truth: np.ndarray, description: DatasetDescription, mask: np.ndarray, steps: Sequence[str]
) -> list[tuple[int, str, str, bool, float]]:
    out = []
    for m in description.modality_names:
        for step in steps:
            cols = description.columns_of(f"{m}@{step}")
            err = mean[:, :, cols] - truth[None, :, cols]
            rmse = np.sqrt(np.mean(err**2, axis=(1, 2)))
            for k in range(mean.shape[0]):
                out.append((k, m, step, bool(mask[cols].all()), float(rmse[k])))
    return out


def run_prediction_tests(
    model: OutputGaussianModel,
    test_rows: np.ndarray,
    tests: Tests = None,
    *,
    model_keys: Sequence | None = None,
    description: DatasetDescription | None = None,
    segment: Segment = None,
) -> pd.DataFrame:
    """Root mean square error of every test, model, modality and time step.

    Parameters
    ----------
    model : the ensemble.
    test_rows : complete rows ``[n_rows, n_columns]`` (time-ordered for a chained test).
    tests : None (:func:`applicable_tests` the description), a list of
        :class:`PredictionTest`, or a mapping ``name -> {"given", "chained", "about"}``.
    model_keys : the (schedule, seed) :class:`~intermodal.training.config.ModelKey` of each
        model position; None: the model's own ``model_keys``.
    segment : the consecutive rows used (see :func:`prediction_for_test`); Zambelli et al.
        used test rows 100 to 1099, ``segment=(100, 1100)``.

    Returns
    -------
    DataFrame :data:`ERROR_COLUMNS`: ``fusion, schedule, seed, test, modality, time_step,
    given, rmse``. ``rmse`` is ``sqrt(mean over rows and the modality's columns at that step of
    (predicted mean − true)²)``, in data units, of the prediction from the latent mean.
    ``given`` says whether those columns were in the input: False = a prediction (what
    the test asks), True = a reconstruction of the input.

    Why per time step and flagged: a test predicts some of a modality's steps and is
    given others (the control test gives joints at t-1 and asks for joints at t and the
    motor command at t-1; the forward test asks for every column at t). Pooling both steps
    would mix a reconstruction into a prediction error; keeping only the columns at t would
    drop the control test's answer, the motor command at t-1. A chained test scores only
    the current step (see :func:`prediction_for_test`).
    """
    description = description_for(model, description)
    keys = model_keys if model_keys is not None else getattr(model, "model_keys", None)
    keys = None if keys is None else [ModelKey(*k) for k in keys]
    if keys is None or len(keys) != model.n_models:
        raise ModelError(
            f"model_keys: {None if keys is None else len(keys)} (schedule, seed) keys for an ensemble of "
            f"{model.n_models} models"
        )
    tests = applicable_tests(description) if tests is None else normalise_tests(tests)
    records = []
    for test in tests:
        pred, truth, _ = prediction_for_test(model, test_rows, test, description=description, segment=segment)
        steps = [description.time_steps[0]] if test.chained else list(description.time_steps)
        for k, m, step, given, rmse in _rmse_rows(pred.mean, truth, description, pred.given, steps):
            records.append((*keys[k], test.name, m, step, given and not test.chained, rmse))
    table = pd.DataFrame.from_records(records, columns=ERROR_COLUMNS)
    table["seed"] = table["seed"].astype("Int64")
    return table


def persistence_baseline(
    description: DatasetDescription, test_rows: np.ndarray, *, test: str = "forward"
) -> pd.DataFrame:
    """RMSE of predicting every column at the current step by the same column at the
    previous step (``x_t = x_{t-1}``), per modality.

    It uses the information the forward test has (everything at ``t-1``), so its rows sit
    beside that test (``test``, default ``"forward"``). Returns :data:`ERROR_COLUMNS` with
    ``fusion`` empty, ``schedule = "persistence"``, ``seed`` missing (<NA>), ``time_step`` the current step
    and ``given = False``; ``rmse`` in data units over ``test_rows [n_rows, n_columns]``.
    """
    current, previous = two_steps(description, "the persistence baseline")
    rows = np.asarray(test_rows, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != description.n_columns:
        raise DataError(f"test_rows: expected [n_rows, {description.n_columns}]; got shape {rows.shape}")
    src, dst = shift_columns(description, current, previous)
    guess = rows.copy()
    guess[:, src] = rows[:, dst]
    records = []
    for m in description.modality_names:
        cols = description.columns_of(f"{m}@{current}")
        rmse = float(np.sqrt(np.mean((guess[:, cols] - rows[:, cols]) ** 2)))
        records.append(("", "persistence", pd.NA, test, m, current, False, rmse))
    table = pd.DataFrame.from_records(records, columns=ERROR_COLUMNS)
    table["seed"] = table["seed"].astype("Int64")
    return table


def summarise_errors(table: pd.DataFrame) -> pd.DataFrame:
    """Mean ± sd over seeds of an error table (:data:`ERROR_COLUMNS`), per fusion, schedule, test,
    modality, time step and given. Returns those keys and ``mean, sd, n_seeds`` (``sd``
    is NaN for a single seed; baselines without seeds count 1), in the table's order."""
    keys = ["fusion", "schedule", "test", "modality", "time_step", "given"]
    if table.empty:
        return pd.DataFrame(columns=keys + ["mean", "sd", "n_seeds"])
    out = (
        table.groupby(keys, sort=False, dropna=False)["rmse"].agg(mean="mean", sd="std", n_seeds="count").reset_index()
    )
    out["n_seeds"] = out["n_seeds"].astype(np.int64)
    return out
