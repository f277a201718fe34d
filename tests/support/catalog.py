"""The shipped catalog, copied for a test to change."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def copy_catalog(target: Path) -> Path:
    """Copy the repository's catalog (its folders and agents.yaml) to ``target``."""
    for folder in ("personalities", "rules", "tools", "knowledge"):
        shutil.copytree(REPO / folder, target / folder)
    shutil.copy(REPO / "agents.yaml", target / "agents.yaml")
    return target
