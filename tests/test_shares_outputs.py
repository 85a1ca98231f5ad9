"""The catalogue of quantities, and the lattice's shares and interactions in the outputs
(figures, report, compare, trackers), from fabricated results tables (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import intermodal as im
from intermodal.errors import ConfigError
from intermodal.evaluation import catalogue
from intermodal.evaluation.claims import describe_column, interaction_column, share_column
from intermodal.evaluation.summaries import MEASURE_QUANTITIES
from intermodal.outputs.compare import COMPARED_QUANTITIES
from intermodal.outputs.figures import MEASURES
from intermodal.outputs.report import figure_paths, section_ids, write_report
from intermodal.outputs.shares_figures import (
    SHARE_FIGURES,
    SHARES_SECTION_TITLE,
    fig_shares,
    fig_who_informs_whom,
    ranked_interactions,
    who_informs_whom,
)
from intermodal.outputs.tracking import Tracker

MODALITIES = ["arm", "camera", "bumper"]
SCHEDULES = ["constant-0", "constant-1"]
SEEDS = (0, 1, 2)
EPOCHS = 10
SHARE_EPOCHS = (4, 9)  # the shares come at some evaluations only; 9 is the last
# Shares regarding all per source; regarding a target, source × target (rows sum to nothing
# in particular; the columns' sums are each target's baseline).
SHARE_ALL = {"arm": 3.0, "camera": 1.0, "bumper": 0.5}
SHARE_TARGET = {
    ("arm", "arm"): 2.0,
    ("arm", "camera"): 0.5,
    ("arm", "bumper"): -0.25,
    ("camera", "arm"): 0.1,
    ("camera", "camera"): 0.8,
    ("camera", "bumper"): 0.1,
    ("bumper", "arm"): 0.0,
    ("bumper", "camera"): 0.2,
    ("bumper", "bumper"): 0.3,
}
# Interactions regarding all: ranked by size, camera&bumper (synergy) first, then arm&camera
# (redundancy), then arm&bumper.
INTERACTION_ALL = {"arm&camera": -0.6, "arm&bumper": 0.05, "camera&bumper": 0.9}


def results_table(shares: bool = True, rng_seed: int = 0) -> pd.DataFrame:
    """A run's results in the run-folder format: the baseline and the four measures at every
    second epoch (and the last), share and interaction rows at SHARE_EPOCHS; the shares of
    epoch 4 are ten times those of the last so that reading the wrong epoch shows."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    epochs = sorted(set(range(0, EPOCHS, 2)) | {EPOCHS - 1})
    for schedule in SCHEDULES:
        scale = 1.0 if schedule == "constant-0" else 2.0
        for seed in SEEDS:
            for epoch in epochs:
                rows.append((schedule, seed, epoch, "baseline", "", "", 4.5 * scale, 0.0))
                for m in MODALITIES:
                    for quantity, scope in [(q, s) for q, s, _, _ in MEASURES]:
                        rows.append((schedule, seed, epoch, quantity, m, scope, 1.0 + rng.random(), 0.0))
                if not shares or epoch not in SHARE_EPOCHS:
                    continue
                early = 10.0 if epoch != max(SHARE_EPOCHS) else 1.0
                for m, v in SHARE_ALL.items():
                    rows.append((schedule, seed, epoch, "share", m, "all", early * scale * v + 0.01 * seed, 0.0))
                for (source, target), v in SHARE_TARGET.items():
                    rows.append((schedule, seed, epoch, "share", source, target, early * scale * v, 0.0))
                for pair, v in INTERACTION_ALL.items():
                    value = early * scale * v + 0.02 * (seed - 1)
                    rows.append((schedule, seed, epoch, "interaction", pair, "all", value, 0.001))
                    rows.append((schedule, seed, epoch, "interaction", pair, "arm", 0.5 * value, 0.0))
    table = pd.DataFrame(
        rows, columns=["schedule", "seed", "epoch", "quantity", "modality", "scope", "value", "standard_error"]
    )
    return table.assign(likelihood="gaussian")


def history_table() -> pd.DataFrame:
    rows = [(s, seed, e, 1.0, 2.0, 3.0, 5.0) for s in SCHEDULES for seed in SEEDS for e in range(EPOCHS)]
    return pd.DataFrame(
        rows, columns=["schedule", "seed", "epoch", "beta", "reconstruction_loss", "latent_loss", "loss"]
    )


