"""Prediction from a run folder's trained models (docs/prediction.md): what ``intermodal
predict`` prints or writes, the original work's prediction tests beside the baselines, and
the report's section on prediction and control (its table and trajectory figures)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.description import DatasetDescription
from ..data.reading import read_csv_frame
from ..errors import CheckpointError, DataError, IntermodalError, RunFolderError
from ..evaluation import baselines as ff
from ..evaluation.predict import MAX_ROLLOUT_STEPS, predict, prediction_table, rollout
from ..evaluation.prediction_tests import applicable_tests, persistence_baseline, run_prediction_tests, summarise_errors
from ..options import whole_number
from ..training import runfolder
from ..training.runfolder import Run, load_models
from .plotting import save_figure
from .prediction_figures import prediction_test_figure

__all__ = ["predict_run", "prediction_errors", "prediction_summary", "prediction_figures", "prediction_section"]

logger = logging.getLogger("intermodal")

SECTION_TITLE = "Prediction and control from partial information"
FIGURE_ROWS = 200  # test rows a prediction figure draws


def _given_rows(path: str | Path, description: DatasetDescription, given) -> pd.DataFrame:
    """Rows a user gives to ``intermodal predict --rows FILE.csv``: columns named as the
    description's (those given are required, the others optional), numbers only."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        raise DataError(f"--rows {path}: expected 'test' or a .csv file of rows")
    frame = read_csv_frame(path)
    names = description.column_names()
    unknown = [str(c) for c in frame.columns if c not in names]
    if unknown:
        raise DataError(
            f"{path}: column(s) {unknown[:5]} are not columns of the run's data set {description.name!r} "
            f"(its columns are named like {names[:3]})"
        )
    needed = [names[i] for i in np.flatnonzero(description.mask(given))]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: lacks the given column(s) {missing[:5]}")
    if len(frame) == 0:
        raise DataError(f"{path}: has no rows")
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            raise DataError(f"{path}: column {column!r} is not numeric")
    return frame


def predict_run(
    run: str | Path,
    given: list[str],
    *,
    rows: str = "test",
    fusion: str | None = None,
    schedule: str | None = None,
    seed: int | None = None,
    steps: int = 1,
    sample_seed: int | None = None,
) -> pd.DataFrame:
    """``intermodal predict RUN --given ...``: every column of every chosen model's
    prediction from the ``given`` selectors, as a tidy table ``fusion, schedule, seed,
    [step,] row, column, mean, std[, true]`` (``true`` where the rows hold the column). ``rows``:
    ``"test"`` (the run's test rows) or a CSV file; ``steps > 1`` chains the prediction
    (:func:`intermodal.evaluation.predict.rollout`); ``sample_seed`` decodes one sample of
    z instead of the latent mean."""
    steps = whole_number(steps, "--steps", minimum=1, maximum=MAX_ROLLOUT_STEPS)
    loaded = load_models(run, schedule, seed, fusion=fusion)
    model, model_keys, dataset = loaded.model, loaded.model_keys, loaded.dataset
    description = dataset.description
    expanded = []
    for selector in given:
        try:
            expanded += description.expand(selector)
        except DataError as e:
            raise DataError(f"given selector {selector!r}: {e}") from None
    given = expanded
    truth: np.ndarray | None
    if rows == "test":
        values, truth = dataset.test, dataset.test
    else:
        frame = _given_rows(rows, description, given)
        values = frame
        complete = all(c in frame.columns for c in description.column_names())
        truth = frame[description.column_names()].to_numpy(np.float64) if complete else None
        if truth is not None and not np.isfinite(truth).all():
            truth = None
    try:
        if steps == 1:
            result = predict(model, values, given, description=description, seed=sample_seed)
            return prediction_table(result.mean, result.std, description, model_keys, truth=truth)
        result = rollout(model, values, steps, given, description=description, seed=sample_seed)
    except DataError as e:
        raise DataError(f"{rows if rows != 'test' else 'the test rows'}: {e}") from None
    return prediction_table(result.mean, result.std, description, model_keys)


def prediction_errors(
    run: str | Path, *, train_baselines: bool = False, progress: bool = False, loaded: Run | None = None
) -> pd.DataFrame:
    """The original work's prediction tests on a run's test rows, for every model, beside
    the persistence baseline and (when kept in ``RUN/baselines`` or ``train_baselines``)
    the forward and inverse baselines and the training mean: the tidy table of
    :data:`intermodal.evaluation.prediction_tests.ERROR_COLUMNS` (docs/prediction.md).
    ``loaded``: the run with its models, if already loaded (:func:`load_models`); ``progress``:
    log that the baselines train."""
    run = Path(run)
    loaded = loaded or load_models(run)
    model, model_keys, config, dataset = loaded.model, loaded.model_keys, loaded.config, loaded.dataset
    description = dataset.description
    parts = [
        run_prediction_tests(model, dataset.test, model_keys=model_keys, description=description),
        persistence_baseline(description, dataset.test),
    ]
    folder = runfolder.baselines_path(run)
    kept = (folder / ff.SETTINGS_FILE).is_file()
    if description.motor and (kept or train_baselines):
        if kept:
            trained = ff.load_baselines(folder)
        else:
            if progress:
                logger.info(
                    "training the forward and inverse baselines for seeds %s (kept in %s)", config.seeds, folder
                )
            trained = ff.train_baselines(dataset, config.seeds)
            ff.save_baselines(folder, trained)
        parts.append(ff.baseline_errors(trained, description, dataset.test))
    return pd.concat(parts, ignore_index=True)


