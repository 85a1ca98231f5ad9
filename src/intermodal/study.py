"""The study of Langer et al. (2024): schedules × seeds trained together, the integration
measures taken every K epochs, then figures and a report.

Presets (``intermodal study --preset NAME``; every option can still be overridden):

``paper``
    The paper's protocol: the four schedules × 20 seeds × 80 000 epochs, Adam 5e-5,
    measures every 200 epochs on the first 1024 test rows (401 evaluations: 50 in the
    window [60 k, 70 k) and 51 in [70 k, 80 k], which the window figure averages; an
    evaluation at epoch e is taken after e epochs of training).
``quick`` (default)
    About 5 minutes on 2 CPU cores: the four schedules × 3 seeds × 1500 epochs, measures
    every 50 epochs. So few epochs at the paper's learning rate barely move the models (the
    reconstruction loss falls from 18.98 to about 17.3 in 200 epochs), so the learning rate
    is 6 times the paper's (3e-4; 1e-3 trained faster but left constant-1 with a higher
    baseline than dynamic-plateau-1 on the iCub data), and the schedules are scaled to the
    run's length as docs/method.md §4 says (constant-0 falls over the first 19 epochs; the
    dynamic cycles last 1.5 epochs, and β = 0 or 1 from epoch 1313 on).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from . import runfolder
from .catalog import dataset_of
from .checkpoint import CheckpointError, load_model
from .config import STUDY_PRESETS, RunConfig, preset_config
from .data import DataError, Dataset
from .measures import evaluation_rows, integration_measures, latent_diagnostics, measure_specs
from .model import MultimodalVAE, seeded_generator
from .report import write_report
from .train import Trainer

__all__ = [
    "STUDY_PRESETS",
    "preset_config",
    "make_evaluator",
    "run_study",
    "resume_study",
    "measure_checkpoint",
    "estimate_duration",
    "predict_run",
    "prediction_errors",
    "prediction_summary",
    "prediction_section",
    "load_ensemble",
    "Ensemble",
]

DEFAULT_EVALUATION_ROWS = 1024  # the paper's: the first 1024 rows of the iCub test file


def _evaluation_rows(config: RunConfig, dataset: Dataset, *, say: bool = False) -> np.ndarray:
    n = config.n_eval_rows
    if n is None:
        n = min(DEFAULT_EVALUATION_ROWS, len(dataset.test))
        if n < DEFAULT_EVALUATION_ROWS and config.eval_rows != "all" and say:
            print(
                f"note: the test part holds {len(dataset.test)} rows, fewer than {DEFAULT_EVALUATION_ROWS}; "
                f"the measures use all {n} (set --n-eval-rows to choose)",
                flush=True,
            )
    try:
        return evaluation_rows(dataset.test, mode=config.eval_rows, n=n, seed=config.eval_seed)
    except ValueError as e:
        raise ValueError(f"{e} (options --n-eval-rows and --eval-rows)") from None


def evaluation_generator(eval_seed: int, epoch: int) -> torch.Generator:
    """The generator of the latent noise of the evaluation after ``epoch`` epochs (with
    ``--z-samples``): derived from the evaluation seed and the epoch alone, so an evaluation
    draws the same noise whether or not the run was interrupted and resumed before it. The
    noise is the same for every model of the ensemble (docs/method.md §5), so a model gets
    the numbers it gets alone, and schedules are compared on paired noise."""
    return seeded_generator(eval_seed, epoch, 2)


def make_evaluator(config: RunConfig, dataset: Dataset, *, say: bool = False):
    """The function the trainer calls every K epochs: every measure for every modality and
    the latent diagnostics, for all models at once."""
    rows = _evaluation_rows(config, dataset, say=say)
    desc = dataset.description
    measure_specs(desc, config.extra_pairs or None)  # a bad pair fails now, before anything is written

    def evaluate(model, epoch: int) -> dict[str, pd.DataFrame]:
        results = integration_measures(
            model,
            desc,
            rows,
            z_samples=config.z_samples,
            generator=evaluation_generator(config.eval_seed, epoch),
            extra_pairs=config.extra_pairs or None,
        )
        diagnostics = latent_diagnostics(model, desc, rows)
        return {"results": results, "diagnostics": diagnostics}

    return evaluate


def estimate_duration(trainer: Trainer, evaluate=None, epochs: int = 2) -> dict:
    """Time a few epochs (and one evaluation) of a throwaway copy of the ensemble and
    project the whole run. Returns seconds per epoch, per evaluation and in total."""
    with Trainer(trainer.config, trainer.dataset, None, progress=False) as probe:
        probe.train_epoch()  # warm-up: first-call allocations
        start = time.perf_counter()
        for _ in range(epochs):
            probe.train_epoch()
        per_epoch = (time.perf_counter() - start) / epochs
        per_eval = 0.0
        if evaluate is not None:
            start = time.perf_counter()
            evaluate(probe.model, 0)
            per_eval = time.perf_counter() - start
    cfg = trainer.config
    remaining = cfg.epochs - trainer.epoch
    n_evals = (remaining // cfg.eval_every + 1) if cfg.eval_every else 0
    return dict(
        per_epoch=per_epoch,
        per_evaluation=per_eval,
        total=per_epoch * remaining + per_eval * n_evals,
        model_epochs_per_second=len(trainer.keys) / per_epoch,
    )


def _announce(trainer: Trainer, evaluate) -> None:
    e = estimate_duration(trainer, evaluate)
    total = e["total"]
    human = f"{total / 3600:.1f} h" if total > 5400 else f"{total / 60:.1f} min" if total > 90 else f"{total:.0f} s"
    print(
        f"study: {len(trainer.keys)} models × {trainer.config.epochs - trainer.epoch} epochs to go; "
        f"measured {e['model_epochs_per_second']:.1f} model-epochs/s and {e['per_evaluation']:.2f} s per evaluation; "
        f"expected duration about {human}",
        flush=True,
    )


def _finish(run: Path) -> Path:
    write_report(run, redraw=True, sections=[prediction_section])
    return run


def run_study(
    config: RunConfig,
    out: str | Path,
    *,
    progress: bool = True,
    dataset: Dataset | None = None,
    announce: bool = True,
    report: bool = True,
) -> Trainer:
    """Train, evaluate every ``config.eval_every`` epochs, then draw the figures and write
    ``report.html`` into ``out``. Returns the finished trainer (``.out`` is the run folder,
    ``.diverged`` the models that diverged)."""
    out = Path(out)
    if not config.eval_every:
        raise ValueError("a study needs --eval-every > 0 (how often to take the measures)")
    dataset = dataset if dataset is not None else dataset_of(config)
    evaluate = make_evaluator(config, dataset, say=announce)
    trainer = Trainer(config, dataset, out, evaluate=evaluate, progress=progress)
    if announce:
        _announce(trainer, evaluate)
    trainer.run()
    if report:
        _finish(out)
    return trainer


def resume_study(
    run: str | Path,
    *,
    progress: bool = True,
    dataset: Dataset | None = None,
    announce: bool = True,
    report: bool = True,
) -> Trainer:
    """Continue an interrupted study from its last checkpoint, then finish it."""
    run = Path(run)
    config = runfolder.read_config(run)
    dataset = dataset if dataset is not None else dataset_of(config)
    evaluate = make_evaluator(config, dataset)
    trainer = Trainer.resume(run, dataset, config=config, evaluate=evaluate, progress=progress)
    if trainer.epoch < config.epochs:
        if announce:
            _announce(trainer, evaluate)
        trainer.run()
    if report:
        _finish(run)
    return trainer


def measure_checkpoint(
    path: str | Path,
    *,
    data_dir: str | None = None,
    eval_rows: str | None = None,
    n_eval_rows: int | None = None,
    z_samples: int | None = None,
    schedule: str | None = None,
    seed: int | None = None,
) -> pd.DataFrame:
    """The measures of the models in a checkpoint (all, or those of one ``schedule`` and/or
    ``seed``), on the evaluation rows of the data set they were trained on: columns
    ``schedule, seed, quantity, modality, scope, value``."""
    changes = dict(data_dir=data_dir, eval_rows=eval_rows, n_eval_rows=n_eval_rows, z_samples=z_samples)
    model, keys, config, dataset, epochs_done = load_ensemble(
        path, schedule, seed, {k: v for k, v in changes.items() if v is not None}
    )
    rows = _evaluation_rows(config, dataset)
    generator = evaluation_generator(config.eval_seed, epochs_done)
    table = integration_measures(
        model,
        dataset.description,
        rows,
        z_samples=config.z_samples,
        generator=generator,
        extra_pairs=config.extra_pairs or None,
    )
    table.insert(0, "seed", [keys[i][1] for i in table["model"]])
    table.insert(0, "schedule", [keys[i][0] for i in table["model"]])
    return table.drop(columns="model")


# ---------------------------------------------------------------------- prediction
PREDICTION_TESTS_TABLE = "prediction_tests"  # RUN/prediction_tests.parquet
BASELINES_FOLDER = "baselines"  # RUN/baselines/: the forward and inverse models


class Ensemble(NamedTuple):
    """Trained models read back from a run folder or checkpoint, with what they need."""

    model: MultimodalVAE
    keys: list[tuple[str, int]]  # (schedule, seed) of each model position
    config: RunConfig
    dataset: Dataset
    epochs_done: int


def load_ensemble(
    path: str | Path, schedule: str | None = None, seed: int | None = None, changes: dict | None = None
) -> Ensemble:
    """The trained ensemble of a run folder or checkpoint (all models, or those of one
    ``schedule`` and/or ``seed``), the run's config (with ``changes`` applied) and the data
    set it was trained on, checked to have the columns the models were built for."""
    model, state = load_model(path)
    keys = [(k[0], int(k[1])) for k in state["models"]]
    chosen = [i for i, (s, n) in enumerate(keys) if schedule in (None, s) and seed in (None, n)]
    if not chosen:
        raise ValueError(f"{path}: no model with schedule {schedule!r} and seed {seed!r}; it holds {keys}")
    if len(chosen) < len(keys):
        model, keys = model.select(chosen), [keys[i] for i in chosen]
    config = RunConfig.from_dict(state["config"], origin=f"{path} state.json")
    if changes:
        config = config.updated(changes, origin="command line")
    dataset = dataset_of(config)
    if dataset.description.column_names() != model.description.column_names():
        raise ValueError(f"{path}: the data set {config.data!r} no longer has the columns the models were trained on")
    return Ensemble(model, keys, config, dataset, int(state["epochs_done"]))


def _given_rows(path: str | Path, description, given) -> pd.DataFrame:
    """Rows a user gives to ``intermodal predict --rows FILE.csv``: columns named as the
    description's (those given are required, the others optional), numbers only."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        raise ValueError(f"--rows {path}: expected 'test' or a .csv file of rows")
    if not path.is_file():
        raise ValueError(f"--rows {path}: no such file")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a readable CSV table ({str(e).strip()})") from None
    names = description.column_names()
    unknown = [str(c) for c in frame.columns if c not in names]
    if unknown:
        raise ValueError(
            f"{path}: column(s) {unknown[:5]} are not columns of the run's data set {description.name!r} "
            f"(its columns are named like {names[:3]})"
        )
    needed = [names[i] for i in np.flatnonzero(description.mask(list(given)))]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: lacks the given column(s) {missing[:5]}")
    if len(frame) == 0:
        raise ValueError(f"{path}: has no rows")
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            raise ValueError(f"{path}: column {column!r} is not numeric")
    return frame


