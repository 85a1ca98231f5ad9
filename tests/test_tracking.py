"""intermodal.outputs.tracking: what the TensorBoard and MLflow trackers log, read back with
TensorBoard's and MLflow's own readers; the names both give; --track's values; the message
when a tracker's package is missing."""

from __future__ import annotations

import json
import math
import sys
from collections import namedtuple
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from intermodal.errors import ConfigError
from intermodal.outputs.tracking import (
    HISTORY_METRICS,
    Tracker,
    metric_name,
    model_name,
    open_tracker,
    parse_track,
)
from intermodal.training.config import MODEL_KEY_COLUMNS

# MLflow's SQL store, not intermodal, warns of a SQLAlchemy loader it uses.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")

# Keys built from whatever MODEL_KEY_COLUMNS holds: a schedule as given, a seed, any other
# (future) column a plain string.
Key = namedtuple("Key", MODEL_KEY_COLUMNS)
ODD_SCHEDULE = "cyclical:cycles=2:ratio=0.5"


def make_key(schedule: str, seed: int):
    values = {c: f"{c}-x" for c in MODEL_KEY_COLUMNS}
    values.update(schedule=schedule, seed=seed)
    return Key(**values)


KEYS = [make_key("constant-0", 1), make_key(ODD_SCHEDULE, 2)]
CONFIG = {"schedules": ["constant-0", ODD_SCHEDULE], "seeds": [1, 2], "lr": 5e-5, "sim": {}, "nested": {"a": 1}}


def key_frame(keys, repeat=1) -> dict:
    return {c: np.repeat([getattr(k, c) for k in keys], repeat) for c in MODEL_KEY_COLUMNS}


def history(epochs: range) -> pd.DataFrame:
    """Both models at each epoch; the second diverged (NaN) from epoch 2 on."""
    frames = []
    for epoch in epochs:
        frame = pd.DataFrame(key_frame(KEYS))
        frame["epoch"] = epoch
        frame["beta"] = 0.1 * epoch
        frame["reconstruction_loss"] = [1.0 + epoch, 2.0 + epoch]
        frame["latent_loss"] = [0.5, 0.25]
        frame["loss"] = [10.0 + epoch, np.nan if epoch >= 2 else 20.0 + epoch]
        frame["diverged"] = [False, epoch >= 2]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def evaluation(epoch: int) -> dict:
    results = pd.DataFrame(key_frame(KEYS, 3))
    results["epoch"] = epoch
    results["quantity"] = ["single_modality_error", "baseline", "custom"] * 2
    results["modality"] = ["arm", "", "arm+eye"] * 2
    results["scope"] = ["modality", "", "all"] * 2
    results["value"] = [0.5, 0.75, 0.125, 1.5, 1.75, 1.125]
    diagnostics = pd.DataFrame(key_frame(KEYS, 3))
    diagnostics["epoch"] = epoch
    diagnostics["latent_dim"] = [0, 1, 2] * 2
    diagnostics["kl"] = 0.1
    diagnostics["posterior_mean_variance"] = 0.2
    diagnostics["active"] = [True, True, False, True, False, False]
    return {"results": results, "diagnostics": diagnostics}


def log_study(tracker, tmp_path, figure=None):
    tracker.start(CONFIG, KEYS)
    tracker.log_history(history(range(0, 2)))  # several epochs in one call
    tracker.log_history(history(range(2, 3)))
    tracker.log_evaluation(3, evaluation(3))
    tracker.log_evaluation(3, {})  # nothing to log
    if figure is not None:
        tracker.log_figures({"fig4_losses": figure})


@pytest.fixture
def png(tmp_path):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(1, 0.5), dpi=20)
    figure.add_subplot().plot([0, 1], [1, 0])
    path = tmp_path / "fig4_losses.png"
    figure.savefig(path)
    return path


