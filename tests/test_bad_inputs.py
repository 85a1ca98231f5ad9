"""A catalogue of bad inputs, each given to the command line as a user would: every one must
end with exit status 2, one message on stderr that names the culprit (file, option or key),
no traceback, and no file created or changed (docs/reliability.md)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io

import intermodal as im
from intermodal.cli import main
from intermodal.errors import RunFolderError

SMALL_SIM = '{"n_train": 60, "n_test": 40}'


# ---------------------------------------------------------------------- helpers
def tree_state(root: Path) -> dict[str, str]:
    """Every file and folder under ``root``, with each file's SHA-256."""
    state = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        state[key] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return state


def own_data(root: Path, tiny, *, train=None, file="train.csv", description=None, write=True, **part) -> Path:
    """A user's data folder: train.csv (or another file; ``write=False``: already there) and
    desc.json; returns desc.json."""
    root.mkdir(parents=True, exist_ok=True)
    desc = tiny.description
    rows = tiny.train if train is None else train
    if not write:
        pass
    elif file.endswith(".csv") and not isinstance(rows, str):
        pd.DataFrame(rows, columns=desc.column_names()).to_csv(root / file, index=False)
    elif isinstance(rows, str):
        (root / file).write_text(rows)
    d = desc.to_dict() if description is None else description
    d["train"] = {"file": file, **part}
    (root / "desc.json").write_text(json.dumps(d))
    return root / "desc.json"


def description_with(tiny, root: Path, **changes) -> Path:
    d = tiny.description.to_dict()
    for key, value in changes.items():
        d[key] = value
    return own_data(root, tiny, description=d)


def train_argv(data: Path | str, out: Path, *extra: str) -> list[str]:
    return ["train", "--data", str(data), "--epochs", "1", "--batch-size", "100", "--out", str(out), "--quiet", *extra]


def sim_argv(out: Path, *extra: str) -> list[str]:
    return ["train", "--sim", SMALL_SIM, "--epochs", "1", "--batch-size", "20", "--out", str(out), "--quiet", *extra]


def with_csv_rows(tiny, root, change) -> Path:
    frame = pd.DataFrame(tiny.train[:20], columns=tiny.description.column_names())
    frame = change(frame)
    root.mkdir(parents=True, exist_ok=True)
    frame.to_csv(root / "train.csv", index=False)
    d = tiny.description.to_dict()
    d["train"] = {"file": "train.csv"}
    (root / "desc.json").write_text(json.dumps(d))
    return root / "desc.json"


def schedule_table(root: Path, text: str) -> str:
    root.mkdir(parents=True, exist_ok=True)
    (root / "beta.csv").write_text(text)
    return f"table:{root / 'beta.csv'}"


# ---------------------------------------------------------------------- the catalogue
# Each case: (builder(root, tiny, trained_run) -> argv, text the message must contain).
def _csv(change, message):
    return (lambda r, t, run: train_argv(with_csv_rows(t, r / "d", change), r / "out"), message)


def _desc(message, **changes):
    return (lambda r, t, run: train_argv(description_with(t, r / "d", **changes), r / "out"), message)


def _modality_change(change, message):
    def build(r, t, run):
        d = t.description.to_dict()
        change(d)
        return train_argv(own_data(r / "d", t, description=d), r / "out")

    return build, message


def _sim(extra, message):
    return (lambda r, t, run: sim_argv(r / "out", *extra), message)


def _table(text, message, dtype="float64"):
    return (
        lambda r, t, run: sim_argv(r / "out", "--schedule", schedule_table(r / "s", text), "--dtype", dtype),
        message,
    )


def _config_file(name, text, message):
    def build(r, t, run):
        r.mkdir(parents=True, exist_ok=True)
        (r / name).write_text(text)
        return sim_argv(r / "out", "--config", str(r / name))

    return build, message


def _run_copy(damage, argv, message):
    """A copy of a small trained run, damaged, then given to a command."""

    def build(r, t, run):
        copy = r / "run"
        shutil.copytree(run, copy)
        damage(copy)
        return [a.replace("RUN", str(copy)) for a in argv]

    return build, message


