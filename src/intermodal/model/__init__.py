"""Models: layer widths and the original presets (:mod:`.architecture`), the multimodal
VAE as a batched ensemble (:mod:`.vae`), and what every consumer of a model relies on
(:mod:`.protocol`). Imports only the data layer."""
