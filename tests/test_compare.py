"""`intermodal compare`: two small runs side by side, one of them on another data set."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import intermodal as im
from intermodal.cli import main
from intermodal.data.catalog import write_dataset
from intermodal.errors import ConfigError
from intermodal.outputs.compare import COMPARE_COLUMNS


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """A simulator run (two schedules, two seeds) and a run on a data set of one's own (the
    simulator without sound, written as files: another description, four modalities, three
    seeds, another length)."""
    root = tmp_path_factory.mktemp("compare")
    sim_run = root / "sim-run"
    config = im.RunConfig(schedules=["constant-1", "constant-0"], seeds=[0, 1], epochs=12, eval_every=4)
    config = config.updated({"sim": {"n_train": 400, "n_test": 200}})
    im.train(config, out=sim_run, evaluate=True)
    files = root / "own-data"
    dataset = im.simulate(n_train=400, n_test=200, drop=("sound",))
    dataset.description = dataset.description.replace(name="own-robot")
    write_dataset(dataset, files)
    own_run = root / "own-run"
    own = im.RunConfig(data=str(files / "description.json"), schedules=["constant-0"], seeds=3, epochs=8, eval_every=4)
    im.train(own, out=own_run, evaluate=True)
    return sim_run, own_run


def test_the_tidy_table_holds_both_runs_with_intervals(two_runs):
    result = im.compare(list(two_runs))
    table = result.table
    assert list(table.columns) == COMPARE_COLUMNS
    assert result.labels == ["sim-run", "own-run"] and set(table["run"]) == set(result.labels)
    measured = table[table["n_seeds"] >= 2]
    assert ((measured["low"] <= measured["mean"] + 1e-12) & (measured["mean"] <= measured["high"] + 1e-12)).all()
    # Each run's seeds: the interval is the t interval over them.
    one = table[(table["run"] == "own-run") & (table["quantity"] == "baseline") & (table["window"] == "final")]
    assert len(one) == 1 and int(one["n_seeds"].iloc[0]) == 3
    run = im.load_run(two_runs[1])
    last = run.results[run.results["quantity"] == "baseline"]
    last = last[last["epoch"] == last["epoch"].max()]["value"].to_numpy()
    from scipy import stats

    low, high = stats.t.interval(0.95, 2, loc=last.mean(), scale=last.std(ddof=1) / np.sqrt(3))
    assert one["mean"].iloc[0] == pytest.approx(last.mean()) and one["low"].iloc[0] == pytest.approx(low)
    assert one["high"].iloc[0] == pytest.approx(high)
    for quantity in ("single_modality_error", "loss_of_precision", "baseline", "latent_loss", "active_units"):
        assert quantity in set(table["quantity"]), quantity
    # A modality one run lacks is absent from its rows, not filled in.
    assert "sound" in set(table.loc[table["run"] == "sim-run", "modality"])
    assert "sound" not in set(table.loc[table["run"] == "own-run", "modality"])


def test_what_cannot_be_compared_is_said(two_runs):
    result = im.compare(list(two_runs), labels=["A", "B"])
    text = " ".join(result.notes)
    assert "different data sets" in text and "B lacks sound" in text
    assert "different lengths" in text and "numbers of seeds" in text
    assert {"data", "schedules", "seeds", "epochs"} <= set(result.configs.index)
    assert list(result.configs.columns) == ["A", "B"]
    # Each run's findings: the simulator's ground truth on the simulator run, the paper's on the other.
    sources = result.findings.groupby("run")["source"].first()
    assert sources["A"].startswith("ground truth") and sources["B"].startswith("Langer")


def test_the_page_table_and_figures_are_written(two_runs, tmp_path, capsys):
    out = tmp_path / "side" / "compare.html"
    assert main(["compare", *map(str, two_runs), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"page: {out}" in printed and "note: The runs use different data sets" in printed
    page = out.read_text(encoding="utf-8")
    for section in ("comparable", "configs", "findings", "figures", "last-window", "losses", "final"):
        assert f'id="{section}"' in page, section
    assert re.search(r"<td>[-\d.e+]+ ± [-\d.e+]+ \[[-\d.e+]+, [-\d.e+]+\]</td>", page), "no interval in a table"
    references = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']*)', page)
    assert references and all(r.startswith("data:") for r in references)
    table = pd.read_parquet(out.with_suffix(".parquet"))
    assert list(table.columns) == COMPARE_COLUMNS and len(table) == len(pd.read_csv(out.with_suffix(".csv")))
    figures = out.with_name("compare_figures")
    stems = {p.stem for p in figures.glob("*.png")}
    assert {"compare_single_modality_error_all", "compare_loss_of_precision_all", "compare_losses_baselines"} <= stems
    assert stems == {p.stem for p in figures.glob("*.svg")}


def test_one_run_or_bad_labels_are_refused(two_runs, capsys):
    with pytest.raises(ConfigError, match="at least two run folders"):
        im.compare([two_runs[0]])
    with pytest.raises(ConfigError, match="2 distinct names"):
        im.compare(list(two_runs), labels=["same", "same"])
    assert main(["compare", str(two_runs[0])]) == 2
    assert "at least two run folders" in capsys.readouterr().err


def test_a_negative_loss_is_drawn_with_its_interval():
    """A loss below 0 (a Bernoulli or Gaussian density above 1) gets a point and a bar that
    stops at it, not a crash (matplotlib refuses a negative error)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from intermodal.outputs.compare import _bars

    rows = pd.DataFrame(
        {"run": ["a", "a"], "condition": ["x", "y"], "mean": [-0.47, 2.0], "low": [-0.74, 1.0], "high": [-0.21, 3.0]}
    )
    figure, ax = plt.subplots()
    _bars(ax, rows, ["x", "y"], "condition", ["a"], {"a": "C0"})
    lines = ax.lines + [c for c in ax.collections]
    assert lines  # drawn
    plt.close(figure)
