"""Data sets: their description, loading, validation and training augmentation.

A data set is a table of complete rows; each row holds every modality at every time step
(by default two steps, ``t`` and ``t-1``). Its *description* names the modalities, their
sizes per time step, the column order, the value range, the muted value and the muting
patterns used to augment the training rows (Zambelli et al. 2020, Table 1). Nothing in
this module knows how many modalities there are: the iCub set is one description
(``datasets/icub-zambelli2020.json``) among any a user writes.

Description files are JSON (or TOML) with these keys; unknown keys are rejected::

    name            str
    modalities      [{"name": "joints", "size": 4}, ...]   size = values per time step
    time_steps      ["t", "t-1"]                          (default)
    columns         optional explicit column order (names as ``column_names()``);
                    default: modality-major, then time step, then index
    value_range     [-1.0, 1.0]                           (default)
    muted_value     -2.0                                  (default; outside value_range)
    muting_patterns {"complete": [], "vision-only": ["joints", ...], ...}
                    each a list of selectors: "modality" (every step) or "modality@step"
    train, test     {"file": "train.csv", "layout": "complete"|"input-target",
                     "variable": "<.mat variable or .npz key>"}   file relative to the
                    description; test is optional (then evaluation uses the train rows)
    architectures   optional {"1": {...}, ...} presets given per modality name
    source          optional {"url": "...{file}", "sha256": {"file": "hex", ...}}
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "Modality",
    "TableFile",
    "DatasetDescription",
    "Dataset",
    "DataError",
    "load_description",
    "read_table",
    "augment",
    "load_dataset",
    "builtin_description_path",
    "fetch_icub",
    "write_dataset",
]

_DATASETS_DIR = Path(__file__).with_name("datasets")


class DataError(ValueError):
    """A data file or description does not hold what was expected."""


@dataclass(frozen=True)
class Modality:
    """One sensory or motor modality: ``size`` values per time step."""

    name: str
    size: int


@dataclass(frozen=True)
class TableFile:
    """Where one part (train or test) of a data set lies, and how its columns are laid out.

    ``layout="complete"``: every row is a complete row of ``n_columns`` values.
    ``layout="input-target"``: ``2 * n_columns`` values, an (already muted) input then its
    complete target, as in the iCub training file; the complete rows are taken back out.
    """

    file: str
    layout: str = "complete"
    variable: str | None = None


@dataclass(frozen=True)
class DatasetDescription:
    """What the columns of a data set mean. See the module docstring for the file format."""

    name: str
    modalities: tuple[Modality, ...]
    muting_patterns: dict[str, tuple[str, ...]]
    time_steps: tuple[str, ...] = ("t", "t-1")
    columns: tuple[str, ...] | None = None
    value_range: tuple[float, float] = (-1.0, 1.0)
    muted_value: float = -2.0
    train: TableFile | None = None
    test: TableFile | None = None
    architectures: dict[str, dict] = field(default_factory=dict)
    source: dict | None = None
    root: Path | None = None  # folder the file paths are relative to (not serialised)

    def __post_init__(self):
        names = [m.name for m in self.modalities]
        if not names:
            raise DataError(f"description {self.name!r}: 'modalities' is empty")
        if len(set(names)) != len(names):
            raise DataError(f"description {self.name!r}: modality names repeat: {names}")
        for m in self.modalities:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", m.name):
                raise DataError(
                    f"description {self.name!r}: modality name {m.name!r} must start with a "
                    "letter and hold only letters, digits, '_' and '-'"
                )
            if int(m.size) < 1:
                raise DataError(f"description {self.name!r}: modality {m.name!r} has size {m.size}; expected >= 1")
        if len(set(self.time_steps)) != len(self.time_steps) or not self.time_steps:
            raise DataError(f"description {self.name!r}: time_steps must be distinct and non-empty")
        low, high = self.value_range
        if not low < high:
            raise DataError(f"description {self.name!r}: value_range {self.value_range} must be [low, high] with low < high")
        if low <= self.muted_value <= high:
            raise DataError(
                f"description {self.name!r}: muted_value {self.muted_value} lies inside value_range "
                f"[{low}, {high}]; it must lie outside so a muted entry cannot be mistaken for data"
            )
        if self.columns is not None and sorted(self.columns) != sorted(self.default_columns()):
            missing = sorted(set(self.default_columns()) - set(self.columns))
            extra = sorted(set(self.columns) - set(self.default_columns()))
            raise DataError(
                f"description {self.name!r}: 'columns' must list each column once; missing {missing}, unknown {extra}"
            )
        for pattern, selectors in self.muting_patterns.items():
            for s in selectors:
                self.mask(s)  # raises on an unknown selector
        if not self.muting_patterns:
            raise DataError(f"description {self.name!r}: 'muting_patterns' is empty; give at least {{\"complete\": []}}")

    # ------------------------------------------------------------------ columns
    @property
    def n_columns(self) -> int:
        return len(self.time_steps) * sum(m.size for m in self.modalities)

    @property
    def modality_names(self) -> list[str]:
        return [m.name for m in self.modalities]

    def modality(self, name: str) -> Modality:
        for m in self.modalities:
            if m.name == name:
                return m
        raise DataError(f"data set {self.name!r} has no modality {name!r}; it has {self.modality_names}")

    def default_columns(self) -> list[str]:
        return [
            f"{m.name}_{step}_{i}" for m in self.modalities for step in self.time_steps for i in range(m.size)
        ]

    def column_names(self) -> list[str]:
        """Names of the columns in file order, e.g. ``joints_t_0`` or ``touch_t-1_0``."""
        return list(self.columns) if self.columns is not None else self.default_columns()

    def mask(self, selector: str | list[str] | tuple[str, ...]) -> np.ndarray:
        """Boolean mask over the columns, shape ``[n_columns]``, for ``"modality"``
        (every time step), ``"modality@step"``, or a list of those (their union)."""
        if not isinstance(selector, str):
            out = np.zeros(self.n_columns, dtype=bool)
            for s in selector:
                out |= self.mask(s)
            return out
        name, _, step = selector.partition("@")
        modality = self.modality(name)
        if step and step not in self.time_steps:
            raise DataError(
                f"data set {self.name!r}: selector {selector!r} names time step {step!r}; "
                f"the steps are {list(self.time_steps)}"
            )
        steps = [step] if step else list(self.time_steps)
        wanted = {f"{modality.name}_{s}_{i}" for s in steps for i in range(modality.size)}
        return np.array([c in wanted for c in self.column_names()], dtype=bool)

    def columns_of(self, selector: str | list[str]) -> np.ndarray:
        """Column indices (ascending) of a selector; see :meth:`mask`."""
        return np.flatnonzero(self.mask(selector))

    def modality_of_column(self) -> np.ndarray:
        """For each column the index of its modality, shape ``[n_columns]``."""
        out = np.empty(self.n_columns, dtype=np.int64)
        for k, m in enumerate(self.modalities):
            out[self.mask(m.name)] = k
        return out

    def pattern_masks(self, patterns: list[str] | None = None) -> np.ndarray:
        """Muting masks, shape ``[n_patterns, n_columns]``, True where muted."""
        names = list(self.muting_patterns) if patterns is None else patterns
        for n in names:
            if n not in self.muting_patterns:
                raise DataError(f"data set {self.name!r} has no muting pattern {n!r}; it has {list(self.muting_patterns)}")
        return np.stack([self.mask(list(self.muting_patterns[n])) for n in names])

    # ------------------------------------------------------------ serialising
    def to_dict(self) -> dict:
        d = {
            "name": self.name,
            "modalities": [{"name": m.name, "size": m.size} for m in self.modalities],
            "time_steps": list(self.time_steps),
            "value_range": list(self.value_range),
            "muted_value": self.muted_value,
            "muting_patterns": {k: list(v) for k, v in self.muting_patterns.items()},
        }
        if self.columns is not None:
            d["columns"] = list(self.columns)
        for part in ("train", "test"):
            spec = getattr(self, part)
            if spec is not None:
                d[part] = {k: v for k, v in dataclasses.asdict(spec).items() if v is not None}
        if self.architectures:
            d["architectures"] = self.architectures
        if self.source:
            d["source"] = self.source
        return d

    @classmethod
    def from_dict(cls, d: dict, *, origin: str = "description", root: Path | None = None) -> "DatasetDescription":
        allowed = {f.name for f in dataclasses.fields(cls)} - {"root"}
        unknown = sorted(set(d) - allowed)
        if unknown:
            raise DataError(f"{origin}: unknown key(s) {unknown}; allowed keys are {sorted(allowed)}")
        for key in ("name", "modalities", "muting_patterns"):
            if key not in d:
                raise DataError(f"{origin}: missing key {key!r}")
        try:
            modalities = tuple(Modality(str(m["name"]), int(m["size"])) for m in d["modalities"])
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{origin}: 'modalities' must be a list of {{\"name\": str, \"size\": int}} ({e})") from None
        kwargs = dict(
            name=str(d["name"]),
            modalities=modalities,
            muting_patterns={str(k): tuple(v) for k, v in d["muting_patterns"].items()},
            root=root,
        )
        if "time_steps" in d:
            kwargs["time_steps"] = tuple(str(s) for s in d["time_steps"])
        if "columns" in d:
            kwargs["columns"] = tuple(d["columns"])
        if "value_range" in d:
            kwargs["value_range"] = (float(d["value_range"][0]), float(d["value_range"][1]))
        if "muted_value" in d:
            kwargs["muted_value"] = float(d["muted_value"])
        for part in ("train", "test"):
            if part in d:
                spec = d[part]
                if isinstance(spec, str):
                    spec = {"file": spec}
                bad = sorted(set(spec) - {"file", "layout", "variable"})
                if bad or "file" not in spec:
                    raise DataError(f"{origin}: {part!r} must be {{\"file\", \"layout\", \"variable\"}}; got keys {sorted(spec)}")
                if spec.get("layout", "complete") not in ("complete", "input-target"):
                    raise DataError(f"{origin}: {part}.layout is {spec['layout']!r}; expected 'complete' or 'input-target'")
                kwargs[part] = TableFile(**spec)
        if "architectures" in d:
            kwargs["architectures"] = dict(d["architectures"])
        if "source" in d:
            kwargs["source"] = dict(d["source"])
        try:
            return cls(**kwargs)
        except DataError as e:
            raise DataError(f"{origin}: {e}") from None


def read_mapping_file(path: str | os.PathLike, what: str, error: type[Exception] = None) -> dict:
    """Read a ``.json`` or ``.toml`` file into a dict; ``what`` names it in errors, raised
    as ``error`` (default :class:`DataError`)."""
    error = error or DataError
    path = Path(path)
    if path.suffix not in (".json", ".toml"):
        raise error(f"{what} {path}: expected a .json or .toml file")
    try:
        text = path.read_text()
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror}") from None
    try:
        d = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise error(f"{path}: not valid {path.suffix[1:].upper()}: {e}") from None
    if not isinstance(d, dict):
        raise error(f"{path}: expected a {what} as a JSON object / TOML table")
    return d


def load_description(path: str | os.PathLike) -> DatasetDescription:
    """Read a description from a ``.json`` or ``.toml`` file."""
    d = read_mapping_file(path, "data set description")
    return DatasetDescription.from_dict(d, origin=str(path), root=Path(path).parent)


def builtin_description_path(name: str) -> Path:
    return _DATASETS_DIR / f"{name}.json"


# ---------------------------------------------------------------------- reading
def _read_matrix(path: Path, variable: str | None, header_names: list[str] | None) -> np.ndarray:
    suffix = path.suffix.lower()
    if not path.exists():
        raise DataError(f"data file {path} does not exist")
    if suffix == ".csv":
        import pandas as pd

        with open(path, newline="") as f:
            first = f.readline().strip().split(",")
        try:
            [float(c) for c in first]
            has_header = False  # the first row is data
        except ValueError:
            has_header = True
        frame = pd.read_csv(path, header=0 if has_header else None)
        if has_header:
            if header_names is not None:
                missing = [c for c in header_names if c not in frame.columns]
                if missing:
                    unknown = [c for c in frame.columns if c not in header_names]
                    raise DataError(
                        f"{path}: the header lacks column(s) {missing[:5]}{' ...' if len(missing) > 5 else ''}"
                        f"{f' and has unknown {unknown[:5]}' if unknown else ''}; expected the {len(header_names)} "
                        f"column names of the description, like {header_names[:3]}"
                    ) from None
                frame = frame[header_names]  # the description's order, whatever the file's
        non_numeric = [c for c in frame.columns if not np.issubdtype(frame[c].dtype, np.number)]
        if non_numeric:
            raise DataError(f"{path}: column {non_numeric[0]!r} is not numeric")
        return frame.to_numpy(dtype=np.float64)
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            key = variable or (keys[0] if len(keys) == 1 else None)
            if key is None or key not in keys:
                raise DataError(f"{path}: name the array with 'variable' (one of {keys})")
            return np.asarray(z[key], dtype=np.float64)
    if suffix == ".npy":
        return np.asarray(np.load(path, allow_pickle=False), dtype=np.float64)
    if suffix == ".mat":
        import scipy.io

        try:
            mat = scipy.io.loadmat(path)
        except Exception as e:  # scipy raises several types for a damaged file
            raise DataError(f"{path}: not a readable MATLAB file ({e})") from None
        keys = [k for k in mat if not k.startswith("__")]
        key = variable or (keys[0] if len(keys) == 1 else None)
        if key is None or key not in keys:
            raise DataError(f"{path}: name the MATLAB variable with 'variable' (one of {keys})")
        return np.asarray(mat[key], dtype=np.float64)
    raise DataError(f"{path}: unsupported file type {suffix!r}; expected .csv, .npz, .npy or .mat")


def _check_values(rows: np.ndarray, desc: DatasetDescription, path: Path, *, allow_muted: bool = False) -> None:
    names = desc.column_names()
    bad = ~np.isfinite(rows)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(f"{path}: row {r}, column {c} ({names[c % len(names)]}) is {rows[r, c]}; expected a finite number")
    low, high = desc.value_range
    outside = (rows < low) | (rows > high)
    if allow_muted:
        outside &= rows != desc.muted_value
    if outside.any():
        r, c = np.argwhere(outside)[0]
        raise DataError(
            f"{path}: row {r}, column {c} ({names[c % len(names)]}) is {rows[r, c]:g}; "
            f"expected values in the description's value_range [{low:g}, {high:g}]"
            + (f" or the muted value {desc.muted_value:g}" if allow_muted else "")
        )


def read_table(spec: TableFile, desc: DatasetDescription, root: Path | None = None) -> np.ndarray:
    """Read one part of a data set as complete rows, shape ``[rows, n_columns]``, float64.

    Checks the column count, finiteness and the value range, and names the file, row and
    column of the first offence.
    """
    path = Path(spec.file)
    if not path.is_absolute():
        path = (root or desc.root or Path.cwd()) / path
    names = desc.column_names()
    header = names if spec.layout == "complete" else [f"input_{c}" for c in names] + names
    matrix = _read_matrix(path, spec.variable, header)
    if matrix.ndim != 2:
        raise DataError(f"{path}: expected a 2-D table, got shape {matrix.shape}")
    n = desc.n_columns
    expected = n if spec.layout == "complete" else 2 * n
    if matrix.shape[1] != expected:
        raise DataError(
            f"{path}: has {matrix.shape[1]} columns; the description {desc.name!r} expects {expected} "
            f"({'complete rows' if spec.layout == 'complete' else 'input then target'} of "
            f"{', '.join(f'{m.name}×{m.size}' for m in desc.modalities)} at steps {list(desc.time_steps)})"
        )
    if matrix.shape[0] == 0:
        raise DataError(f"{path}: has no rows")
    if spec.layout == "complete":
        _check_values(matrix, desc, path)
        return matrix
    inputs, targets = matrix[:, :n], matrix[:, n:]
    _check_values(targets, desc, path)
    _check_values(inputs, desc, path, allow_muted=True)
    # The complete rows are those whose input mutes nothing; each sample appears once there.
    complete = ~(inputs == desc.muted_value).any(axis=1)
    if not complete.any():
        raise DataError(f"{path}: no row has a complete (unmuted) input, so the complete rows cannot be recovered")
    return targets[complete]


def augment(complete: np.ndarray, desc: DatasetDescription, patterns: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Training rows from complete rows: each row once per muting pattern (Zambelli Table 1).

    Parameters
    ----------
    complete : array ``[n, n_columns]``
    patterns : pattern names, default all of the description's, in its order.

    Returns
    -------
    inputs, targets : arrays ``[n_patterns * n, n_columns]``, pattern-major (block ``k`` is
        every row with pattern ``k`` applied); muted entries of ``inputs`` hold ``muted_value``.
    """
    masks = desc.pattern_masks(patterns)
    targets = np.tile(complete, (len(masks), 1))
    inputs = targets.copy()
    block = np.repeat(masks, len(complete), axis=0)
    inputs[block] = desc.muted_value
    return inputs, targets


