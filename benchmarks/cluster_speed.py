"""The Ray backend against the local one, on this machine, and what the paper protocol
would take on a cluster.

Trains one study (the paper's four schedules × 4 seeds = 16 models, --epochs epochs,
measures every 100 epochs on the first 1024 test rows, a checkpoint every 100 epochs) four
times, alternating local, Ray, Ray, local so that the machine's drift does not decide
their ratio:

- local: ``intermodal.study.run_study``, all cores in this process;
- Ray: a local Ray of this machine's cores (``ray.init(num_cpus=...)``, its start-up timed
  apart), then ``intermodal.cluster.run_study``: units as Ray tasks, then the merge.

Neither draws the figures and report (the same work for both backends). Also times one
model trained alone on one core (a unit of one model: what every core trains when a
cluster has a core per model), and says whether the two backends' tables are bitwise
equal.

Projection for the paper protocol (4 × 20 models × 80 000 epochs = 6.4 million
model-epochs) on N cores: the units :func:`intermodal.cluster.plan_units` chooses for N
cores (nodes of N cores), in waves, each unit at the per-core speed measured here for
its size (one model: the lone model's; more: the Ray units'), plus Ray's start-up.
Assumes every core as fast as this machine's, and the per-core speed to hold as cores
are added (separate processes share no lock; they share memory bandwidth and caches,
which this machine cannot test).

Prints one table and writes it as CSV and JSON beside --out.

    python benchmarks/cluster_speed.py [--epochs 200] [--data icub --data-dir DIR] [--out runs/benchmark]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import machine_line  # noqa: E402  (a sibling script, not a package)

PAPER_SCHEDULES = ["constant-1", "constant-0", "dynamic-plateau-0", "dynamic-plateau-1"]
PAPER_SEEDS = 20
PAPER_EPOCHS = 80_000
PAPER_MODEL_EPOCHS = len(PAPER_SCHEDULES) * PAPER_SEEDS * PAPER_EPOCHS
PROJECTED_CORES = (8, 80, 320)


def _config(args):
    from intermodal.training.config import RunConfig

    return RunConfig(
        data=args.data,
        data_dir=args.data_dir,
        schedules=PAPER_SCHEDULES,
        seeds=list(range(args.seeds)),
        epochs=args.epochs,
        lr=5e-5,
        eval_every=100,
        checkpoint_every=100,
    )


def run_local(config, dataset, out: Path) -> float:
    from intermodal.study import local as study

    start = time.perf_counter()
    study.run_study(config, out, dataset=dataset, progress=False, announce=False, report=False)
    return time.perf_counter() - start


def run_ray(config, out: Path, cpus: int) -> tuple[float, float]:
    """(start-up seconds, seconds from the study's start to its merged folder)."""
    import ray

    from intermodal.study import cluster

    start = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    ray.get(ray.remote(lambda: None).remote())  # a worker is up: the cluster answers
    started = time.perf_counter()
    try:
        out.mkdir(parents=True)
        cluster.run_study(config, out, progress=False)
    finally:
        done = time.perf_counter()
        ray.shutdown()
    return started - start, done - started


def lone_model_speed(config, dataset, seconds: float) -> float:
    """Model-epochs/s of one model on one core (one torch thread), no evaluation."""
    import torch

    from intermodal.training.trainer import Trainer

    torch.set_num_threads(1)
    alone = config.updated({"schedules": PAPER_SCHEDULES[1:2], "seeds": [0], "workers": 1, "threads": 1})
    with Trainer(alone, dataset, None) as trainer:
        trainer.train_epoch()  # warm-up
        start, epochs = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            trainer.train_epoch()
            epochs += 1
        return epochs / (time.perf_counter() - start)


def compare_tables(a: Path, b: Path) -> dict[str, tuple[bool, float]]:
    """Per table (history, results, diagnostics) of two runs: bitwise equal?, and the largest
    relative difference of its numbers."""
    from intermodal.training import runfolder

    ra, rb = runfolder.read_run(a), runfolder.read_run(b)
    out = {}
    for name in ("history", "results", "diagnostics"):
        x, y = getattr(ra, name), getattr(rb, name)
        numbers = x.select_dtypes("number").columns
        u, v = x[numbers].to_numpy(float), y[numbers].to_numpy(float)
        out[name] = (bool(x.equals(y)), float((abs(u - v) / abs(u).clip(1e-12)).max()))
    return out


def projection(per_core: dict[str, float], startup: float, cores: int) -> tuple[str, float]:
    """The paper protocol on ``cores`` cores: (its plan in words, hours)."""
    from intermodal.study.cluster import plan_units
    from intermodal.training.config import RunConfig

    paper = RunConfig(schedules=PAPER_SCHEDULES, seeds=PAPER_SEEDS, epochs=PAPER_EPOCHS)
    units, per_unit = plan_units(paper, cores)
    largest = max(len(u.seeds) for u in units)
    waves = math.ceil(len(units) / (cores // per_unit))
    speed = per_core["lone"] if largest == 1 else per_core["units"]  # model-epochs/s a core
    seconds = waves * largest * PAPER_EPOCHS / speed + startup
    plan = f"{len(units)} units of {largest} model{'s' * (largest > 1)}, {waves} wave{'s' * (waves > 1)}"
    return plan, seconds / 3600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="sim", help="sim (default) or icub")
    parser.add_argument("--data-dir")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=4, help="seeds per schedule (4 schedules)")
    parser.add_argument("--cpus", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--out", default="runs/benchmark")
    args = parser.parse_args()

    import pandas as pd

    from intermodal.data.catalog import dataset_of
    from intermodal.study import cluster

    print(f"machine: {machine_line('cpu')}", flush=True)
    # The report is the same work whichever backend trained the run: left out of both.
    cluster.write_report = lambda run, **_: Path(run) / "report.html"
    config = _config(args)
    dataset = dataset_of(config)
    n_models = len(config.model_keys())
    work = n_models * config.epochs
    scratch = Path(tempfile.mkdtemp(prefix="cluster-speed-"))
    local, ray_runs, startups = [], [], []
    try:
        for i, backend in enumerate(("local", "ray", "ray", "local")):
            out = scratch / f"{backend}-{i}"
            if backend == "local":
                local.append(run_local(config, dataset, out))
                print(f"local: {work / local[-1]:.1f} model-epochs/s", flush=True)
            else:
                startup, seconds = run_ray(config, out, args.cpus)
                startups.append(startup)
                ray_runs.append(seconds)
                print(f"ray: {work / seconds:.1f} model-epochs/s after {startup:.1f} s of start-up", flush=True)
        same = compare_tables(scratch / "local-0", scratch / "ray-1")
        units, _ = cluster.plan_units(config, args.cpus)
        unit_size = max(len(u.seeds) for u in units)
        lone = lone_model_speed(config, dataset, seconds=15.0)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    local_speed = work / (sum(local) / len(local))
    ray_speed = work / (sum(ray_runs) / len(ray_runs))
    startup = sum(startups) / len(startups)
    per_core = {"units": ray_speed / args.cpus, "lone": lone}
    rows = [
        {"measurement": "local backend (mean of 2 runs)", "value": local_speed, "unit": "model-epochs/s"},
        {"measurement": "Ray backend, without start-up (mean of 2 runs)", "value": ray_speed, "unit": "model-epochs/s"},
        {"measurement": "ratio Ray / local", "value": ray_speed / local_speed, "unit": "×"},
        {
            "measurement": "Ray backend with its start-up",
            "value": work / (sum(ray_runs) / len(ray_runs) + startup),
            "unit": "model-epochs/s",
        },
        {"measurement": "Ray start-up (local Ray, first worker up)", "value": startup, "unit": "s"},
        {
            "measurement": f"Ray: per core, units of {unit_size} models",
            "value": per_core["units"],
            "unit": "model-epochs/s",
        },
        {"measurement": "one model alone on one core", "value": lone, "unit": "model-epochs/s"},
    ]
    for name, (bitwise, worst) in same.items():
        rows.append(
            {
                "measurement": f"{name}: Ray against local, largest relative difference",
                "value": worst,
                "unit": "(bitwise equal)" if bitwise else "",
            }
        )
    for cores in PROJECTED_CORES:
        plan, hours = projection(per_core, startup, cores)
        rows.append({"measurement": f"paper protocol on {cores} cores ({plan})", "value": hours, "unit": "hours"})
    table = pd.DataFrame(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "cluster_speed.csv", index=False)
    setup = {"models": n_models, "epochs": config.epochs, "cpus": args.cpus, "data": args.data}
    (out / "cluster_speed.json").write_text(
        json.dumps({"machine": machine_line("cpu"), "setup": setup, "rows": rows}, indent=2) + "\n"
    )
    print(f"{n_models} models × {config.epochs} epochs, {args.cpus} CPUs; data {args.data}")
    with pd.option_context("display.width", 160, "display.max_colwidth", 80):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
