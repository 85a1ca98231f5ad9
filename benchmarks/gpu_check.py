"""Whether intermodal is correct and fast on a device, in one command: the script a session
lent a GPU runs first (docs/performance.md, "On a GPU").

Steps, each printing PASS, FAIL or SKIP and going on whatever the others gave:

- placement: every fusion's parameters and buffers on the device, after ``select``,
  ``concatenate`` and loading a checkpoint there; the measures taken there;
- syncs: the host-device synchronisations inside one epoch of every fusion (torch's
  sync-debug mode on CUDA; on the CPU the epoch runs on the ``meta`` device, where any
  read-back fails);
- pinned: the pinned float64 run (tests/data/pinned_run_float64.json) on the device;
- fusions: every fusion trained from the same seeds on the CPU and on the device, float32,
  histories and measures compared (on ``--device cpu``: drawing ahead against not, which
  must be bit for bit);
- resume: a run stopped and resumed on the device against one never stopped, and a run
  started on the CPU and resumed on the device;
- speed: model-epochs per second of the paper preset's 80 models (and of each fusion), one
  evaluation of them, and the projected time of the paper's protocol;
- study: ``intermodal study --device D`` end to end, with its report (and, on a GPU, the
  preset's ground-truth controls, trained on the same device).

The tolerances are :data:`TOLERANCES`, stated in docs/performance.md. ``--device cpu`` is a
smoke run at small sizes (CI runs it, so the script cannot rot); the device machine has its
own torch but not every dependency, and no network: ``--prepare`` (here, with the package
registry) writes a bundle of wheels for Python 3.12 and the iCub files, which the script
installs into a temporary folder there when it finds a dependency missing.

    python benchmarks/gpu_check.py --prepare                      # here: writes .gpu_check/
    python3 benchmarks/gpu_check.py --device cuda --out "$OUT"    # there (carry .gpu_check)
    python benchmarks/gpu_check.py --device cpu                   # the smoke run (CI)

Exit status 0 when no step failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / ".gpu_check"
# What intermodal imports that a GPU image may lack (its torch, numpy, pandas, pyarrow,
# scipy, matplotlib, jinja2, tqdm and safetensors are there): carried as wheels.
CARRIED = ("pydantic", "pydantic_core", "annotated_types", "typing_inspection", "pooch", "platformdirs")
ICUB_FILES = ("final_database_train.mat", "final_database_test.mat", "README.md")
PAPER_PROTOCOL_EPOCHS = 80_000

# How closely a device's numbers must agree (docs/performance.md, "Same numbers"): the
# pinned float64 run, relative; float32 runs of every fusion against the CPU's after the
# "fusions" step's epochs, relative for the history's losses and, for the measures, to
# each measure's spread over its models (absolute where that is 0).
TOLERANCES = {
    "pinned_float64_rtol": 1e-7,
    "float32_history_rtol": 1e-3,
    "float32_measures_rtol": 2e-2,
}


# ---------------------------------------------------------------------- bootstrap
def _missing() -> list[str]:
    return [m for m in CARRIED if importlib.util.find_spec(m) is None]


def _bootstrap(bundle: Path) -> list[str]:
    """Put intermodal (src/) and the bundle's wheels on the path where they are not
    installed; returns what it did, in words. Children (the study step) inherit it through
    PYTHONPATH."""
    done, paths = [], []
    if _missing():
        wheels = sorted((bundle / "wheels").glob("*.whl"))
        if not wheels:
            raise SystemExit(
                f"gpu_check: missing {', '.join(_missing())} and no wheels in {bundle / 'wheels'}; "
                "run `python benchmarks/gpu_check.py --prepare` where pip reaches the registry, and carry the bundle"
            )
        target = Path(tempfile.gettempdir()) / "intermodal-gpu-check-site"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--upgrade"]
            + ["--target", str(target), *map(str, wheels)],
            check=True,
        )
        paths.append(str(target))
        done.append(f"installed {len(wheels)} wheels from {bundle / 'wheels'} into {target}")
    if importlib.util.find_spec("intermodal") is None:
        paths.append(str(ROOT / "src"))
        done.append(f"intermodal from {ROOT / 'src'}")
    for p in reversed(paths):
        sys.path.insert(0, p)
    if paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return done


def prepare(bundle: Path, icub: Path, python: str = "3.12") -> None:
    """Write the bundle: wheels of :data:`CARRIED` for CPython ``python`` on x86-64 Linux,
    at the versions installed here, and the iCub files."""
    from importlib.metadata import version

    wheels = bundle / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    wheels.mkdir(parents=True)
    platforms = [f"manylinux_2_{n}_x86_64" for n in (17, 27, 28)] + ["manylinux2014_x86_64"]
    pins = [f"{name.replace('_', '-')}=={version(name.replace('_', '-'))}" for name in CARRIED]
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    command += ["--python-version", python, "--implementation", "cp", "-d", str(wheels)]
    command += [arg for p in platforms for arg in ("--platform", p)]
    subprocess.run([*command, *pins], check=True)
    data = bundle / "icub"
    data.mkdir(parents=True, exist_ok=True)
    for name in ICUB_FILES:
        if (icub / name).is_file():
            (data / name).unlink(missing_ok=True)
            shutil.copyfile(icub / name, data / name)
    size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file()) / 2**20
    print(f"gpu_check: wrote {bundle} ({size:.1f} MiB): {', '.join(pins)}; iCub files from {icub}")
    if bundle.is_relative_to(ROOT):
        print(f"gpu_check: carry it to the device machine: carry=['{bundle.relative_to(ROOT)}']")


# ---------------------------------------------------------------------- the steps
class Checks:
    """The steps' outcomes: one line each as it ends, and a table at the end."""

    def __init__(self, only: set[str] | None):
        self.rows: list[dict] = []
        self.only = only

    def run(self, name: str, step, *args) -> None:
        if self.only and name not in self.only:
            return
        start = time.perf_counter()
        try:
            status, detail, numbers = step(*args)
        except Exception as e:  # a step's failure is reported, and the next step runs
            status, numbers = "FAIL", {}
            detail = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            traceback.print_exc()
        seconds = time.perf_counter() - start
        self.rows.append({"step": name, "status": status, "detail": detail, "seconds": seconds, **numbers})
        print(f"[{status}] {name}: {detail} ({seconds:.1f} s)", flush=True)


