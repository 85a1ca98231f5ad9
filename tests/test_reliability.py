"""What docs/reliability.md promises: one writer per run folder, exact resume after kill -9
(also with --z-samples), falling back to the previous checkpoint when the latest is
damaged, isolated divergence, and runs that resume from any working directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file

from intermodal.cli import main
from intermodal.data.catalog import write_dataset
from intermodal.training.runfolder import RunLock

SIM = '{"n_train": 200, "n_test": 100}'


def study_argv(out: Path, *extra: str) -> list[str]:
    return [
        "study",
        "--sim",
        SIM,
        "--schedule",
        "constant-0,dynamic-plateau-1",
        "--seeds",
        "2",
        "--epochs",
        "40",
        "--batch-size",
        "100",
        "--lr",
        "1e-3",
        "--eval-every",
        "5",
        "--checkpoint-every",
        "4",
        "--n-eval-rows",
        "50",
        "--ground-truth-controls",
        "false",
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]


def run_cli(argv: list[str], **options) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "intermodal.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **options,
    )


def assert_same_run(a: Path, b: Path) -> None:
    """Tables and weights bitwise equal."""
    for table in ("history", "results", "diagnostics"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(a / f"{table}.parquet"), pd.read_parquet(b / f"{table}.parquet"), check_exact=True
        )
    wa, wb = (load_file(str(p / "checkpoint" / "model.safetensors")) for p in (a, b))
    assert wa.keys() == wb.keys()
    for name in wa:
        np.testing.assert_array_equal(wa[name], wb[name], err_msg=name)


# ---------------------------------------------------------------------- kill -9, then resume
@pytest.mark.slow
@pytest.mark.parametrize("z_samples", ["0", "2"])
def test_kill_at_random_moments_then_resume_gives_the_uninterrupted_run(tmp_path, z_samples):
    extra = ("--z-samples", z_samples)
    whole = tmp_path / "whole"
    reference = run_cli(study_argv(whole, *extra))
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    rng = np.random.default_rng(int(z_samples))
    killed_mid_run = 0
    for attempt in range(2):
        out = tmp_path / f"killed-{attempt}"
        process = run_cli(study_argv(out, *extra))
        deadline = time.monotonic() + 120
        while not (out / "config.json").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 2.5))  # a moment somewhere in training, evaluation or a save
        if process.poll() is None:
            killed_mid_run += 1
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
        resumed = run_cli(["study", "--resume", str(out), "--quiet"])
        assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
        assert_same_run(whole, out)
    assert killed_mid_run >= 1, "every process had finished before its kill; the test measured nothing"


# ---------------------------------------------------------------------- one writer
def test_a_second_writer_fails_at_once_naming_the_holder(tmp_path, capsys):
    out = tmp_path / "run"
    first = run_cli(study_argv(out, "--epochs", "200"))
    deadline = time.monotonic() + 120
    while not (out / "config.json").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        assert first.poll() is None
        assert main(["study", "--resume", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert f"pid {first.pid}" in err and str(out) in err
        assert main(study_argv(out)) == 2  # nor can a new run start there
        assert "another intermodal process" in capsys.readouterr().err
    finally:
        first.kill()
        first.wait(timeout=60)


def test_the_lock_is_released_when_its_holder_ends(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(ValueError, match=f"pid {os.getpid()}"):
            RunLock(tmp_path).acquire()
    RunLock(tmp_path).acquire().release()


# ---------------------------------------------------------------------- checkpoints
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys):
    argv = [
        "train",
        "--sim",
        SIM,
        "--schedule",
        "constant-0",
        "--seeds",
        "2",
        "--epochs",
        "6",
        "--batch-size",
        "100",
        "--checkpoint-every",
        "3",
        "--dtype",
        "float64",
        "--quiet",
    ]
    whole, damaged = tmp_path / "whole", tmp_path / "damaged"
    assert main([*argv, "--out", str(whole)]) == 0
    assert main([*argv, "--out", str(damaged)]) == 0
    weights = damaged / "checkpoint" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # the epoch-6 checkpoint; checkpoint.old holds epoch 3
    capsys.readouterr()
    assert main(["train", "--resume", str(damaged), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "model.safetensors: damaged" in err and "previous checkpoint" in err and "epoch 3" in err
    pd.testing.assert_frame_equal(
        pd.read_parquet(whole / "history.parquet"), pd.read_parquet(damaged / "history.parquet"), check_exact=True
    )


# ---------------------------------------------------------------------- divergence
def test_a_diverging_model_is_stopped_and_the_others_finish_as_without_it(tmp_path, capsys):
    jump = tmp_path / "jump.csv"
    jump.write_text("epoch,beta\n0,0\n2,0\n3,3e38\n")  # fine for three epochs, then β·KL overflows float32
    common = [
        "--sim",
        SIM,
        "--seeds",
        "1",
        "--epochs",
        "6",
        "--batch-size",
        "100",
        "--lr",
        "3e-3",
        "--workers",
        "2",
        "--eval-every",
        "2",
        "--n-eval-rows",
        "50",
        "--quiet",
    ]
    with_it, without = tmp_path / "with", tmp_path / "without"
    assert main(["study", "--schedule", f"constant-0,table:{jump}", *common, "--out", str(with_it)]) == 3
    err = capsys.readouterr().err
    assert f"schedule table:{jump}, seed 0) diverged at epoch 3" in err and "β is 3e+38" in err
    assert main(["study", "--schedule", "constant-0", *common, "--out", str(without)]) == 0

    history = pd.read_parquet(with_it / "history.parquet")
    alone = pd.read_parquet(without / "history.parquet")
    kept = history[history.schedule == "constant-0"].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, alone, check_exact=True)
    bad = history[history.schedule != "constant-0"]
    assert bad.diverged.tolist() == [False] * 3 + [True] * 3
    results = pd.read_parquet(with_it / "results.parquet")
    assert results[results.schedule != "constant-0"].epoch.max() == 2  # not measured once diverged
    report = (with_it / "report.html").read_text()
    assert "Models that diverged" in report and "diverged at epoch 3" in report


# ---------------------------------------------------------------------- paths and defaults
def test_a_run_resumes_from_any_working_directory(tmp_path, tiny, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_dataset(tiny, tmp_path / "data")
    argv = ["train", "--data", "data/description.json", "--epochs", "2", "--batch-size", "100", "--quiet"]
    assert main([*argv, "--out", "run"]) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert Path(config["data"]).is_absolute()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["train", "--resume", str(tmp_path / "run"), "--quiet"]) == 0


def test_a_small_test_part_is_measured_whole_and_said_so(tmp_path, tiny, capsys):
    data = write_dataset(tiny, tmp_path / "data")
    assert len(tiny.test) < 1024
    argv = [
        "study",
        "--data",
        str(data),
        "--schedule",
        "constant-0",
        "--seeds",
        "1",
        "--epochs",
        "2",
        "--eval-every",
        "2",
        "--batch-size",
        "100",
        "--out",
        str(tmp_path / "run"),
        "--quiet",
    ]
    assert main(argv) == 0
    assert f"the test part holds {len(tiny.test)} rows" in capsys.readouterr().out
    results = pd.read_parquet(tmp_path / "run" / "results.parquet")
    assert len(results) > 0


def test_a_failed_cluster_study_keeps_its_units_checkpoints(tmp_path):
    from intermodal.training.runfolder import writing

    out = tmp_path / "study"
    with pytest.raises(KeyboardInterrupt):
        with writing(out, new=True):
            state = out / "units" / "01-constant-0-seeds-0-1" / "checkpoint" / "state.json"
            state.parent.mkdir(parents=True)
            state.write_text("{}")
            raise KeyboardInterrupt
    assert state.is_file()  # a unit's checkpoint: the study can be resumed, so nothing is removed
    with pytest.raises(KeyboardInterrupt):
        with writing(tmp_path / "plain", new=True):
            (tmp_path / "plain" / "config.json").write_text("{}")
            raise KeyboardInterrupt
    assert not (tmp_path / "plain").exists()  # nothing to resume: nothing left to block a rerun
