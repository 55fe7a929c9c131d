"""Entry point: `python -m localcloud VERB` (see localcloud.cli)."""

import sys

from localcloud.cli import main

sys.exit(main())
