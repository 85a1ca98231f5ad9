"""Shared fixtures: the iCub copy beside the project (skipped where absent), a small
synthetic data set that no test needs to download, and the synergy control left to the
tests about it."""

from __future__ import annotations

import sys
from pathlib import Path

# MultiVae (the adapters' tests) imports torchvision when it loads. The package registry's
# torchvision wheels are CUDA builds that cannot load beside this machine's CPU torch, so
# where the real one cannot be imported the tests put a stand-in on the path: it has the few
# names MultiVae imports and refuses to be used (tests/_torchvision_shim/torchvision). This
# lives in the tests only; the library never imports torchvision.
try:
    import torchvision  # noqa: F401
except Exception:  # absent, or a wheel that cannot load (RuntimeError), leaving half-imported modules
    for _name in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
        del sys.modules[_name]
    sys.path.insert(0, str(Path(__file__).resolve().parent / "_torchvision_shim"))

import numpy as np
import pytest
import torch

from intermodal.data.dataset import Dataset
from intermodal.data.description import DatasetDescription, Modality

# The tests' models are tiny: one thread each avoids oversubscribing a small machine
# when pytest shares it with other work.
torch.set_num_threads(1)

ICUB_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "icub-zambelli2020"


@pytest.fixture(scope="session")
def icub_dir() -> Path:
    if not (ICUB_DIR / "final_database_train.mat").exists():
        pytest.skip(f"the iCub data copy is not at {ICUB_DIR} (it lies in ../shared beside the project)")
    return ICUB_DIR


@pytest.fixture(scope="session")
def icub(icub_dir):
    from intermodal.data.catalog import load_dataset

    return load_dataset("icub", data_dir=icub_dir)


@pytest.fixture
def tiny_description() -> DatasetDescription:
    """Three modalities of sizes 2, 1, 3 at steps t and t-1: nothing like the iCub set."""
    return _tiny_description()


def _tiny_description() -> DatasetDescription:
    return DatasetDescription(
        name="tiny",
        modalities=(Modality("arm", 2), Modality("bump", 1), Modality("eye", 3)),
        muting_patterns={"complete": (), "eye-only": ("arm", "bump"), "past": ("arm@t", "bump@t", "eye@t")},
    )


@pytest.fixture
def tiny() -> Dataset:
    desc = _tiny_description()
    rng = np.random.default_rng(0)
    train = np.tanh(rng.normal(size=(400, desc.n_columns)))
    test = np.tanh(rng.normal(size=(150, desc.n_columns)))
    return Dataset(desc, train, test, origin="tiny")


# A study on the simulator with the presets' options trains the synergy control first, a
# minute of training (intermodal.study.controls). The many tests of studies that are about
# something else do not pay for it: in this process it trains only in tests marked
# ``controls``; the tests that start a study in a subprocess pass --ground-truth-controls false.
@pytest.fixture(autouse=True)
def _controls_only_where_asked(request, monkeypatch):
    if request.node.get_closest_marker("controls") is None:
        from intermodal.study import controls

        monkeypatch.setattr(controls, "control_configs", lambda config, dataset=None: {})
