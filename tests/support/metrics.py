"""Scraping ``/metrics`` as Prometheus would, with prometheus-client's own text parser."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "parley.json"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"

# The series each family type exposes, by suffix.
_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
    "summary": ("", "_sum", "_count"),
}
_METRIC_NAME = re.compile(r"\bparley_[a-z0-9_]+")


@dataclass(frozen=True)
class Scrape:
    text: str

    @property
    def families(self) -> dict[str, Any]:
        return {family.name: family for family in text_string_to_metric_families(self.text)}

    @property
    def samples(self) -> list[Sample]:
        return [sample for family in self.families.values() for sample in family.samples]

    def value(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples that have these labels (0 when there are none)."""
        return sum(
            sample.value
            for sample in self.samples
            if sample.name == name
            and all(sample.labels.get(key) == value for key, value in labels.items())
        )

    def series_names(self) -> set[str]:
        """Every series name a query may use: ``parley_replies_total``, ``..._bucket``, ..."""
        return {
            family.name + suffix
            for family in self.families.values()
            for suffix in _SUFFIXES.get(family.type, ("",))
        } | {sample.name for sample in self.samples}


def scrape(url: str, token: str | None = None) -> Scrape:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the Grafana dashboard (panels, rows and variables)."""
    return list(_find_exprs(json.loads(DASHBOARD.read_text())))


def alert_queries() -> list[str]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def metric_names(queries: Iterable[str]) -> set[str]:
    return {name for query in queries for name in _METRIC_NAME.findall(query)}


def _find_exprs(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "query") and isinstance(value, str):
                yield value  # a panel's target, or a templating variable's query
            else:
                yield from _find_exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _find_exprs(item)
