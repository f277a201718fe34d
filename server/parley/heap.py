"""Keep the cyclic garbage collector off what lives as long as the process.

The imported libraries, the catalog, the rules' tables and the token
encodings are made once at start-up and never freed, yet every full
collection walked them all: 150 to 220 ms (on the 2-core bench machine)
during which no stream on the loop moved (docs/performance.md). Frozen,
they are skipped, and a full collection walks only what serving allocated
since: 30 to 70 ms there. Whatever frozen becomes garbage later (a catalog
replaced by a reload) is still freed by reference counting, unless it sits
in a reference cycle: a few objects per reload, not worth walking the heap for.

What serving allocates is freed by reference counting too: a closed socket
leaves no cycles (tests/test_heap_cycles.py). A full collection then finds
almost nothing to free, yet still stops every stream for as long as it walks
the live heap of every running reply: 40 to 75 ms at 128 streams there.
So it runs ten times less often than CPython's default (after 100 collections
of the middle generation instead of 10); the young generations, whose
collections take a few milliseconds, keep their default pace.
"""

from __future__ import annotations

import gc

FULL_COLLECTION_EVERY = 100  # middle-generation collections (CPython's default: 10)


def settle() -> None:
    """Collect start-up's garbage, then freeze everything left (once, when ready to serve)."""
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)