def _off_device(model, device) -> list[str]:
    import torch

    want = torch.device(device)
    tensors = dict(model.named_parameters()) | dict(model.named_buffers())
    return [
        n
        for n, t in tensors.items()
        if t.device.type != want.type or (want.index is not None and t.device.index != want.index)
    ]


def _small(device: str, **changes):
    from intermodal.training.config import RunConfig

    base = {"sim": {"n_train": 1000, "n_test": 300}, "device": device, "n_eval_rows": 128, "batch_size": 500}
    return RunConfig.from_dict({**base, **changes})


def step_placement(device: str, tmp: Path):
    import numpy as np

    import intermodal as im
    from intermodal.data.catalog import dataset_of
    from intermodal.model.architecture import architecture_preset
    from intermodal.model.group import FUSIONS, build_model, groups_of
    from intermodal.training import runfolder

    config = _small(device, fusions=list(FUSIONS), epochs=2, seeds=[0, 1], checkpoint_every=1)
    dataset = dataset_of(config)
    arch = architecture_preset("1", dataset.description)
    off = []
    for where in dict.fromkeys([device, "meta"]):
        for fusion in FUSIONS:
            model = build_model(dataset.description, arch, fusion, 3, device=where)
            if where != "meta":
                model.reset_parameters([0, 1, 2])
            for name, m in (
                ("built", model),
                ("select", model.select([0, 2])),
                ("concatenate", type(model).concatenate([model, model])),
            ):
                off += [f"{where}/{fusion}/{name}: {t}" for t in _off_device(m, where)]
    run = tmp / "placement"
    im.train(config, out=run)
    loaded = runfolder.load_checkpoint(run, device=device).model
    for _, group in groups_of(loaded):
        off += [f"loaded/{group.fusion}: {t}" for t in _off_device(group, device)]
    table = im.integration_measures(loaded, dataset.test[:64], z_samples=2)
    finite = bool(np.isfinite(table["value"].to_numpy(float)).all())
    if off or not finite:
        return "FAIL", f"off the device: {off[:5]}{' ...' if len(off) > 5 else ''}; measures finite: {finite}", {}
    return "PASS", f"every tensor of {len(FUSIONS)} fusions on {device} (and meta), loaded there and measured", {}


