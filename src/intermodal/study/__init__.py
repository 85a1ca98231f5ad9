"""Studies: training runs as the library offers them (:mod:`.runs`), a study on this
machine (:mod:`.local`) and on a Ray cluster (:mod:`.cluster`, its units planned by
:mod:`.units` and merged into one run folder by :mod:`.merge`), and the ground-truth
controls a study on the simulator trains beside its models (:mod:`.controls`). The last
layer before the command line."""
