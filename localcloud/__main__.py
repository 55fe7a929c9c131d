"""Entry point: `python -m localcloud VERB` (see localcloud.cli)."""

import sys

from localcloud.cli import main

# The guard matters: the job runner's fork server re-imports the main module, which must not run again.
if __name__ == "__main__":
    sys.exit(main())
