"""Studies: training runs as the library offers them (:mod:`.runs`), a study on this
machine (:mod:`.local`) and on a Ray cluster (:mod:`.cluster`, its units planned by
:mod:`.units` and merged into one run folder by :mod:`.merge`). The last layer before the
command line."""
