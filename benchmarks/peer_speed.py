"""How fast intermodal trains and measures against MultiVae (the peer library), in one run.

Measures, on the simulator's data, with the same widths per modality, latent size, rows per
epoch, batch size, epochs, learning rate (1e-3, Adam) and torch threads on both sides:

- training, model-epochs per second: MultiVae's MVAE and MoPoE against intermodal's ``poe``
  and ``mopoe``, one model, and an ensemble of --models. intermodal trains the ensemble as one
  batched computation (``im.train``, one worker: one shard, so both sides get --threads
  threads and no more); MultiVae trains its models one after another in a plain loop
  (``model(batch, epoch=e).loss``, backward, Adam step; not its BaseTrainer, which deep-copies
  the model to keep the best one whenever the loss improves, nearly every epoch). Only k =
  --peer-models of its models are trained: nothing is shared between them, so N models take
  N/k times as long as k, and the ensemble's rate is the rate over those k. The first epochs
  of every run (2, or 1 with --epochs 2) are warm-up and are not timed.
- the cost of measuring: one ``im.integration_measures`` call on 512 test rows, for an
  adapted MultiVae MVAE (``z_samples=0``) and MoPoE (its default: 16 samples, predictive)
  against intermodal's ``poe`` and ``mopoe``, one trained model each; best of 3.

Each training measurement runs --repeats times, intermodal and MultiVae alternating; the
best is kept. The column ``ratio`` is the row's value over its intermodal counterpart's (poe
for MVAE, mopoe for MoPoE; same task and number of models): below 1 in model-epochs/s, or
above 1 in seconds, means MultiVae is slower.

    python benchmarks/peer_speed.py [--epochs 20] [--models 20] [--out runs/peer_speed.csv]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

# MultiVae imports torchvision when it loads; where the real one cannot be imported (a CUDA
# wheel beside a CPU torch), the tests' stand-in goes on the path first, as tests/conftest.py does.
try:
    import torchvision  # noqa: F401
except Exception:
    for _name in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
        del sys.modules[_name]
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "_torchvision_shim"))

import numpy as np
import pandas as pd
import torch
from multivae.data.datasets.base import DatasetOutput
from multivae.models import MVAE, MoPoE, MoPoEConfig, MVAEConfig
from pythae.models.base.base_utils import ModelOutput
from pythae.models.nn.base_architectures import BaseDecoder, BaseEncoder
from torch import nn
from train_speed import machine_line

import intermodal as im

PAIRS = (("poe", "MVAE"), ("mopoe", "MoPoE"))  # intermodal fusion, its MultiVae counterpart
MEASURE_ROWS = 512


# ------------------------------------------------------------------ the architecture
def widths(description, latent: int) -> dict:
    """Small widths from each modality's number of columns d (both time steps): encoder
    [4d, 2d], decoder slice 2d then [4d]. All even, so that intermodal's experts (a modality
    at one time step: half its columns) get exactly half of each encoder width."""
    d = {m: len(description.columns_of(m)) for m in description.modality_names}
    slices = {m: 2 * n for m, n in d.items()}
    return {
        "encoders": {m: [4 * n, 2 * n] for m, n in d.items()},
        # not used by poe and mopoe (experts have no shared encoder), but an architecture needs one
        "shared_encoder": [64],
        "shared_decoder": [sum(slices.values())],
        "slices": slices,
        "decoders": {m: [4 * n] for m, n in d.items()},
        "latent": latent,
    }


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


# Where the two cannot be the same:
# - encoder: MultiVae has one expert per modality, d -> 4d -> 2d -> (mean, log-variance) heads.
#   intermodal's experts are the parts the muting patterns hide, a modality at one time step:
#   two experts d/2 -> 2d -> d -> heads. The same total widths; intermodal's hidden layers are
#   the block-diagonal halves of MultiVae's (half their products), its heads the same size.
#   The adapter needs MultiVae's modalities to be the description's, so they stay whole.
# - decoder: intermodal's is Zambelli's, one shared layer z -> Σ slices, cut into a slice per
#   modality, then 2d -> 4d -> a head of mean and log-variance (2d outputs). MultiVae's are one
#   decoder per modality, z -> 2d -> 4d -> d (mean only; its scale is fixed at 1): the closest
#   total widths (its first layers together are the shared layer's size), the head half as wide.
class Encoder(BaseEncoder):
    def __init__(self, sizes: list[int], latent: int):
        super().__init__()
        self.body = _mlp(sizes)
        self.mean, self.logvar = nn.Linear(sizes[-1], latent), nn.Linear(sizes[-1], latent)

    def forward(self, x):
        h = self.body(x)
        return ModelOutput(embedding=self.mean(h), log_covariance=self.logvar(h))


class Decoder(BaseDecoder):
    def __init__(self, sizes: list[int], d_out: int):
        super().__init__()
        self.body, self.out = _mlp(sizes), nn.Linear(sizes[-1], d_out)

    def forward(self, z):
        return ModelOutput(reconstruction=self.out(self.body(z)))


def build_multivae(kind: str, description, arch: dict):
    dims = {m: len(description.columns_of(m)) for m in description.modality_names}
    latent = arch["latent"]
    common = dict(
        n_modalities=len(dims),
        latent_dim=latent,
        input_dims={m: (d,) for m, d in dims.items()},
        decoders_dist={m: "normal" for m in dims},
        decoder_dist_params={m: {"scale": 1.0} for m in dims},
    )
    encoders = {m: Encoder([d] + arch["encoders"][m], latent) for m, d in dims.items()}
    decoders = {m: Decoder([latent, arch["slices"][m]] + arch["decoders"][m], d) for m, d in dims.items()}
    if kind == "MVAE":  # β = 1 from the first epoch, as intermodal's constant-1 schedule
        return MVAE(MVAEConfig(**common, warmup=0), encoders, decoders)
    return MoPoE(MoPoEConfig(**common, beta=1.0), encoders, decoders)


# ------------------------------------------------------------------ training
def train_intermodal(fusion: str, n_models: int, args, dataset, arch_file: Path) -> tuple[float, object]:
    """Model-epochs/s of im.train after the warm-up epochs, and the trained ensemble."""
    config = im.RunConfig(
        fusions=[fusion],
        schedules=["constant-1"],
        seeds=n_models,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=1e-3,
        architecture=str(arch_file),
        threads=args.threads,
        workers=1,  # one shard (the default is one per core), so it gets --threads threads as MultiVae
        eval_every=0,  # the default: no evaluation during training (and im.train builds no evaluator)
    )
    stamps = {}
    result = im.train(config, dataset, progress=lambda done, total, means: stamps.setdefault(done, time.perf_counter()))
    seconds = stamps[args.epochs] - stamps[args.warmup]
    return n_models * (args.epochs - args.warmup) / seconds, result.model


def train_multivae(kind: str, seed: int, args, description, arch: dict, data: dict) -> tuple[float, object]:
    """Seconds of one MultiVae model's epochs after the warm-up, in a plain loop, and the model.

    An epoch is what intermodal's is: len(rows) // batch_size batches of batch_size rows, from
    a shuffle of the training rows. intermodal trains on the data set's muted copies of each row
    (4 patterns, each row's fusion of its present experts); MultiVae gets the same number of
    complete rows (the 4 copies) and makes its own subsets: MVAE the joint and each modality's
    ELBO every step (6 decodings), MoPoE the products of all 31 subsets and one decoding."""
    torch.manual_seed(seed)
    model = build_multivae(kind, description, arch)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    n = len(next(iter(data.values())))
    batch = args.batch_size
    start = None
    for epoch in range(1, args.epochs + 1):
        if epoch == args.warmup + 1:
            start = time.perf_counter()
        order = torch.randperm(n)
        for b in range(n // batch):
            index = order[b * batch : (b + 1) * batch]
            loss = model(DatasetOutput(data={m: v[index] for m, v in data.items()}), epoch=epoch).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return time.perf_counter() - start, model


def time_measures(model, rows, z_samples) -> float:
    """Seconds of one im.integration_measures call, best of 3."""
    kwargs = {} if z_samples is None else {"z_samples": z_samples}
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        im.integration_measures(model, rows, **kwargs)
        best = min(best, time.perf_counter() - start)
    return best


# ------------------------------------------------------------------ driver
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="epochs of every training run (default 20)")
    parser.add_argument("--models", type=int, default=20, help="models of the ensemble rows (default 20)")
    parser.add_argument("--peer-models", type=int, default=2, help="MultiVae models trained for them (default 2)")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--latent", type=int, default=8, help="latent size (default 8)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each training measurement (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, both sides (default 1)")
    parser.add_argument("--out", help="also write the table to this CSV file")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first is warm-up)")
    args.warmup = min(2, args.epochs - 1)  # untimed epochs at the start of every run
    args.peer_models = max(1, min(args.peer_models, args.models))
    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("multivae", "pythae")):
            logging.getLogger(name).setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    print(f"machine: {machine_line('cpu')}, {args.threads} torch thread(s)", flush=True)

    dataset = im.load_dataset("sim")
    description = dataset.description
    arch = widths(description, args.latent)
    _, targets = dataset.training_rows()  # the complete rows, once per muting pattern
    data = {m: torch.as_tensor(targets[:, description.columns_of(m)], dtype=torch.float32) for m in arch["encoders"]}
    print(
        f"data: sim, {len(targets)} rows an epoch ({len(dataset.train)} × {len(targets) // len(dataset.train)} "
        f"patterns), {len(targets) // args.batch_size} batches of {args.batch_size}; {args.epochs} epochs "
        f"({args.warmup} untimed); latent {args.latent}; widths {json.dumps({k: arch[k] for k in arch})}",
        flush=True,
    )
    sizes = sorted({1, args.models})
    speed: dict[tuple[str, int], float] = {}
    trained: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        arch_file = Path(tmp) / "architecture.json"
        arch_file.write_text(json.dumps(arch))
        for repeat in range(args.repeats):
            for fusion, kind in PAIRS:
                for n in sizes:
                    rate, model = train_intermodal(fusion, n, args, dataset, arch_file)
                    speed[fusion, n] = max(speed.get((fusion, n), 0.0), rate)
                    if n == 1:
                        trained[fusion] = model
                    print(f"  [{repeat + 1}/{args.repeats}] intermodal {fusion}, {n} models: {rate:.1f}", flush=True)
                # MultiVae: models one after another; the first gives the one-model rate, all
                # --peer-models together the ensemble's.
                seconds = []
                for seed in range(args.peer_models if args.models > 1 else 1):
                    s, model = train_multivae(kind, seed, args, description, arch, data)
                    seconds.append(s)
                    if seed == 0:
                        trained[kind] = model
                timed = args.epochs - args.warmup
                rates = {1: timed / seconds[0], args.models: len(seconds) * timed / sum(seconds)}
                for n in sizes:
                    speed[kind, n] = max(speed.get((kind, n), 0.0), rates[n])
                    print(f"  [{repeat + 1}/{args.repeats}] MultiVae {kind}, {n} models: {rates[n]:.1f}", flush=True)

    rows = []
    for fusion, kind in PAIRS:
        for n in sizes:
            base = speed[fusion, n]
            note = "" if n == 1 else "one batched computation"
            rows.append(dict(task="train", system="intermodal", model=fusion, models=n, value=base, note=note))
            rows[-1]["ratio"] = 1.0
            note = "" if n == 1 else f"{args.peer_models} trained in turn, rate over them"
            rows.append(dict(task="train", system="MultiVae", model=kind, models=n, value=speed[kind, n], note=note))
            rows[-1]["ratio"] = speed[kind, n] / base
    test = dataset.test[:MEASURE_ROWS]
    for (fusion, kind), z_samples in zip(PAIRS, (0, None)):
        how = "z_samples=0" if z_samples == 0 else "16 samples, predictive"
        base = time_measures(trained[fusion], test, z_samples)
        adapted = im.adapters.multivae(trained[kind], description)
        peer = time_measures(adapted, test, z_samples)
        rows.append(dict(task="measures", system="intermodal", model=fusion, models=1, value=base, note=how))
        rows.append(dict(task="measures", system="MultiVae", model=kind, models=1, value=peer, note=how))
        rows[-2]["ratio"], rows[-1]["ratio"] = 1.0, peer / base
    table = pd.DataFrame(rows)
    table.insert(5, "unit", np.where(table["task"] == "train", "model-epochs/s", f"s a call ({MEASURE_ROWS} rows)"))
    table = table[["task", "system", "model", "models", "value", "unit", "ratio", "note"]].fillna({"note": ""})
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)
    with pd.option_context("display.width", 160, "display.max_colwidth", 60):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