def predict_run(
    run: str | Path,
    given: list[str],
    *,
    rows: str = "test",
    schedule: str | None = None,
    seed: int | None = None,
    steps: int = 1,
    sample_seed: int | None = None,
) -> pd.DataFrame:
    """``intermodal predict RUN --given ...``: every column of every chosen model's
    prediction from the ``given`` selectors, as a tidy table ``schedule, seed, [step,] row,
    column, mean, std[, true]`` (``true`` where the rows hold the column). ``rows``:
    ``"test"`` (the run's test rows) or a CSV file; ``steps > 1`` chains the prediction
    (:func:`intermodal.predict.rollout`); ``sample_seed`` decodes one sample of z instead
    of the latent mean."""
    from .predict import expand_selectors, prediction_table, rollout
    from .predict import predict as predict_rows

    if steps < 1:
        raise ValueError(f"--steps {steps}: expected a whole number >= 1")
    model, keys, _config, dataset, _ = load_ensemble(run, schedule, seed)
    desc = dataset.description
    given = expand_selectors(desc, given)
    if rows == "test":
        values, truth = dataset.test, dataset.test
    else:
        frame = _given_rows(rows, desc, given)
        values = frame
        complete = all(c in frame.columns for c in desc.column_names())
        truth = frame[desc.column_names()].to_numpy(np.float64) if complete else None
        if truth is not None and not np.isfinite(truth).all():
            truth = None
    try:
        if steps == 1:
            result = predict_rows(model, desc, values, given, seed=sample_seed)
            return prediction_table(result.mean, result.std, desc, keys, truth=truth)
        result = rollout(model, desc, values, steps, given, seed=sample_seed)
    except ValueError as e:
        raise ValueError(f"{rows if rows != 'test' else 'the test rows'}: {e}") from None
    return prediction_table(result.mean, result.std, desc, keys)


