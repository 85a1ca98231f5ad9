"""``python -m intermodal``: the command line through the interpreter that runs it, for an
environment whose bin folder is not on PATH (a notebook's kernel); the same commands and
exit statuses as the ``intermodal`` executable."""

import sys

from .cli import main

if __name__ == "__main__":  # importing the module (a documentation tool does) runs nothing
    sys.exit(main())
