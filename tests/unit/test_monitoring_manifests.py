"""The Kubernetes monitoring manifests are generated from the plain files and stay equal."""

from __future__ import annotations

import subprocess
import sys

import jsonschema
import yaml

from tests.conftest import REPO_ROOT, crds_dir

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
    assert route["groupBy"] == ["model"]
    (receiver,) = doc["spec"]["receivers"]
    (plain_receiver,) = [r for r in plain["receivers"] if r["name"] == receiver["name"]]
    assert receiver["webhookConfigs"][0]["url"] == plain_receiver["webhook_configs"][0]["url"]
    assert receiver["webhookConfigs"][0]["url"].endswith("/alerts")
