"""The Ray backend (intermodal.cluster, docs/cluster.md): a study trained as units on Ray
gives the run folder a local run gives, survives a killed worker and a killed driver,
continues on Ray or locally, and says what is wrong when the run folder is not shared.

The Ray tests share one local Ray of 2 CPUs (module scope) and skip without Ray; the plan,
the merge and the refusals need no Ray. For these studies (2 schedules × 2 seeds, the local
trainer's shards = the units) the Ray backend's tables and weights came out bitwise equal to
the local backend's; the tests allow 1e-5 (relative), since another BLAS may round a batched
product of another number of models differently (docs/cluster.md, "Same numbers").
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file

from intermodal.cli import main
from intermodal.data.catalog import dataset_of
from intermodal.outputs.report import section_ids
from intermodal.study import cluster
from intermodal.study import local as study
from intermodal.study import units as unit_plan
from intermodal.study.merge import merge_runs
from intermodal.training import runfolder
from intermodal.training.config import RunConfig

SIM = '{"n_train": 200, "n_test": 100}'
EPOCHS = 32


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
        str(EPOCHS),
        "--batch-size",
        "100",
        "--lr",
        "1e-3",
        "--eval-every",
        "8",
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


def assert_same_tables(a: Path, b: Path) -> None:
    for table in ("history", "results", "diagnostics"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(a / f"{table}.parquet"),
            pd.read_parquet(b / f"{table}.parquet"),
            check_exact=False,
            rtol=1e-5,
            obj=table,
        )


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = (load_file(str(p / "checkpoint" / "model.safetensors")) for p in (a, b))
    assert wa.keys() == wb.keys()
    for name in wa:
        np.testing.assert_allclose(wa[name], wb[name], rtol=1e-5, atol=1e-7, err_msg=name)


@pytest.fixture
def no_report(monkeypatch):
    """Skip the figures and report.html (about 10 s each here); one test draws them."""
    monkeypatch.setattr(cluster, "write_report", lambda run, **_: Path(run) / "report.html")
    monkeypatch.setattr(study, "write_report", lambda run, **_: Path(run) / "report.html")


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory):
    """The local backend's runs of study_argv, without and with --z-samples 2."""
    runs = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(study, "write_report", lambda run, **_: Path(run) / "report.html")
        for z in ("0", "2"):
            out = tmp_path_factory.mktemp("local") / f"z{z}"
            assert main(study_argv(out, "--z-samples", z)) == 0
            runs[z] = out
    return runs


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="the Ray backend's tests need Ray: pip install -e '.[test]'")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    yield ray
    ray.shutdown()


# ---------------------------------------------------------------------- without Ray
def test_the_plan_keeps_the_cpus_busy_with_the_fewest_units(tmp_path):
    paper = RunConfig(schedules=["constant-1", "constant-0", "dynamic-plateau-0", "dynamic-plateau-1"], seeds=20)

    def shape(cpus, nodes=None, config=paper):
        units, per_unit = cluster.plan_units(config, cpus, nodes)
        return len(units), sorted({len(u.seeds) for u in units}), per_unit

    assert shape(8) == (8, [10], 1)
    assert shape(80) == (80, [1], 1)
    assert shape(320) == (80, [1], 1)  # a model trains on one core: 240 would stay idle
    assert shape(16) == (16, [5], 1)
    assert shape(2) == (4, [20], 1)  # one unit per schedule at least, in waves
    units, _ = cluster.plan_units(paper, 12)
    assert len(units) == 12 and [u.seeds for u in units[:3]] == [
        tuple(range(7)),
        tuple(range(7, 14)),
        (14, 15, 16, 17, 18, 19),
    ]
    assert [u.name for u in units[:4]] == [
        "01-constant-1-seeds-0-6",
        "02-constant-1-seeds-7-13",
        "03-constant-1-seeds-14-19",
        "04-constant-0-seeds-0-6",
    ]
    # every model exactly once, in the run's order
    assert [k for u in units for k in u.model_keys()] == paper.model_keys()
    quick = paper.updated({"seeds": 3})
    assert shape(8, config=quick) == (8, [1, 2], 1)
    # names stay filesystem-safe whatever the schedule
    (tmp_path / "my betas.csv").write_text("epoch,beta\n0,0.5\n")
    odd = RunConfig(schedules=["cyclical:cycles=4:ratio=0.5", f"table:{tmp_path}/my betas.csv"], seeds=[3])
    assert [u.name for u in cluster.plan_units(odd, 1)[0]] == [
        "01-cyclical-cycles-4-ratio-0.5-seed-3",
        "02-table-my-betas-seed-3",
    ]


