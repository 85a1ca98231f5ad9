"""Numbers must not move when the code is reorganised: a small float64 run's history,
measures and latent diagnostics, recorded before a refactor, are recomputed and compared
to 1e-9 (``data/pinned_run_float64.json``; rerecord only for a deliberate change of the
numbers, and say why in the commit)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from intermodal.data.catalog import dataset_of
from intermodal.evaluation.evaluator import make_evaluator
from intermodal.training.config import RunConfig
from intermodal.training.trainer import Trainer

PINNED = Path(__file__).with_name("data") / "pinned_run_float64.json"


@pytest.fixture(scope="module")
def runs():
    recorded = json.loads(PINNED.read_text())
    config = RunConfig.from_dict(recorded["config"])
    dataset = dataset_of(config)
    result = Trainer(config, dataset, None, evaluate=make_evaluator(config, dataset)).run()
    computed = {"history": result.history, "results": result.results, "diagnostics": result.diagnostics}
    return recorded, computed


@pytest.mark.parametrize("table", ["history", "results", "diagnostics"])
def test_pinned_values(runs, table):
    recorded, computed = runs
    expected = pd.DataFrame(recorded[table])
    got = computed[table].reset_index(drop=True)
    # Columns added since the recording hold the same thing for every row of this run: the
    # fusion (every model is Zambelli's, concat), and the history's diverged flag.
    assert got.columns[0] == "fusion" and (got.pop("fusion") == "concat").all()
    assert list(got.columns)[: len(expected.columns)] == list(expected.columns)
    if table == "history":
        assert list(got.columns) == list(expected.columns) + ["diverged"] and not got["diverged"].any()
    assert len(got) == len(expected)
    for column in expected.columns:
        if pd.api.types.is_float_dtype(expected[column]):
            np.testing.assert_allclose(
                got[column].to_numpy(float),
                expected[column].to_numpy(float),
                rtol=1e-9,
                atol=1e-12,
                err_msg=f"{table}.{column}",
            )
        else:
            assert got[column].astype(str).tolist() == expected[column].astype(str).tolist(), f"{table}.{column}"
