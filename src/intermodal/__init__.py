"""intermodal: train multimodal VAEs under KL-weight schedules and measure how they
integrate their modalities (Zambelli et al. 2020; Langer et al. 2024).

Data flows one way: :mod:`~intermodal.data` (and :mod:`~intermodal.sim`) →
:mod:`~intermodal.train` (with :mod:`~intermodal.model`, :mod:`~intermodal.schedules`) →
:mod:`~intermodal.measures` → results tables → :mod:`~intermodal.figures` and
:mod:`~intermodal.report`; :mod:`~intermodal.study` ties them together.
"""

__version__ = "0.1.0"
