"""The agents catalog: personalities, domain rule sets and the agents binding them."""

from parley.catalog.agent import Agent, Personality
from parley.catalog.catalog import Catalog
from parley.catalog.errors import CatalogError
from parley.catalog.loader import load_catalog
from parley.catalog.store import CatalogStore

__all__ = ["Agent", "Catalog", "CatalogError", "CatalogStore", "Personality", "load_catalog"]