class _StepOnly:
    """Stands in for the fused Adam on the meta device (it has no kernel there)."""

    def __new__(cls, params, lr, fused=None):
        import torch

        return torch.optim.SGD(params, lr=lr, foreach=False)


def step_syncs(device: str):
    import torch

    from intermodal.data.catalog import dataset_of
    from intermodal.model.group import FUSIONS
    from intermodal.training import shards
    from intermodal.training.trainer import Trainer

    counts = {}
    if torch.device(device).type == "cuda":
        for fusion in FUSIONS:
            config = _small(device, fusions=[fusion], seeds=[0, 1, 2, 3], epochs=10)
            trainer = Trainer(config, dataset_of(config), None)
            for _ in range(2):
                trainer.train_epoch()
                trainer.epoch += 1
            shard = trainer.shards.shards[0]
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("warn")
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    shard.train_epoch(
                        trainer.epoch, trainer.inputs_ff, trainer.targets_ff, trainer.n_batches, config.batch_size
                    )
            finally:
                torch.cuda.set_sync_debug_mode(0)
            counts[fusion] = sum("synchroniz" in str(w.message).lower() for w in caught)
            torch.cuda.synchronize()
            trainer.close()
        how = "torch.cuda.set_sync_debug_mode, one epoch after two of warm-up"
    else:
        from intermodal.model.architecture import architecture_preset
        from intermodal.model.group import build_model

        dataset = dataset_of(_small(device))
        arch = architecture_preset("1", dataset.description)
        real = shards.torch.optim.Adam
        shards.torch.optim.Adam = _StepOnly
        try:
            for fusion in FUSIONS:
                model = build_model(dataset.description, arch, fusion, 2, device="meta")
                gens = [torch.Generator().manual_seed(k) for k in range(2)]
                shard = shards._Shard([0, 1], model, torch.ones(2, 4, device="meta"), gens, 1e-3)
                rows = torch.zeros(dataset.description.n_columns, 100, device="meta")
                try:
                    shard.train_epoch(0, rows, rows, 2, 50)
                    counts[fusion] = 0
                except RuntimeError as e:  # a value read back: at least one synchronisation
                    counts[fusion] = f"1+ ({str(e).splitlines()[0]})"
                shard.rewind()
        finally:
            shards.torch.optim.Adam = real
        how = "one epoch on the meta device, where any read-back fails (the fused Adam stood in for)"
    bad = {f: c for f, c in counts.items() if c != 0}
    detail = f"synchronisations inside an epoch: {counts} ({how}); one more after it, for the loss means"
    return ("FAIL" if bad else "PASS"), detail, {"syncs": counts}


def _max_relative(a, b, floor: float = 0.0) -> float:
    import numpy as np

    a, b = np.asarray(a, float), np.asarray(b, float)
    scale = np.maximum(np.abs(b), floor)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(scale > 0, np.abs(a - b) / scale, np.abs(a - b))
    return float(np.nanmax(rel)) if rel.size else 0.0


def step_pinned(device: str):
    import pandas as pd

    from intermodal.data.catalog import dataset_of
    from intermodal.evaluation.evaluator import make_evaluator
    from intermodal.training.config import RunConfig
    from intermodal.training.trainer import Trainer

    recorded = json.loads((ROOT / "tests" / "data" / "pinned_run_float64.json").read_text())
    config = RunConfig.from_dict(recorded["config"]).updated({"device": device})
    dataset = dataset_of(config)
    result = Trainer(config, dataset, None, evaluate=make_evaluator(config, dataset)).run()
    worst = {}
    for table in ("history", "results", "diagnostics"):
        expected = pd.DataFrame(recorded[table])
        got = getattr(result, table).reset_index(drop=True)
        for column in expected.columns:
            if pd.api.types.is_float_dtype(expected[column]):
                worst[f"{table}.{column}"] = _max_relative(got[column], expected[column], floor=1e-12)
    column, value = max(worst.items(), key=lambda kv: kv[1])
    ok = value <= TOLERANCES["pinned_float64_rtol"]
    detail = (
        f"largest relative difference from the recorded float64 run: {value:.2e} ({column}); "
        f"tolerance {TOLERANCES['pinned_float64_rtol']:g}"
    )
    return ("PASS" if ok else "FAIL"), detail, {"pinned_max_rel": value}


