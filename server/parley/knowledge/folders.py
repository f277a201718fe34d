"""Which collections exist: the folders of ``knowledge/`` in the catalog root.

Kept apart from ingestion so that loading the catalog (which checks the
collections rule sets name) imports nothing else of the package.
"""

from __future__ import annotations

import re
from pathlib import Path

KNOWLEDGE_DIR = "knowledge"
COLLECTION_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def declared_collections(root: Path) -> set[str]:
    """Every ``knowledge/<collection>/`` folder with a valid id (an empty one counts:
    its documents may all be uploads)."""
    folder = root / KNOWLEDGE_DIR
    if not folder.is_dir():
        return set()
    return {p.name for p in folder.iterdir() if p.is_dir() and COLLECTION_ID.match(p.name)}
