"""The Kubernetes manifests in deploy/k8s: valid against the Kubernetes schemas, and true
to the server they deploy (probes on real routes, a grace period longer than Parley's).

Offline: ``kubernetes-validate`` bundles the JSON schemas of every Kubernetes release.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from parley.catalog.loader import load_catalog
from parley.config import Settings
from parley.replies.service import STORE_INTERRUPTED_SECONDS
from parley.transport.ops import ops_routes

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0")  # the oldest and a recent supported release
CLOSING_MARGIN_SECONDS = 5  # closing the pools and the process after the replies


def documents() -> list[dict[str, Any]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def the(kind: str) -> dict[str, Any]:
    matching = [doc for doc in documents() if doc["kind"] == kind]
    assert len(matching) == 1, f"expected one {kind}, found {len(matching)}"
    return matching[0]


def container() -> dict[str, Any]:
    pod = the("Deployment")["spec"]["template"]["spec"]
    found: dict[str, Any] = pod["containers"][0]
    return found


def env_value(name: str) -> str | None:
    for entry in container().get("env", []):
        if entry["name"] == name:
            value: str | None = entry.get("value")
            return value
    return None


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_against_the_kubernetes_schemas(version: str) -> None:
    docs = documents()
    assert {doc["kind"] for doc in docs} >= {
        "Deployment",
        "Service",
        "ConfigMap",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    }
    for doc in docs:
        # strict: an unknown field (a typo) is an error, as `kubectl apply` would make it
        kubernetes_validate.validate(doc, version, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_termination_grace_outlasts_the_pre_stop_pause_and_parleys_shutdown() -> None:
    """preStop pause, then the replies' grace, then storing the ones still running as
    interrupted, then closing: all before the kubelet's SIGKILL."""
    pod = the("Deployment")["spec"]["template"]["spec"]
    configured = env_value("PARLEY_SHUTDOWN_GRACE_SECONDS")
    default = Settings.model_fields["shutdown_grace_seconds"].default
    shutdown_grace = float(configured) if configured is not None else float(default)
    pre_stop = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    pause = float(pre_stop[1])
    needed = pause + shutdown_grace + STORE_INTERRUPTED_SECONDS + CLOSING_MARGIN_SECONDS
    assert pod["terminationGracePeriodSeconds"] >= needed
    assert pod["terminationGracePeriodSeconds"] > shutdown_grace


def test_probes_point_at_real_routes_on_declared_ports() -> None:
    routes = {getattr(route, "path", None) for route in ops_routes()}
    ports = {port["name"]: port["containerPort"] for port in container()["ports"]}
    probes = {name: container()[name] for name in ("readinessProbe", "livenessProbe")}
    assert probes["readinessProbe"]["httpGet"]["path"] == "/ready"
    for probe in [*probes.values(), container()["startupProbe"]]:
        get = probe["httpGet"]
        assert get["path"] in routes
        assert get["port"] in ports
    assert ports["http"] == 8000  # the image's CMD and EXPOSE


def test_metrics_port_matches_the_setting_and_has_its_own_service() -> None:
    ports = {port["name"]: port["containerPort"] for port in container()["ports"]}
    assert env_value("PARLEY_METRICS_PORT") == str(ports["metrics"])
    assert env_value("PARLEY_METRICS_HOST") == "0.0.0.0"  # reachable by Prometheus in-cluster
    services = [doc for doc in documents() if doc["kind"] == "Service"]
    targets = {port["targetPort"] for svc in services for port in svc["spec"]["ports"]}
    assert targets == {"http", "metrics"}
    for svc in services:
        assert len(svc["spec"]["ports"]) == 1  # chat and metrics never share a Service


def test_selectors_match_the_pod_labels() -> None:
    deployment = the("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = [
        deployment["spec"]["selector"]["matchLabels"],
        the("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        *(doc["spec"]["selector"] for doc in documents() if doc["kind"] == "Service"),
    ]
    for selector in selectors:
        assert selector.items() <= labels.items()
    target = the("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    hpa = the("HorizontalPodAutoscaler")["spec"]
    assert hpa["minReplicas"] >= 2  # the disruption budget can always leave one pod up
    assert the("PodDisruptionBudget")["spec"]["maxUnavailable"] < hpa["minReplicas"]


def test_pod_runs_unprivileged_on_a_read_only_root() -> None:
    pod = the("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    security = container()["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    mounts = {mount["mountPath"] for mount in container()["volumeMounts"]}
    assert {"/tmp", env_value("PARLEY_DATA_DIR")} <= mounts  # the only writable places
    resources = container()["resources"]
    assert {"cpu", "memory"} <= resources["requests"].keys()
    assert "memory" in resources["limits"]


def test_keys_come_from_a_secret_never_from_the_manifests() -> None:
    secret_names = {"DATABASE_URL", "REDIS_URL", "PARLEY_JWT_SECRET", "OPENAI_API_KEY"}
    by_name = {entry["name"]: entry for entry in container()["env"]}
    for name in secret_names:
        assert "value" not in by_name[name]
        assert by_name[name]["valueFrom"]["secretKeyRef"]["name"] == "parley-secrets"
    assert not [doc for doc in documents() if doc["kind"] == "Secret"]


def test_catalog_config_map_loads_as_a_catalog(tmp_path: Path) -> None:
    config_map = the("ConfigMap")
    mount = next(m for m in container()["volumeMounts"] if m["name"] == "catalog")
    assert mount["mountPath"] == "/app/agents.yaml"  # PARLEY_CATALOG=/app in the image
    for name in ("personalities", "rules", "tools", "knowledge"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, tmp_path / name)
    (tmp_path / "agents.yaml").write_text(config_map["data"][mount["subPath"]])
    catalog = load_catalog(tmp_path)
    assert catalog.agents
