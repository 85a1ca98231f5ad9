"""What the lattice measures (``--shares``, docs/method.md §5d) cost against one evaluation
of the measures alone, on this machine, in one run.

For each data set (iCub's 5 modalities and its 10 modality@step parts; the simulator with
its ground-truth distractors) and fusion (concat, decoded from the posterior's mean; moe,
16 samples and the predictive divergence), an ensemble of 12 models (the quick preset's:
four schedules × three seeds) is measured on 1024 rows: one evaluation as a run without
``--shares`` makes it (``integration_measures``), and one with the shares (``modality_shares``
with the measures, as a run with ``--shares`` makes it at its last evaluation). The
models are freshly initialised with their weights scaled up (the cost does not depend on
training). The measures alone: the median of --repeats timings after a warm-up; with the
shares: one timing. moe with modality@step parts (1 024 subsets, 16² log-densities each)
only with --all.

    python benchmarks/shares_cost.py [--data-dir ../shared/data/icub-zambelli2020] [--out runs/shares_cost.json]

Run it with ``PYTHONPATH=<another checkout>/src`` and ``--measures-only`` to time the
measures alone at another commit (before and after a change, on the same machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import machine_line  # noqa: E402  (a sibling script, not a package)

N_MODELS, N_ROWS = 12, 1024


def _models(description, fusion: str):
    import torch

    from intermodal.model.architecture import architecture_preset
    from intermodal.model.group import build_model

    model = build_model(description, architecture_preset("1", description), fusion, N_MODELS)
    model.reset_parameters(list(range(N_MODELS)))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2.0)
    model.eval()
    return model


def _time(call, repeats: int, warm_up: bool = True) -> float:
    if warm_up:
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared/data/icub-zambelli2020")
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--measures-only", action="store_true", help="time integration_measures alone")
    parser.add_argument("--all", action="store_true", help="also moe with modality@step parts (hours on 2 cores)")
    parser.add_argument("--out", default=None, help="write the rows as JSON here")
    args = parser.parse_args()

    import torch

    import intermodal as im
    from intermodal.data.sim_truth import with_ground_truth

    torch.set_num_threads(2)
    datasets = []
    if Path(args.data_dir).is_dir():
        datasets.append(("icub", im.load_dataset("icub", args.data_dir), ["modalities", "steps"]))
    sim = im.load_dataset("sim", sim=with_ground_truth({})) if not args.measures_only else None
    if sim is not None:
        datasets.append((f"sim + ground truth ({len(sim.description.modalities)} modalities)", sim, ["modalities"]))
    print(f"machine: {machine_line('cpu')}", flush=True)
    rows_out = []
    for name, dataset, part_kinds in datasets:
        rows = dataset.test[:N_ROWS]
        for fusion in ("concat", "moe"):
            model = _models(dataset.description, fusion)

            def measures():
                im.integration_measures(model, rows, generator=torch.Generator().manual_seed(0))

            alone = _time(measures, args.repeats)
            row = {"data": name, "fusion": fusion, "measures_s": round(alone, 3)}
            print(f"{name:40s} {fusion:7s} measures alone {alone:7.2f} s", flush=True)
            for parts in [] if args.measures_only else part_kinds:
                if fusion == "moe" and parts == "steps" and not args.all:
                    continue

                def shares(parts=parts):
                    im.modality_shares(
                        model, rows, parts=parts, measures=True, generator=torch.Generator().manual_seed(0)
                    )

                # Once, without a warm-up (the measures warmed the model up): these take minutes.
                with_shares = _time(shares, 1, warm_up=False)
                row[f"with_shares_{parts}_s"] = round(with_shares, 3)
                row[f"ratio_{parts}"] = round(with_shares / alone, 2)
                print(
                    f"{name:40s} {fusion:7s} with shares ({parts}) {with_shares:7.2f} s = {with_shares / alone:.1f}×",
                    flush=True,
                )
            rows_out.append(row)
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": machine_line("cpu"), "rows": rows_out}, indent=2) + "\n")


if __name__ == "__main__":
    main()
