"""``python -m bench``: run the harness (``--help`` for the options)."""

import sys

from bench.run import main

sys.exit(main())
