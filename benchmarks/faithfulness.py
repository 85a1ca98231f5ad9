"""Compare intermodal's training with the original TensorFlow code's reference run.

Trains 5 seeds of the constant-0 schedule for 200 epochs on the iCub data (schedule
constants unscaled, as the original's 200-epoch run), in float64 and float32, and prints
mean ± sd of the reconstruction and latent loss at epochs 0, 50, 100, 150, 199 beside the
reference (`../shared/reference/original-tf1-constant0-200epochs.csv`). Writes the table
as CSV and a figure of the curves into --out.

    python benchmarks/faithfulness.py --data-dir ../shared/data/icub-zambelli2020 --out runs/faithfulness
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from intermodal.cli import main as intermodal

EPOCHS = [0, 50, 100, 150, 199]
HERE = Path(__file__).resolve().parent


def run(out: Path, data_dir: str | None, seeds: int) -> dict[str, pd.DataFrame]:
    histories = {}
    for dtype in ("float64", "float32"):
        folder = out / dtype
        if not (folder / "history.parquet").exists():
            argv = [
                "train",
                "--data",
                "icub",
                "--schedule",
                "constant-0",
                "--seeds",
                str(seeds),
                "--epochs",
                "200",
                "--schedule-horizon",
                "80000",
                "--dtype",
                dtype,
                "--out",
                str(folder),
                "--quiet",
            ]
            if data_dir:
                argv += ["--data-dir", data_dir]
            if intermodal(argv) != 0:
                raise SystemExit(f"training {dtype} failed")
        histories[dtype] = pd.read_parquet(folder / "history.parquet")
    return histories


def table(histories: dict[str, pd.DataFrame], reference: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for e in EPOCHS:
        row = {
            "epoch": e,
            "reference recon": reference.loc[e, "reconstruction_loss"],
            "reference latent": reference.loc[e, "latent_loss"],
        }
        for dtype, h in histories.items():
            at = h[h.epoch == e]
            row[f"{dtype} recon"] = f"{at.reconstruction_loss.mean():.3f} ± {at.reconstruction_loss.std():.3f}"
            row[f"{dtype} latent"] = f"{at.latent_loss.mean():.4f} ± {at.latent_loss.std():.4f}"
        rows.append(row)
    return pd.DataFrame(rows)


def figure(histories: dict[str, pd.DataFrame], reference: pd.DataFrame, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    for ax, column in zip(fig.subplots(1, 2), ["reconstruction_loss", "latent_loss"]):
        ax.plot(reference.index, reference[column], color="black", label="original (TF1, one seed)")
        for dtype, colour in (("float64", "tab:blue"), ("float32", "tab:orange")):
            g = histories[dtype].groupby("epoch")[column]
            mean, sd = g.mean(), g.std()
            ax.plot(mean.index, mean, color=colour, label=f"intermodal {dtype} (mean ± sd, 5 seeds)")
            ax.fill_between(mean.index, mean - sd, mean + sd, color=colour, alpha=0.25)
        ax.set_xlabel("epoch")
        ax.set_title(column.replace("_", " "))
    fig.axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=120)
    fig.savefig(path.with_suffix(".svg"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="folder with the iCub .mat files (default: fetch and cache)")
    parser.add_argument(
        "--reference", default=str(HERE.parents[1] / "shared/reference/original-tf1-constant0-200epochs.csv")
    )
    parser.add_argument("--out", default="runs/faithfulness")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    out = Path(args.out)
    reference = pd.read_csv(args.reference).set_index("epoch")
    histories = run(out, args.data_dir, args.seeds)
    result = table(histories, reference)
    result.to_csv(out / "faithfulness.csv", index=False)
    figure(histories, reference, out / "faithfulness")
    print(result.to_string(index=False))