def prediction_errors(
    run: str | Path, *, train_baselines: bool = False, progress: bool = True, ensemble: Ensemble | None = None
) -> pd.DataFrame:
    """The original work's prediction tests on a run's test rows, for every model, beside
    the persistence baseline and (when kept in ``RUN/baselines`` or ``train_baselines``)
    the forward and inverse baselines and the training mean: the tidy table of
    :data:`intermodal.prediction_tests.ERROR_COLUMNS` (docs/prediction.md). ``ensemble``:
    the run's, if already loaded."""
    from . import baselines as ff
    from .prediction_tests import persistence_baseline, run_prediction_tests

    run = Path(run)
    model, keys, config, dataset, _ = ensemble or load_ensemble(run)
    desc = dataset.description
    parts = [run_prediction_tests(model, keys, desc, dataset.test), persistence_baseline(desc, dataset.test)]
    folder = run / BASELINES_FOLDER
    kept = (folder / ff.SETTINGS_FILE).is_file()
    if desc.motor and (kept or train_baselines):
        if kept:
            trained = ff.load_baselines(folder)
        else:
            if progress:
                print(
                    f"training the forward and inverse baselines for seeds {list(config.seeds)} (kept in {folder})",
                    flush=True,
                )
            trained = ff.train_baselines(dataset, config.seeds)
            folder.mkdir(exist_ok=True)
            ff.save_baselines(folder, trained)
        parts.append(ff.baseline_errors(trained, desc, dataset.test))
    return pd.concat(parts, ignore_index=True)