def prediction_summary(errors: pd.DataFrame, schedules: list[str]) -> pd.DataFrame:
    """The predicted columns' errors (root mean square, data units) per test, modality and
    step: one column per schedule (per fusion and schedule where the run has several
    fusions: "schedule [fusion]") and baseline, mean ± sd over seeds. A test that gives
    every column (the complete input) shows its reconstruction errors."""
    given = errors["given"].astype(bool)
    reconstruction_only = given.groupby(errors["test"]).transform("all")
    stats = summarise_errors(errors[~given | reconstruction_only])
    fusions = [f for f in pd.unique(stats["fusion"]) if f]
    if len(fusions) > 1:
        labels = [f"{s} [{f}]" if f else s for f, s in zip(stats["fusion"], stats["schedule"])]
        stats["schedule"] = labels
        schedules = [f"{s} [{f}]" for f in fusions for s in schedules]
    order = schedules + [s for s in pd.unique(stats["schedule"]) if s not in schedules]
    stats["cell"] = [
        f"{m:.3g}" if (n < 2 or not np.isfinite(sd)) else f"{m:.3g} ± {sd:.2g}"
        for m, sd, n in zip(stats["mean"], stats["sd"], stats["n_seeds"])
    ]
    table = stats.pivot_table(
        index=["test", "modality", "time_step"], columns="schedule", values="cell", aggfunc="first", sort=False
    )
    return table.reindex(columns=[s for s in order if s in table.columns]).fillna("").reset_index()


def prediction_figures(run: str | Path, loaded: Run | None = None) -> list[dict]:
    """For each test, the first schedule's models on the first 200 test rows, drawn into
    ``RUN/figures/prediction_<test>.png|svg``; returns (stem, png, caption) records.
    ``loaded``: the run with its models, if already loaded (:func:`load_models`)."""
    run = Path(run)
    loaded = loaded or load_models(run)
    model, model_keys, config, dataset = loaded.model, loaded.model_keys, loaded.config, loaded.dataset
    first = config.schedules[0]
    models = [i for i, k in enumerate(model_keys) if k.schedule == first and k.fusion == config.fusions[0]]
    folder = runfolder.figures_path(run)
    folder.mkdir(exist_ok=True)
    out = []
    for test in applicable_tests(dataset.description):
        stem = f"prediction_{test.name}"
        figure = prediction_test_figure(
            model, dataset.test, test, models=models, segment=(0, min(FIGURE_ROWS, len(dataset.test)))
        )
        save_figure(figure, folder / f"{stem}.png", folder / f"{stem}.svg")
        out.append(
            {
                "stem": stem,
                "png": folder / f"{stem}.png",
                "caption": f"Test {test.name!r} ({test.about}) Schedule {first}"
                + (f", fusion {config.fusions[0]}" if len(config.fusions) > 1 else "")
                + f", its {len(models)} models combined; band: ±2 std.",
            }
        )
    return out


def prediction_section(run: Path) -> dict | None:
    """The report's section on prediction and control: for a run with a checkpoint, the
    prediction tests' table and figures; None for a run without one."""
    if not runfolder.has_checkpoint(run):
        return None
    try:
        loaded = load_models(run)  # once, for the table and the figures
    except (DataError, CheckpointError, RunFolderError) as e:
        # The rest of the report needs only the run folder's tables; say why this part is missing.
        return {
            "id": "prediction",
            "title": SECTION_TITLE,
            "paragraphs": [f"Not shown: the trained models or their data set cannot be loaded ({e})."],
            "tables": [],
        }
    try:
        errors = prediction_errors(run, loaded=loaded)
    except IntermodalError as e:
        return {"id": "prediction", "title": SECTION_TITLE, "paragraphs": [f"Not shown: {e}."], "tables": []}
    paragraphs = [
        "Root mean square error (data units) of what each test asks the trained models to predict, on the test "
        "rows, mean ± sd over seeds; a column per schedule, then the baselines (docs/prediction.md). "
        "'persistence' predicts x_t = x_{t-1}; a prediction that cannot beat it says little.",
    ]
    if not runfolder.baselines_path(run).is_dir():
        paragraphs.append(
            "The forward and inverse feed-forward baselines are not in this run folder yet: "
            f"`intermodal predict {Path(run)} --tests` trains and keeps them."
        )
    return {
        "id": "prediction",
        "title": SECTION_TITLE,
        "paragraphs": paragraphs,
        "tables": [{"title": None, "frame": prediction_summary(errors, list(loaded.config.schedules))}],
        "figures": prediction_figures(run, loaded),
    }
