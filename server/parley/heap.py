"""Keep the cyclic garbage collector off what lives as long as the process.

The imported libraries, the catalog, the rules' tables and the token
encodings are made once at start-up and never freed, yet every full
collection walked them all: 150 to 220 ms (on the 2-core bench machine)
during which no stream on the loop moved (docs/performance.md). Frozen,
they are skipped, and a full collection walks only what serving allocated
since: 30 to 70 ms there. Whatever frozen becomes garbage later (a catalog
replaced by a reload) is still freed by reference counting, unless it sits
in a reference cycle: a few objects per reload, not worth walking the heap for.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect start-up's garbage, then freeze everything left (once, when ready to serve)."""
    gc.collect()
    gc.freeze()
