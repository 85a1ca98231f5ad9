"""Which data set a run uses: the embedded simulator, the real iCub data (fetched from its
pinned address, checked and cached), scikit-learn's handwritten digits (shipped with
scikit-learn, :mod:`intermodal.data.digits`) or a user's description file; and writing a data set
out as CSV files with its description. :mod:`intermodal.data.reading` reads and checks any one
data set; this module chooses among them.
"""

from __future__ import annotations

import os
import shutil
from functools import partial
from pathlib import Path

from ..errors import ConfigError, DataError, Terminated
from ..files import atomic_write, sha256, write_json
from . import sim as simulator
from .dataset import Dataset
from .description import DatasetDescription, TableFile, builtin_description_path
from .digits import DIGITS, load_digits
from .reading import load_description, read_table
from .sim_truth import with_ground_truth

__all__ = ["load_dataset", "dataset_of", "fetch_icub", "write_dataset", "ICUB", "BUILTIN_DATA", "DESCRIPTION_FILE"]

ICUB = "icub-zambelli2020"
# The data sets --data names (anything else is a description file's path).
BUILTIN_DATA = ("sim", "icub", DIGITS)
# The name of a description beside its data (write_dataset), and in a run folder.
DESCRIPTION_FILE = "description.json"


def _cache_dir() -> Path:
    env = os.environ.get("INTERMODAL_DATA")
    if env:
        return Path(env)
    import pooch

    return Path(pooch.os_cache("intermodal"))


def fetch_icub(description: DatasetDescription | None = None) -> Path:
    """Download (once) the iCub files from their pinned address, check their SHA-256,
    and return the cache folder that holds them (``$INTERMODAL_DATA`` or the user cache)."""
    import pooch

    description = description or load_description(builtin_description_path(ICUB))
    cache = _cache_dir() / description.name
    if description.source is None:
        raise DataError(f"data set {description.name!r}: its description names no source to download from")
    url, hashes = description.source["url"], description.source["sha256"]
    for fname, sha in hashes.items():
        try:
            pooch.retrieve(
                url.format(file=fname), known_hash=f"sha256:{sha}", fname=fname, path=cache, progressbar=False
            )
        except ValueError as e:  # pooch's checksum mismatch
            raise DataError(f"{cache / fname}: {e}".strip()) from None
        except Terminated:  # SIGTERM while fetching (the command line's handler): not the network's fault
            raise
        except Exception as e:  # no network, HTTP error, ...
            raise DataError(
                f"cannot fetch {fname} from {url.format(file=fname)} ({type(e).__name__}: {e}).\n"
                f"Either connect to the internet once (the files are then cached in {cache}), "
                f"or put final_database_train.mat and final_database_test.mat in a folder and pass "
                f"--data-dir FOLDER (or set INTERMODAL_DATA to a folder that holds '{description.name}/<files>')."
            ) from None
    return cache


def _verify_sha256(folder: Path, description: DatasetDescription) -> None:
    hashes = (description.source or {}).get("sha256", {})
    for fname, sha in hashes.items():
        path = folder / fname
        if not path.exists():
            raise DataError(f"{path} does not exist; --data-dir must hold {sorted(hashes)}")
        digest = sha256(path)
        if digest != sha:
            raise DataError(
                f"{path}: SHA-256 is {digest}; expected {sha} (the pinned file). Is it damaged or another version?"
            )


