"""The lattice tables of docs/study.md ("The lattice of modalities on iCub") for trained runs:
shares of the baseline per schedule, the most redundant and synergistic pairs, who informs
whom, and the interactions regarding touch and sound. Writes each run's shares beside
``--out`` as parquet and prints the tables.

    python examples/lattice_tables.py runs/icub-touch-sound-gaussian [more runs] [--out runs/lattice]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from intermodal.evaluation.evaluator import measure_run


def fractions(table: pd.DataFrame, quantity: str) -> pd.DataFrame:
    """The rows of ``quantity`` regarding all, each as a fraction of its model's baseline."""
    base = table[table["quantity"] == "baseline"][["schedule", "seed", "value"]].rename(columns={"value": "baseline"})
    rows = table[(table["quantity"] == quantity) & (table["scope"] == "all")].merge(base, on=["schedule", "seed"])
    return rows.assign(fraction=rows["value"] / rows["baseline"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--out", default="runs/lattice")
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_rows", 400)
    for run in args.runs:
        name = Path(run).name
        for parts in ("modalities", "steps"):
            table = measure_run(run, shares=parts)
            table.to_parquet(Path(args.out) / f"{name}-{parts}.parquet")
            print(f"\n===== {name}, parts: {parts}")
            stats = ["median", "min", "max"]
            shares = fractions(table, "share").groupby(["schedule", "modality"])["fraction"].agg(stats)
            print("shares regarding all, fraction of the baseline: median [min, max] over seeds")
            print(shares.round(3).unstack(0).to_string())
            pairs = fractions(table, "interaction").groupby(["schedule", "modality"])["fraction"].agg(stats)
            for schedule, part in pairs.groupby(level=0):
                part = part.droplevel(0).sort_values("median")
                print(f"-- interactions regarding all, {schedule}: most redundant, then most synergistic")
                print(pd.concat([part.head(4), part.tail(3)]).round(3).to_string())
            if parts != "modalities":
                continue
            lattice = table[table["quantity"].isin(["share", "interaction"])]
            informs = lattice[(lattice["quantity"] == "share") & (lattice["scope"] != "all")]
            for schedule, part in informs.groupby("schedule"):
                print(f"-- who informs whom (median nats), {schedule}: source per row, target per column")
                print(part.groupby(["modality", "scope"])["value"].median().unstack("scope").round(3).to_string())
            contact = lattice[(lattice["quantity"] == "interaction") & lattice["scope"].isin(["touch", "sound"])]
            print("-- interactions regarding touch and sound (median nats over seeds)")
            table = contact.groupby(["schedule", "scope", "modality"])["value"].median().unstack(0)
            print(table.round(3).to_string())


if __name__ == "__main__":
    main()