def _fusion_run(config, dataset, ahead: bool = False):
    from intermodal.evaluation.evaluator import make_evaluator
    from intermodal.training import shards
    from intermodal.training.trainer import Trainer

    before = shards.DRAW_AHEAD_ON_CPU
    shards.DRAW_AHEAD_ON_CPU = ahead
    try:
        return Trainer(config, dataset, None, evaluate=make_evaluator(config, dataset)).run()
    finally:
        shards.DRAW_AHEAD_ON_CPU = before


def _compare_runs(a, b) -> tuple[float, float]:
    """Largest relative difference of the histories' losses, and of the measures (to each
    measure's spread over models, or its size)."""
    import numpy as np

    losses = ["reconstruction_loss", "latent_loss", "loss"]
    history = _max_relative(a.history[losses].to_numpy(), b.history[losses].to_numpy(), floor=1e-6)
    keys = ["fusion", "schedule", "seed", "epoch", "quantity", "modality", "scope"]
    merged = a.results.merge(b.results, on=keys, suffixes=("_a", "_b"))
    if len(merged) != len(a.results):
        return history, float("inf")
    group = merged.groupby(["quantity", "modality", "scope"])["value_b"]
    scale = np.maximum(group.transform("std").fillna(0).to_numpy(), merged["value_b"].abs().to_numpy())
    diff = np.abs(merged["value_a"].to_numpy() - merged["value_b"].to_numpy())
    measures = float(np.nanmax(np.where(scale > 0, diff / np.maximum(scale, 1e-12), diff))) if len(diff) else 0.0
    return history, measures


def step_fusions(device: str, epochs: int):
    from intermodal.data.catalog import dataset_of
    from intermodal.model.group import FUSIONS

    on_cpu = device == "cpu"
    worst, numbers = [], {}
    for fusion in FUSIONS:
        config = _small("cpu", fusions=[fusion], schedules=["constant-1", "constant-0"], seeds=[0, 1])
        config = config.updated({"epochs": epochs, "eval_every": epochs})
        dataset = dataset_of(config)
        reference = _fusion_run(config, dataset)
        other = _fusion_run(config.updated({"device": device}), dataset, ahead=on_cpu)
        history, measures = _compare_runs(other, reference)
        numbers[fusion] = {"history_rel": history, "measures_rel": measures}
        worst.append((fusion, history, measures))
    if on_cpu:
        ok = all(h == 0 and m == 0 for _, h, m in worst)
        what = "drawing ahead against not, on the CPU: bit for bit"
    else:
        ok = all(
            h <= TOLERANCES["float32_history_rtol"] and m <= TOLERANCES["float32_measures_rtol"] for _, h, m in worst
        )
        what = (
            f"{device} against the CPU after {epochs} epochs, float32 (tolerances: history "
            f"{TOLERANCES['float32_history_rtol']:g}, measures {TOLERANCES['float32_measures_rtol']:g})"
        )
    detail = what + "; " + ", ".join(f"{f}: history {h:.1e}, measures {m:.1e}" for f, h, m in worst)
    return ("PASS" if ok else "FAIL"), detail, {"fusions": numbers}