def test_the_plan_fits_units_of_several_cpus_into_nodes(monkeypatch):
    monkeypatch.setattr(unit_plan, "MAX_CPUS_PER_UNIT", 8)
    paper = RunConfig(schedules=["constant-1", "constant-0", "dynamic-plateau-0", "dynamic-plateau-1"], seeds=20)
    units, per_unit = cluster.plan_units(paper, 8)
    assert (len(units), per_unit) == (4, 2)
    # five nodes of 16: a unit of 20 CPUs fits none; 20 units of 4 models on 4 CPUs fill them
    units, per_unit = cluster.plan_units(paper, 80, [16] * 5)
    assert (len(units), per_unit) == (20, 4)


def test_merged_units_in_any_order_give_the_local_run(tmp_path):
    """merge_runs on units trained one by one: the local run's rows, in its order
    (with a modality's family set for the run, which every unit keeps)."""
    config = RunConfig.from_mapping(
        dict(
            sim=json.loads(SIM),
            likelihoods={"touch": "bernoulli"},
            schedules=["constant-0", "dynamic-plateau-1"],
            seeds=3,
            epochs=8,
            batch_size=100,
            lr=1e-3,
            eval_every=4,
            checkpoint_every=4,
            n_eval_rows=50,
        )
    )
    dataset = dataset_of(config)
    options = dict(dataset=dataset, announce=False, report=False, progress=False)
    study.run_study(config, tmp_path / "local", **options)
    units, _ = cluster.plan_units(config, 4)
    assert [len(u.seeds) for u in units] == [2, 1, 2, 1]  # uneven blocks
    dirs = []
    for unit in units:
        dirs.append(tmp_path / unit.name)
        assert dataset_of(unit.config(config, 1)).description.likelihoods["touch"] == "bernoulli"
        study.run_study(unit.config(config, 1), dirs[-1], **options)
    for order in ([3, 1, 0, 2], [2, 3, 1, 0]):
        out = tmp_path / f"merged-{order[0]}"
        merge_runs([dirs[i] for i in order], out, config)
        assert_same_tables(tmp_path / "local", out)
        assert_same_weights(tmp_path / "local", out)
        assert runfolder.read_run(out).description.likelihoods["touch"] == "bernoulli"


def test_address_goes_with_the_ray_backend(tmp_path, capsys):
    assert main(study_argv(tmp_path / "run", "--address", "127.0.0.1:6379")) == 2
    assert "--backend ray" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_without_ray_the_error_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    assert main(study_argv(tmp_path / "run", "--backend", "ray")) == 2
    assert "pip install 'intermodal[ray]'" in capsys.readouterr().err


def test_a_unit_that_cannot_see_the_run_folder_stops_before_writing(tmp_path):
    config = RunConfig(sim=json.loads(SIM), epochs=2, batch_size=100, eval_every=1)
    spec = {"name": "01-x", "dir": str(tmp_path / "units" / "01-x"), "config": config.to_dict()}
    with pytest.raises(ValueError, match="storage shared by every node"):
        cluster.train_unit(spec, dataset_of(config), marker=str(tmp_path / "units" / ".driver-elsewhere"))
    assert not (tmp_path / "units").exists()


# ---------------------------------------------------------------------- on Ray
def test_ray_backend_writes_the_local_run_folder(ray_cluster, local_runs, tmp_path, monkeypatch, capsys):
    out = tmp_path / "ray"
    assert main(study_argv(out, "--backend", "ray", "--z-samples", "0")) == 0
    printed = capsys.readouterr().out
    assert "ray: 2 CPUs; 2 units of 2 models, 1 CPU each" in printed
    assert_same_tables(local_runs["0"], out)
    assert_same_weights(local_runs["0"], out)
    assert json.loads((out / "config.json").read_text()) == json.loads((local_runs["0"] / "config.json").read_text())
    assert (out / "report.html").is_file() and list((out / "figures").glob("fig2_*.png"))
    # the report assembles its sections from the run folder: the same on either backend
    local = tmp_path / "local"
    shutil.copytree(local_runs["0"], local)
    assert main(["report", str(local)]) == 0
    capsys.readouterr()
    sections = section_ids((out / "report.html").read_text())
    assert sections == section_ids((local / "report.html").read_text())
    assert {"findings", "figures", "window-means", "diagnostics", "prediction", "config"} <= set(sections)
    # the merged folder is an ordinary run folder: measured, and resumed locally
    assert main(["measure", str(out), "--json", "--seed", "1"]) == 0
    assert set(pd.DataFrame(json.loads(capsys.readouterr().out)).seed) == {1}
    monkeypatch.setattr(cluster, "write_report", lambda run, **_: Path(run) / "report.html")
    assert main(["study", "--resume", str(out), "--quiet"]) == 0  # nothing left to train: merged again
    assert_same_tables(local_runs["0"], out)


