"""The feed-forward baselines Zambelli et al. (2020) compared the multimodal VAE with.

Two plain networks, trained on the same complete training rows (``Dataset.train``) and
seeds as the VAEs, each mapping known columns to unknown ones with a mean squared error:

* the **forward model**: perception and motor command at ``t-1`` -> perception at ``t``;
  one tanh hidden layer as wide as its input, a linear output. It sits beside the VAE's
  ``forward`` test (everything at ``t-1`` given).
* the **inverse model**: perception at ``t-1`` and at ``t`` -> motor command at ``t-1``;
  two tanh hidden layers (150 wide, as the original), a linear output. It sits beside the
  ``control`` test. As in the original it sees every perception column at both steps, more
  than the control test gives the VAE; ``inverse-model-muted`` feeds it the control test's
  information only (the other perception columns hold the muted value), as the original's
  "control task" test of it did.

Which modalities are the motor command: the description's ``motor_modalities`` when it
has that attribute and it is set, else ``["motor"]``; perception is every other modality.
"Current" and "previous" are the description's first and second time steps.

As the original, the layers have no biases (``bias=False``; set ``bias=True`` for
biases), weights start uniform in ±sqrt(6 / (fan_in + fan_out)) (TensorFlow's default,
which the original used), and Adam minimises the mean over rows and output columns of the
squared error. Every seed's networks train together as one batched computation, each
from its own generator (weights and shuffles come from the seed alone, so a seed trained
alone gives the same networks), on the CPU.

Files (a folder the caller names, e.g. a run folder's ``baselines/``): ``baselines.safetensors``
(weights ``<network>.weights.<layer> [seeds, in, out]``, biases, the training mean) and
``baselines.json`` (hyper-parameters, seeds, columns, the description, the weights' SHA-256).
No pickle; each file is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from ..data.dataset import Dataset
from ..data.description import DatasetDescription
from ..errors import ConfigError, DataError, RunFolderError
from ..files import atomic_write, sha256, write_json
from ..model.protocol import description_for
from ..options import whole_number
from ..streams import Purpose, torch_generator
from .predict import given_mask, two_steps
from .prediction_tests import ERROR_COLUMNS, Tests, applicable_tests, normalise_tests

__all__ = [
    "NetworkOptions",
    "FORWARD_DEFAULTS",
    "INVERSE_DEFAULTS",
    "ORIGINAL_FORWARD",
    "ORIGINAL_INVERSE",
    "Network",
    "Baselines",
    "motor_modalities",
    "train_baselines",
    "save_baselines",
    "load_baselines",
    "baseline_errors",
]

FORMAT_VERSION = 1
WEIGHTS_FILE = "baselines.safetensors"
SETTINGS_FILE = "baselines.json"


@dataclass(frozen=True)
class NetworkOptions:
    """Shape and training of one baseline network.

    ``hidden``: widths of the tanh hidden layers; None = the network's own default (the
    forward model: one layer as wide as its input; the inverse model: two of 150).
    ``epochs``: passes over the training rows, each in a fresh shuffle, cut into
    ``batch_size`` rows (the remainder is dropped, as the original and the VAE trainer).
    ``lr``: Adam's learning rate. ``bias``: add biases (the original has none). The field
    defaults are the forward model's (:data:`FORWARD_DEFAULTS`).
    """

    hidden: tuple[int, ...] | None = None
    epochs: int = 100
    lr: float = 1e-2
    batch_size: int = 100
    bias: bool = False


# The defaults train in a few seconds on 2 CPU cores for 1845 rows x 3 seeds (the original's
# settings, ORIGINAL_*, take a minute or more): batches of 100 make 18 Adam steps an epoch
# where the original's batch of 1000 out of 1845 rows made one, so far fewer epochs reach
# the same fit. Measured on the iCub and simulator rows: docs/prediction.md.
FORWARD_DEFAULTS = NetworkOptions(hidden=None, epochs=100, lr=1e-2, batch_size=100)
INVERSE_DEFAULTS = NetworkOptions(hidden=(150, 150), epochs=40, lr=3e-3, batch_size=100)
# The original code's settings (ff_forward_model.py, ff_inverse_model.py): Adam with
# TensorFlow's default rate 1e-3 for the forward model and 1e-2 for the inverse model.
ORIGINAL_FORWARD = NetworkOptions(hidden=None, epochs=5000, lr=1e-3, batch_size=1000)
ORIGINAL_INVERSE = NetworkOptions(hidden=(150, 150), epochs=2000, lr=1e-2, batch_size=1000)


# ---------------------------------------------------------------------- columns
def motor_modalities(description: DatasetDescription) -> tuple[list[str], list[str]]:
    """``(motor, perception)`` modality names of a data set (see the module docstring).
    Raises DataError when the data set has no motor modality or nothing else."""
    motor, have = description.motor, description.modality_names
    if not motor:
        raise DataError(
            f"data set {description.name!r} has no motor modality 'motor' (its modalities are {have}); the "
            "forward and inverse models need the motor command: name it with the description's 'motor_modalities'"
        )
    perception = [m for m in have if m not in motor]
    if not perception:
        raise DataError(
            f"data set {description.name!r}: every modality is a motor command; the baselines need perception too"
        )
    return motor, perception


def _network_columns(description: DatasetDescription) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Input and output column indices (ascending, i.e. the description's column order) of
    each network."""
    current, previous = two_steps(description, "the baselines")
    motor, perception = motor_modalities(description)
    at = lambda names, step: [f"{m}@{step}" for m in names]  # noqa: E731
    cols = description.columns_of
    return {
        "forward-model": (cols(at(perception, previous) + at(motor, previous)), cols(at(perception, current))),
        "inverse-model": (cols(perception), cols(at(motor, previous))),
    }


