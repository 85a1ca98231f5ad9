"""intermodal: train multimodal VAEs under KL-weight schedules and measure how they
integrate their modalities (Zambelli et al. 2020; Langer et al. 2024).

Data flows one way: :mod:`~intermodal.data` (chosen by :mod:`~intermodal.catalog`, made by
:mod:`~intermodal.sim` or read from files) → :mod:`~intermodal.train` (with
:mod:`~intermodal.model`, :mod:`~intermodal.schedules`) → :mod:`~intermodal.measures` and
:mod:`~intermodal.predict` → the run folder (:mod:`~intermodal.runfolder`, its only reader
and writer) → :mod:`~intermodal.figures` and :mod:`~intermodal.report`;
:mod:`~intermodal.study` ties them together and :mod:`~intermodal.cluster` spreads a study
over a Ray cluster. The README lists every module's job.
"""

__version__ = "0.1.0"