A, B = (model_name(k) for k in KEYS)
EXPECTED = {
    # name: [(step, value)]
    f"{A}/loss": [(0, 10.0), (1, 11.0), (2, 12.0)],
    f"{B}/loss": [(0, 20.0), (1, 21.0)],  # NaN at epoch 2 skipped
    f"{A}/beta": [(0, 0.0), (1, 0.1), (2, 0.2)],
    f"{B}/reconstruction_loss": [(0, 2.0), (1, 3.0), (2, 4.0)],
    f"{A}/single_modality_error/arm/modality": [(3, 0.5)],
    f"{B}/baseline": [(3, 1.75)],
    f"{A}/custom/arm_eye/all": [(3, 0.125)],
    f"{A}/active_units": [(3, 2.0)],
    f"{B}/active_units": [(3, 1.0)],
}


# --- names ------------------------------------------------------------------------------
def test_names_join_key_values_and_drop_empty_parts():
    key = make_key("constant-0", 3)
    expected = "/".join({"schedule": "constant-0", "seed": "seed-3"}.get(c, f"{c}-x") for c in MODEL_KEY_COLUMNS)
    assert model_name(key) == expected
    assert model_name(tuple(key)) == expected  # a plain tuple, in MODEL_KEY_COLUMNS order
    assert metric_name(key, "baseline", "", "") == f"{expected}/baseline"
    assert metric_name(key, "prediction_error", None, float("nan")) == f"{expected}/prediction_error"
    assert (
        metric_name(key, "single_modality_error", "arm", "modality") == f"{expected}/single_modality_error/arm/modality"
    )


def test_names_are_sanitised_for_mlflow():
    from intermodal.outputs.tracking import _UNSAFE

    odd = model_name(make_key(ODD_SCHEDULE, 2))
    assert odd.split("/")[MODEL_KEY_COLUMNS.index("schedule")] == "cyclical_cycles_2_ratio_0.5"
    table = model_name(make_key("table:/path/b.csv", 0))  # the table's '/' does not add a level
    assert table.split("/")[MODEL_KEY_COLUMNS.index("schedule")] == "table__path_b.csv"
    long = metric_name(make_key("table:/" + "very-long-folder/" * 30 + "b.csv", 0), "custom", "é" * 300, "all")
    assert len(long) <= 250
    for name in (odd, table, long):
        assert not _UNSAFE.search(name.replace("/", ""))
        assert "//" not in name and not name.startswith("/")
    # Two long names that differ only in the middle stay apart.
    a = model_name(make_key("table:/" + "a" * 100 + "/1/" + "z" * 100, 0))
    b = model_name(make_key("table:/" + "a" * 100 + "/2/" + "z" * 100, 0))
    assert a != b


# --- parse_track --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "spec, expected",
    [
        ("tensorboard", ("tensorboard", None)),
        ("tensorboard:runs/tb", ("tensorboard", "runs/tb")),
        ("mlflow", ("mlflow", None)),
        ("mlflow:sqlite:////tmp/x/mlflow.db", ("mlflow", "sqlite:////tmp/x/mlflow.db")),
        ("mlflow:http://localhost:5000", ("mlflow", "http://localhost:5000")),
    ],
)
def test_parse_track_accepts(spec, expected):
    assert parse_track(spec) == expected


@pytest.mark.parametrize("spec", ["", "wandb", "tensorboard:", "mlflow:", "TensorBoard", "mlflow-sqlite", ":mlflow"])
def test_parse_track_refuses(spec):
    with pytest.raises(ConfigError) as caught:
        parse_track(spec)
    message = str(caught.value)
    assert "--track" in message and "tensorboard[:DIR]" in message and "mlflow[:URI]" in message


def test_open_tracker_refuses_a_bad_spec(tmp_path):
    with pytest.raises(ConfigError, match="--track"):
        open_tracker("wandb", default_dir=tmp_path, run_name="x")


