"""``intermodal predict`` on a trained run folder, and the report's prediction section."""

from __future__ import annotations

import pandas as pd
import pytest

import intermodal as im
from intermodal.cli import main

SIM = '{"n_train": 300, "n_test": 150}'


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("predict") / "run"
    argv = [
        "study",
        "--sim",
        SIM,
        "--schedule",
        "constant-0,constant-1",
        "--seeds",
        "2",
        "--epochs",
        "4",
        "--batch-size",
        "100",
        "--eval-every",
        "2",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(argv) == 0
    return out


def test_predict_writes_a_tidy_table(run, tmp_path):
    out = tmp_path / "p.csv"
    assert main(["predict", str(run), "--given", "vision", "--schedule", "constant-0", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["fusion", "schedule", "seed", "row", "column", "mean", "std", "true"]
    assert set(table.schedule) == {"constant-0"} and set(table.seed) == {0, 1}
    # every column of the run's data set (the study adds the simulator's two distractors)
    assert table.row.nunique() == 150 and table.column.nunique() == im.load_run(run).description.n_columns == 44
    assert (table["std"] > 0).all()


def test_predict_chains_steps(run, tmp_path):
    out = tmp_path / "p.parquet"
    assert main(["predict", str(run), "--given", "*@t-1", "--seed", "1", "--steps", "3", "--out", str(out)]) == 0
    table = pd.read_parquet(out)
    assert sorted(set(table.step)) == [0, 1, 2] and set(table.seed) == {1}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--given", "nose"], "given selector 'nose'"),
        (["--given", "vision@t-3"], "time step 't-3'"),
        (["--given", "vision", "--seed", "7"], "no model with schedule None and seed 7"),
        (["--given", "vision", "--steps", "0"], "--steps 0"),
        (["--given", "vision", "--out", "table.xlsx"], "expected a .csv or .parquet file"),
        ([], "name what the models are given"),
        (["--tests", "--given", "vision"], "drop --given"),
    ],
)
def test_predict_refuses_bad_requests(run, argv, message, capsys):
    assert main(["predict", str(run), *argv]) == 2
    assert message in capsys.readouterr().err


def test_predict_checks_a_users_rows(run, tmp_path, capsys):
    from intermodal.data.catalog import load_dataset

    dataset = load_dataset("sim", sim={"n_train": 300, "n_test": 150})
    frame = pd.DataFrame(dataset.test[:5], columns=dataset.description.column_names())
    frame.assign(extra=1.0).to_csv(tmp_path / "extra.csv", index=False)
    assert main(["predict", str(run), "--given", "vision", "--rows", str(tmp_path / "extra.csv")]) == 2
    assert "column(s) ['extra'] are not columns" in capsys.readouterr().err
    muted = frame.copy()
    muted.loc[2, "vision_t_0"] = -2.0
    muted.to_csv(tmp_path / "muted.csv", index=False)
    assert main(["predict", str(run), "--given", "vision", "--rows", str(tmp_path / "muted.csv")]) == 2
    err = capsys.readouterr().err
    assert "muted.csv" in err and "row 2" in err and "vision_t_0" in err
    frame[[c for c in frame.columns if c.startswith("vision")]].to_csv(tmp_path / "vision.csv", index=False)
    out = tmp_path / "from-vision.csv"
    assert (
        main(["predict", str(run), "--given", "vision", "--rows", str(tmp_path / "vision.csv"), "--out", str(out)]) == 0
    )
    table = pd.read_csv(out)
    assert "true" not in table.columns and table.row.nunique() == 5


def test_prediction_tests_keep_their_baselines_and_reach_the_report(run, capsys):
    assert main(["predict", str(run), "--tests"]) == 0
    printed = capsys.readouterr().out
    assert "persistence" in printed and "forward-model" in printed and "inverse-model" in printed
    assert (run / "baselines" / "baselines.json").is_file()
    errors = pd.read_parquet(run / "prediction_errors.parquet")
    assert {"complete", "vision-only", "control", "forward", "vision-chained"} <= set(errors.test)
    assert (errors.rmse >= 0).all()
    assert main(["report", str(run)]) == 0
    html = (run / "report.html").read_text()
    assert "Prediction and control from partial information" in html
    assert "forward-model" in html and "prediction_forward" in html


def test_the_report_is_written_when_the_data_set_is_gone(run, tmp_path, monkeypatch):
    import shutil

    from intermodal.errors import DataError
    from intermodal.training.runfolder import loading

    copy = tmp_path / "run"
    shutil.copytree(run, copy)

    def unavailable(config):
        raise DataError("cannot fetch the data set (offline)")

    monkeypatch.setattr(loading, "dataset_of", unavailable)
    assert main(["report", str(copy)]) == 0
    html = (copy / "report.html").read_text()
    assert "Not shown: the trained models or their data set cannot be loaded" in html and "offline" in html
    # the findings come from the run folder's tables and its description alone
    assert "Does this run find what the simulator makes true?" in html