def prediction_summary(errors: pd.DataFrame, schedules: list[str]) -> pd.DataFrame:
    """The predicted columns' errors (root mean square, data units) per test, modality and
    step: one column per schedule and baseline, mean ± sd over seeds. A test that gives
    every column (the complete input) shows its reconstruction errors."""
    from .prediction_tests import summarise_errors

    given = errors["given"].astype(bool)
    reconstruction_only = given.groupby(errors["test"]).transform("all")
    stats = summarise_errors(errors[~given | reconstruction_only])
    order = schedules + [s for s in pd.unique(stats["schedule"]) if s not in schedules]
    stats["cell"] = [
        f"{m:.3g}" if (n < 2 or not np.isfinite(sd)) else f"{m:.3g} ± {sd:.2g}"
        for m, sd, n in zip(stats["mean"], stats["sd"], stats["n_seeds"])
    ]
    table = stats.pivot_table(
        index=["test", "modality", "time_step"], columns="schedule", values="cell", aggfunc="first", sort=False
    )
    return table.reindex(columns=[s for s in order if s in table.columns]).fillna("").reset_index()


def prediction_figures(run: str | Path, ensemble: Ensemble | None = None) -> list[dict]:
    """For each test, the first schedule's models on the first 200 test rows, drawn into
    ``RUN/figures/prediction_<test>.png|svg``; returns (stem, png, caption) records.
    ``ensemble``: the run's, if already loaded."""
    from .plotting import save_figure
    from .prediction_figures import prediction_test_figure
    from .prediction_tests import prediction_tests

    run = Path(run)
    model, keys, config, dataset, _ = ensemble or load_ensemble(run)
    first = config.schedules[0]
    models = [i for i, (s, _) in enumerate(keys) if s == first]
    folder = run / runfolder.FIGURES
    folder.mkdir(exist_ok=True)
    out = []
    for test in prediction_tests(dataset.description):
        stem = f"prediction_{test.name}"
        figure = prediction_test_figure(
            model, dataset.description, dataset.test, test, models=models, segment=(0, min(200, len(dataset.test)))
        )
        save_figure(figure, folder / f"{stem}.png", folder / f"{stem}.svg")
        out.append(
            {
                "stem": stem,
                "png": folder / f"{stem}.png",
                "caption": f"Test {test.name!r} ({test.about}) Schedule {first}, its {len(models)} models "
                "combined; band: ±2 std.",
            }
        )
    return out


def prediction_section(run: Path) -> dict | None:
    """The report's section on prediction and control (a run with a checkpoint only)."""
    if not (Path(run) / runfolder.CHECKPOINT / "state.json").is_file():
        return None
    try:
        ensemble = load_ensemble(run)  # once, for the table and the figures
    except (DataError, CheckpointError) as e:
        # The rest of the report needs only the run folder's tables; say why this part is missing.
        return {
            "id": "prediction",
            "title": "Prediction and control from partial information",
            "paragraphs": [f"Not shown: the trained models or their data set cannot be loaded ({e})."],
            "tables": [],
        }
    errors = prediction_errors(run, train_baselines=False, progress=False, ensemble=ensemble)
    has_baselines = (Path(run) / BASELINES_FOLDER).is_dir()
    paragraphs = [
        "Root mean square error (data units) of what each test asks the trained models to predict, on the test "
        "rows, mean ± sd over seeds; a column per schedule, then the baselines (docs/prediction.md). "
        "'persistence' predicts x_t = x_{t-1}; a prediction that cannot beat it says little.",
    ]
    if not has_baselines:
        paragraphs.append(
            "The forward and inverse feed-forward baselines are not in this run folder yet: "
            f"`intermodal predict {Path(run)} --tests` trains and keeps them."
        )
    return {
        "id": "prediction",
        "title": "Prediction and control from partial information",
        "paragraphs": paragraphs,
        "tables": [{"title": None, "frame": prediction_summary(errors, list(ensemble.config.schedules))}],
        "figures": prediction_figures(run, ensemble),
    }