def load_dataset(data: str = "sim", data_dir: str | os.PathLike | None = None, sim: dict | None = None) -> Dataset:
    """Load a data set by name or description path.

    ``data``: ``"sim"`` (the embedded simulator; ``sim`` holds its options, docs/simulator.md), ``"icub"``
    (fetched and cached, or read from ``data_dir``), ``"digits"`` (scikit-learn's 8×8
    handwritten digits, offline; docs/data.md), or the path of a description file
    (``.json``/``.toml``) whose ``train``/``test`` files lie beside it or in ``data_dir``.
    """
    if not isinstance(data, (str, os.PathLike)):
        raise DataError(f"data {data!r}: expected 'sim', 'icub', 'digits' or the path of a description file")
    if data == "sim":
        if data_dir is not None:
            raise DataError(
                f"--data-dir {data_dir}: the simulator makes its data; --data-dir applies to 'icub' "
                "or a description file"
            )
        return simulator.simulate(**(sim or {}))
    if sim:
        raise DataError(f"simulator options {sorted(sim)} apply only to --data sim")
    if data == DIGITS:
        if data_dir is not None:
            raise DataError(f"--data-dir {data_dir}: the digits come with scikit-learn; --data-dir applies to 'icub'")
        return load_digits()
    if data == "icub":
        description = load_description(builtin_description_path(ICUB))
        if data_dir is not None:
            root = Path(data_dir)
            _verify_sha256(root, description)
        else:
            root = fetch_icub(description)
    else:
        path = Path(data)
        if path.is_dir():
            candidates = sorted(path.glob("*.json")) + sorted(path.glob("*.toml"))
            if len(candidates) != 1:
                raise DataError(
                    f"{path}: expected one description file (*.json or *.toml) in the folder, found {len(candidates)}"
                )
            path = candidates[0]
        if not path.exists():
            raise DataError(f"--data {data!r}: not 'sim', 'icub', 'digits' or an existing description file")
        description = load_description(path)
        root = Path(data_dir) if data_dir is not None else path.parent
    if description.train is None:
        raise DataError(f"description {description.name!r} names no 'train' file")
    train = read_table(description.train, description, root)
    test = read_table(description.test, description, root) if description.test is not None else train
    return Dataset(description, train, test, origin=str(root))


def dataset_of(config) -> Dataset:
    """The data set a run config names (its ``data``, ``data_dir`` and ``sim`` options; for
    the simulator with ``ground_truth``, the distractors its checks need are added unless
    the sim options name distractors), with the output families its ``likelihoods`` set."""
    sim_options = config.sim
    if config.data == "sim" and getattr(config, "ground_truth", False):
        sim_options = with_ground_truth(sim_options)
    dataset = load_dataset(config.data, config.data_dir, sim_options)
    return dataset.with_likelihoods(getattr(config, "likelihoods", None) or {}, origin="--likelihood")


def write_dataset(dataset: Dataset, out: str | os.PathLike, *, float_format: str = "%.17g") -> Path:
    """Write ``train.csv``, ``test.csv`` (header = column names) and ``description.json``
    into ``out``, each through a temporary file so nothing half-written is left. Loading
    the folder back with :func:`load_dataset` gives identical arrays.

    ``out`` must be absent or empty, as a run's ``--out`` must (a folder that holds files is
    refused with a :class:`~intermodal.errors.ConfigError` naming them, so that no file of
    its owner's is replaced)."""
    import pandas as pd

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file; expected a folder to write the data set into")
    held = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if held:
        raise ConfigError(
            f"--out {out}: the folder exists and is not empty (it holds {', '.join(held[:3])}"
            f"{', ...' if len(held) > 3 else ''}); choose a new or empty folder, so that no file in it is replaced"
        )
    made = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot create the folder ({e.strerror})") from None
    description = dataset.description.replace(train=TableFile("train.csv"), test=TableFile("test.csv"), source=None)
    names = description.column_names()
    written = [out / "train.csv", out / "test.csv", out / DESCRIPTION_FILE]
    try:
        for part, rows in (("train", dataset.train), ("test", dataset.test)):
            frame = pd.DataFrame(rows, columns=names)
            atomic_write(out / f"{part}.csv", partial(frame.to_csv, index=False, float_format=float_format))
        write_json(out / DESCRIPTION_FILE, description.to_dict())
    except BaseException:  # a full disk, SIGTERM: leave no part of a data set to block a rerun
        for path in written:
            path.unlink(missing_ok=True)
        if made:
            shutil.rmtree(out, ignore_errors=True)
        raise
    return out / DESCRIPTION_FILE
