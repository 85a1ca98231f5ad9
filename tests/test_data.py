from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from intermodal.data.catalog import fetch_icub, load_dataset, write_dataset
from intermodal.data.dataset import augment
from intermodal.data.description import builtin_description_path
from intermodal.data.reading import load_description
from intermodal.errors import DataError


# ------------------------------------------------------------------ the iCub set
def test_icub_augmentation_rebuilds_the_training_file_exactly(icub, icub_dir):
    raw = scipy.io.loadmat(icub_dir / "final_database_train.mat")["final_database_train"]
    inputs, targets = icub.training_rows()
    assert icub.train.shape == (1845, 28)
    assert icub.test.shape == (1487, 28)
    np.testing.assert_array_equal(inputs, raw[:, :28])
    np.testing.assert_array_equal(targets, raw[:, 28:])


def test_icub_layout_matches_its_readme(icub):
    desc = icub.description
    assert desc.columns_of("joints").tolist() == list(range(8))
    assert desc.columns_of("vision@t-1").tolist() == [12, 13, 14, 15]
    assert desc.columns_of("touch").tolist() == [16, 17]
    assert desc.columns_of("motor@t").tolist() == [20, 21, 22, 23]
    # t-1 columns of row i+1 are the t columns of row i in the time-ordered test file
    for m in desc.modality_names:
        np.testing.assert_array_equal(
            icub.test[1:, desc.columns_of(f"{m}@t-1")], icub.test[:-1, desc.columns_of(f"{m}@t")]
        )


def test_icub_checksum_mismatch_is_refused(tmp_path, icub_dir):
    for f in icub_dir.glob("*.mat"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    damaged = tmp_path / "final_database_test.mat"
    damaged.write_bytes(damaged.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(DataError, match="final_database_test.mat: SHA-256 is .*expected bae0eae2"):
        load_dataset("icub", data_dir=tmp_path)


# ------------------------------------------------------------------ fetching
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def file_server(tmp_path):
    """An HTTP server on loopback serving tmp_path/served."""
    root = tmp_path / "served"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _served_description(root: Path, base_url: str, payload: dict[str, bytes], hashes: dict[str, str] | None = None):
    for name, data in payload.items():
        (root / name).write_bytes(data)
    desc = load_description(builtin_description_path("icub-zambelli2020"))
    hashes = hashes or {n: hashlib.sha256(d).hexdigest() for n, d in payload.items()}
    return dataclasses.replace(desc, source={"url": base_url + "/{file}", "sha256": hashes})


def test_fetch_downloads_checks_and_caches(file_server, tmp_path, monkeypatch):
    root, url = file_server
    monkeypatch.setenv("INTERMODAL_DATA", str(tmp_path / "cache"))
    desc = _served_description(root, url, {"a.mat": b"first", "b.mat": b"second"})
    folder = fetch_icub(desc)
    assert (folder / "a.mat").read_bytes() == b"first"
    (root / "a.mat").unlink()  # a second fetch must use the cache, not the server
    assert fetch_icub(desc) == folder


def test_fetch_checksum_mismatch_names_the_file_and_leaves_nothing(file_server, tmp_path, monkeypatch):
    root, url = file_server
    monkeypatch.setenv("INTERMODAL_DATA", str(tmp_path / "cache"))
    desc = _served_description(root, url, {"a.mat": b"tampered"}, hashes={"a.mat": "0" * 64})
    with pytest.raises(DataError, match="a.mat"):
        fetch_icub(desc)
    assert not (tmp_path / "cache" / desc.name / "a.mat").exists()


def test_fetch_without_network_names_both_ways_out(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERMODAL_DATA", str(tmp_path / "cache"))
    desc = load_description(builtin_description_path("icub-zambelli2020"))
    desc = dataclasses.replace(desc, source={"url": "http://127.0.0.1:9/{file}", "sha256": {"a.mat": "0" * 64}})
    with pytest.raises(DataError) as info:
        fetch_icub(desc)
    assert "--data-dir" in str(info.value) and "INTERMODAL_DATA" in str(info.value)


# ------------------------------------------------------------------ descriptions
def test_augment_mutes_exactly_the_pattern_columns(tiny_description):
    desc = tiny_description
    rows = np.linspace(-1, 1, 4 * desc.n_columns).reshape(4, desc.n_columns)
    inputs, targets = augment(rows, desc)
    assert inputs.shape == (12, desc.n_columns)
    np.testing.assert_array_equal(targets, np.tile(rows, (3, 1)))
    muted = inputs == desc.muted_value
    assert not muted[:4].any()
    np.testing.assert_array_equal(muted[4:8], np.tile(desc.mask(["arm", "bump"]), (4, 1)))
    np.testing.assert_array_equal(muted[8:], np.tile(desc.mask(["arm@t", "bump@t", "eye@t"]), (4, 1)))
    assert desc.mask(["arm@t", "bump@t", "eye@t"]).sum() == desc.n_columns // 2


def test_muted_value_inside_range_is_refused(tiny_description):
    with pytest.raises(DataError, match="muted_value 0.5 lies inside value_range"):
        dataclasses.replace(tiny_description, muted_value=0.5)


def test_unknown_description_key_is_refused(tmp_path, tiny_description):
    d = tiny_description.to_dict()
    d["colour"] = "blue"
    path = tmp_path / "d.json"
    path.write_text(json.dumps(d))
    with pytest.raises(DataError, match=r"d.json: colour: unknown key"):
        load_description(path)


def test_unknown_selector_is_refused(tiny_description):
    with pytest.raises(DataError, match="no modality 'nose'"):
        dataclasses.replace(tiny_description, muting_patterns={"p": ("nose",)})
    with pytest.raises(DataError, match="time step 't-2'"):
        tiny_description.mask("arm@t-2")


# ------------------------------------------------------------------ own data
def _own(tmp_path: Path, desc, train: np.ndarray, fmt: str = "csv", **extra) -> Path:
    if fmt == "csv":
        import pandas as pd

        pd.DataFrame(train, columns=desc.column_names()).to_csv(tmp_path / "train.csv", index=False)
        name = "train.csv"
    elif fmt == "npz":
        np.savez(tmp_path / "train.npz", rows=train)
        name = "train.npz"
    else:
        scipy.io.savemat(tmp_path / "train.mat", {"rows": train})
        name = "train.mat"
    d = desc.to_dict()
    d["train"] = {"file": name, **extra}
    (tmp_path / "desc.json").write_text(json.dumps(d))
    return tmp_path / "desc.json"


@pytest.mark.parametrize("fmt", ["csv", "npz", "mat"])
def test_own_data_in_each_format(tmp_path, fmt, tiny_description):
    rows = np.random.default_rng(1).uniform(-1, 1, size=(50, tiny_description.n_columns))
    ds = load_dataset(str(_own(tmp_path, tiny_description, rows, fmt)))
    np.testing.assert_array_equal(ds.train, rows)
    assert ds.test is ds.train  # no test part: evaluation falls back to the training rows


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda a: a[:, :-1], r"train.csv: the header lacks column\(s\) \['eye_t-1_2'\]"),
        (lambda a: np.where(np.arange(a.size).reshape(a.shape) == 7, np.nan, a), r"row 0, column 7 \(eye_t_1\) is nan"),
        (
            lambda a: np.where(np.arange(a.size).reshape(a.shape) == 13, 1.5, a),
            r"row 1, column 1 \(arm_t_1\) is 1.5; expected values in",
        ),
    ],
)
def test_bad_own_data_names_file_row_and_column(tmp_path, damage, message, tiny_description):
    rows = np.zeros((5, 12))
    desc = tiny_description
    bad = damage(rows)
    import pandas as pd

    names = desc.column_names()[: bad.shape[1]]
    pd.DataFrame(bad, columns=names).to_csv(tmp_path / "train.csv", index=False)
    d = desc.to_dict()
    d["train"] = {"file": "train.csv"}
    (tmp_path / "desc.json").write_text(json.dumps(d))
    with pytest.raises(DataError, match=message):
        load_dataset(str(tmp_path / "desc.json"))


