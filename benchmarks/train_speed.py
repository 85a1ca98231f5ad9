"""How fast intermodal trains and evaluates on this machine, in one run.

Measures, each in a fresh subprocess (so peak memory is its own):
- the machine's float32 matrix-product rate (GFLOP/s, all cores);
- model-epochs per second of intermodal's trainer for 1, 4, 20 and 80 models (float32,
  architecture 1, the iCub data or the simulator's rows of the same shape; the median of
  three timed windows);
- the same for 20 models of each fusion (concat, poe, moe, mopoe; each run twice,
  alternating, so that the machine's drift does not decide their ratios), with its ratio
  to concat's and one evaluation of its 20 models;
- the baseline: a plain eager PyTorch port, one model at a time (nn.Linear layers, separate
  mean and log-variance heads, a Python loop over models, torch's default threads, on the
  same --device), in float64 as the original code trains and in float32;
- a ceiling: the training step's matrix products alone (forward and backward, nothing
  else: no elementwise work, no optimiser, no Python between them), one core, for several
  models per product; times the cores, no trainer of this design can be faster;
- the evaluation overhead: one evaluation (every measure, every modality, 1024 rows, all
  models) against the paper preset's training between two evaluations (200 epochs);
- peak memory (RSS) of each.

Prints one table and writes it as CSV and JSON beside --out.

    python benchmarks/train_speed.py [--data icub --data-dir DIR] [--out runs/benchmark] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

PAPER_MODEL_EPOCHS = 4 * 20 * 80_000
PAPER_EVAL_EVERY = 200
FUSIONS = ("concat", "poe", "moe", "mopoe")
FUSION_MODELS = 20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def _dataset(args):
    from intermodal.data.catalog import load_dataset

    return load_dataset(args.data, args.data_dir)


# ------------------------------------------------------------------ measurements
def measure_matmul(args) -> dict:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    n = 2048
    a, b = torch.randn(n, n, device=args.device), torch.randn(n, n, device=args.device)
    for _ in range(3):
        a @ b
    reps = 20
    _sync(args.device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(args.device)
    seconds = time.perf_counter() - start
    return {"gflops": 2 * n**3 * reps / seconds / 1e9}


def _sync(device):
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def measure_intermodal(args) -> dict:
    import torch

    from intermodal.training.config import RunConfig
    from intermodal.training.trainer import Trainer

    dataset = _dataset(args)
    config = RunConfig(
        data=args.data,
        seeds=list(range(args.models)),
        epochs=10_000,
        dtype="float32",
        device=args.device,
        lr=5e-5,
        fusions=[args.fusion],
    )
    trainer = Trainer(config, dataset, None)
    # What Trainer.run sets for the run (per worker: torch's pool is process-wide); the
    # benchmark times train_epoch directly.
    torch.set_num_threads(config.threads)
    for _ in range(2):  # warm-up: every shard allocates its buffers in its first epochs
        trainer.train_epoch()
    epochs = max(4, round(args.budget * 30 / args.models))
    # This machine's speed wanders by ±10% from minute to minute: the median of three
    # timed windows.
    windows = []
    for _ in range(3):
        _sync(args.device)
        start = time.perf_counter()
        for _ in range(epochs):
            trainer.train_epoch()
        _sync(args.device)
        windows.append(time.perf_counter() - start)
    seconds = sorted(windows)[1]
    result = {"model_epochs_per_s": args.models * epochs / seconds, "shards": len(trainer.shards.shards)}
    if args.evaluate:
        from intermodal.evaluation.evaluator import make_evaluator

        evaluate = make_evaluator(config, dataset)
        model = trainer.model
        evaluate(model, 0)  # warm-up
        start = time.perf_counter()
        evaluate(model, 0)
        result["evaluation_s"] = time.perf_counter() - start
        result["epoch_s"] = seconds / epochs
    return result


def measure_products(args) -> dict:
    """The step's batched matrix products alone, on one core: per layer the forward
    ``baddbmm`` and the backward's two ``bmm`` (weight gradient, input gradient; the first
    encoder layers need no input gradient), on tensors of the trainer's shapes."""
    import torch

    from intermodal.model.architecture import architecture_preset
    from intermodal.model.fusions.concat import MultimodalVAE

    torch.set_num_threads(1)
    dataset = _dataset(args)
    desc = dataset.description
    arch = architecture_preset("1", desc)
    rows = 1000  # the batch size
    steps_per_epoch = len(dataset.training_rows()[0]) // rows

    def t(*shape):
        return torch.randn(*shape, device=args.device)

    best = {}
    for models in (1, 2, 4, 8, 16):
        model = MultimodalVAE(desc, arch, models, device=args.device)
        first = {names[0] for names in model.encoder_layers.values()}
        layers = [
            (name in first, t(models, n_in, n_out), t(models, n_out, 1), t(models, n_in, rows), t(models, n_out, rows))
            for name, n_in, n_out in model.layer_shapes
        ]

        def step():
            for is_first, weight, bias, h, g in layers:
                torch.baddbmm(bias, weight.transpose(1, 2), h)
                torch.bmm(h, g.transpose(1, 2))
                if not is_first:
                    torch.bmm(weight, g)

        for _ in range(3):
            step()
        steps = max(10, round(args.budget * 200 / models))
        _sync(args.device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        _sync(args.device)
        seconds_per_step = (time.perf_counter() - start) / steps
        best[models] = models / (steps_per_epoch * seconds_per_step)
    models = max(best, key=best.get)
    return {"model_epochs_per_s": best[models], "models": models, "cores": len(os.sched_getaffinity(0))}


def measure_eager(args) -> dict:
    """A plain eager port: one nn.Module per model, trained one after the other."""
    import math

    import torch
    from torch import nn

    from intermodal.model.architecture import architecture_preset

    torch.set_num_threads(os.cpu_count() or 1)  # what a plain script gets by default
    dataset = _dataset(args)
    desc = dataset.description
    arch = architecture_preset("1", desc)
    dtype = getattr(torch, args.dtype)
    torch.set_default_dtype(dtype)
    device = torch.device(args.device)
    inputs, targets = (torch.as_tensor(a, dtype=dtype, device=device) for a in dataset.training_rows())
    columns = [torch.as_tensor(desc.columns_of(m), device=device) for m in desc.modality_names]

    def mlp(widths):
        layers = []
        for a, b in zip(widths, widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        return nn.Sequential(*layers)

    class PlainVAE(nn.Module):
        def __init__(self):
            super().__init__()
            names = desc.modality_names
            self.enc = nn.ModuleList(mlp([len(c)] + arch.encoders[m]) for m, c in zip(names, columns))
            width = sum(([len(c)] + arch.encoders[m])[-1] for m, c in zip(names, columns))
            self.shared = mlp([width] + arch.shared_encoder)
            self.z_mean = nn.Linear(arch.shared_encoder[-1], 28)
            self.z_var = nn.Linear(arch.shared_encoder[-1], 28)
            self.dec_shared = mlp([28] + arch.shared_decoder)
            self.dec = nn.ModuleList(mlp([arch.slices[m]] + arch.decoders[m]) for m in names)
            last = [([arch.slices[m]] + arch.decoders[m])[-1] for m in names]
            self.mean = nn.ModuleList(nn.Linear(w, len(c)) for w, c in zip(last, columns))
            self.var = nn.ModuleList(nn.Linear(w, len(c)) for w, c in zip(last, columns))
            self.slices = [arch.slices[m] for m in names]

        def forward(self, x):
            h = torch.cat([e(x[:, c]) for e, c in zip(self.enc, columns)], 1)
            h = self.shared(h)
            zm, zl = self.z_mean(h), torch.log(torch.exp(self.z_var(h)) + 1e-4)
            z = zm + torch.exp(zl / 2) * torch.randn_like(zm)
            parts = torch.split(self.dec_shared(z), self.slices, 1)
            hs = [d(p) for d, p in zip(self.dec, parts)]
            means = [m(h) for m, h in zip(self.mean, hs)]
            logvars = [torch.log(torch.exp(v(h)) + 1e-4) for v, h in zip(self.var, hs)]
            return means, logvars, zm, zl

    def loss(model, x, y):
        means, logvars, zm, zl = model(x)
        recon = 0
        for mu, lv, c in zip(means, logvars, columns):
            t = y[:, c]
            recon = recon + (
                0.5 * ((t - mu) ** 2 / torch.exp(lv)).sum(1) + 0.5 * lv.sum(1) + 0.5 * 14 * math.log(2 * math.pi)
            ) / len(c)
        latent = -0.5 * (1 + zl - zm**2 - torch.exp(zl)).sum(1)
        return (recon + latent).mean()

    models = [PlainVAE().to(device) for _ in range(args.models)]
    optimizers = [torch.optim.Adam(m.parameters(), lr=5e-5) for m in models]
    n_batches = len(inputs) // 1000

    def epoch():
        for model, opt in zip(models, optimizers):  # the per-model Python loop
            perm = torch.randperm(len(inputs), device=device)
            for b in range(n_batches):
                idx = perm[b * 1000 : (b + 1) * 1000]
                opt.zero_grad()
                loss(model, inputs[idx], targets[idx]).backward()
                opt.step()

    epoch()
    epochs = max(2, round(args.budget * 10 / args.models))
    _sync(args.device)
    start = time.perf_counter()
    for _ in range(epochs):
        epoch()
    _sync(args.device)
    return {"model_epochs_per_s": args.models * epochs / (time.perf_counter() - start)}


# ------------------------------------------------------------------ driver
def _child(
    kind: str, args, models: int = 1, evaluate: bool = False, dtype: str = "float32", fusion: str = "concat"
) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--models",
        str(models),
        "--data",
        args.data,
        "--device",
        args.device,
        "--budget",
        str(args.budget),
        "--dtype",
        dtype,
        "--fusion",
        fusion,
    ]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    if evaluate:
        cmd.append("--evaluate")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def machine_line(device: str) -> str:
    import torch

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", {torch.cuda.get_device_name(0)}" if device.startswith("cuda") else ""
    return (
        f"{cpu}, {len(os.sched_getaffinity(0))} cores{gpu}; Python {platform.python_version()}, "
        f"torch {torch.__version__}, device {device}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="sim", help="sim (default) or icub: rows of the same shape")
    parser.add_argument("--data-dir")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="runs/benchmark")
    parser.add_argument("--budget", type=float, default=1.0, help="scale the number of timed epochs")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--models", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--evaluate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    parser.add_argument("--fusion", default="concat", help=argparse.SUPPRESS)
    parser.add_argument(
        "--fusions",
        default=",".join(FUSIONS),
        help="fusions to time side by side, comma-separated (default: all four; 'none' skips them, "
        "as a comparison with code from before the fusions needs)",
    )
    args = parser.parse_args()
    if args.child:
        result = {
            "matmul": measure_matmul,
            "products": measure_products,
            "intermodal": measure_intermodal,
            "eager": measure_eager,
        }[args.child](args)
        result["peak_rss_mb"] = _peak_rss_mb()
        print(json.dumps(result))
        return

    import numpy as np
    import pandas as pd

    rows = []
    matmul = _child("matmul", args)
    rows.append(
        {
            "measurement": "float32 matrix product 2048² (all cores)",
            "models": "",
            "value": matmul["gflops"],
            "unit": "GFLOP/s",
            "peak_rss_mb": matmul["peak_rss_mb"],
        }
    )
    products = _child("products", args)
    rows.append(
        {
            "measurement": f"matrix products alone, one core ({products['models']} models a product)",
            "models": products["models"],
            "value": products["model_epochs_per_s"],
            "unit": "model-epochs/s",
            "peak_rss_mb": products["peak_rss_mb"],
        }
    )
    eager = {}
    for dtype in ("float64", "float32"):
        eager[dtype] = _child("eager", args, models=2, dtype=dtype)
        rows.append(
            {
                "measurement": f"plain eager PyTorch port, per-model loop, {dtype}",
                "models": 2,
                "value": eager[dtype]["model_epochs_per_s"],
                "unit": "model-epochs/s",
                "peak_rss_mb": eager[dtype]["peak_rss_mb"],
            }
        )
    speeds = {}
    runs = {}
    # 20 and 80 models twice, alternating, so that the machine's drift does not decide
    # their ratio; each row gives the mean.
    for n in (1, 4, 20, 80, 20, 80):
        first = n not in runs
        runs.setdefault(n, []).append(_child("intermodal", args, models=n, evaluate=(n == 80 and first)))
    for n, results in runs.items():
        r = dict(results[0])  # the first run of 80 models also timed the evaluation
        r["model_epochs_per_s"] = float(np.mean([x["model_epochs_per_s"] for x in results]))
        r["peak_rss_mb"] = max(x["peak_rss_mb"] for x in results)
        speeds[n] = r
        rows.append(
            {
                "measurement": f"intermodal trainer ({r['shards']} shards{', mean of 2 runs' * (len(results) > 1)})",
                "models": n,
                "value": r["model_epochs_per_s"],
                "unit": "model-epochs/s",
                "peak_rss_mb": r["peak_rss_mb"],
            }
        )
    fusions = [] if args.fusions == "none" else [f.strip() for f in args.fusions.split(",")]
    if fusions and fusions[0] != "concat":
        fusions.insert(0, "concat")  # the ratios are to concat's
    fusion_runs = {}
    for fusion in fusions * 2:
        first = fusion not in fusion_runs
        fusion_runs.setdefault(fusion, []).append(
            _child("intermodal", args, models=FUSION_MODELS, evaluate=first, fusion=fusion)
        )
    fusion_speed = {f: float(np.mean([x["model_epochs_per_s"] for x in r])) for f, r in fusion_runs.items()}
    for fusion, results in fusion_runs.items():
        rows.append(
            {
                "measurement": f"fusion {fusion}: trainer, mean of 2 runs",
                "models": FUSION_MODELS,
                "value": fusion_speed[fusion],
                "unit": "model-epochs/s",
                "peak_rss_mb": max(x["peak_rss_mb"] for x in results),
            }
        )
    for fusion in fusions[1:]:
        rows.append(
            {
                "measurement": f"ratio: fusion {fusion} / concat, per model",
                "models": FUSION_MODELS,
                "value": fusion_speed[fusion] / fusion_speed["concat"],
                "unit": "×",
            }
        )
    for fusion, results in fusion_runs.items():
        rows.append(
            {
                "measurement": f"fusion {fusion}: one evaluation, all measures and diagnostics, 1024 rows",
                "models": FUSION_MODELS,
                "value": results[0]["evaluation_s"],
                "unit": "s",
            }
        )
    r80 = speeds[80]
    overhead = r80["evaluation_s"] / (PAPER_EVAL_EVERY * r80["epoch_s"])
    rows += [
        {
            "measurement": "ratio: 20 models / plain eager loop, float64 (as the original)",
            "models": 20,
            "value": speeds[20]["model_epochs_per_s"] / eager["float64"]["model_epochs_per_s"],
            "unit": "×",
        },
        {
            "measurement": "ratio: 20 models / plain eager loop, float32",
            "models": 20,
            "value": speeds[20]["model_epochs_per_s"] / eager["float32"]["model_epochs_per_s"],
            "unit": "×",
        },
        {
            "measurement": f"ratio: 20 models / products-alone ceiling ({products['cores']} cores)",
            "models": 20,
            "value": speeds[20]["model_epochs_per_s"] / (products["cores"] * products["model_epochs_per_s"]),
            "unit": "×",
        },
        {
            "measurement": "ratio: per-model speed 80 / 20 models",
            "models": 80,
            "value": speeds[80]["model_epochs_per_s"] / speeds[20]["model_epochs_per_s"],
            "unit": "×",
        },
        {
            "measurement": "one evaluation, all measures, 1024 rows",
            "models": 80,
            "value": r80["evaluation_s"],
            "unit": "s",
        },
        {
            "measurement": f"evaluation overhead (every {PAPER_EVAL_EVERY} epochs)",
            "models": 80,
            "value": 100 * overhead,
            "unit": "% of training",
        },
        {
            "measurement": "projected paper study (4 × 20 × 80 000 epochs)",
            "models": 80,
            "value": PAPER_MODEL_EPOCHS / r80["model_epochs_per_s"] * (1 + overhead) / 3600,
            "unit": "hours",
        },
    ]
    table = pd.DataFrame(rows)
    line = machine_line(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "train_speed.csv", index=False)
    (out / "train_speed.json").write_text(json.dumps({"machine": line, "rows": rows}, indent=2) + "\n")
    print(f"machine: {line}")
    with pd.option_context("display.width", 160, "display.max_colwidth", 60):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}", na_rep=""))


if __name__ == "__main__":
    main()
