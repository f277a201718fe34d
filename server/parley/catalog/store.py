"""The current catalog, swapped atomically when a reload succeeds."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from parley.catalog.catalog import Catalog
from parley.catalog.loader import load_catalog


class CatalogStore:
    """Holds the current catalog; :meth:`reload` swaps it only if the new one loads.

    An :class:`~parley.catalog.agent.Agent` already handed out is immutable,
    so a reload never changes a reply mid-stream; later lookups see the new
    catalog (``Agent.catalog_version`` tells which one served a turn).
    """

    def __init__(
        self,
        root: Path,
        catalog: Catalog,
        *,
        loader: Callable[[Path], Catalog] = load_catalog,
    ) -> None:
        self.root = root
        self._catalog = catalog
        self._load = loader
        self._lock = threading.Lock()

    @classmethod
    def open(cls, root: Path) -> CatalogStore:
        return cls(root, load_catalog(root))

    @property
    def current(self) -> Catalog:
        return self._catalog

    def reload(self) -> Catalog:
        """Load the files again; on CatalogError the old catalog stays current."""
        with self._lock:  # two reloads at once must not interleave their swaps
            catalog = self._load(self.root)
            self._catalog = catalog  # one reference assignment: readers see old or new
            return catalog