def test_headerless_csv_with_wrong_column_count(tmp_path, tiny_description):
    np.savetxt(tmp_path / "train.csv", np.zeros((3, 11)), delimiter=",")
    d = tiny_description.to_dict()
    d["train"] = {"file": "train.csv"}
    (tmp_path / "desc.json").write_text(json.dumps(d))
    with pytest.raises(DataError, match=r"train.csv: has 11 columns; the description 'tiny' expects 12"):
        load_dataset(str(tmp_path / "desc.json"))


def test_write_then_load_gives_identical_rows(tmp_path, tiny):
    path = write_dataset(tiny, tmp_path / "out")
    back = load_dataset(str(path))
    np.testing.assert_array_equal(back.train, tiny.train)
    np.testing.assert_array_equal(back.test, tiny.test)
    assert back.description.to_dict()["modalities"] == tiny.description.to_dict()["modalities"]
    assert not list((tmp_path / "out").glob(".*tmp*"))


# ---------------------------------------------------------------------- the digits
def test_digits_are_three_modalities_of_one_step_with_a_fixed_split():
    """--data digits: scikit-learn's 1 797 images as top and bottom halves (Bernoulli, ink
    / 16) and the label (categorical, one-hot), one time step, split 1 438 / 359 by a fixed
    permutation; every pixel and label where the source has it."""
    from sklearn.datasets import load_digits as sklearn_digits

    import intermodal as im
    from intermodal.data.digits import SPLIT_SEED

    data = im.load_dataset("digits")
    d = data.description
    assert d.time_steps == ("t",) and d.value_range == (0.0, 1.0)
    assert d.likelihoods == {"top": "bernoulli", "bottom": "bernoulli", "label": "categorical"}
    assert data.train.shape == (1438, 74) and data.test.shape == (359, 74)
    source = sklearn_digits()
    order = np.random.default_rng(SPLIT_SEED).permutation(1797)
    k = order[1438]  # the first test row
    np.testing.assert_array_equal(data.test[0, :64], source.data[k] / 16.0)
    assert data.test[0, 64:].argmax() == source.target[k] and data.test[0, 64:].sum() == 1
    assert set(d.muting_patterns) == {
        "complete",
        "top-only",
        "bottom-only",
        "label-only",
        "no-top",
        "no-bottom",
        "no-label",
    }
    # the same rows every time
    np.testing.assert_array_equal(im.load_dataset("digits").train, data.train)


def test_digits_refuse_a_data_folder_and_say_what_they_need(monkeypatch):
    import builtins

    import intermodal as im

    with pytest.raises(im.IntermodalError, match="--data-dir .*the digits come with scikit-learn"):
        im.load_dataset("digits", "somewhere")
    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(im.IntermodalError, match=r"needs scikit-learn.*intermodal\[digits\]"):
        im.load_dataset("digits")