@pytest.mark.parametrize(
    "spec, module, line",
    [
        (
            "tensorboard",
            "torch.utils.tensorboard",
            "--track tensorboard needs TensorBoard: pip install 'intermodal[tensorboard]'",
        ),
        ("mlflow", "mlflow", "--track mlflow needs MLflow: pip install 'intermodal[mlflow]'"),
    ],
)
def test_a_missing_package_names_the_pip_line(monkeypatch, tmp_path, spec, module, line):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ConfigError) as caught:
        open_tracker(spec, default_dir=tmp_path, run_name="x")
    assert str(caught.value) == line
    assert not (tmp_path / "tensorboard").exists() and not (tmp_path / "mlflow.db").exists()


def test_the_base_tracker_logs_nothing_and_closes_once(tmp_path):
    with Tracker() as tracker:
        log_study(tracker, tmp_path)
    tracker.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        tracker.log_history(history(range(1)))


# --- TensorBoard ----------------------------------------------------------------------
def read_tensorboard(log_dir):
    pytest.importorskip("tensorboard", reason="TensorBoard is not installed (pip install 'intermodal[tensorboard]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def test_tensorboard_logs_history_evaluation_config_and_figures(tmp_path, png):
    pytest.importorskip(
        "torch.utils.tensorboard", reason="TensorBoard is not installed (pip install 'intermodal[tensorboard]')"
    )
    tracker = open_tracker("tensorboard", default_dir=tmp_path, run_name="study")
    assert tracker.location == str(tmp_path / "tensorboard")
    with tracker:
        log_study(tracker, tmp_path, figure=png)
    tracker.close()

    events = read_tensorboard(tmp_path / "tensorboard")
    tags = events.Tags()
    for name, expected in EXPECTED.items():
        scalars = events.Scalars(name)
        assert [s.step for s in scalars] == [step for step, _ in expected], name
        np.testing.assert_allclose([s.value for s in scalars], [v for _, v in expected], rtol=1e-6)
    logged = set(tags["scalars"])
    assert {f"{m}/{c}" for m in (A, B) for c in HISTORY_METRICS} <= logged
    assert len(logged) == 2 * len(HISTORY_METRICS) + 2 * 3 + 2  # history, results, active units

    (config_tag,) = [t for t in tags["tensors"] if t.startswith("config")]
    text = events.Tensors(config_tag)[0].tensor_proto.string_val[0].decode()
    assert json.loads(text.strip().removeprefix("```json").removesuffix("```")) == CONFIG

    (image,) = events.Images("figures/fig4_losses")
    assert image.width == 20 and image.height == 10 and image.step == 3


def test_tensorboard_child_writes_into_its_own_folder(tmp_path):
    pytest.importorskip(
        "torch.utils.tensorboard", reason="TensorBoard is not installed (pip install 'intermodal[tensorboard]')"
    )
    folder = tmp_path / "tb"
    with open_tracker(f"tensorboard:{folder}", default_dir=tmp_path, run_name="unit-1", parent="any") as tracker:
        tracker.log_history(history(range(1)))
    assert tracker.location == str(folder / "unit-1")
    events = read_tensorboard(folder / "unit-1")
    assert [s.value for s in events.Scalars(f"{A}/loss")] == [10.0]
    assert not (tmp_path / "tensorboard").exists()


# --- MLflow --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory):
    """One SQLite store for the module's MLflow tests (creating one takes seconds)."""
    mlflow = pytest.importorskip("mlflow", reason="MLflow is not installed (pip install 'intermodal[mlflow]')")
    folder = tmp_path_factory.mktemp("mlflow")
    return mlflow, folder


def test_mlflow_logs_history_evaluation_config_and_figures(mlflow_store, png, tmp_path, monkeypatch):
    mlflow, folder = mlflow_store
    monkeypatch.chdir(tmp_path)  # nothing may land in the current folder
    uri_before = mlflow.get_tracking_uri()
    tracker = open_tracker("mlflow", default_dir=folder, run_name="study")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    assert tracker.location == uri and (folder / "mlflow.db").exists()
    with tracker:
        log_study(tracker, tmp_path, figure=png)
    tracker.close()
    assert mlflow.get_tracking_uri() == uri_before and mlflow.active_run() is None
    assert list(tmp_path.iterdir()) == [png]

    client = mlflow.MlflowClient(uri)
    run = client.get_run(tracker.run_id)
    assert run.info.run_name == "study" and run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "intermodal"
    for name, expected in EXPECTED.items():
        history_ = sorted(client.get_metric_history(tracker.run_id, name), key=lambda m: m.step)
        assert [m.step for m in history_] == [step for step, _ in expected], name
        np.testing.assert_allclose([m.value for m in history_], [v for _, v in expected], rtol=1e-6)
    assert not any(math.isnan(v) for v in run.data.metrics.values())
    assert len(run.data.metrics) == 2 * len(HISTORY_METRICS) + 2 * 3 + 2

    params = run.data.params
    assert params["lr"] == "5e-05" and params["nested.a"] == "1" and params["sim"] == "{}"
    assert json.loads(params["schedules"]) == CONFIG["schedules"]
    artifacts = {a.path for a in client.list_artifacts(tracker.run_id)}
    assert {"config.json", "figures"} <= artifacts
    assert [a.path for a in client.list_artifacts(tracker.run_id, "figures")] == ["figures/fig4_losses.png"]
    local = client.download_artifacts(tracker.run_id, "config.json", str(tmp_path))
    assert json.loads(open(local).read()) == CONFIG


def test_mlflow_child_run_batches_and_leaves_global_state(mlflow_store, tmp_path, monkeypatch):
    mlflow, folder = mlflow_store
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{folder / 'children' / 'mlflow.db'}"  # a folder that does not exist yet
    parent = open_tracker(f"mlflow:{uri}", default_dir=tmp_path, run_name="study")
    uri_before = mlflow.get_tracking_uri()
    # 600 models x 2 epochs x 4 values, in one call: 4 calls of 1000 at once, the rest later.
    keys = [make_key("constant-0", s) for s in range(600)]
    frames = []
    for epoch in range(2):
        frame = pd.DataFrame(key_frame(keys))
        frame["epoch"] = epoch
        for column in HISTORY_METRICS:
            frame[column] = 1.0 + epoch
        frame["diverged"] = False
        frames.append(frame)
    rows = pd.concat(frames, ignore_index=True)
    batches = []
    with open_tracker(f"mlflow:{uri}", default_dir=tmp_path, run_name="unit-1", parent=parent.run_id) as child:
        log_batch = child._client.log_batch
        monkeypatch.setattr(
            child._client, "log_batch", lambda *a, **k: batches.append(len(k["metrics"])) or log_batch(*a, **k)
        )
        child.log_history(rows)
        assert batches == [1000] * 4
        child.log_history(history(range(1)).iloc[:1])  # 4 values more, at once: buffered
        assert batches == [1000] * 4
    assert batches == [1000] * 4 + [804]  # the rest, on close
    parent.close()
    assert mlflow.get_tracking_uri() == uri_before and mlflow.active_run() is None

    client = mlflow.MlflowClient(uri)
    run = client.get_run(child.run_id)
    assert run.data.tags["mlflow.parentRunId"] == parent.run_id
    assert run.info.experiment_id == client.get_run(parent.run_id).info.experiment_id
    assert len(client.get_metric_history(child.run_id, f"{model_name(keys[599])}/loss")) == 2
    # A new experiment keeps its artifacts beside the database, not in the current folder.
    assert client.get_experiment(run.info.experiment_id).artifact_location.startswith((folder / "children").as_uri())
    assert list(tmp_path.iterdir()) == []


def test_mlflow_run_failed_when_the_block_raises(mlflow_store):
    mlflow, folder = mlflow_store
    with pytest.raises(KeyError):
        with open_tracker("mlflow", default_dir=folder, run_name="broken") as tracker:
            raise KeyError("boom")
    assert mlflow.MlflowClient(tracker.location).get_run(tracker.run_id).info.status == "FAILED"


def test_mlflow_unknown_parent_is_a_config_error(mlflow_store):
    _, folder = mlflow_store
    with pytest.raises(ConfigError, match="parent run"):
        open_tracker("mlflow", default_dir=folder, run_name="orphan", parent="0" * 32)


def test_both_trackers_use_the_same_names(mlflow_store, tmp_path):
    pytest.importorskip(
        "torch.utils.tensorboard", reason="TensorBoard is not installed (pip install 'intermodal[tensorboard]')"
    )
    mlflow, folder = mlflow_store
    with open_tracker("tensorboard", default_dir=tmp_path, run_name="same") as tb:
        log_study(tb, tmp_path)
    with open_tracker("mlflow", default_dir=folder, run_name="same") as ml:
        log_study(ml, tmp_path)
    tensorboard_names = set(read_tensorboard(tb.log_dir).Tags()["scalars"])
    mlflow_names = set(mlflow.MlflowClient(ml.location).get_run(ml.run_id).data.metrics)
    assert tensorboard_names == mlflow_names
    assert any("cyclical_cycles_2_ratio_0.5" in name for name in mlflow_names)


# ---------------------------------------------------------------------- a study, watched
STUDY = [
    "study", "--sim", '{"n_train": 200, "n_test": 100}', "--schedule", "constant-0", "--seeds", "2", "--epochs", "6",
    "--batch-size", "100", "--lr", "1e-3", "--eval-every", "3", "--n-eval-rows", "40", "--quiet",
]  # fmt: skip


@pytest.mark.slow
def test_a_local_study_is_watched_in_tensorboard(tmp_path):
    pytest.importorskip("torch.utils.tensorboard", reason="TensorBoard is not installed")
    from intermodal.cli import main

    run = tmp_path / "run"
    assert main([*STUDY, "--out", str(run), "--track", "tensorboard"]) == 0
    events = read_tensorboard(run / "tracking" / "tensorboard")
    loss = events.Scalars("concat/constant-0/seed-1/loss")
    history = pd.read_parquet(run / "history.parquet")
    expected = history[history.seed == 1].loss.to_numpy()
    assert [e.step for e in loss] == list(range(6))
    np.testing.assert_allclose([e.value for e in loss], expected, rtol=1e-6)
    baseline = events.Scalars("concat/constant-0/seed-0/baseline")
    assert [e.step for e in baseline] == [0, 3, 6]
    assert "figures/fig7_window_means" in events.Tags()["images"] and "config" in str(events.Tags()["tensors"])


@pytest.mark.slow
def test_a_ray_study_is_watched_in_mlflow_unit_by_unit(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow", reason="MLflow is not installed")
    pytest.importorskip("ray", reason="the Ray backend needs Ray")
    from intermodal.cli import main
    from intermodal.study import cluster

    monkeypatch.setattr(cluster, "write_report", lambda run, **_: Path(run) / "report.html")
    run = tmp_path / "run"
    argv = [*STUDY, "--schedule", "constant-0,constant-1", "--out", str(run), "--backend", "ray", "--track", "mlflow"]
    assert main(argv) == 0
    client = mlflow.MlflowClient(f"sqlite:///{run / 'tracking' / 'mlflow.db'}")
    runs = client.search_runs(client.get_experiment_by_name("intermodal").experiment_id)
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.info.run_name for r in children) == sorted(p.name for p in (run / "units").glob("0*"))
    assert parent.data.params["epochs"] == "6"
    history = pd.read_parquet(run / "history.parquet")
    one = next(c for c in children if "constant-1" in c.info.run_name)
    logged = client.get_metric_history(one.info.run_id, "concat/constant-1/seed-0/latent_loss")
    expected = history[(history.schedule == "constant-1") & (history.seed == 0)].latent_loss.to_numpy()
    np.testing.assert_allclose([m.value for m in sorted(logged, key=lambda m: m.step)], expected, rtol=1e-6)