def _npz(arrays, message, **part):
    def build(r, t, run):
        (r / "d").mkdir(parents=True)
        np.savez(r / "d" / "train.npz", **arrays(t))
        return train_argv(own_data(r / "d", t, file="train.npz", write=False, **part), r / "out")

    return build, message


def _mat(arrays, message, raw: bytes | None = None, **part):
    def build(r, t, run):
        (r / "d").mkdir(parents=True)
        if raw is not None:
            (r / "d" / "train.mat").write_bytes(raw)
        else:
            scipy.io.savemat(r / "d" / "train.mat", arrays(t))
        return train_argv(own_data(r / "d", t, file="train.mat", write=False, **part), r / "out")

    return build, message


def _truncate(path):
    def damage(run):
        p = run / path
        p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])

    return damage


def _edit_state(change):
    def damage(run):
        p = run / "checkpoint" / "state.json"
        state = json.loads(p.read_text())
        change(state)
        p.write_text(json.dumps(state))

    return damage


def _retype(table: str, column: str, kind: type):
    """Damage: a column of a run's table rewritten with values of another type."""

    def damage(run):
        frame = pd.read_parquet(run / table)
        frame[column] = frame[column].astype(kind)
        frame.to_parquet(run / table, index=False)

    return damage


def _edit_config(change):
    def damage(run):
        p = run / "config.json"
        config = json.loads(p.read_text())
        change(config)
        p.write_text(json.dumps(config))

    return damage


def _both_checkpoints(damage):
    def both(run):
        damage(run)
        shutil.rmtree(run / "checkpoint.old", ignore_errors=True)

    return both


