"""The study end to end on small data: run folder, tables, figures, report, resume,
``intermodal measure``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from intermodal.cli import main
from intermodal.data.catalog import write_dataset
from intermodal.training.config import PRESET_SUMMARIES, STUDY_PRESETS, preset_config

QUANTITIES = {"single_modality_error", "loss_of_precision", "baseline", "prediction_error"}


@pytest.fixture
def tiny_data(tmp_path, tiny):
    return str(write_dataset(tiny, tmp_path / "data"))


def study_argv(data, out, *extra):
    return [
        "study",
        "--data",
        data,
        "--schedule",
        "constant-1,constant-0",
        "--seeds",
        "2",
        "--epochs",
        "6",
        "--eval-every",
        "3",
        "--batch-size",
        "200",
        "--lr",
        "1e-3",
        "--n-eval-rows",
        "100",
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]


def test_study_writes_tidy_tables_figures_and_report(tmp_path, tiny_data, capsys):
    out = tmp_path / "run"
    assert main(study_argv(tiny_data, out)) == 0
    printed = capsys.readouterr().out
    assert "expected duration" in printed and "report.html" in printed

    results = pd.read_parquet(out / "results.parquet")
    assert list(results.columns) == [
        *["fusion", "schedule", "seed", "epoch", "quantity", "modality", "scope", "value", "likelihood"],
        *["z_samples", "divergence"],
    ]
    # what the measures decoded from, recorded: concat's posterior mean
    assert (results.z_samples == 0).all() and (results.divergence == "").all()
    assert set(results.likelihood[results.quantity != "prediction_error"]) == {"gaussian"}
    # The quick preset adds the lattice's shares and interactions at the last evaluation.
    assert set(results.quantity) == set(QUANTITIES) | {"share", "interaction"}
    lattice = results.quantity.isin(["share", "interaction"])
    assert set(results.epoch[lattice]) == {6}
    assert sorted(set(results.epoch)) == [0, 3, 6]
    measures = results[results.quantity.isin(["single_modality_error", "loss_of_precision"])]
    assert set(measures.modality) == {"arm", "bump", "eye"} and set(measures.scope) == {"modality", "all"}
    baseline = results[results.quantity == "baseline"]
    assert (baseline.modality == "").all() and (baseline.scope == "").all()
    # one row per (schedule, seed, epoch, quantity, modality, scope)
    assert not results.duplicated(["fusion", "schedule", "seed", "epoch", "quantity", "modality", "scope"]).any()
    # per model and evaluation: 3 modalities × 4 measures, baseline, prediction error; at the
    # last, 3 sources and 3 pairs, each regarding all and each of the 3 modalities
    assert len(results) == 2 * 2 * 3 * (3 * 4 + 2) + 2 * 2 * (3 + 3) * 4
    assert (results.value[~lattice] >= 0).all()

    history = pd.read_parquet(out / "history.parquet")
    assert len(history) == 2 * 2 * 6
    diagnostics = pd.read_parquet(out / "diagnostics.parquet")
    assert {"latent_dim", "kl", "active"} <= set(diagnostics.columns)

    config = json.loads((out / "config.json").read_text())
    assert config["eval_every"] == 3 and config["schedules"] == ["constant-1", "constant-0"]
    for n in ("2", "4", "5", "6", "7", "A1"):  # named after the paper's figures
        assert list((out / "figures").glob(f"fig{n}_*.png")) and list((out / "figures").glob(f"fig{n}_*.svg"))
    html = (out / "report.html").read_text()
    assert "Does this run show what the paper found?" in html
    # where it was trained, from environment.json
    assert f"cpu, torch {torch.__version__}; TF32 off" in html

    # the report can be rebuilt from the folder alone
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.html").exists()


def test_study_resumes_to_the_same_tables(tmp_path, tiny_data, monkeypatch):
    from intermodal.study import local as study

    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    assert main(study_argv(tiny_data, whole, "--checkpoint-every", "3")) == 0

    class Stop(Exception):
        pass

    make_evaluator = study.make_evaluator

    def stopping_at_6(config, dataset, **options):
        evaluate = make_evaluator(config, dataset, **options)

        def wrapped(model, epoch):
            if epoch == 6:  # after the last epoch's training, before its checkpoint
                raise Stop
            return evaluate(model, epoch)

        return wrapped

    monkeypatch.setattr(study, "make_evaluator", stopping_at_6)
    assert main(study_argv(tiny_data, stopped, "--checkpoint-every", "3")) == 1  # an exception not ours: a bug
    monkeypatch.setattr(study, "make_evaluator", make_evaluator)
    assert json.loads((stopped / "checkpoint/state.json").read_text())["epochs_done"] == 3
    assert not (stopped / "report.html").exists()

    assert main(["study", "--resume", str(stopped), "--quiet"]) == 0
    for table in ("results", "history"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(whole / f"{table}.parquet"),
            pd.read_parquet(stopped / f"{table}.parquet"),
            check_exact=False,
            rtol=1e-5,
        )
    assert (stopped / "report.html").exists()


def test_measure_command_prints_every_model(tmp_path, tiny_data, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--data",
                tiny_data,
                "--schedule",
                "constant-0",
                "--seeds",
                "2",
                "--epochs",
                "2",
                "--batch-size",
                "200",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["measure", str(out), "--json", "--n-eval-rows", "50"]) == 0
    records = pd.DataFrame(json.loads(capsys.readouterr().out))
    assert set(records.seed) == {0, 1} and set(records.quantity) == QUANTITIES
    assert (records.value >= 0).all()
    assert main(["measure", str(out), "--n-eval-rows", "50"]) == 0
    table = capsys.readouterr().out
    assert "single_modality_error" in table and "eye" in table
    assert main(["measure", str(out), "--json", "--n-eval-rows", "50", "--seed", "1"]) == 0
    one = pd.DataFrame(json.loads(capsys.readouterr().out))
    assert set(one.seed) == {1}
    # a model measured alone gives the numbers it has in its ensemble
    both = records[records.seed == 1].reset_index(drop=True)
    np.testing.assert_allclose(one.value.to_numpy(), both.value.to_numpy(), rtol=1e-5)
    assert main(["measure", str(out), "--seed", "7"]) == 2
    assert "no model with schedule None and seed 7" in capsys.readouterr().err
    assert main(["measure", str(out), "--n-eval-rows", "5000"]) == 2
    assert "5000" in capsys.readouterr().err


def test_presets_are_as_documented():
    paper = preset_config("paper")
    assert paper.schedules == ["constant-1", "constant-0", "dynamic-plateau-0", "dynamic-plateau-1"]
    assert (len(paper.seeds), paper.epochs, paper.lr) == (20, 80_000, 5e-5)
    assert paper.eval_every and paper.epochs % paper.eval_every == 0
    quick = preset_config("quick")
    assert quick.epochs * len(quick.seeds) * len(quick.schedules) <= 30_000  # minutes on 2 cores
    assert set(STUDY_PRESETS) == set(PRESET_SUMMARIES) == {"paper", "quick", "demo"}
    # The front door takes the quick preset's gradient steps at half its computation.
    demo = preset_config("demo")
    assert (demo.schedules, demo.seeds, demo.lr, demo.shares) == (quick.schedules, quick.seeds, quick.lr, quick.shares)
    assert demo.epochs * 2 == quick.epochs and demo.batch_size * 2 == quick.batch_size
    assert demo.eval_every * 2 == quick.eval_every and demo.ground_truth and demo.windows is None


def test_the_readmes_first_command_runs_a_preset_the_help_lists(capsys):
    first = (Path(__file__).resolve().parents[1] / "README.md").read_text().split("\n")[1]
    preset = first.split("--preset ")[1].split()[0]
    assert preset in STUDY_PRESETS
    with pytest.raises(SystemExit):
        main(["study", "--help"])
    assert f"{preset}:" in capsys.readouterr().out


def test_data_sim_command_writes_a_loadable_data_set(tmp_path, capsys):
    from intermodal.data.catalog import load_dataset
    from intermodal.data.sim import simulate

    out = tmp_path / "sim"
    assert main(["data", "sim", "--out", str(out), "--seed", "3", "--options", '{"n_train": 300, "n_test": 200}']) == 0
    back = load_dataset(str(out / "description.json"))
    direct = simulate(seed=3, n_train=300, n_test=200)
    np.testing.assert_array_equal(back.train, direct.train)
    np.testing.assert_array_equal(back.test, direct.test)
    header = (out / "train.csv").read_text().splitlines()[0].split(",")
    assert header == direct.description.column_names()
    assert main(["data", "sim", "--out", str(tmp_path / "x"), "--options", '{"n_trian": 3}']) == 2
    assert "n_trian" in capsys.readouterr().err


def test_study_options_for_the_measures(tmp_path, tiny_data):
    out = tmp_path / "run"
    pairs = '{"arm_past": {"muted": ["arm@t-1"], "compared": ["arm@t-1"]}}'
    assert (
        main(
            study_argv(
                tiny_data, out, "--z-samples", "2", "--eval-rows", "random", "--eval-seed", "4", "--extra-pairs", pairs
            )
        )
        == 0
    )
    results = pd.read_parquet(out / "results.parquet")
    custom = results[results.quantity == "custom"]
    assert set(custom.modality) == {"arm_past"} and len(custom) == 2 * 2 * 3
    assert (custom.value >= 0).all()
    config = json.loads((out / "config.json").read_text())
    assert (config["z_samples"], config["eval_rows"], config["eval_seed"]) == (2, "random", 4)
    bad = study_argv(tiny_data, tmp_path / "bad", "--extra-pairs", '{"x": {"muted": ["nose"], "compared": ["arm"]}}')
    assert main(bad) == 2
    assert not (tmp_path / "bad").exists()