def step_resume(device: str, tmp: Path):
    import intermodal as im
    from intermodal.data.catalog import dataset_of
    from intermodal.model.group import FUSIONS
    from intermodal.training import runfolder
    from intermodal.training.trainer import Trainer

    class Stop(Exception):
        pass

    def stop_after(epoch):
        def progress(done, total, means):
            if done == epoch:
                raise Stop

        return progress

    def cut(config, out):
        try:
            Trainer(config, dataset, out, progress=stop_after(5)).run()
        except Stop:
            pass
        assert runfolder.checkpoint_state(out)["epochs_done"] == 4

    config = _small(device, fusions=list(FUSIONS), seeds=[0, 1], epochs=8, checkpoint_every=4)
    dataset = dataset_of(config)
    straight = im.train(config, dataset, out=tmp / "straight")
    cut(config, tmp / "cut")
    resumed = im.resume(tmp / "cut")
    same_device, _ = _compare_runs(resumed, straight)
    on_cpu = config.updated({"device": "cpu"})
    straight_cpu = im.train(on_cpu, dataset, out=tmp / "straight_cpu")
    cut(on_cpu, tmp / "moved")
    moved = im.resume(tmp / "moved", device=device)
    moved_diff, _ = _compare_runs(moved, straight_cpu)
    devices = [r["device"] for r in runfolder.read_environment(tmp / "moved")]
    tolerance = 0.0 if device == "cpu" else TOLERANCES["float32_history_rtol"]
    ok = same_device <= tolerance and moved_diff <= tolerance and devices[-1] == device
    detail = (
        f"stopped at epoch 5 of 8 (checkpoint 4) and resumed on {device}: history differs from a run never stopped "
        f"by {same_device:.1e}{' (bit for bit)' if same_device == 0 else ''}; started on the CPU and resumed on "
        f"{device}: {moved_diff:.1e} from the CPU's run (tolerance {tolerance:g}); environment.json: {devices}"
    )
    return ("PASS" if ok else "FAIL"), detail, {"resume_same_device": same_device, "resume_moved": moved_diff}


def _sync(device: str) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _paper_dataset(bundle: Path):
    from intermodal.data.catalog import load_dataset

    icub = bundle / "icub"
    if (icub / ICUB_FILES[0]).is_file():
        return "icub", str(icub), load_dataset("icub", str(icub))
    if (ROOT.parent / "shared" / "data" / "icub-zambelli2020" / ICUB_FILES[0]).is_file():
        path = str(ROOT.parent / "shared" / "data" / "icub-zambelli2020")
        return "icub", path, load_dataset("icub", path)
    return "sim", None, None