# ---------------------------------------------------------------------- networks
@dataclass
class Network:
    """One baseline for every seed, with stacked parameters.

    ``weights[k]``: ``[n_seeds, in, out]`` of layer ``k``; ``biases[k]``: ``[n_seeds, 1,
    out]`` or None. Hidden layers are tanh, the output linear. ``inputs``/``outputs``:
    column indices into a complete row; ``final_mse``: each seed's mean squared error over
    its last epoch's batches (data units squared).
    """

    name: str
    inputs: np.ndarray
    outputs: np.ndarray
    weights: list[torch.Tensor]
    biases: list[torch.Tensor] | None
    options: NetworkOptions
    final_mse: np.ndarray

    @property
    def n_seeds(self) -> int:
        return int(self.weights[0].shape[0])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Outputs ``[n_seeds, n_rows, n_outputs]`` for inputs ``[n_rows, n_inputs]`` (the
        same for every seed) or ``[n_seeds, n_rows, n_inputs]``, float64, data units."""
        w = self.weights[0]
        t = torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=w.dtype)
        if t.shape[-1] != w.shape[1]:
            raise DataError(f"{self.name}: inputs have {t.shape[-1]} columns; it takes {w.shape[1]}")
        if t.ndim == 2:
            t = t.expand(self.n_seeds, -1, -1)
        with torch.no_grad():
            return _mlp(t, self.weights, self.biases).double().numpy()


def _mlp(x: torch.Tensor, weights: list[torch.Tensor], biases: list[torch.Tensor] | None) -> torch.Tensor:
    """``[seeds, rows, in]`` -> ``[seeds, rows, out]``: tanh hidden layers, linear output."""
    last = len(weights) - 1
    for k, w in enumerate(weights):
        x = torch.bmm(x, w) if biases is None else torch.baddbmm(biases[k], x, w)
        if k < last:
            x = torch.tanh(x)
    return x


def _train_network(
    name: str,
    index: int,
    columns: tuple[np.ndarray, np.ndarray],
    train: np.ndarray,
    seeds: list[int],
    options: NetworkOptions,
    dtype: torch.dtype,
) -> Network:
    """Train network ``name`` (``index`` picks its random stream) for every seed on the
    complete rows ``train [n_rows, n_columns]``, from the input to the output columns."""
    inputs, outputs = columns
    x, y = train[:, inputs], train[:, outputs]
    assert options.hidden is not None  # the caller resolves the network's default
    widths = [len(inputs), *options.hidden, len(outputs)]
    n_rows = len(x)
    n_batches = n_rows // options.batch_size
    if n_batches < 1:
        raise ConfigError(f"{name}: batch_size {options.batch_size} is larger than the {n_rows} training rows")
    # A stream of its own per seed and network (intermodal.streams).
    generators = [torch_generator(Purpose.BASELINE, s, index) for s in seeds]
    weights: list[torch.Tensor] = []
    every_bias: list[torch.Tensor] = []
    for a, b in zip(widths, widths[1:]):
        bound = float(np.sqrt(6.0 / (a + b)))
        w = torch.stack([torch.rand(a, b, generator=g, dtype=torch.float64) * (2 * bound) - bound for g in generators])
        weights.append(w.to(dtype).requires_grad_())
        every_bias.append(torch.zeros(len(seeds), 1, b, dtype=dtype, requires_grad=True))
    biases = every_bias if options.bias else None
    params = weights + (biases or [])
    xt = torch.as_tensor(x, dtype=dtype)
    yt = torch.as_tensor(y, dtype=dtype)
    # Adam is elementwise and the loss a sum over seeds: each seed keeps its own gradient
    # and moments, exactly as if it trained alone.
    optimizer = torch.optim.Adam(params, lr=options.lr)
    n_used = n_batches * options.batch_size
    last = torch.zeros(len(seeds), dtype=torch.float64)
    for _ in range(options.epochs):
        order = torch.stack([torch.randperm(n_rows, generator=g)[:n_used] for g in generators])
        order = order.view(len(seeds), n_batches, options.batch_size)
        last.zero_()
        for b in range(n_batches):
            idx = order[:, b]
            mse = ((_mlp(xt[idx], weights, biases) - yt[idx]) ** 2).mean((1, 2))
            optimizer.zero_grad(set_to_none=True)
            mse.sum().backward()
            optimizer.step()
            last += mse.detach().double()
    for p in params:
        p.requires_grad_(False)
    return Network(name, inputs, outputs, weights, biases, options, (last / n_batches).numpy())


@dataclass
class Baselines:
    """Trained forward and inverse models for every seed, and the training rows' mean.

    ``training_mean``: ``[n_columns]``, each column's mean over the training rows (a
    prediction that ignores its input, the floor a baseline must beat).
    """

    description: DatasetDescription
    seeds: list[int]
    forward: Network
    inverse: Network
    training_mean: np.ndarray
    dtype: str = "float32"

    def predict_forward(self, rows: np.ndarray) -> np.ndarray:
        """Perception at the current step ``[n_seeds, n_rows, len(forward.outputs)]`` from
        complete rows ``[n_rows, n_columns]`` (only the forward model's inputs are read)."""
        return self.forward(np.asarray(rows, dtype=np.float64)[:, self.forward.inputs])

    def predict_inverse(self, rows: np.ndarray) -> np.ndarray:
        """Motor command at the previous step ``[n_seeds, n_rows, len(inverse.outputs)]``."""
        return self.inverse(np.asarray(rows, dtype=np.float64)[:, self.inverse.inputs])


def train_baselines(
    dataset: Dataset,
    seeds: Sequence[int],
    *,
    epochs: int | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    forward: NetworkOptions | None = None,
    inverse: NetworkOptions | None = None,
    dtype: str = "float32",
    threads: int | None = 1,
) -> Baselines:
    """Train the forward and inverse models on ``dataset.train`` (complete rows), one of
    each per seed.

    ``forward``/``inverse``: their options (default :data:`FORWARD_DEFAULTS`,
    :data:`INVERSE_DEFAULTS`; :data:`ORIGINAL_FORWARD`/:data:`ORIGINAL_INVERSE` are the
    original's); ``epochs``, ``lr``, ``batch_size`` override both. ``dtype``: "float32"
    (default) or "float64". ``threads``: torch threads while training (restored after;
    None = leave torch's setting): these layers are too small to split across threads,
    and on a busy machine extra threads only spin-wait. Deterministic: the same seed gives
    the same networks, alone or among others.
    """
    description = dataset.description
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds: expected distinct seeds, at least one; got {seeds}")
    if dtype not in ("float32", "float64"):
        raise ConfigError(f"dtype: expected 'float32' or 'float64'; got {dtype!r}")
    overrides = {k: v for k, v in (("epochs", epochs), ("lr", lr), ("batch_size", batch_size)) if v is not None}
    columns = _network_columns(description)
    train = np.asarray(dataset.train, dtype=np.float64)
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        networks = _train_both(columns, train, seeds, forward, inverse, overrides, getattr(torch, dtype))
    finally:
        torch.set_num_threads(before)
    return Baselines(
        description, seeds, networks["forward-model"], networks["inverse-model"], train.mean(axis=0), dtype
    )


def _train_both(
    columns: dict[str, tuple[np.ndarray, np.ndarray]],
    train: np.ndarray,
    seeds: list[int],
    forward: NetworkOptions | None,
    inverse: NetworkOptions | None,
    overrides: dict,
    dtype: torch.dtype,
) -> dict[str, Network]:
    networks = {}
    for index, (name, defaults, given) in enumerate(
        (("forward-model", FORWARD_DEFAULTS, forward), ("inverse-model", INVERSE_DEFAULTS, inverse))
    ):
        options = dataclasses.replace(given or defaults, **overrides)
        _check_options(name, options)
        hidden = (
            options.hidden
            if options.hidden is not None
            else ((len(columns[name][0]),) if name == "forward-model" else (150, 150))
        )
        options = dataclasses.replace(options, hidden=tuple(int(h) for h in hidden))
        networks[name] = _train_network(name, index, columns[name], train, seeds, options, dtype)
    return networks


def _check_options(name: str, o: NetworkOptions) -> None:
    whole_number(o.epochs, f"{name}: epochs", minimum=1)
    whole_number(o.batch_size, f"{name}: batch_size", minimum=1)
    if not o.lr > 0:
        raise ConfigError(f"{name}: lr must be > 0; got {o.lr!r}")
    if o.hidden is not None and (not o.hidden or any(int(h) < 1 for h in o.hidden)):
        raise ConfigError(f"{name}: hidden must list at least one positive width; got {o.hidden!r}")


# ---------------------------------------------------------------------- files
def save_baselines(folder: str | os.PathLike, baselines: Baselines) -> Path:
    """Write ``baselines.safetensors`` and ``baselines.json`` into ``folder`` (created if
    needed), each through a temporary file; the JSON, written last, records the weights'
    SHA-256 so a pair from two different saves is refused on loading. Returns the JSON's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {"training_mean": torch.as_tensor(baselines.training_mean, dtype=torch.float64)}
    settings = {
        "format_version": FORMAT_VERSION,
        "kind": "intermodal-baselines",
        "seeds": baselines.seeds,
        "dtype": baselines.dtype,
        "description": baselines.description.to_dict(),
    }
    for net in (baselines.forward, baselines.inverse):
        for k, w in enumerate(net.weights):
            tensors[f"{net.name}.weights.{k}"] = w.detach().contiguous()
        for k, b in enumerate(net.biases or []):
            tensors[f"{net.name}.biases.{k}"] = b.detach().contiguous()
        settings[net.name] = {
            "inputs": [baselines.description.column_names()[c] for c in net.inputs],
            "outputs": [baselines.description.column_names()[c] for c in net.outputs],
            "options": {**dataclasses.asdict(net.options), "hidden": list(net.options.hidden or ())},
            "final_mse": [float(v) for v in net.final_mse],
        }
    weights_path = folder / WEIGHTS_FILE
    atomic_write(weights_path, lambda p: save_file(tensors, str(p)))
    settings["weights_sha256"] = sha256(weights_path)
    json_path = folder / SETTINGS_FILE
    write_json(json_path, settings)
    return json_path


def load_baselines(folder: str | os.PathLike) -> Baselines:
    """Read what :func:`save_baselines` wrote (tensors and JSON only, no pickle)."""
    folder = Path(folder)
    json_path, weights_path = folder / SETTINGS_FILE, folder / WEIGHTS_FILE
    for path in (json_path, weights_path):
        if not path.exists():
            raise RunFolderError(f"{folder}: no saved baselines here ({path.name} is missing)")
    try:
        settings = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunFolderError(f"{json_path}: not valid JSON ({e})") from None
    if settings.get("kind") != "intermodal-baselines" or settings.get("format_version") != FORMAT_VERSION:
        raise RunFolderError(f"{json_path}: not intermodal baselines of format {FORMAT_VERSION}")
    digest = sha256(weights_path)
    if digest != settings.get("weights_sha256"):
        raise RunFolderError(
            f"{weights_path}: its SHA-256 does not match {json_path.name} (the files come from two saves)"
        )
    try:
        return _baselines_from(settings, load_file(str(weights_path)), json_path)
    except (KeyError, TypeError, IndexError) as e:
        raise RunFolderError(f"{json_path}: does not describe the saved weights ({type(e).__name__}: {e})") from None


def _baselines_from(settings: dict, tensors: dict[str, torch.Tensor], json_path: Path) -> Baselines:
    description = DatasetDescription.from_dict(settings["description"], origin=f"{json_path} description")
    names = description.column_names()
    position = {n: i for i, n in enumerate(names)}
    networks = {}
    for name in ("forward-model", "inverse-model"):
        spec = settings[name]
        o = spec["options"]
        options = NetworkOptions(
            hidden=tuple(o["hidden"]),
            epochs=int(o["epochs"]),
            lr=float(o["lr"]),
            batch_size=int(o["batch_size"]),
            bias=bool(o["bias"]),
        )
        n_layers = len(options.hidden or ()) + 1
        weights = [tensors[f"{name}.weights.{k}"] for k in range(n_layers)]
        biases = [tensors[f"{name}.biases.{k}"] for k in range(n_layers)] if options.bias else None
        inputs = np.array([position[c] for c in spec["inputs"]])
        outputs = np.array([position[c] for c in spec["outputs"]])
        if weights[0].shape[1] != len(inputs) or weights[-1].shape[2] != len(outputs):
            raise RunFolderError(
                f"{json_path.parent / WEIGHTS_FILE}: {name}'s weights do not match its columns in {json_path.name}"
            )
        networks[name] = Network(name, inputs, outputs, weights, biases, options, np.asarray(spec["final_mse"]))
    return Baselines(
        description,
        [int(s) for s in settings["seeds"]],
        networks["forward-model"],
        networks["inverse-model"],
        tensors["training_mean"].numpy(),
        settings["dtype"],
    )


# ---------------------------------------------------------------------- errors
def _records(
    schedule: str,
    seeds: Sequence,
    test: str,
    description: DatasetDescription,
    outputs: np.ndarray,
    predicted: np.ndarray,
    truth: np.ndarray,
) -> list[tuple]:
    """RMSE rows per seed and modality@step among ``outputs``; ``predicted [S, R, n_out]``."""
    out = []
    for m in description.modality_names:
        for step in description.time_steps:
            wanted = set(description.columns_of(f"{m}@{step}").tolist())
            pick = [j for j, c in enumerate(outputs) if c in wanted]
            if not pick:
                continue
            err = predicted[:, :, pick] - truth[None][:, :, outputs[pick]]
            rmse = np.sqrt(np.mean(err**2, axis=(1, 2)))
            out += [("", schedule, seed, test, m, step, False, float(r)) for seed, r in zip(seeds, rmse)]
    return out


def baseline_errors(
    baselines: Baselines, description: DatasetDescription | None, test_rows: np.ndarray, *, tests: Tests = None
) -> pd.DataFrame:
    """RMSE of the baselines on complete test rows ``[n_rows, n_columns]``, per seed,
    modality and time step, in data units, as :data:`~intermodal.evaluation.prediction_tests.ERROR_COLUMNS`
    (so it concatenates with :func:`~intermodal.evaluation.prediction_tests.run_prediction_tests`).

    ``fusion`` is empty and ``schedule`` names the baseline: ``forward-model`` (``test = "forward"``: perception at
    the current step), ``inverse-model`` (``test = "control"``: motor at the previous
    step, from every perception column), ``inverse-model-muted`` (the same, fed only what
    the ``control`` test gives, the rest muted; present when the data set has a ``control``
    test, see ``tests``) and ``training-mean`` (each of those outputs predicted by the
    training rows' mean; ``seed`` <NA>). ``given`` is always False.
    """
    description = description_for(baselines, description)
    rows = np.asarray(test_rows, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != description.n_columns:
        raise DataError(f"test_rows: expected [n_rows, {description.n_columns}]; got shape {rows.shape}")
    fw, inv, seeds = baselines.forward, baselines.inverse, baselines.seeds
    records = _records(
        "forward-model", seeds, "forward", description, fw.outputs, baselines.predict_forward(rows), rows
    )
    records += _records(
        "inverse-model", seeds, "control", description, inv.outputs, baselines.predict_inverse(rows), rows
    )
    candidates = applicable_tests(description) if tests is None else normalise_tests(tests)
    control = [t for t in candidates if t.name == "control"]
    if control:
        muted = rows.copy()
        muted[:, ~given_mask(description, control[0].given)] = description.muted_value
        records += _records(
            "inverse-model-muted", seeds, "control", description, inv.outputs, baselines.predict_inverse(muted), rows
        )
    n = len(rows)
    for test, net in (("forward", fw), ("control", inv)):
        guess = np.broadcast_to(baselines.training_mean[net.outputs], (1, n, len(net.outputs)))
        records += _records("training-mean", [pd.NA], test, description, net.outputs, guess, rows)
    table = pd.DataFrame.from_records(records, columns=ERROR_COLUMNS)
    table["seed"] = table["seed"].astype("Int64")
    return table
