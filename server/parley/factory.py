"""``uvicorn parley.factory:app --factory``: the app from the environment."""

from __future__ import annotations

from starlette.applications import Starlette

from parley.app import create_app
from parley.config import load_settings


def app() -> Starlette:
    return create_app(load_settings())
