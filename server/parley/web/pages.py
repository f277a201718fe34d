"""The one Jinja2 environment for Parley's own HTML pages.

Sandboxed and autoescaping, like every template Parley renders: the pages'
values (agent names, titles, schema descriptions) come from configuration
that is not always the deployer's own hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import jinja2
from jinja2.sandbox import SandboxedEnvironment


def page_templates(folder: Path, *, pages: Iterable[str] = ()) -> SandboxedEnvironment:
    """Templates from ``folder``; ``pages`` are loaded now, so a broken one fails at start-up."""
    environment = SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(folder),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    for page in pages:
        environment.get_template(page)
    return environment
