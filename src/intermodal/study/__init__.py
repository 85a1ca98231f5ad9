"""Studies: training runs as the library offers them (:mod:`.runs`), a study on this
machine (:mod:`.local`), a study's units for a cluster (:mod:`.units`) and on a Ray
cluster (:mod:`.cluster`). The last layer before the command line."""
