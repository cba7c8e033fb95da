"""The Kubernetes monitoring manifests are generated from the plain files and stay equal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.conftest import REPO_ROOT, crds_dir, require_binary

MANIFESTS = REPO_ROOT / "manifests" / "base" / "monitoring"


def test_manifests_are_up_to_date_with_the_plain_files() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "monitoring" / "render_manifests.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_prometheusrule_holds_exactly_the_plain_rules() -> None:
    plain = yaml.safe_load(
        (REPO_ROOT / "monitoring" / "prometheus" / "kfops-rules.yml").read_text()
    )
    rule = yaml.safe_load((MANIFESTS / "prometheusrule.yaml").read_text())
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == plain["groups"]


def test_prometheusrule_matches_the_crd_schema() -> None:
    crd_path = crds_dir() / "monitoring.coreos.com_prometheusrules.yaml"
    crd = yaml.safe_load(crd_path.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    rule = yaml.safe_load((MANIFESTS / "prometheusrule.yaml").read_text())
    schema = _strict(version["schema"]["openAPIV3Schema"])
    # The CRD's patterns are Go regexes the metaschema check rejects; validate without it.
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(rule))
    assert not errors, [e.message for e in errors]


def _strict(schema: object) -> object:
    """Unknown fields are errors, as with `kubectl apply --validate=strict`."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if "properties" in out and not out.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def test_alertmanagerconfig_routes_retrain_alerts_to_the_trigger() -> None:
    plain = yaml.safe_load(
        (REPO_ROOT / "monitoring" / "alertmanager" / "alertmanager.yml").read_text()
    )
    doc = yaml.safe_load((MANIFESTS / "alertmanager-config.yaml").read_text())
    route = doc["spec"]["route"]
    assert route["matchers"] == [{"name": "kfops_action", "value": "retrain", "matchType": "="}]
    assert route["groupBy"] == ["namespace", "model"]
    (receiver,) = doc["spec"]["receivers"]
    (plain_receiver,) = [r for r in plain["receivers"] if r["name"] == receiver["name"]]
    assert receiver["webhookConfigs"][0]["url"] == plain_receiver["webhook_configs"][0]["url"]
    assert receiver["webhookConfigs"][0]["url"].endswith("/alerts")


def test_grafana_dashboard_is_up_to_date_with_its_generator() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "monitoring" / "grafana" / "dashboard.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    board = json.loads((REPO_ROOT / "monitoring" / "grafana" / "kfops.json").read_text())
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert {p["datasource"]["uid"] for p in panels} == {"${datasource}"}
    titles = " ".join(p["title"] for p in panels).lower()
    for needed in ("request rate", "error ratio", "latency", "by class", "drift", "version",
                   "capture", "trigger"):  # fmt: skip
        assert needed in titles, needed


def _operator_config(namespace: str, strategy: str) -> dict:
    """The Alertmanager config the Prometheus Operator (v0.93.0, pkg/alertmanager/amcfg.go)
    builds from our AlertmanagerConfig in ``namespace``: the route is prefixed with the CR's
    namespace/name, gets `continue: true` (continueToNextRoute), and under the default matcher
    strategy OnNamespace a matcher namespace="<namespace>" (namespaceEnforcer.processRoute)."""
    doc = yaml.safe_load((MANIFESTS / "alertmanager-config.yaml").read_text())
    route = doc["spec"]["route"]
    matchers = [f'{m["name"]}{m["matchType"]}"{m["value"]}"' for m in route["matchers"]]
    if strategy == "OnNamespace":
        matchers.append(f'namespace="{namespace}"')
    receiver = f"{namespace}/{doc['metadata']['name']}/{route['receiver']}"
    return {
        "route": {
            "receiver": "null",
            "routes": [{"receiver": receiver, "matchers": matchers, "continue": True,
                        "group_by": route["groupBy"]}],
        },
        "receivers": [{"name": "null"},
                      {"name": receiver, "webhook_configs": [
                          {"url": doc["spec"]["receivers"][0]["webhookConfigs"][0]["url"]}]}],
    }  # fmt: skip


def _routes_to(amtool: str, config: dict, tmp_path: Path, labels: dict[str, str]) -> str:
    path = tmp_path / "am.yml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        [amtool, "config", "routes", "test", "--config.file", str(path),
         *[f"{k}={v}" for k, v in labels.items()]],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return proc.stdout.strip()


@pytest.mark.parametrize("namespace", ["kubeflow", "kfops"])
def test_retrain_alerts_reach_the_trigger_through_the_operator_route(
    tmp_path: Path, namespace: str
) -> None:
    amtool = require_binary("amtool")
    config = _operator_config(namespace, "OnNamespace")
    # The labels KfopsFeatureDrift fires with on a cluster (promtool test
    # monitoring/prometheus/tests/namespaces.yml): the pod's namespace is kept.
    alert = {"alertname": "KfopsFeatureDrift", "kfops_action": "retrain", "severity": "warning",
             "namespace": namespace, "model": "penguins", "feature": "x"}  # fmt: skip
    assert _routes_to(amtool, config, tmp_path, alert).endswith("/kfops-trigger")
    # Without the namespace label (rules aggregating it away) the trigger would never hear.
    no_namespace = {k: v for k, v in alert.items() if k != "namespace"}
    assert _routes_to(amtool, config, tmp_path, no_namespace) == "null"
    # Alerts of another namespace go to that namespace's own route, not ours.
    other = {**alert, "namespace": "someone-else"}
    assert _routes_to(amtool, config, tmp_path, other) == "null"