def kill_unit_worker(unit: Path, epoch: int, timeout: float = 120) -> threading.Thread:
    """Watch the unit's folder from this process and SIGKILL the Ray worker that trains it
    (the holder of the unit's lock) once its checkpoint has ``epoch`` epochs, as a node's
    death would; the thread's ``killed`` is the pid, or None if it never got to."""

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if runfolder.epochs_done(unit) >= epoch:
                pid = runfolder.RunLock.holder(unit)
                if pid is not None and pid != os.getpid():
                    os.kill(pid, signal.SIGKILL)
                    thread.killed = pid
                return
            time.sleep(0.002)

    thread = threading.Thread(target=watch, daemon=True)
    thread.killed = None
    thread.start()
    return thread


def test_a_unit_whose_worker_dies_continues_from_its_checkpoint(
    ray_cluster, local_runs, tmp_path, monkeypatch, capsys, no_report
):
    out = tmp_path / "ray"
    killer = kill_unit_worker(out / "units" / "01-constant-0-seeds-0-1", epoch=8)
    assert main(study_argv(out, "--backend", "ray")) == 0
    killer.join()
    assert killer.killed is not None  # the unit's first worker was killed
    found = re.search(
        r"unit 01-constant-0-seeds-0-1 continued from its checkpoint at epoch (\d+)", capsys.readouterr().out
    )
    assert found and 8 <= int(found.group(1)) < EPOCHS
    assert_same_tables(local_runs["0"], out)
    assert_same_weights(local_runs["0"], out)


def test_z_samples_give_the_local_results_on_ray(ray_cluster, local_runs, tmp_path, no_report):
    out = tmp_path / "ray"
    assert main(study_argv(out, "--backend", "ray", "--z-samples", "2")) == 0
    assert_same_tables(local_runs["2"], out)
    plain = pd.read_parquet(local_runs["0"] / "results.parquet")["value"].to_numpy()
    assert not np.allclose(plain, pd.read_parquet(out / "results.parquet")["value"].to_numpy())  # z was sampled


def test_a_unit_on_a_node_without_the_run_folder_fails_at_once(ray_cluster, tmp_path, monkeypatch, capsys):
    # As if the tasks ran on a node that does not see the driver's folder: the marker they
    # look for is not there.
    monkeypatch.setattr(cluster, "_place_marker", lambda units_dir: units_dir / ".driver-not-here")
    assert main(study_argv(tmp_path / "run", "--backend", "ray")) == 2
    err = capsys.readouterr().err
    assert "must be on storage shared by every node" in err and "unit 0" in err


def wait_until_no_unit_is_written(units: Path, quiet_for: float = 1.0, timeout: float = 120) -> None:
    """Ray stops a dead driver's tasks soon, not at once: wait until no unit folder is
    locked or appears for ``quiet_for`` seconds, so that copying the run folder does not
    race a task that is still ending."""
    deadline = time.monotonic() + timeout
    seen, quiet_since = None, time.monotonic()
    while time.monotonic() < deadline:
        folders = sorted(p.name for p in units.iterdir() if p.is_dir())
        try:
            for name in folders:
                runfolder.RunLock(units / name).acquire().release()
        except ValueError:  # still held by a task
            folders = None
        if folders is None or folders != seen:
            seen, quiet_since = folders, time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_for:
            return
        time.sleep(0.05)
    raise AssertionError(f"the dead driver's tasks still write {units} after {timeout} s")


@pytest.mark.slow
def test_a_killed_driver_resumes_on_ray_or_locally(ray_cluster, local_runs, tmp_path, no_report):
    out = tmp_path / "killed"
    address = ray_cluster.get_runtime_context().gcs_address
    # A second driver on the module's Ray, killed once a unit has its first checkpoint:
    # the cluster lives on and kills the dead driver's tasks, as a real cluster does.
    argv = study_argv(out, "--backend", "ray", "--address", address)
    driver = subprocess.Popen(
        [sys.executable, "-m", "intermodal.cli", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not list((out / "units").glob("*/checkpoint/state.json")) and time.monotonic() < deadline:
        assert driver.poll() is None, driver.communicate()
        time.sleep(0.01)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait(timeout=60)
    wait_until_no_unit_is_written(out / "units")
    done = [runfolder.epochs_done(p) for p in sorted((out / "units").glob("0*"))]
    assert min(done, default=0) < EPOCHS, "every unit had finished before the kill; the test measured nothing"
    assert not (out / "checkpoint").exists()
    again = tmp_path / "killed-copy"
    shutil.copytree(out, again)

    assert main(["study", "--resume", str(out), "--backend", "ray", "--quiet"]) == 0
    assert_same_tables(local_runs["0"], out)
    assert_same_weights(local_runs["0"], out)

    assert main(["study", "--resume", str(again), "--backend", "local", "--quiet"]) == 0
    assert_same_tables(local_runs["0"], again)
    assert_same_weights(local_runs["0"], again)