CASES = {
    # --- CSV files of a user's data set
    "csv text in a number column": _csv(lambda f: f.assign(arm_t_0=["x"] * len(f)), "column 'arm_t_0', data row 0"),
    "csv missing column": _csv(lambda f: f.drop(columns="eye_t_2"), "lacks column(s) ['eye_t_2']"),
    "csv extra column": _csv(lambda f: f.assign(extra=1.0), "does not name ['extra']"),
    "csv nan": _csv(lambda f: f.assign(bump_t_0=np.nan), "bump_t_0) is nan"),
    "csv out of range": _csv(lambda f: f.assign(eye_t_1=1.5), "eye_t_1) is 1.5"),
    "csv infinite": _csv(lambda f: f.assign(arm_t_1=np.inf), "arm_t_1) is inf"),
    "csv muted value as data": _csv(lambda f: f.assign(arm_t_0=-2.0), "arm_t_0) is -2"),
    "csv header only": _csv(lambda f: f.iloc[0:0], "train.csv: has no rows"),
    "csv empty file": (
        lambda r, t, run: train_argv(own_data(r / "d", t, train=""), r / "out"),
        "train.csv: the file is empty",
    ),
    "csv ragged": (
        lambda r, t, run: train_argv(own_data(r / "d", t, train="1,2,3\n1,2\n1,2,3,4,5\n"), r / "out"),
        "train.csv",
    ),
    "csv headerless wrong width": (
        lambda r, t, run: train_argv(
            own_data(r / "d", t, train="\n".join(["0.1," * 10 + "0.1"] * 5) + "\n"), r / "out"
        ),
        "has 11 columns",
    ),
    "csv missing file": (
        lambda r, t, run: train_argv(own_data(r / "d", t, train="", file="gone.txt").parent / "desc.json", r / "out"),
        "unsupported file type",
    ),
    "csv input-target without complete rows": (
        lambda r, t, run: train_argv(
            own_data(
                r / "d",
                t,
                train=pd.DataFrame(
                    np.hstack([np.full((5, 12), -2.0), t.train[:5]]),
                    columns=[f"input_{c}" for c in t.description.column_names()] + t.description.column_names(),
                ).to_csv(index=False),
                layout="input-target",
            ),
            r / "out",
        ),
        "no row has a complete (unmuted) input",
    ),
    # --- NPZ, NPY and MATLAB files
    "npz two arrays, no variable": _npz(lambda t: {"a": t.train, "b": t.train}, "name the array with 'variable'"),
    "npz unknown variable": _npz(lambda t: {"a": t.train}, "one of ['a']", variable="rows"),
    "npz text array": _npz(lambda t: {"a": np.array([["x"] * 12] * 3)}, "not a readable numeric .npz"),
    "npz one-dimensional": _npz(lambda t: {"a": t.train[0]}, "expected a 2-D table"),
    "npz wrong width": _npz(lambda t: {"a": t.train[:, :5]}, "has 5 columns"),
    "npz damaged": (
        lambda r, t, run: train_argv(own_data(r / "d", t, train="PK\x03\x04 not a zip", file="train.npz"), r / "out"),
        "train.npz",
    ),
    "mat damaged": _mat(None, "not a readable MATLAB file", raw=b"MATLAB 5.0 MAT-file, truncated"),
    "mat two variables": _mat(lambda t: {"a": t.train, "b": t.train}, "name the MATLAB variable"),
    "mat unknown variable": _mat(lambda t: {"a": t.train}, "one of ['a']", variable="rows"),
    "mat wrong width": _mat(lambda t: {"a": t.train[:, :7]}, "has 7 columns"),
    "unsupported data file": (
        lambda r, t, run: train_argv(own_data(r / "d", t, train="x", file="train.xlsx"), r / "out"),
        "unsupported file type '.xlsx'",
    ),
    # --- the description
    "description time_steps as a string": _desc("time_steps: input should be a list", time_steps="t"),
    "description pattern as a string": _desc(
        "muting_patterns.complete: input should be a list", muting_patterns={"complete": "bc"}
    ),
    "description value_range of three": _desc("value_range", value_range=[-1, 1, 2]),
    "description value_range reversed": _desc("low < high", value_range=[1, -1]),
    "description muted value inside range": _desc("muted_value 0.5 lies inside value_range", muted_value=0.5),
    "description muted value not a number": _desc("muted_value", muted_value="low"),
    "description unknown key": _desc("colour: unknown key", colour="blue"),
    "description name not a string": _desc("name: input should be a valid string", name=5),
    "description no modalities": _desc("'modalities' is empty", modalities=[]),
    "description no patterns": _desc("'muting_patterns' is empty", muting_patterns={}),
    "description unknown selector": _desc("'nose'", muting_patterns={"p": ["nose"]}),
    "description unknown time step": _desc("time step 't-2'", muting_patterns={"p": ["arm@t-2"]}),
    "description columns missing one": _desc("'columns' must list each column once", columns=["arm_t_0"]),
    "description unknown motor modality": _desc("'wheel'", motor_modalities=["wheel"]),
    "description size 2.7": _modality_change(
        lambda d: d["modalities"][0].update(size=2.7), "modalities.0.size: input should be a valid integer"
    ),
    "description size true": _modality_change(lambda d: d["modalities"][0].update(size=True), "modalities.0.size"),
    "description size zero": _modality_change(
        lambda d: d["modalities"][1].update(size=0), "modalities.1.size: input should be greater than 0"
    ),
    "description size as text": _modality_change(lambda d: d["modalities"][1].update(size="4"), "modalities.1.size"),
    "description unknown key in a modality": _modality_change(
        lambda d: d["modalities"][2].update(colour="red"), "modalities.2.colour: unknown key"
    ),
    "description modality name with spaces": _modality_change(
        lambda d: d["modalities"][0].update(name="left arm"), "'left arm' must start with a letter"
    ),
    "description repeated modality": _modality_change(
        lambda d: d["modalities"].append({"name": "arm", "size": 1}), "modality names repeat"
    ),
    "description bad layout": (
        lambda r, t, run: train_argv(own_data(r / "d", t, layout="sideways"), r / "out"),
        "train.layout",
    ),
    "description unknown key in a part": (
        lambda r, t, run: train_argv(own_data(r / "d", t, sheet="1"), r / "out"),
        "train.sheet: unknown key",
    ),
    "description broken json": (
        lambda r, t, run: (
            [*train_argv(r / "d.json", r / "out")]
            if (r.mkdir(parents=True) or (r / "d.json").write_text("{broken"))
            else None
        ),
        "d.json: not valid JSON",
    ),
    "description a list": (
        lambda r, t, run: (
            train_argv(r / "d.json", r / "out")
            if (r.mkdir(parents=True) or (r / "d.json").write_text("[1, 2]"))
            else None
        ),
        "d.json: expected a data set description as a JSON object",
    ),
    "description broken toml": (
        lambda r, t, run: (
            train_argv(r / "d.toml", r / "out")
            if (r.mkdir(parents=True) or (r / "d.toml").write_text("name = "))
            else None
        ),
        "d.toml: not valid TOML",
    ),
    "description missing": (
        lambda r, t, run: train_argv(r / "nothing.json", r / "out"),
        "not 'sim', 'icub', 'digits' or an existing description file",
    ),
    "description nan muted value": (
        lambda r, t, run: (
            train_argv(r / "d.json", r / "out")
            if (
                r.mkdir(parents=True)
                or (r / "d.json").write_text(
                    json.dumps({**t.description.to_dict(), "train": "x.csv"}).replace(
                        '"muted_value": -2.0', '"muted_value": NaN'
                    )
                )
            )
            else None
        ),
        "muted_value: input should be a finite number",
    ),
    # --- schedules
    "schedule unknown": _sim(["--schedule", "constant-7"], "unknown schedule 'constant-7'"),
    "schedule cycles infinite": _sim(["--schedule", "cyclical:cycles=inf:ratio=0.5"], "cycles=inf is out of range"),
    "schedule beta nan": _sim(["--schedule", "constant:beta=nan"], "beta=nan is out of range"),
    "schedule negative warmup": _sim(["--schedule", "linear:warmup=-3"], "warmup=-3 is out of range"),
    "schedule unknown parameter": _sim(["--schedule", "constant:gamma=1"], "unknown parameter 'gamma=1'"),
    "schedule parameter not a number": _sim(["--schedule", "constant:beta=big"], "beta='big' is not a number"),
    "schedule table missing": _sim(["--schedule", "table:/nonexistent/beta.csv"], "/nonexistent/beta.csv"),
    "schedule table nan epoch": _table("epoch,beta\n0,1\nnan,0\n", "column epoch must hold finite numbers"),
    "schedule table epochs backwards": _table("epoch,beta\n5,1\n2,0\n", "strictly increasing"),
    "schedule table wrong columns": _table("step,weight\n0,1\n", "exactly the columns epoch,beta"),
    "schedule table text": _table("epoch,beta\n0,one\n", "must hold numbers"),
    "schedule table negative beta": _table("epoch,beta\n0,-1\n", "finite values >= 0"),
    "schedule table beyond float32": _table(
        "epoch,beta\n0,1e300\n", "beyond what --dtype float32 holds", dtype="float32"
    ),
    "schedule table empty": _table("", "beta.csv"),
    # --- options
    "lr infinite": _sim(["--lr", "inf"], "lr: input should be a finite number"),
    "lr zero": _sim(["--lr", "0"], "lr: input should be greater than 0"),
    "lr text": _sim(["--lr", "fast"], "lr is 'fast'; expected float"),
    "epochs zero": _sim(["--epochs", "0"], "epochs: input should be greater than or equal to 1"),
    "epochs fraction": _sim(["--epochs", "2.5"], "epochs is '2.5'; expected int"),
    "seeds repeated": _sim(["--seeds", "3,3"], "seeds repeat"),
    "seeds text": _sim(["--seeds", "many"], "seeds"),
    "dtype": _sim(["--dtype", "float16"], "dtype: input should be 'float32' or 'float64'"),
    "device": _sim(["--device", "tpu"], "device"),
    "batch larger than the data": _sim(["--batch-size", "100000"], "--batch-size 100000 is larger than"),
    "architecture preset": _sim(["--architecture", "9"], "--architecture '9'"),
    "architecture broken json": (
        lambda r, t, run: (
            sim_argv(r / "out", "--architecture", str(r / "a.json"))
            if (r.mkdir(parents=True) or (r / "a.json").write_text("{"))
            else None
        ),
        "a.json: not valid JSON",
    ),
    "architecture width zero": (
        lambda r, t, run: (
            sim_argv(r / "out", "--architecture", str(r / "a.json"))
            if (
                r.mkdir(parents=True)
                or (r / "a.json").write_text(
                    json.dumps(
                        {"encoders": {}, "shared_encoder": [0], "shared_decoder": [4], "slices": {}, "decoders": {}}
                    )
                )
            )
            else None
        ),
        "shared_encoder.0: input should be greater than or equal to 1",
    ),
    "architecture other modalities": (
        lambda r, t, run: (
            sim_argv(r / "out", "--architecture", str(r / "a.json"))
            if (
                r.mkdir(parents=True)
                or (r / "a.json").write_text(
                    json.dumps(
                        {
                            "encoders": {"x": []},
                            "shared_encoder": [4],
                            "shared_decoder": [4],
                            "slices": {"x": 4},
                            "decoders": {"x": []},
                        }
                    )
                )
            )
            else None
        ),
        "a.json: architecture: 'encoders' names modalities ['x']",
    ),
    "data dir with the simulator": _sim(["--data-dir", "/tmp"], "data_dir applies to 'icub' or a description file"),
    "simulator option unknown": _sim(["--sim", '{"n_rows": 5}'], "n_rows"),
    "simulator options not json": _sim(["--sim", "{n_train: 5}"], "sim"),
    "windows backwards": _sim(["--windows", "[[5, 1]]"], "start < end"),
    "eval rows mode": _sim(["--eval-rows", "sideways"], "eval_rows"),
    "extra pairs not json": _sim(["--extra-pairs", "{bad"], "extra_pairs"),
    "unknown pattern": _sim(["--patterns", "upside-down"], "no muting pattern 'upside-down'"),
    "schedule horizon zero": _sim(["--schedule-horizon", "0"], "schedule_horizon"),
    "threads zero": _sim(["--threads", "0"], "threads"),
    # --- config files
    "config broken toml": _config_file("run.toml", "epochs = ", "run.toml: not valid TOML"),
    "config unknown key": _config_file("run.toml", "learning_rate = 0.1\n", "learning_rate: unknown key"),
    "config wrong type": _config_file("run.toml", 'epochs = "ten"\n', "run.toml: epochs: input should be"),
    "config list for a number": _config_file("run.json", '{"lr": [1, 2]}', "run.json: lr"),
    "config yaml": _config_file("run.yaml", "epochs: 3\n", "expected a .json or .toml file"),
    "config missing": (lambda r, t, run: sim_argv(r / "out", "--config", str(r / "none.toml")), "none.toml"),
    # --- output folders
    "out is a file": (
        lambda r, t, run: sim_argv(r / "file") if (r.mkdir(parents=True) or (r / "file").write_text("x")) else None,
        "is a file; expected a folder",
    ),
    "out not empty": (
        lambda r, t, run: sim_argv(r) if (r.mkdir(parents=True) or (r / "notes.txt").write_text("x")) else None,
        "the folder exists and is not empty",
    ),
    "out below a file": (
        lambda r, t, run: (
            sim_argv(r / "file" / "run") if (r.mkdir(parents=True) or (r / "file").write_text("x")) else None
        ),
        "cannot create the folder",
    ),
    # --- run folders and checkpoints
    "resume a missing folder": (
        lambda r, t, run: ["train", "--resume", str(r / "none"), "--quiet"],
        "not a run folder",
    ),
    "resume a folder without config": _run_copy(
        lambda c: (c / "config.json").unlink(), ["train", "--resume", "RUN", "--quiet"], "has no config.json"
    ),
    "resume a broken config": _run_copy(
        lambda c: (c / "config.json").write_text("{"),
        ["train", "--resume", "RUN", "--quiet"],
        "config.json: not valid JSON",
    ),
    "resume a config with an unknown key": _run_copy(
        lambda c: (c / "config.json").write_text(
            json.dumps({**json.loads((c / "config.json").read_text()), "speed": 1})
        ),
        ["train", "--resume", "RUN", "--quiet"],
        "config.json: speed: unknown key",
    ),
    "resume with options": _run_copy(
        lambda c: None, ["train", "--resume", "RUN", "--epochs", "9", "--quiet"], "drop --epochs"
    ),
    "resume damaged weights, no previous": _run_copy(
        _both_checkpoints(_truncate("checkpoint/model.safetensors")),
        ["train", "--resume", "RUN", "--quiet"],
        "model.safetensors: damaged",
    ),
    "resume missing optimiser, no previous": _run_copy(
        _both_checkpoints(lambda c: (c / "checkpoint" / "optimizer.safetensors").unlink()),
        ["train", "--resume", "RUN", "--quiet"],
        "optimizer.safetensors: missing",
    ),
    "measure state without a key": _run_copy(
        _edit_state(lambda s: s.pop("n_models")), ["measure", "RUN"], "lacks key(s) ['n_models']"
    ),
    "measure state not json": _run_copy(
        lambda c: (c / "checkpoint" / "state.json").write_text("{"), ["measure", "RUN"], "state.json: not valid JSON"
    ),
    "measure zeroed weights": _run_copy(
        lambda c: (c / "checkpoint" / "model.safetensors").write_bytes(
            bytes(len((c / "checkpoint" / "model.safetensors").read_bytes()))
        ),
        ["measure", "RUN"],
        "model.safetensors: damaged",
    ),
    "measure no checkpoint": _run_copy(
        lambda c: [shutil.rmtree(c / n) for n in ("checkpoint", "checkpoint.old") if (c / n).exists()],
        ["measure", "RUN"],
        "no checkpoint here",
    ),
    "measure unknown seed": _run_copy(lambda c: None, ["measure", "RUN", "--seed", "99"], "no model with"),
    "report without results": _run_copy(
        lambda c: (c / "results.parquet").unlink(), ["report", "RUN"], "results.parquet: missing"
    ),
    "report garbage history": _run_copy(
        lambda c: (c / "history.parquet").write_text("not parquet"),
        ["report", "RUN"],
        "history.parquet: not a readable parquet table",
    ),
    "report history without a column": _run_copy(
        lambda c: pd.read_parquet(c / "history.parquet").drop(columns="loss").to_parquet(c / "history.parquet"),
        ["report", "RUN"],
        "history.parquet: lacks column(s) ['loss']",
    ),
    # --- run-folder files that hold values of the wrong type
    "report text among the results' values": _run_copy(
        _retype("results.parquet", "value", str), ["report", "RUN"], "results.parquet: column 'value' holds"
    ),
    "report a word for an epoch in the history": _run_copy(
        _retype("history.parquet", "epoch", str), ["report", "RUN"], "history.parquet: column 'epoch' holds"
    ),
    "report text for the diverged flags": _run_copy(
        _retype("history.parquet", "diverged", str), ["report", "RUN"], "history.parquet: column 'diverged' holds"
    ),
    "report fractional latent dimensions": _run_copy(
        _retype("diagnostics.parquet", "latent_dim", float),
        ["report", "RUN"],
        "diagnostics.parquet: column 'latent_dim' holds",
    ),
    "compare a text seed in the results": _run_copy(
        _retype("results.parquet", "seed", str),
        ["compare", "RUN", "RUN", "--out", "RUN/../cmp.html"],
        "results.parquet: column 'seed' holds",
    ),
    "resume a state whose diverged is a list": _run_copy(
        _both_checkpoints(_edit_state(lambda s: s.update(diverged=[]))),
        ["train", "--resume", "RUN", "--quiet"],
        "state.json: diverged: expected a mapping",
    ),
    "resume a state with a word for its epochs": _run_copy(
        _both_checkpoints(_edit_state(lambda s: s.update(epochs_done="ten"))),
        ["train", "--resume", "RUN", "--quiet"],
        "state.json: epochs_done: expected a whole number",
    ),
    "measure a state with a word for its models": _run_copy(
        _edit_state(lambda s: s.update(n_models="two")), ["measure", "RUN"], "state.json: n_models: expected a whole"
    ),
    "measure a state with a word for a seed": _run_copy(
        _edit_state(lambda s: s["model_keys"][0].update(seed="zero")),
        ["measure", "RUN"],
        "state.json: model_keys.0.seed: expected a whole number",
    ),
    "measure a state whose groups are a mapping": _run_copy(
        _edit_state(lambda s: s.update(groups={"concat": 1})), ["measure", "RUN"], "state.json: groups: expected a list"
    ),
    "report a config with a word for its epochs": _run_copy(
        _edit_config(lambda c: c.update(epochs="many")), ["report", "RUN"], "config.json: epochs:"
    ),
    "report a config whose schedules are a number": _run_copy(
        _edit_config(lambda c: c.update(schedules=5)), ["report", "RUN"], "config.json: schedules:"
    ),
    "resume a config that is a list": _run_copy(
        lambda c: (c / "config.json").write_text("[1, 2]"), ["train", "--resume", "RUN", "--quiet"], "config.json"
    ),
    "data sim options not json": (
        lambda r, t, run: ["data", "sim", "--out", str(r / "o"), "--options", "{x"],
        "--options: not valid JSON",
    ),
    # --- sizes, counts, seeds and epochs beyond their documented limits (docs/reliability.md)
    "description modality of a billion values": _modality_change(
        lambda d: d["modalities"][0].update(size=10**9), "at most MAX_COLUMNS = 100000"
    ),
    "architecture a layer of a billion units": (
        lambda r, t, run: (
            sim_argv(r / "out", "--architecture", str(r / "a.json"))
            if (
                r.mkdir(parents=True)
                or (r / "a.json").write_text(
                    json.dumps(
                        {
                            "encoders": {m: [] for m in ("joints", "vision", "touch", "sound", "motor")},
                            "shared_encoder": [10**9],
                            "shared_decoder": [28],
                            "slices": {"joints": 8, "vision": 8, "touch": 2, "sound": 2, "motor": 8},
                            "decoders": {m: [] for m in ("joints", "vision", "touch", "sound", "motor")},
                        }
                    )
                )
            )
            else None
        ),
        "a model has at most MAX_WEIGHTS = 1e+09",
    ),
    "seeds a trillion": _sim(["--seeds", "0-999999999999"], "at most MAX_SEEDS = 10000"),
    "seeds a count beyond the limit": _sim(["--seeds", "20000"], "at most MAX_SEEDS = 10000"),
    "seed beyond 64 bits": _sim(["--seeds", f"{2**64},1"], "seeds.0: input should be less than or equal to"),
    "epochs a hundred billion": _sim(["--epochs", "100000000000"], "epochs: input should be less than or equal to"),
    "checkpoint every beyond the epoch limit": _sim(["--checkpoint-every", str(10**12)], "checkpoint_every"),
    "simulator ten billion rows": _sim(["--sim", '{"n_train": 10000000000}'], "n_train: input should be less than"),
    "simulator a distractor of a billion columns": _sim(
        ["--sim", '{"distractors": ["noise:1000000000"]}'], "MAX_COLUMNS = 100000"
    ),
    "z samples a trillion": _sim(["--z-samples", "1000000000000"], "z_samples: input should be less than"),
    "threads a billion": _sim(["--threads", "1000000000"], "threads: input should be less than or equal to 1024"),
    "eval seed beyond 64 bits": _sim(["--eval-seed", str(2**64)], "eval_seed"),
    "data sim seed beyond 64 bits": (
        lambda r, t, run: ["data", "sim", "--out", str(r / "o"), "--seed", str(2**64)],
        "seed: input should be less than or equal to",
    ),
    "data sim ten billion rows": (
        lambda r, t, run: ["data", "sim", "--out", str(r / "o"), "--options", '{"n_test": 10000000000}'],
        "n_test: input should be less than or equal to 1000000",
    ),
    "predict a trillion steps": _run_copy(
        lambda c: None, ["predict", "RUN", "--given", "vision", "--steps", str(10**12)], "--steps"
    ),
    # --- files next to --out that it did not name are never replaced
    "data sim into a folder with the user's train.csv": (
        lambda r, t, run: (
            ["data", "sim", "--out", str(r / "mine")]
            if ((r / "mine").mkdir(parents=True) or (r / "mine" / "train.csv").write_text("my,own\n1,2\n"))
            else None
        ),
        "the folder exists and is not empty (it holds train.csv)",
    ),
    "compare beside the user's csv": (
        lambda r, t, run: (
            ["compare", str(run), str(run), "--labels", "a,b", "--out", str(r / "cmp.html")]
            if (r.mkdir(parents=True) or (r / "cmp.csv").write_text("my,own\n"))
            else None
        ),
        "cmp.csv exists and would be replaced",
    ),
    "compare beside the user's figures folder": (
        lambda r, t, run: (
            ["compare", str(run), str(run), "--labels", "a,b", "--out", str(r / "cmp.html")]
            if ((r / "cmp_figures").mkdir(parents=True) or (r / "cmp_figures" / "plot.png").write_text("x"))
            else None
        ),
        "cmp_figures exists and would be replaced",
    ),
    "compare over a page of the user's": (
        lambda r, t, run: (
            ["compare", str(run), str(run), "--labels", "a,b", "--out", str(r / "notes.html")]
            if (r.mkdir(parents=True) or (r / "notes.html").write_text("<html>my notes</html>"))
            else None
        ),
        "notes.html: exists and is not a page intermodal compare wrote",
    ),
    "compare out names a table": (
        lambda r, t, run: ["compare", str(run), str(run), "--labels", "a,b", "--out", str(r / "cmp.csv")],
        "expected the page's name",
    ),
}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A small finished study with two checkpoints (the latest and the previous one)."""
    root = tmp_path_factory.mktemp("trained")
    out = root / "run"
    code = main(
        [
            "study",
            "--sim",
            SMALL_SIM,
            "--schedule",
            "constant-0",
            "--seeds",
            "2",
            "--epochs",
            "4",
            "--batch-size",
            "20",
            "--eval-every",
            "2",
            "--checkpoint-every",
            "2",
            "--n-eval-rows",
            "20",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    return out


def test_the_catalogue_is_large():
    assert len(CASES) >= 80


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_a_clear_message(name, tmp_path, tiny, trained_run, capsys):
    build, message = CASES[name]
    root = tmp_path / "case"
    argv = build(root, tiny, trained_run)
    assert argv is not None
    root.mkdir(parents=True, exist_ok=True)
    before = tree_state(root)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, f"exit status {code}; stderr: {err}"
    assert "Traceback" not in err
    assert err.startswith("intermodal: error: ")
    assert message in err, f"expected {message!r} in {err!r}"
    after = tree_state(root)
    # The lock file of an existing run folder is the one thing a refused command may touch.
    assert {k: v for k, v in after.items() if not k.endswith(".lock")} == {
        k: v for k, v in before.items() if not k.endswith(".lock")
    }


def test_a_failed_run_leaves_no_folder_that_blocks_a_rerun(tmp_path, tiny):
    data = own_data(tmp_path / "d", tiny)
    out = tmp_path / "out"
    assert main(train_argv(data, out, "--batch-size", "100000")) == 2
    assert not out.exists()
    assert main(train_argv(data, out)) == 0


# ---------------------------------------------------------------------- the library on damaged run folders
LIBRARY_CASES = {
    "load_run, text among the results' values": (
        _retype("results.parquet", "value", str),
        lambda run: im.load_run(run),
        ("results.parquet", "'value'"),
    ),
    "load_run, fractional latent dimensions": (
        _retype("diagnostics.parquet", "latent_dim", float),
        lambda run: im.load_run(run),
        ("diagnostics.parquet", "'latent_dim'"),
    ),
    "load_run, a word for an epoch": (
        _retype("history.parquet", "epoch", str),
        lambda run: im.load_run(run),
        ("history.parquet", "'epoch'"),
    ),
    "load_run, a config with a word for its epochs": (
        _edit_config(lambda c: c.update(epochs="many")),
        lambda run: im.load_run(run),
        ("config.json", "epochs"),
    ),
    "a run's epochs, a word in the state": (
        _edit_state(lambda s: s.update(epochs_done="ten")),
        lambda run: im.load_run(run).epochs_done,
        ("state.json", "epochs_done"),
    ),
    "a run's models, a list for the divergences": (
        _edit_state(lambda s: s.update(diverged=[])),
        lambda run: im.load_run(run).model,
        ("state.json", "diverged"),
    ),
    "resume, a state whose diverged is a list": (
        _both_checkpoints(_edit_state(lambda s: s.update(diverged=[]))),
        lambda run: im.resume(run),
        ("state.json", "diverged"),
    ),
}


@pytest.mark.parametrize("name", list(LIBRARY_CASES))
def test_a_damaged_run_folder_is_a_run_folder_error_naming_file_and_field(name, tmp_path, trained_run):
    damage, call, named = LIBRARY_CASES[name]
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    damage(copy)
    before = tree_state(tmp_path)
    with pytest.raises(RunFolderError) as caught:
        call(copy)
    assert all(part in str(caught.value) for part in named), str(caught.value)
    after = tree_state(tmp_path)
    assert {k: v for k, v in after.items() if not k.endswith(".lock")} == {
        k: v for k, v in before.items() if not k.endswith(".lock")
    }
