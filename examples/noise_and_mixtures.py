"""How much of "muting the noise moves the other outputs" is the model and how much the
measure (docs/method.md §2b): every fusion trained on the simulator with a pure-noise and a
copy-of-vision distractor (constant-0, 2 seeds x 300 epochs), then measured three ways:
from the posterior's mean, the per-sample divergence and the predictive one (16 samples).

    python examples/noise_and_mixtures.py      # about 8 minutes on 2 cores
"""

import time

import pandas as pd
import torch

import intermodal as im

ESTIMATORS = {
    "mean": {"z_samples": 0},
    "per-sample": {"z_samples": 16, "divergence": "per-sample"},
    "predictive": {"z_samples": 16, "divergence": "predictive"},
}
COLUMNS = {  # column: (quantity, modality, scope)
    "baseline": ("baseline", "", ""),
    "sme_all_noise": ("single_modality_error", "noise", "all"),
    "sme_all_vision": ("single_modality_error", "vision", "all"),
    "lop_all_noise": ("loss_of_precision", "noise", "all"),
    "lop_all_vision": ("loss_of_precision", "vision", "all"),
    "lop_own_noise": ("loss_of_precision", "noise", "modality"),
    "lop_all_copy": ("loss_of_precision", "copy-vision", "all"),
}

start = time.time()
sim = {"distractors": ["noise", "copy-vision"]}
dataset = im.load_dataset("sim", sim=sim)
config = im.RunConfig(
    data="sim", sim=sim, fusions=["concat", "poe", "moe", "mopoe"], schedules=["constant-0"], seeds=2, epochs=300,
    lr=1e-3, batch_size=500,
)  # fmt: skip
result = im.train(config, dataset)
print(f"trained in {time.time() - start:.0f} s")
rows = dataset.test[:512]
tables = []
for label, options in ESTIMATORS.items():
    generator = torch.Generator().manual_seed(0)
    table = im.integration_measures(result.model, rows, generator=generator, standard_error=True, **options)
    tables.append(table.assign(estimator=label))
table = pd.concat(tables)
keys = ["estimator", "fusion", "quantity", "modality", "scope"]
value, error = table.groupby(keys).value.mean(), table.groupby(keys).standard_error.mean()
lines = []
for estimator, fusion in sorted({key[:2] for key in value.index}):
    line = {"estimator": estimator, "fusion": fusion}
    line.update({name: value[(estimator, fusion, *where)] for name, where in COLUMNS.items()})
    line["se_lop_all_noise"] = error[(estimator, fusion, *COLUMNS["lop_all_noise"])]
    lines.append(line)
with pd.option_context("display.width", 250):
    print(pd.DataFrame(lines).round(3).to_string(index=False))
print(f"total {time.time() - start:.0f} s")