def write_run(folder: Path, results: pd.DataFrame, config: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = {"data": "fabricated", "schedules": SCHEDULES, "epochs": EPOCHS, "eval_every": 2, "seeds": list(SEEDS)}
    (folder / "config.json").write_text(json.dumps(config))
    history_table().to_parquet(folder / "history.parquet", index=False)
    results.to_parquet(folder / "results.parquet", index=False)
    return folder


# --------------------------------------------------------------------------- the catalogue
def test_the_catalogue_spells_every_list_the_modules_read():
    assert catalogue.KL_QUANTITIES == (
        "single_modality_error",
        "loss_of_precision",
        "baseline",
        "prediction_error",
        "custom",
    )
    assert MEASURE_QUANTITIES == catalogue.names("integration") == ("single_modality_error", "loss_of_precision")
    assert COMPARED_QUANTITIES == (
        "baseline",
        "prediction_error",
        "reconstruction_loss",
        "latent_loss",
        "loss",
        "active_units",
    )
    assert catalogue.names("lattice") == ("share", "interaction")
    assert [m[2] for m in MEASURES] == ["SME regarding m", "SME regarding all", "LoP regarding m", "LoP regarding all"]
    assert catalogue.label_of("loss_of_precision", "modality") == "loss of precision, regarding m"
    assert catalogue.with_unit("baseline") == "baseline (nats)"
    assert catalogue.label_of("share", "camera") == "share of the baseline, regarding camera"
    for entry in catalogue.CATALOGUE:
        assert entry.family in catalogue.FAMILIES and entry.unit, entry
    share = catalogue.measure("share")
    assert share.unit == "nats" and share.family == "lattice" and share.scopes == ("all", catalogue.TARGET)
    assert catalogue.takes_scope("share", "camera") and not catalogue.takes_scope("baseline", "all")
    with pytest.raises(ConfigError, match="no quantity 'shares'"):
        catalogue.measure("shares")
    with pytest.raises(ConfigError, match="no family"):
        catalogue.names("lattices")
    assert catalogue.pair_parts(catalogue.pair_name("a_b", "c")) == ("a_b", "c")
    with pytest.raises(ConfigError):
        catalogue.pair_parts("camera")
    assert share_column("arm") == "share|arm|all"
    assert interaction_column("arm", "camera", "bumper") == "interaction|arm&camera|bumper"
    assert describe_column(share_column("arm", "camera")) == "share of the baseline arm regarding camera"


# --------------------------------------------------------------------------- tables and figures
def test_the_heat_map_is_the_pivot_of_the_last_epochs_shares():
    results = results_table()
    matrices = who_informs_whom(results)
    assert list(matrices) == SCHEDULES
    last = results[(results["quantity"] == "share") & (results["scope"] != "all") & (results["epoch"] == 9)]
    for schedule, matrix in matrices.items():
        pivot = last[last["schedule"] == schedule].pivot_table(
            index="modality", columns="scope", values="value", aggfunc="mean"
        )
        expected = pivot.reindex(index=MODALITIES, columns=MODALITIES)
        np.testing.assert_allclose(matrix.to_numpy(float), expected.to_numpy(float))
        scale = 1.0 if schedule == "constant-0" else 2.0
        assert matrix.loc["arm", "bumper"] == pytest.approx(-0.25 * scale)  # source arm, target bumper
    figure = fig_who_informs_whom(results)
    panels = [ax for ax in figure.axes if ax.images]
    assert len(panels) == 2
    for ax, schedule in zip(panels, SCHEDULES):
        np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), matrices[schedule].to_numpy(float))
        # One colour scale, diverging around 0 since a share is negative.
        assert ax.images[0].get_clim() == pytest.approx((-4.0, 4.0))


def test_the_bars_are_the_shares_regarding_all_at_the_last_epoch():
    results = results_table()
    figure = fig_shares(results)
    panels = [ax for ax in figure.axes if ax.patches]
    assert len(panels) == 2
    for ax, scale in zip(panels, (1.0, 2.0)):
        heights = [p.get_height() for p in ax.patches]
        expected = [scale * SHARE_ALL[m] + 0.01 for m in MODALITIES]  # mean of seeds 0, 1, 2
        np.testing.assert_allclose(heights, expected)


