"""intermodal: train multimodal VAEs under KL-weight schedules and measure how they
integrate their modalities (Zambelli et al. 2020; Langer et al. 2024).

The library, as a notebook uses it::

    import intermodal as im

    dataset = im.load_dataset("sim")                      # or "icub", "digits", or a description file
    config = im.RunConfig(schedules=["constant-0", "constant-1"], seeds=3, epochs=300, eval_every=50)
    result = im.train(config, dataset, evaluate=True)     # every model as one batched computation
    result.models                                         # position -> schedule, seed
    im.integration_measures(result.model, dataset.test[:1024])
    im.modality_shares(result.model, dataset.test[:1024])   # Shapley shares, who informs whom, interactions
    im.predict(result.model, dataset.test, given="vision").mean   # [models, rows, columns]
    model = im.adapters.multivae(trained_mvae, dataset.description)   # a MultiVae model
    print(im.check_model(model, dataset.test[:64]))       # the checks before trusting it
    run = im.load_run("runs/study-quick")                 # a run folder the CLI wrote: an im.Run, as result is
    im.integration_measures(run, run.dataset.test[:1024]) # its models, read from its checkpoint
    im.draw_figures(run)["fig7_window_means"]

Data flows one way through the layers, each a package that imports only those before it:
``data`` → ``model`` → ``adapters`` (other libraries' models as ours) → ``training`` (with
the run folder it writes) → ``evaluation`` → ``outputs`` (figures, report) → ``study``
(local and Ray) → the command line (``cli``).
The names below are the public face; everything else is reachable in its module but may
change. Names load on first use, so ``import intermodal`` stays fast.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# name -> module that defines it (relative to the package)
_EXPORTS = {
    # data
    "load_dataset": "data.catalog",
    "simulate": "data.sim",
    "Dataset": "data.dataset",
    "DatasetDescription": "data.description",
    "load_description": "data.reading",
    # configure and train
    "RunConfig": "training.config",
    "ModelKey": "training.config",
    "preset": "training.config",
    "train": "study.runs",
    "run_study": "study.runs",
    "resume": "study.runs",
    # a trained run, in memory or read back from its folder: one type (TrainingResult is
    # its older name, the same class)
    "Run": "training.runfolder.loading",
    "TrainingResult": "training.runfolder.loading",
    "load_run": "training.runfolder.loading",
    # measure and predict, with any model that answers a protocol
    "LatentModel": "model.protocol",
    "OutputModel": "model.protocol",
    "OutputGaussianModel": "model.protocol",
    "Likelihood": "model.likelihoods",
    "Outputs": "model.likelihoods",
    "GaussianPosterior": "model.posterior",
    "MixturePosterior": "model.posterior",
    "check_model": "evaluation.checks",
    "integration_measures": "evaluation.measures",
    "latent_diagnostics": "evaluation.diagnostics",
    "modality_shares": "evaluation.lattice",
    "lattice_values": "evaluation.lattice",
    "predict": "evaluation.predict",
    "rollout": "evaluation.predict",
    # statistics over seeds, and the checks of what a run shows
    "summarise": "evaluation.statistics",
    "check_findings": "evaluation.findings",
    "Finding": "evaluation.findings",
    # figures, report, runs side by side
    "draw_figures": "outputs.figures",
    "write_report": "outputs.report",
    "compare": "outputs.compare",
    # errors
    "IntermodalError": "errors",
}
# Public names that are another name in their module.
_RENAMED = {"preset": "preset_config", "load_run": "read_run"}

# Subpackages reached as attributes (im.adapters.multivae(...)).
_SUBPACKAGES = ("adapters",)

__all__ = ["__version__", *_EXPORTS, *_SUBPACKAGES]

# What a type checker and an IDE see: the same names from the same modules, imported
# eagerly only for them (tests/test_architecture.py keeps the three lists in step).
if TYPE_CHECKING:
    from . import adapters as adapters
    from .data.catalog import load_dataset as load_dataset
    from .data.dataset import Dataset as Dataset
    from .data.description import DatasetDescription as DatasetDescription
    from .data.reading import load_description as load_description
    from .data.sim import simulate as simulate
    from .errors import IntermodalError as IntermodalError
    from .evaluation.checks import check_model as check_model
    from .evaluation.diagnostics import latent_diagnostics as latent_diagnostics
    from .evaluation.findings import Finding as Finding
    from .evaluation.findings import check_findings as check_findings
    from .evaluation.lattice import lattice_values as lattice_values
    from .evaluation.lattice import modality_shares as modality_shares
    from .evaluation.measures import integration_measures as integration_measures
    from .evaluation.predict import predict as predict
    from .evaluation.predict import rollout as rollout
    from .evaluation.statistics import summarise as summarise
    from .model.likelihoods import Likelihood as Likelihood
    from .model.likelihoods import Outputs as Outputs
    from .model.posterior import GaussianPosterior as GaussianPosterior
    from .model.posterior import MixturePosterior as MixturePosterior
    from .model.protocol import LatentModel as LatentModel
    from .model.protocol import OutputGaussianModel as OutputGaussianModel
    from .model.protocol import OutputModel as OutputModel
    from .outputs.compare import compare as compare
    from .outputs.figures import draw_figures as draw_figures
    from .outputs.report import write_report as write_report
    from .study.runs import resume as resume
    from .study.runs import run_study as run_study
    from .study.runs import train as train
    from .training.config import ModelKey as ModelKey
    from .training.config import RunConfig as RunConfig
    from .training.config import preset_config
    from .training.runfolder.loading import Run as Run
    from .training.runfolder.loading import TrainingResult as TrainingResult
    from .training.runfolder.loading import read_run

    # public names that are another name in their module (_RENAMED): assigned, so that
    # type checkers take them as exported (a renaming import is private to them)
    preset = preset_config
    load_run = read_run

# A library prints nothing unless asked: its log lines (expected durations, notes,
# warnings) reach a user who configures logging, as the command line does.
logging.getLogger("intermodal").addHandler(logging.NullHandler())


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'intermodal' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