def step_speed(device: str, bundle: Path, epochs: int, fusion_models: int, fusion_epochs: int):
    import torch

    from intermodal.data.catalog import dataset_of
    from intermodal.evaluation.evaluator import make_evaluator
    from intermodal.model.group import FUSIONS
    from intermodal.training.config import preset_config
    from intermodal.training.trainer import Trainer

    data, data_dir, dataset = _paper_dataset(bundle)
    paper = preset_config("paper").updated({"device": device, "data": data, "data_dir": data_dir})
    if dataset is None:
        dataset = dataset_of(paper)
    threads = torch.get_num_threads()
    torch.set_num_threads(paper.threads or threads)
    numbers: dict = {"data": data}
    try:
        rates = {}
        for fusion in FUSIONS:
            n_models = len(paper.model_keys()) if fusion == "concat" else fusion_models
            seeds = paper.seeds if fusion == "concat" else list(range(max(1, n_models // len(paper.schedules))))
            config = paper.updated({"fusions": [fusion], "seeds": seeds})
            n_models = len(config.model_keys())
            trainer = Trainer(config, dataset, None)
            for _ in range(3):  # warm-up: allocations, the first draws
                trainer.train_epoch()
            n = epochs if fusion == "concat" else fusion_epochs
            _sync(device)
            start = time.perf_counter()
            for _ in range(n):
                trainer.train_epoch()
            _sync(device)
            seconds = time.perf_counter() - start
            rates[fusion] = {"models": n_models, "model_epochs_per_s": n_models * n / seconds, "epoch_s": seconds / n}
            if fusion == "concat":
                evaluate = make_evaluator(config, dataset)
                model = trainer.model
                evaluate(model, 0)  # warm-up
                _sync(device)
                start = time.perf_counter()
                evaluate(model, 0)
                _sync(device)
                rates[fusion]["evaluation_s"] = time.perf_counter() - start
            trainer.close()
            if fusion_epochs == 0:
                break
    finally:
        torch.set_num_threads(threads)
    concat = rates["concat"]
    evaluations = PAPER_PROTOCOL_EPOCHS // paper.eval_every
    hours = (concat["epoch_s"] * PAPER_PROTOCOL_EPOCHS + concat["evaluation_s"] * evaluations) / 3600
    numbers.update(rates=rates, projected_protocol_hours=hours)
    if torch.device(device).type == "cuda":
        numbers["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    parts = [f"{f}: {r['models']} models, {r['model_epochs_per_s']:.0f} model-epochs/s" for f, r in rates.items()]
    detail = (
        f"{'; '.join(parts)}; one evaluation of the 80: {concat['evaluation_s']:.2f} s; the paper's protocol "
        f"(80 models × {PAPER_PROTOCOL_EPOCHS} epochs, {evaluations} evaluations, {data} data) projected at "
        f"{hours * 60:.1f} min ({hours:.2f} h)"
    )
    return "PASS", detail, numbers


def step_study(device: str, tmp: Path, epochs: int, controls: bool = True):
    """The front door on ``device``, with the preset's ground-truth controls (trained on the
    same device: their environment is checked too) unless ``controls`` is False (the CPU
    smoke run, where they would double the step's time and the test suite trains them)."""
    out = tmp / "study"
    command = [sys.executable, "-m", "intermodal.cli", "study", "--preset", "quick", "--device", device]
    command += ["--epochs", str(epochs), "--eval-every", str(max(1, epochs // 2)), "--seeds", "2"]
    command += ["--checkpoint-every", str(epochs), "--out", str(out), "--quiet"]
    command += ["--ground-truth-controls", "true" if controls else "false"]
    done = subprocess.run(command, capture_output=True, text=True)
    report = out / "report.html"
    folders = [out, *sorted((out / "controls").glob("*"))] if done.returncode == 0 else []
    environment = [json.loads((f / "environment.json").read_text())["training"][-1] for f in folders]
    ok = done.returncode == 0 and report.is_file() and all(e["device"] == device for e in environment)
    ok = ok and len(folders) == (3 if controls else 1)
    detail = f"`intermodal study --preset quick --device {device} --epochs {epochs}` exited {done.returncode}"
    if ok:
        detail += f"; report {report.stat().st_size // 1024} KiB; trained on {environment[0].get('gpu', device)}"
        detail += f" with {len(folders) - 1} ground-truth controls"
    else:
        detail += f"; stderr: {done.stderr.strip().splitlines()[-1:] or ''}"
    return ("PASS" if ok else "FAIL"), detail, {}


# ---------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (a smoke run at small sizes)")
    parser.add_argument("--bundle", type=Path, default=BUNDLE, help="the wheels and iCub files (--prepare writes it)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "gpu_check", help="where gpu_check.json goes")
    parser.add_argument("--only", help="comma-separated steps to run (default: all)")
    parser.add_argument("--prepare", action="store_true", help="write the bundle and stop")
    parser.add_argument("--python", default="3.12", help="--prepare: the device's Python (default: 3.12)")
    parser.add_argument(
        "--icub", type=Path, default=ROOT.parent / "shared" / "data" / "icub-zambelli2020", help="iCub files to bundle"
    )
    args = parser.parse_args()
    if args.prepare:
        prepare(args.bundle.resolve(), args.icub, args.python)
        return 0
    setup = _bootstrap(args.bundle)
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_speed import machine_line

    from intermodal.training.device import check_device

    check_device(args.device, torch.float32)
    smoke = torch.device(args.device).type == "cpu"
    line = machine_line(args.device)
    print(f"machine: {line}", flush=True)
    for what in setup:
        print(f"gpu_check: {what}", flush=True)
    checks = Checks(set(args.only.split(",")) if args.only else None)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as folder:
        tmp = Path(folder)
        checks.run("placement", step_placement, args.device, tmp)
        checks.run("syncs", step_syncs, args.device)
        checks.run("pinned", step_pinned, args.device)
        checks.run("fusions", step_fusions, args.device, 3 if smoke else 40)
        checks.run("resume", step_resume, args.device, tmp)
        if smoke:
            checks.run("speed", step_speed, args.device, args.bundle, 2, 4, 0)
        else:
            checks.run("speed", step_speed, args.device, args.bundle, 300, 80, 100)
        checks.run("study", step_study, args.device, tmp, 4 if smoke else 60, not smoke)
    total = time.perf_counter() - started
    failed = [r["step"] for r in checks.rows if r["status"] == "FAIL"]
    print(
        f"gpu_check: {len(checks.rows) - len(failed)} of {len(checks.rows)} steps passed in {total:.0f} s"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    args.out.mkdir(parents=True, exist_ok=True)
    record = {"machine": line, "device": args.device, "tolerances": TOLERANCES, "seconds": total, "steps": checks.rows}
    (args.out / "gpu_check.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