def test_interactions_are_ranked_by_size_with_their_interval():
    results = results_table()
    ranked = ranked_interactions(results)
    mine = ranked[ranked["schedule"] == "constant-0"]
    assert list(mine["pair"]) == ["camera&bumper", "arm&camera", "arm&bumper"]
    assert list(mine["kind"]) == ["synergy", "redundancy", "synergy"]
    assert list(ranked["schedule"]) == ["constant-0"] * 3 + ["constant-1"] * 3
    values = 0.9 + 0.02 * (np.array(SEEDS) - 1)
    low, high = stats.t.interval(0.95, 2, loc=values.mean(), scale=values.std(ddof=1) / np.sqrt(3))
    first = mine.iloc[0]
    assert first["mean"] == pytest.approx(0.9) and first["low"] == pytest.approx(low)
    assert first["high"] == pytest.approx(high) and first["n_seeds"] == 3
    assert first["standard_error"] == pytest.approx(0.001)
    assert len(ranked_interactions(results, limit=1)) == 2  # one per condition
    assert ranked_interactions(results_table(shares=False)).empty


# --------------------------------------------------------------------------- report
def test_the_report_has_the_shares_section_only_with_share_rows(tmp_path):
    with_shares = write_run(tmp_path / "with", results_table())
    page = write_report(with_shares).read_text(encoding="utf-8")
    assert "shares" in section_ids(page) and SHARES_SECTION_TITLE in page
    assert "never showed" in page and "muting = &#34;patterns&#34;" in page
    assert "The strongest redundancies and synergies" in page
    # The ranked table, in its order, and each share figure once (in its section, not the list).
    assert page.index("camera &amp; bumper") < page.index("arm &amp; camera") < page.index("arm &amp; bumper")
    for stem in SHARE_FIGURES:
        assert page.count(f'id="{stem}"') == 1
    paths = figure_paths(with_shares, shares=True)
    assert all(paths[stem][0].is_file() and paths[stem][1].is_file() for stem in SHARE_FIGURES)

    without = write_run(tmp_path / "without", results_table(shares=False))
    page = write_report(without).read_text(encoding="utf-8")
    assert "shares" not in section_ids(page) and SHARES_SECTION_TITLE not in page
    assert not any(p.exists() for stem in SHARE_FIGURES for p in figure_paths(without, shares=True)[stem])


# --------------------------------------------------------------------------- compare, trackers
def test_compare_carries_the_shares_at_their_own_last_epoch(tmp_path):
    first = write_run(tmp_path / "one", results_table())
    # In the second run the shares stop at epoch 4: their final value is epoch 4's.
    late = results_table(rng_seed=1)
    late = late[~(late["quantity"].isin(["share", "interaction"]) & (late["epoch"] == 9))]
    second = write_run(tmp_path / "two", late)
    result = im.compare([first, second], tmp_path / "side" / "compare.html")
    final = result.table[(result.table["window"] == "final") & (result.table["quantity"] == "share")]
    arm = final[(final["modality"] == "arm") & (final["scope"] == "all") & (final["schedule"] == "constant-0")]
    assert arm.set_index("run")["mean"].to_dict() == pytest.approx({"one": 3.01, "two": 30.01})
    assert set(result.table.loc[result.table["window"] == "final", "quantity"]) >= {"share", "interaction"}
    page = result.page.read_text(encoding="utf-8")
    final_section = page[page.index('id="final"') :]
    assert "<td>share</td>" in final_section and "<td>interaction</td>" in final_section
    assert "<td>arm&amp;camera</td>" in final_section


class Recording(Tracker):
    def __init__(self):
        super().__init__()
        self.scalars = []

    def _write_scalars(self, scalars):
        self.scalars += scalars


def test_trackers_log_shares_under_names_unique_per_row():
    results = results_table()
    results = results[results["epoch"] == 9].assign(fusion="concat")
    # Parts whose names hold "_": "a_b&c" and "a&b_c" must not become one name.
    odd = results.iloc[:2].assign(quantity="interaction", modality=["a_b&c", "a&b_c"], scope="all", value=[1.0, 2.0])
    results = pd.concat([results, odd], ignore_index=True)
    with Recording() as tracker:
        tracker.log_evaluation(9, {"results": results})
    names = [name for name, _, _ in tracker.scalars]
    keys = results[[c for c in results.columns if c in ("schedule", "seed", "quantity", "modality", "scope")]]
    assert len(names) == len(set(names)) == len(keys.drop_duplicates())
    prefix = "concat/constant-0/seed-0/" if names[0].startswith("concat/") else "constant-0/seed-0/"
    assert f"{prefix}share/arm/all" in names and f"{prefix}share/arm/bumper" in names
    assert f"{prefix}interaction/arm/camera/all" in names