# ---------------------------------------------------------------------- data sets
@dataclass
class Dataset:
    """Complete rows of a data set with its description.

    ``train``: ``[n_train, n_columns]``; ``test``: ``[n_test, n_columns]`` (time-ordered
    where the source is), float64 in the description's value range.
    """

    description: DatasetDescription
    train: np.ndarray
    test: np.ndarray
    origin: str = ""

    def training_rows(self, patterns: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        return augment(self.train, self.description, patterns)


def _cache_dir() -> Path:
    env = os.environ.get("INTERMODAL_DATA")
    if env:
        return Path(env)
    import pooch

    return Path(pooch.os_cache("intermodal"))


def fetch_icub(desc: DatasetDescription | None = None) -> Path:
    """Download (once) the iCub files from their pinned address, check their SHA-256,
    and return the cache folder that holds them (``$INTERMODAL_DATA`` or the user cache)."""
    import pooch

    desc = desc or load_description(builtin_description_path("icub-zambelli2020"))
    cache = _cache_dir() / desc.name
    url, hashes = desc.source["url"], desc.source["sha256"]
    for fname, sha in hashes.items():
        try:
            pooch.retrieve(url.format(file=fname), known_hash=f"sha256:{sha}", fname=fname, path=cache, progressbar=False)
        except ValueError as e:  # pooch's checksum mismatch
            raise DataError(f"{cache / fname}: {e}".strip()) from None
        except Exception as e:  # no network, HTTP error, ...
            raise DataError(
                f"cannot fetch {fname} from {url.format(file=fname)} ({type(e).__name__}: {e}).\n"
                f"Either connect to the internet once (the files are then cached in {cache}), "
                f"or put final_database_train.mat and final_database_test.mat in a folder and pass "
                f"--data-dir FOLDER (or set INTERMODAL_DATA to a folder that holds '{desc.name}/<files>')."
            ) from None
    return cache


def _verify_sha256(folder: Path, desc: DatasetDescription) -> None:
    import hashlib

    for fname, sha in (desc.source or {}).get("sha256", {}).items():
        path = folder / fname
        if not path.exists():
            raise DataError(f"{path} does not exist; --data-dir must hold {sorted(desc.source['sha256'])}")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != sha:
            raise DataError(f"{path}: SHA-256 is {digest}; expected {sha} (the pinned file). Is it damaged or another version?")


def load_dataset(data: str = "sim", data_dir: str | os.PathLike | None = None, sim_options: dict | None = None) -> Dataset:
    """Load a data set by name or description path.

    ``data``: ``"sim"`` (the embedded simulator; ``sim_options`` go to it), ``"icub"``
    (fetched and cached, or read from ``data_dir``), or the path of a description file
    (``.json``/``.toml``) whose ``train``/``test`` files lie beside it or in ``data_dir``.
    """
    if data == "sim":
        from . import sim

        return sim.simulate(**(sim_options or {}))
    if sim_options:
        raise DataError(f"simulator options {sorted(sim_options)} apply only to --data sim")
    if data == "icub":
        desc = load_description(builtin_description_path("icub-zambelli2020"))
        if data_dir is not None:
            root = Path(data_dir)
            _verify_sha256(root, desc)
        else:
            root = fetch_icub(desc)
    else:
        path = Path(data)
        if path.is_dir():
            candidates = sorted(path.glob("*.json")) + sorted(path.glob("*.toml"))
            if len(candidates) != 1:
                raise DataError(f"{path}: expected one description file (*.json or *.toml) in the folder, found {len(candidates)}")
            path = candidates[0]
        if not path.exists():
            raise DataError(f"--data {data!r}: not 'sim', 'icub' or an existing description file")
        desc = load_description(path)
        root = Path(data_dir) if data_dir is not None else path.parent
    if desc.train is None:
        raise DataError(f"description {desc.name!r} names no 'train' file")
    train = read_table(desc.train, desc, root)
    test = read_table(desc.test, desc, root) if desc.test is not None else train
    return Dataset(desc, train, test, origin=str(root))


def write_dataset(dataset: Dataset, out: str | os.PathLike, *, float_format: str = "%.17g") -> Path:
    """Write ``train.csv``, ``test.csv`` (header = column names) and ``description.json``
    into ``out``, each through a temporary file so nothing half-written is left. Loading
    the folder back with :func:`load_dataset` gives identical arrays."""
    import pandas as pd

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    desc = dataclasses.replace(
        dataset.description,
        train=TableFile("train.csv"),
        test=TableFile("test.csv"),
        source=None,
    )
    names = desc.column_names()
    for part, rows in (("train", dataset.train), ("test", dataset.test)):
        atomic_write(out / f"{part}.csv", lambda p, rows=rows: pd.DataFrame(rows, columns=names).to_csv(p, index=False, float_format=float_format))
    atomic_write(out / "description.json", lambda p: Path(p).write_text(json.dumps(desc.to_dict(), indent=2) + "\n"))
    return out / "description.json"


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``: readers never see half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
