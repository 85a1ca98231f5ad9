"""Studies: training runs as the library offers them (:mod:`.runs`), a study on this
machine (:mod:`.local`) and on a Ray cluster (:mod:`.cluster`). The last layer before the
command line."""
