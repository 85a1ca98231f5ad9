"""A run folder: the one place that knows its files and folders and their columns.
Training writes through it; measuring, figures, the report, the cluster backend and the
prediction baselines find their files through it. Nothing else spells these names.

Its parts: :mod:`.folder` (the names, where each file is, the lock of the one writer, the
JSON records), :mod:`.tables` (the parquet tables, their columns and types, older versions'
tables) and :mod:`.loading` (a run read back, its trained models and data). The names below
are theirs; a cluster study's units are merged into one run folder by
:mod:`intermodal.study.merge`.

Files of ``RUN/``::

    config.json               the resolved :class:`~intermodal.training.config.RunConfig`
    description.json          the data set's description
    environment.json          where each stretch of training ran: device, torch, precision
                              (intermodal.training.device.environment), one entry per start
    history.parquet           one row per model and epoch: HISTORY_COLUMNS
    results.parquet           one row per model, epoch, quantity, modality, scope: RESULTS_COLUMNS
    diagnostics.parquet       one row per model, epoch, latent dimension: DIAGNOSTICS_COLUMNS
    prediction_errors.parquet the prediction tests' errors (intermodal predict RUN --tests)
    baselines/                the prediction baselines (intermodal.evaluation.baselines)
    checkpoint/               weights, optimiser and generator states (intermodal.training.checkpoint)
    units/                    a study trained on a Ray cluster: plan.json, the driver's marker
                              (.driver-<token>) and one run folder per unit
    controls/                 a study's ground-truth controls (intermodal.study.controls), a
                              run folder each, named by the control (controls/synergy)
    figures/                  PNG and SVG of each figure
    report.html               the report
    tracking/                 --track's local stores: tensorboard/ event files, mlflow.db
    .lock                     held by the one process writing the folder

Every file is written atomically and durably (:mod:`intermodal.files`). A model is named in
every table by the columns of :class:`~intermodal.training.config.ModelKey`.
"""

from __future__ import annotations

from .folder import *  # noqa: F403
from .folder import __all__ as _folder
from .loading import *  # noqa: F403
from .loading import __all__ as _loading
from .tables import *  # noqa: F403
from .tables import __all__ as _tables

__all__ = [*_folder, *_tables, *_loading]
