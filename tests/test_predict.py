"""Prediction from partial information (intermodal.predict), the feed-forward baselines
(intermodal.baselines) and the prediction figures.

Most tests use untrained models on the small synthetic data set; the rankings train two
small VAEs (about 5 s) and the baselines (about 3 s) on the simulator, whose ground truth
is known (docs/simulator.md)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from intermodal.data.dataset import Dataset
from intermodal.data.description import DatasetDescription, Modality
from intermodal.errors import DataError
from intermodal.evaluation.baselines import (
    NetworkOptions,
    baseline_errors,
    load_baselines,
    motor_modalities,
    save_baselines,
    train_baselines,
)
from intermodal.evaluation.predict import combine_models, given_mask, predict, prediction_table, rollout
from intermodal.evaluation.prediction_tests import (
    DEFAULT_TESTS,
    ERROR_COLUMNS,
    PredictionTest,
    applicable_tests,
    continuing_rows,
    persistence_baseline,
    prediction_for_test,
    run_prediction_tests,
    summarise_errors,
)
from intermodal.model.architecture import architecture_preset
from intermodal.model.fusions.concat import MultimodalVAE
from intermodal.outputs.plotting import save_figure
from intermodal.outputs.prediction_figures import prediction_test_figure, trajectory_figure


# ---------------------------------------------------------------------- helpers
def _untrained(desc, n_models: int = 3, seeds=None) -> MultimodalVAE:
    model = MultimodalVAE(desc, architecture_preset("1", desc), n_models)
    model.reset_parameters(seeds or list(range(n_models)))
    return model


def _trajectory_rows(desc, n_rows: int, seed: int = 0) -> np.ndarray:
    """Time-ordered complete rows: row r holds step r+1 at the first time step and step r at
    the second, so row r+1's previous step repeats row r's current one (as the simulator)."""
    rng = np.random.default_rng(seed)
    per_step = sum(m.size for m in desc.modalities)
    states = np.tanh(np.cumsum(rng.normal(scale=0.3, size=(n_rows + 1, per_step)), axis=0))
    names = desc.column_names()
    rows = np.empty((n_rows, desc.n_columns))
    offset = 0
    for m in desc.modalities:
        for i in range(m.size):
            rows[:, names.index(f"{m.name}_{desc.time_steps[0]}_{i}")] = states[1:, offset + i]
            rows[:, names.index(f"{m.name}_{desc.time_steps[1]}_{i}")] = states[:-1, offset + i]
        offset += m.size
    return rows


def _forward(model, rows: np.ndarray):
    with torch.no_grad():
        x = torch.as_tensor(rows, dtype=torch.float32).expand(model.n_models, -1, -1)
        mean, logvar, _, _ = model(x)
    return mean.double().numpy(), torch.exp(0.5 * logvar.double()).numpy()


# ---------------------------------------------------------------------- predict
def test_predict_shapes_and_everything_given_is_the_reconstruction(tiny):
    desc = tiny.description
    model = _untrained(desc)
    rows = tiny.test[:17]
    pred = predict(model, rows, "*", description=desc)
    assert pred.mean.shape == pred.std.shape == (3, 17, desc.n_columns)
    assert pred.given.all() and pred.given.dtype == bool
    assert (pred.std >= 0.01 - 1e-7).all()  # the model's variance floor, 1e-4
    mean, std = _forward(model, rows)
    np.testing.assert_allclose(pred.mean, mean, rtol=0, atol=1e-12)
    # the std is the float32 model's sqrt(variance), which the reference takes as exp(logvar / 2)
    np.testing.assert_allclose(pred.std, std, rtol=1e-6, atol=0)
    # listing every modality is the same as "*"; description None = the model's own
    np.testing.assert_array_equal(predict(model, rows, desc.modality_names).mean, pred.mean)


def test_muted_columns_do_not_change_the_prediction(tiny):
    desc = tiny.description
    model = _untrained(desc)
    rows = tiny.test[:20]
    given = ["eye", "arm@t-1"]
    mask = given_mask(desc, given)
    other = rows.copy()
    other[:, ~mask] = np.random.default_rng(1).uniform(-1, 1, size=(len(rows), (~mask).sum()))
    other[0, ~mask] = np.nan  # a non-given column may hold anything, even NaN
    a, b = predict(model, rows, given, description=desc), predict(model, other, given, description=desc)
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.std, b.std)
    # and the muted columns were fed as the muted value
    muted = np.where(mask, rows, desc.muted_value)
    np.testing.assert_allclose(a.mean, _forward(model, muted)[0], rtol=0, atol=1e-12)
    # a DataFrame needs only the given columns, by name
    names = desc.column_names()
    frame = pd.DataFrame(rows[:, mask], columns=[n for n, g in zip(names, mask) if g])
    np.testing.assert_array_equal(predict(model, frame, given, description=desc).mean, a.mean)


def test_a_seeded_prediction_samples_the_same_eps_for_every_model(tiny):
    desc = tiny.description
    model = _untrained(desc)
    rows = tiny.test[:30]
    a = predict(model, rows, "eye", seed=5, description=desc)
    np.testing.assert_array_equal(a.mean, predict(model, rows, "eye", seed=5, description=desc).mean)
    assert not np.allclose(a.mean, predict(model, rows, "eye", seed=6, description=desc).mean)
    assert not np.allclose(a.mean, predict(model, rows, "eye", description=desc).mean)
    alone = predict(model.select([2]), rows, "eye", seed=5, description=desc)
    np.testing.assert_allclose(alone.mean[0], a.mean[2], rtol=0, atol=1e-6)


def test_rollout_chains_each_models_own_prediction(tiny):
    desc = tiny.description
    model = _untrained(desc)
    rows = tiny.test[:12]
    out = rollout(model, rows, 3, "eye", description=desc)
    assert out.mean.shape == out.std.shape == (3, 3, 12, desc.n_columns)
    np.testing.assert_array_equal(out.mean[:, 0], predict(model, rows, "eye", description=desc).mean)
    # one step with the t-1 columns given is predict with those given
    past = [f"{m}@t-1" for m in desc.modality_names]
    np.testing.assert_array_equal(
        rollout(model, rows, 1, "*@t-1", description=desc).mean[:, 0], predict(model, rows, past, description=desc).mean
    )
    # step k+1 of model j is model j alone, given at t-1 its own step-k means at t
    names = desc.column_names()
    for k in (1, 2):
        for j in range(model.n_models):
            shifted = np.full_like(rows, np.nan)
            for m in desc.modalities:
                for i in range(m.size):
                    shifted[:, names.index(f"{m.name}_t-1_{i}")] = out.mean[j, k - 1][:, names.index(f"{m.name}_t_{i}")]
            alone = predict(model.select([j]), shifted, "*@t-1", description=desc)
            np.testing.assert_allclose(out.mean[j, k], alone.mean[0], rtol=0, atol=1e-6)
            np.testing.assert_allclose(out.std[j, k], alone.std[0], rtol=0, atol=1e-6)
    # seeded: reproducible, and not the mean decoding
    s = rollout(model, rows, 2, "eye", seed=3, description=desc)
    np.testing.assert_array_equal(s.mean, rollout(model, rows, 2, "eye", seed=3, description=desc).mean)
    assert not np.allclose(s.mean[:, 1], out.mean[:, 1])


def test_rollout_takes_any_two_steps_and_refuses_others(tiny):
    base = tiny.description
    # other step names and a column order of its own: the shift pairs columns by name
    desc = DatasetDescription(
        name="renamed",
        modalities=base.modalities,
        time_steps=("now", "before"),
        muting_patterns={"complete": ()},
        columns=tuple(
            reversed([f"{m.name}_{s}_{i}" for m in base.modalities for s in ("now", "before") for i in range(m.size)])
        ),
    )
    model = _untrained(desc, 2)
    rows = _trajectory_rows(desc, 9)
    out = rollout(model, rows, 2, "*@before", description=desc)
    names = desc.column_names()
    shifted = np.full_like(rows, np.nan)
    for m in desc.modalities:
        for i in range(m.size):
            shifted[:, names.index(f"{m.name}_before_{i}")] = out.mean[1, 0][:, names.index(f"{m.name}_now_{i}")]
    np.testing.assert_allclose(
        out.mean[1, 1], predict(model.select([1]), shifted, "*@before", description=desc).mean[0], rtol=0, atol=1e-6
    )
    three = DatasetDescription(
        name="three", modalities=(Modality("a", 1),), time_steps=("t", "t-1", "t-2"), muting_patterns={"complete": ()}
    )
    with pytest.raises(ValueError, match="exactly two time steps"):
        rollout(_untrained(three, 1), np.zeros((2, 3)), 2, "a", description=three)
    with pytest.raises(ValueError, match="steps"):
        rollout(model, rows, 0, "*", description=desc)


def test_bad_inputs_raise_errors_that_name_the_culprit(tiny):
    desc = tiny.description
    model = _untrained(desc, 2)
    rows = tiny.test[:5].copy()
    with pytest.raises(DataError, match="'vision'"):
        predict(model, rows, ["vision"], description=desc)
    with pytest.raises(DataError, match="'arm@t-2'"):
        predict(model, rows, "arm@t-2", description=desc)
    with pytest.raises(DataError, match="'nose'"):
        predict(model, rows, "nose@t", description=desc)
    with pytest.raises(ValueError, match=f"n_columns = {desc.n_columns}"):
        predict(model, rows[:, :-1], "eye", description=desc)
    with pytest.raises(ValueError, match=f"n_columns = {desc.n_columns}"):
        rollout(model, rows[0], 2, "eye", description=desc)
    names = desc.column_names()
    c = names.index("eye_t-1_2")
    rows[3, c] = desc.muted_value
    with pytest.raises(ValueError, match=r"row 3, column \d+ \(eye_t-1_2\) holds the muted value -2"):
        predict(model, rows, "eye", description=desc)
    predict(model, rows, "arm", description=desc)  # a muted value in a column that is not given is fine
    rows[3, c] = np.nan
    with pytest.raises(ValueError, match=r"row 3, column \d+ \(eye_t-1_2\) is nan"):
        rollout(model, rows, 2, "eye@t-1", description=desc)
    with pytest.raises(ValueError, match="selectors must be strings"):
        predict(model, rows, ["eye", 3], description=desc)
    other = DatasetDescription(name="other", modalities=(Modality("a", 1),), muting_patterns={"complete": ()})
    with pytest.raises(ValueError, match="built for 'tiny'"):
        predict(model, np.zeros((2, 2)), "a", description=other)


def test_selectors_expand_from_the_description(tiny):
    desc = tiny.description
    assert desc.expand("*@t-1") == ["arm@t-1", "bump@t-1", "eye@t-1"]
    assert desc.expand(["*", "eye@t"]) == ["arm", "bump", "eye", "eye@t"]
    np.testing.assert_array_equal(given_mask(desc, "*"), np.ones(desc.n_columns, bool))
    assert not given_mask(desc, []).any()


# ---------------------------------------------------------------------- tables
def test_prediction_table_is_long_and_tidy(tiny):
    desc = tiny.description
    model = _untrained(desc, 2)
    rows = tiny.test[:4]
    keys = [("concat", "constant-0", 0), ("concat", "constant-0", 1)]
    pred = predict(model, rows, "eye", description=desc)
    table = prediction_table(pred.mean, pred.std, desc, keys, truth=rows, row_index=[10, 11, 12, 13])
    assert list(table.columns) == ["fusion", "schedule", "seed", "row", "column", "mean", "std", "true"]
    assert len(table) == 2 * 4 * desc.n_columns
    line = table[(table.seed == 1) & (table.row == 12) & (table.column == "arm_t_1")].iloc[0]
    c = desc.column_names().index("arm_t_1")
    assert line["mean"] == pred.mean[1, 2, c] and line["std"] == pred.std[1, 2, c] and line["true"] == rows[2, c]
    out = rollout(model, rows, 3, "eye", description=desc)
    table = prediction_table(out.mean, out.std, desc, keys)
    assert list(table.columns) == ["fusion", "schedule", "seed", "step", "row", "column", "mean", "std"]
    line = table[(table.seed == 0) & (table.step == 2) & (table.row == 3) & (table.column == "arm_t_1")].iloc[0]
    assert line["mean"] == out.mean[0, 2, 3, c]
    with pytest.raises(ValueError, match="keys"):
        prediction_table(pred.mean, pred.std, desc, keys[:1])


def test_combine_models_is_the_mixture():
    mean = np.array([[0.0, 1.0], [2.0, 1.0]])
    std = np.array([[1.0, 0.5], [1.0, 0.5]])
    m, s = combine_models(mean, std)
    np.testing.assert_allclose(m, [1.0, 1.0])
    np.testing.assert_allclose(s, [np.sqrt(2.0), 0.5])


# ---------------------------------------------------------------------- the tests table
def test_default_tests_follow_the_data_set(tiny):
    from intermodal.data.sim import description as sim_description

    assert [t.name for t in DEFAULT_TESTS] == ["complete", "vision-only", "control", "forward", "vision-chained"]
    assert [t.name for t in applicable_tests(sim_description())] == [t.name for t in DEFAULT_TESTS]
    # the tiny set has no vision or joints: only the generic tests remain
    assert [t.name for t in applicable_tests(tiny.description)] == ["complete", "forward"]
    own = DatasetDescription.from_dict(
        {
            **tiny.description.to_dict(),
            "prediction_tests": {
                "eye-only": {"given": ["eye"], "about": "from the eye"},
                "eye-chained": {"given": ["eye"], "chained": True},
            },
        }
    )
    tests = applicable_tests(own)
    assert tests == [
        PredictionTest(("eye",), about="from the eye", name="eye-only"),
        PredictionTest(("eye",), chained=True, name="eye-chained"),
    ]
    with pytest.raises(DataError, match="'nose'"):
        DatasetDescription.from_dict({**tiny.description.to_dict(), "prediction_tests": {"x": {"given": ["nose"]}}})


def test_run_prediction_tests_table(tiny):
    desc = tiny.description
    model = _untrained(desc, 2)
    keys = [("concat", "a", 0), ("concat", "a", 7)]
    rows = _trajectory_rows(desc, 40)
    tests = {"eye-only": {"given": ["eye"]}, "eye-chained": {"given": ["eye"], "chained": True}}
    table = run_prediction_tests(model, rows, tests, segment=(5, 35), model_keys=keys, description=desc)
    assert list(table.columns) == ERROR_COLUMNS
    n_mod = len(desc.modality_names)
    assert len(table) == 2 * n_mod * 2 + 2 * n_mod  # chained: the current step only
    eye = table[(table.test == "eye-only") & (table.modality == "eye")]
    assert eye.given.all() and not table[(table.test == "eye-only") & (table.modality == "arm")].given.any()
    assert not table[table.test == "eye-chained"].given.any()
    assert set(table[table.test == "eye-chained"].time_step) == {"t"}
    # the numbers: one by hand
    pred = predict(model, rows[5:35], "eye", description=desc)
    cols = desc.columns_of("arm@t")
    expected = np.sqrt(np.mean((pred.mean[1][:, cols] - rows[5:35][:, cols]) ** 2))
    got = table[(table.test == "eye-only") & (table.seed == 7) & (table.modality == "arm") & (table.time_step == "t")]
    assert got.rmse.item() == pytest.approx(expected, rel=1e-12)
    # chained: row r+1 predicted by a two-step rollout from row r, r and r+1 in the segment
    step1, truth, index = prediction_for_test(
        model, rows, PredictionTest(("eye",), chained=True, name="c"), segment=(5, 35), description=desc
    )
    np.testing.assert_array_equal(index, np.arange(6, 35))
    np.testing.assert_array_equal(truth, rows[6:35])
    np.testing.assert_array_equal(step1.mean, rollout(model, rows[5:34], 2, "eye", description=desc).mean[:, 1])
    summary = summarise_errors(table)
    one = summary[(summary.test == "eye-only") & (summary.modality == "arm") & (summary.time_step == "t")].iloc[0]
    both = table[(table.test == "eye-only") & (table.modality == "arm") & (table.time_step == "t")].rmse
    assert one["mean"] == pytest.approx(both.mean()) and one["sd"] == pytest.approx(both.std())
    assert one["n_seeds"] == 2


def test_chained_tests_need_time_ordered_rows(tiny):
    desc = tiny.description
    rows = _trajectory_rows(desc, 30)
    np.testing.assert_array_equal(continuing_rows(desc, rows), np.arange(29))
    broken = np.concatenate([rows[:10], _trajectory_rows(desc, 20, seed=1)])  # two trajectories
    np.testing.assert_array_equal(continuing_rows(desc, broken), np.r_[0:9, 10:29])
    with pytest.raises(ValueError, match="time-ordered"):
        run_prediction_tests(
            _untrained(desc, 1),
            tiny.test,
            {"c": {"given": ["eye"], "chained": True}},
            model_keys=[("concat", "s", 0)],
            description=desc,
        )


def test_persistence_baseline(tiny):
    desc = tiny.description
    rows = _trajectory_rows(desc, 50)
    table = persistence_baseline(desc, rows)
    assert list(table.columns) == ERROR_COLUMNS
    assert list(table.modality) == desc.modality_names and set(table.time_step) == {"t"}
    assert (table.test == "forward").all() and table.seed.isna().all() and not table.given.any()
    cols_t, cols_p = desc.columns_of("eye@t"), desc.columns_of("eye@t-1")
    expected = np.sqrt(np.mean((rows[:, cols_t] - rows[:, cols_p]) ** 2))
    assert table.set_index("modality").rmse["eye"] == pytest.approx(expected)
    still = rows.copy()
    still[:, cols_t] = still[:, cols_p]
    assert persistence_baseline(desc, still).set_index("modality").rmse["eye"] == 0


# ---------------------------------------------------------------------- figures
def test_prediction_figures_are_saved(tiny, tmp_path):
    desc = tiny.description
    model = _untrained(desc, 2)
    rows = _trajectory_rows(desc, 60)
    for test in (PredictionTest(("eye",), name="eye-only"), PredictionTest(("eye",), chained=True, name="chained")):
        figure = prediction_test_figure(model, rows, test, models=[1], segment=(10, 50), description=desc)
        assert len(figure.axes) == len(desc.modality_names)
        paths = [tmp_path / f"{test.name}.png", tmp_path / f"{test.name}.svg"]
        save_figure(figure, *paths)
        assert all(p.exists() and p.stat().st_size > 1000 for p in paths)
    pred = predict(model, rows[:30], "eye", description=desc)
    figure = trajectory_figure(desc, rows[:30], pred.mean, pred.std, given=pred.given, title="eye only")
    assert [ax.get_title(loc="left") for ax in figure.axes] == ["arm at t", "bump at t", "eye at t (given)"]


# ---------------------------------------------------------------------- baselines
def test_baselines_need_a_motor_modality(tiny):
    with pytest.raises(DataError, match="'motor'"):
        train_baselines(tiny, [0], epochs=1)
    with pytest.raises(DataError, match="'hand'"):
        tiny.description.replace(motor_modalities=("hand",))
    named = tiny.description.replace(motor_modalities=("arm",))
    assert motor_modalities(named) == (["arm"], ["bump", "eye"])
    baselines = train_baselines(Dataset(named, tiny.train, tiny.test), [0], epochs=1)
    # forward: bump, eye at t-1 and arm at t-1 -> bump, eye at t; inverse: bump, eye -> arm at t-1
    assert len(baselines.forward.inputs) == 1 + 3 + 2 and len(baselines.forward.outputs) == 1 + 3
    assert baselines.forward.weights[0].shape == (1, 6, 6)  # one hidden layer as wide as the input
    assert [tuple(w.shape) for w in baselines.inverse.weights] == [(1, 8, 150), (1, 150, 150), (1, 150, 2)]


def test_baselines_are_deterministic_per_seed_and_saved_without_pickle(tiny, tmp_path):
    named = Dataset(tiny.description.replace(motor_modalities=("arm",)), tiny.train, tiny.test)
    small = NetworkOptions(hidden=(8,), epochs=3, lr=1e-2, batch_size=50)
    group = train_baselines(named, [4, 9], forward=small, inverse=small)
    alone = train_baselines(named, [9], forward=small, inverse=small)
    for a, b in zip(group.inverse.weights, alone.inverse.weights):
        torch.testing.assert_close(a[1:], b, rtol=0, atol=1e-6)
    save_baselines(tmp_path / "baselines", group)
    files = sorted(p.name for p in (tmp_path / "baselines").iterdir())
    assert files == ["baselines.json", "baselines.safetensors"]
    settings = json.loads((tmp_path / "baselines" / "baselines.json").read_text())
    assert settings["seeds"] == [4, 9] and settings["inverse-model"]["options"]["epochs"] == 3
    loaded = load_baselines(tmp_path / "baselines")
    pd.testing.assert_frame_equal(baseline_errors(loaded, None, tiny.test), baseline_errors(group, None, tiny.test))
    weights = tmp_path / "baselines" / "baselines.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ValueError, match="SHA-256"):
        load_baselines(tmp_path / "baselines")


# ---------------------------------------------------------------------- trained, on the simulator
SIM = {"n_train": 1000, "n_test": 400}


@pytest.fixture(scope="module")
def sim_run():
    from intermodal.data.catalog import load_dataset
    from intermodal.training.config import RunConfig
    from intermodal.training.trainer import Trainer

    dataset = load_dataset("sim", sim=SIM)
    # Architecture 3 (one shared layer) with a high rate learns this much in 60 short epochs;
    # the paper's architecture 1 needs far longer.
    config = RunConfig(
        data="sim",
        sim=SIM,
        schedules=["constant-0"],
        seeds=[0, 1],
        epochs=60,
        lr=3e-3,
        batch_size=100,
        architecture="3",
    )
    trainer = Trainer(config, dataset, None).run()
    untrained = MultimodalVAE(dataset.description, trainer.model.architecture, 2)
    untrained.reset_parameters([0, 1])
    tables = [
        run_prediction_tests(
            trainer.model, dataset.test, model_keys=trainer.model_keys, description=dataset.description
        ),
        run_prediction_tests(
            untrained,
            dataset.test,
            model_keys=[("concat", "untrained", 0), ("concat", "untrained", 1)],
            description=dataset.description,
        ),
        persistence_baseline(dataset.description, dataset.test),
    ]
    baselines = train_baselines(dataset, [0, 1])
    tables.append(baseline_errors(baselines, None, dataset.test))
    return dataset, trainer, pd.concat(tables, ignore_index=True)


def _rmse(table, schedule, test, modality, time_step="t"):
    rows = table[
        (table.schedule == schedule)
        & (table.test == test)
        & (table.modality == modality)
        & (table.time_step == time_step)
    ]
    assert len(rows) >= 1, (schedule, test, modality, time_step)
    return rows.rmse.to_numpy()


def test_a_trained_model_reproduces_given_columns(sim_run):
    _, _, table = sim_run
    complete = table[(table.schedule == "constant-0") & (table.test == "complete")]
    assert complete.given.all()
    for modality in ("joints", "vision"):  # their std in the test rows: 0.31 and 0.25
        assert (complete[complete.modality == modality].rmse < 0.1).all()


def test_the_tests_rank_what_the_simulator_makes_certain(sim_run):
    dataset, _, table = sim_run
    assert set(table.test) >= {t.name for t in DEFAULT_TESTS}
    # Vision determines the fingertip's position, so it predicts the joints better than an
    # untrained model and than the training mean (which knows nothing of the row).
    for step in ("t", "t-1"):
        vision_only = _rmse(table, "constant-0", "vision-only", "joints", step)
        assert (vision_only < _rmse(table, "untrained", "vision-only", "joints", step)).all()
        assert (vision_only < 0.9 * _rmse(table, "training-mean", "forward", "joints")).all()
    # Persistence (x_t = x_{t-1}) knows the joints at t-1 and errs only by one step's motion
    # (0.2 motor, rmse 0.06), so nothing makes vision alone beat it (vision fixes the
    # fingertip, which leaves one of the four joints free; measured: 0.24). Given everything
    # at t-1 (the forward test: persistence's information) the joints at t are exact,
    # joints(t-1) + 0.2 motor(t-1), and vision is a function of them: a trained model beats
    # persistence there.
    for modality in ("joints", "vision"):
        assert _rmse(table, "constant-0", "forward", modality).mean() < _rmse(table, "persistence", "forward", modality)


def test_the_baselines_beat_the_training_mean(sim_run):
    _, _, table = sim_run
    for modality in ("joints", "vision", "touch", "sound"):
        assert (
            _rmse(table, "forward-model", "forward", modality)
            < 0.8 * _rmse(table, "training-mean", "forward", modality)
        ).all()
    assert (
        _rmse(table, "inverse-model", "control", "motor", "t-1")
        < 0.5 * _rmse(table, "training-mean", "control", "motor", "t-1")
    ).all()
    # fed only what the control test gives, the inverse model (trained on complete rows) fails
    assert (
        _rmse(table, "inverse-model-muted", "control", "motor", "t-1")
        > _rmse(table, "inverse-model", "control", "motor", "t-1")
    ).all()
    summary = summarise_errors(table)
    assert set(summary.columns) == {
        "fusion",
        "schedule",
        "test",
        "modality",
        "time_step",
        "given",
        "mean",
        "sd",
        "n_seeds",
    }
    assert summary[summary.schedule == "forward-model"].n_seeds.eq(2).all()
