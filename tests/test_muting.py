"""``--muting subsets`` (docs/method.md §1): each training row once complete and once per
other muting pattern with a random non-empty proper subset of its modalities given, drawn
from a seeded stream; ``--muting patterns`` (the default) is Zambelli's augmentation, unchanged."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from intermodal.cli import main
from intermodal.data.dataset import Dataset, augment, augment_subsets, check_muting
from intermodal.data.description import DatasetDescription, Modality
from intermodal.errors import ConfigError
from intermodal.model.group import FUSIONS
from intermodal.streams import Purpose, numpy_generator
from intermodal.study.units import Unit
from intermodal.training.config import RunConfig
from intermodal.training.runfolder import HISTORY_COLUMNS
from intermodal.training.trainer import Trainer, muting_generator


def given_modalities(inputs: np.ndarray, description: DatasetDescription) -> list[frozenset[str]]:
    """The modalities each input row gives, checking that a modality is given or muted whole."""
    muted = inputs == description.muted_value
    out = []
    for row in muted:
        given = set()
        for m in description.modality_names:
            cols = row[description.mask(m)]
            assert cols.all() or not cols.any(), f"{m} is muted in part"
            if not cols.any():
                given.add(m)
        out.append(frozenset(given))
    return out


def test_subsets_give_every_vertex_reproducibly_with_the_first_copy_complete(tiny):
    desc = tiny.description  # 3 modalities, 3 muting patterns
    n = len(tiny.train)
    inputs, targets = tiny.training_rows(muting="subsets", rng=muting_generator())
    # as many rows as the muting patterns give: an epoch costs what it costs by default
    assert inputs.shape == targets.shape == augment(tiny.train, desc)[0].shape == (3 * n, desc.n_columns)
    np.testing.assert_array_equal(targets, np.tile(tiny.train, (3, 1)))
    np.testing.assert_array_equal(inputs[:n], tiny.train)  # the first copy complete
    given = given_modalities(inputs[n:], desc)
    whole = frozenset(desc.modality_names)
    assert all(g and g != whole for g in given)  # non-empty and proper
    proper = {frozenset(s) for k in (1, 2) for s in itertools.combinations(desc.modality_names, k)}
    counts = pd.Series([tuple(sorted(g)) for g in given]).value_counts()
    assert {frozenset(s) for s in counts.index} == proper  # every vertex of the lattice below the top
    expected = len(given) / len(proper)  # 800 / 6
    assert counts.between(0.7 * expected, 1.3 * expected).all(), counts
    # the given value of a modality is the row's
    np.testing.assert_array_equal(inputs[inputs != desc.muted_value], targets[inputs != desc.muted_value])
    # drawn from the seeded stream: the same again, another stream differs
    again, _ = tiny.training_rows(muting="subsets", rng=muting_generator())
    np.testing.assert_array_equal(again, inputs)
    other, _ = augment_subsets(tiny.train, desc, 3, numpy_generator(Purpose.MUTING_SUBSETS, 1))
    assert not np.array_equal(other, inputs)


def test_subsets_are_uniform_and_proper_for_two_and_for_many_modalities():
    rng = np.random.default_rng(0)
    two = DatasetDescription(
        name="two", modalities=(Modality("a", 1), Modality("b", 2)), time_steps=("t",), muting_patterns={"c": ()}
    )
    rows = np.zeros((1000, two.n_columns))
    inputs, _ = augment_subsets(rows, two, 2, rng)
    given = given_modalities(inputs[1000:], two)
    assert set(given) == {frozenset("a"), frozenset("b")}
    assert 400 < sum(g == frozenset("a") for g in given) < 600
    many = DatasetDescription(
        name="many", modalities=tuple(Modality(f"m{k}", 1) for k in range(70)), muting_patterns={"c": ()}
    )
    inputs, _ = augment_subsets(np.zeros((50, many.n_columns)), many, 4, rng)
    given = given_modalities(inputs[50:], many)
    assert len(given) == 150 and all(0 < len(g) < 70 for g in given)


def test_patterns_are_unchanged_and_the_default(tiny):
    assert RunConfig().muting == "patterns" and RunConfig.from_dict({}).muting == "patterns"
    expected = augment(tiny.train, tiny.description)
    for rows in (tiny.training_rows(), tiny.training_rows(None, "patterns", muting_generator())):
        np.testing.assert_array_equal(rows[0], expected[0])
        np.testing.assert_array_equal(rows[1], expected[1])
    config = dict(data="tiny", epochs=1, batch_size=100, dtype="float64")
    default = Trainer(RunConfig(**config), tiny)
    explicit = Trainer(RunConfig(**config, muting="patterns"), tiny)
    subsets = Trainer(RunConfig(**config, muting="subsets"), tiny)
    assert default.inputs_ff.equal(explicit.inputs_ff) and default.targets_ff.equal(explicit.targets_ff)
    assert default.inputs_ff.shape == subsets.inputs_ff.shape and not default.inputs_ff.equal(subsets.inputs_ff)
    for trainer in (default, explicit, subsets):
        trainer.close()


def test_subsets_with_patterns_or_of_one_modality_are_refused(tiny, tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"patterns \['complete'\] and muting 'subsets' exclude each other"):
        RunConfig.from_mapping(dict(muting="subsets", patterns=["complete"]), "run.toml")
    with pytest.raises(ConfigError, match="--patterns, --muting subsets"):
        tiny.training_rows(["complete"], "subsets", muting_generator())
    with pytest.raises(ConfigError, match="muting: input should be 'patterns' or 'subsets'"):
        RunConfig.from_mapping(dict(muting="random"), "run.toml")
    argv = ["train", "--data", "sim", "--muting", "subsets", "--patterns", "complete", "--out", str(tmp_path / "r")]
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "patterns" in err and "muting 'subsets'" in err and not (tmp_path / "r").exists()
    one = Dataset(
        DatasetDescription(name="one", modalities=(Modality("a", 2),), muting_patterns={"complete": (), "x": ("a@t",)}),
        np.zeros((200, 4)),
        np.zeros((10, 4)),
    )
    with pytest.raises(ConfigError, match="has one modality .* use --muting patterns"):
        Trainer(RunConfig(data="one", muting="subsets", batch_size=100), one)
    with pytest.raises(ConfigError, match="has one modality"):
        check_muting(one.description, "subsets")
    check_muting(one.description, "patterns")
    assert len(one.training_rows()[0]) == 400  # patterns still train it


def test_every_fusion_trains_with_subsets_from_the_command_line(tmp_path, tiny):
    from intermodal.data.catalog import write_dataset

    path = write_dataset(tiny, tmp_path / "data")
    out = tmp_path / "run"
    argv = ["train", "--data", str(path), "--muting", "subsets", "--fusion", ",".join(FUSIONS), "--seeds", "1"]
    argv += ["--epochs", "3", "--batch-size", "100", "--lr", "1e-3", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    assert json.loads((out / "config.json").read_text())["muting"] == "subsets"
    h = pd.read_parquet(out / "history.parquet")
    assert sorted(set(h.fusion)) == sorted(FUSIONS) and len(h) == 3 * len(FUSIONS)
    assert np.isfinite(h[HISTORY_COLUMNS[3:7]].to_numpy()).all()
    for _, losses in h.groupby("fusion")["reconstruction_loss"]:
        assert losses.iloc[-1] < losses.iloc[0]


def test_a_ray_unit_trains_on_the_rows_and_numbers_of_the_whole_run(tiny):
    """A unit (the Ray backend's task: its own Trainer on the unit's config) draws the same
    subsets as the whole run, so its model trains as it does in the whole run."""
    whole = RunConfig(
        data="tiny", fusions=["poe"], seeds=[0, 1, 2], epochs=3, batch_size=100, lr=1e-3, dtype="float64"
    ).updated({"muting": "subsets"})
    unit = Unit("01-poe-constant-0-seed-1", "poe", "constant-0", (1,)).config(whole, 1)
    assert unit.muting == "subsets"
    group, alone = Trainer(whole, tiny), Trainer(unit, tiny)
    assert group.inputs_ff.equal(alone.inputs_ff)
    g, a = group.run().history, alone.run().history
    g = g[g.seed == 1].reset_index(drop=True)
    np.testing.assert_allclose(g[HISTORY_COLUMNS[3:7]].to_numpy(), a[HISTORY_COLUMNS[3:7]].to_numpy(), rtol=1e-10)
