"""How a command ends: a user's error is one line and exit 2, a bug keeps its traceback and
exits 1, a full disk while a checkpoint is written loses nothing, and SIGTERM (a cluster
scheduler's notice) saves a checkpoint and exits 143, from which the run resumes exactly; at
any other moment of a command (a study making its data, a report drawing figures) SIGTERM
exits 143 too, leaving no temporary file and no new folder that blocks a rerun."""

from __future__ import annotations

import errno
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

from intermodal.cli import main
from intermodal.training import checkpoint

SIM = '{"n_train": 200, "n_test": 100}'


def train_argv(out: Path, *extra: str) -> list[str]:
    return ["train", "--sim", SIM, "--epochs", "4", "--batch-size", "100", "--out", str(out), "--quiet", *extra]


def test_a_bug_inside_the_library_keeps_its_traceback(tmp_path, monkeypatch, capsys):
    """A ValueError raised inside NumPy (here: injected into the trainer) is not the user's
    fault: exit 1, the traceback, and a line asking to report it."""
    from intermodal.training import trainer

    def broken(self):
        return np.zeros(3).reshape(2, 2)  # NumPy's own ValueError

    monkeypatch.setattr(trainer.Trainer, "train_epoch", broken)
    assert main(train_argv(tmp_path / "run")) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "ValueError: cannot reshape" in err
    assert "this is a bug in intermodal" in err
    assert not (tmp_path / "run").exists()  # a new run that failed leaves nothing behind


def test_a_users_error_is_one_line(tmp_path, capsys):
    assert main(train_argv(tmp_path / "run", "--epochs", "0")) == 2
    err = capsys.readouterr().err
    assert err.startswith("intermodal: error: ") and "epochs" in err and "Traceback" not in err


def test_python_dash_m_is_the_command_line(tmp_path):
    """``python -m intermodal`` (a notebook's kernel, a PATH without the environment's bin
    folder) runs the same commands with the same exit statuses as the executable."""
    run = [sys.executable, "-m", "intermodal"]
    shown = subprocess.run([*run, "--help"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and shown.stdout.startswith("usage: intermodal")
    refused = subprocess.run([*run, *train_argv(tmp_path / "run", "--epochs", "0")], capture_output=True, text=True)
    assert refused.returncode == 2
    assert refused.stderr.startswith("intermodal: error: ") and "epochs" in refused.stderr
    assert not (tmp_path / "run").exists()


def test_a_description_that_is_not_utf8_is_named(tmp_path, capsys):
    path = tmp_path / "robot.json"
    path.write_bytes(b'{"name": "caf\xe9", "modalities": []}')  # Latin-1, not UTF-8
    assert main(["train", "--data", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "not UTF-8" in err and "Traceback" not in err


def test_a_full_disk_while_a_checkpoint_is_written_loses_nothing(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    assert main(train_argv(run, "--checkpoint-every", "2")) == 0
    before = json.loads((run / "checkpoint" / "state.json").read_text())
    saved = checkpoint._save_tensors

    def no_space(tensors, path):
        if path.name == "optimizer.safetensors":  # the second file of the checkpoint
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        saved(tensors, path)

    monkeypatch.setattr(checkpoint, "_save_tensors", no_space)
    # Continue the run for two more epochs: its first save hits the full disk.
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "epochs": 6}))
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "nothing was lost" in err and str(run) in err
    assert "Traceback" not in err
    assert json.loads((run / "checkpoint" / "state.json").read_text()) == before
    assert not (run / "checkpoint.new").exists()
    monkeypatch.setattr(checkpoint, "_save_tensors", saved)
    assert main(["train", "--resume", str(run), "--quiet"]) == 0  # space again: it goes on
    assert json.loads((run / "checkpoint" / "state.json").read_text())["epochs_done"] == 6


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_the_run_resumes_exactly(tmp_path):
    """SIGTERM in the middle of a run: the epoch under way finishes, a checkpoint is saved
    (not at a multiple of --checkpoint-every), the process says how to resume and exits
    143; resuming gives the history of a run never stopped."""
    argv = ["--sim", SIM, "--epochs", "400", "--batch-size", "100", "--checkpoint-every", "1000", "--quiet"]
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    assert main(["train", *argv, "--out", str(whole)]) == 0
    process = subprocess.Popen(
        [sys.executable, "-m", "intermodal.cli", "train", *argv, "--out", str(stopped)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (stopped / "config.json").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(1.0)  # some epochs in
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert "stopped by SIGTERM" in err and f"intermodal train --resume {stopped}" in err
    epochs = json.loads((stopped / "checkpoint" / "state.json").read_text())["epochs_done"]
    assert 0 < epochs < 400, "the signal came after the run had ended; the test measured nothing"
    assert main(["train", "--resume", str(stopped), "--quiet"]) == 0
    pd.testing.assert_frame_equal(
        pd.read_parquet(whole / "history.parquet"), pd.read_parquet(stopped / "history.parquet"), rtol=1e-6
    )


# ---------------------------------------------------------------------- SIGTERM outside training
def _start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "intermodal.cli", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _signal_once_locked(process: subprocess.Popen, folder: Path) -> str:
    """Send SIGTERM as soon as ``process`` holds ``folder``'s lock (its pid is in the lock
    file); return stderr once it has ended."""
    lock, deadline = folder / ".lock", time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if lock.exists() and lock.read_text().strip() == str(process.pid):
            break
        time.sleep(0.005)
    assert process.poll() is None, "the command ended before it took its folder; the test measured nothing"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    return err


def _temporary_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".tmp-" in p.name or p.name.endswith(".new")]


def test_sigterm_while_a_study_loads_its_data_removes_the_new_folder(tmp_path):
    """SIGTERM as soon as a new study has taken its folder (it is then making its data):
    exit 143 with one line, no traceback, and the new folder (nothing resumable in it) is
    removed, so that a rerun into the same --out is not refused."""
    out = tmp_path / "study"
    sim = '{"n_train": 20000, "n_test": 100}'
    argv = ["study", "--sim", sim, "--epochs", "2", "--eval-every", "1", "--n-eval-rows", "50", "--quiet"]
    argv += ["--ground-truth-controls", "false"]  # a subprocess: conftest's patch does not reach it
    process = _start([*argv, "--seeds", "1", "--schedule", "constant-0", "--out", str(out)])
    err = _signal_once_locked(process, out)
    assert process.returncode == 143, err
    assert "stopped by SIGTERM before study finished" in err and "Traceback" not in err
    assert not out.exists()


def test_sigterm_while_report_writes_figures_leaves_no_temporary_file(tmp_path):
    """SIGTERM while ``intermodal report`` redraws a run's figures: exit 143, no traceback,
    no temporary file left in the run folder, every figure whole, and the lock released
    (a second report then runs to the end)."""
    run = tmp_path / "run"
    argv = [
        "study",
        "--sim",
        SIM,
        "--epochs",
        "2",
        "--eval-every",
        "1",
        "--seeds",
        "2",
        "--batch-size",
        "100",
        "--quiet",
    ]
    assert main([*argv, "--out", str(run)]) == 0
    before = {p.name for p in (run / "figures").iterdir()}
    process = _start(["report", str(run)])
    err = _signal_once_locked(process, run)
    assert process.returncode == 143, err
    assert "stopped by SIGTERM before report finished" in err and "Traceback" not in err
    assert _temporary_files(run) == []
    assert {p.name for p in (run / "figures").iterdir()} == before
    assert main(["report", str(run)]) == 0
