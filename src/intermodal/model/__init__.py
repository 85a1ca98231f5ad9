"""Models: layer widths and the original presets (:mod:`.architecture`), the batched
ensemble with Zambelli's decoder and the fusions' hooks (:mod:`.base`), the fusions and
their registry (:mod:`.fusions`), ensembles of several fusions and building a model by
name (:mod:`.group`), the output families (:mod:`.likelihoods`), Gaussian and mixture
posteriors (:mod:`.posterior`), and what every consumer of a model relies on
(:mod:`.protocol`). Imports only the data layer."""
