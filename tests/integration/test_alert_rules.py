"""The kfops alerting rules and Alertmanager config, checked by the real Prometheus tools."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import REPO_ROOT, require_binary

pytestmark = pytest.mark.integration

RULES = REPO_ROOT / "monitoring" / "prometheus" / "kfops-rules.yml"
RULE_TESTS = sorted((REPO_ROOT / "monitoring" / "prometheus" / "tests").glob("*.yml"))
ALERTMANAGER = REPO_ROOT / "monitoring" / "alertmanager" / "alertmanager.yml"


def _run(*cmd: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def test_rules_file_is_valid() -> None:
    out = _run(require_binary("promtool"), "check", "rules", str(RULES))
    assert "SUCCESS" in out


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=[p.stem for p in RULE_TESTS])
def test_promtool_rule_unit_tests(test_file) -> None:
    out = _run(require_binary("promtool"), "test", "rules", str(test_file))
    assert "SUCCESS" in out and "FAILED" not in out


def test_every_alert_has_a_promtool_test() -> None:
    import yaml

    alerts = {
        rule["alert"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    tested = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check["exp_alerts"]:  # a test that only asserts silence proves little
                    tested.add(check["alertname"])
    assert alerts == tested


def test_alertmanager_config_is_valid() -> None:
    out = _run(require_binary("amtool"), "check-config", str(ALERTMANAGER))
    assert "SUCCESS" in out


def test_retrain_alerts_route_to_the_trigger() -> None:
    amtool = require_binary("amtool")
    out = _run(
        amtool,
        "config",
        "routes",
        "test",
        "--config.file",
        str(ALERTMANAGER),
        "kfops_action=retrain",
        "model=m",
        "alertname=KfopsFeatureDrift",
    )
    assert "kfops-trigger" in out
    out = _run(
        amtool,
        "config",
        "routes",
        "test",
        "--config.file",
        str(ALERTMANAGER),
        "alertname=KfopsHighErrorRatio",
        "model=m",
    )
    assert "kfops-trigger" not in out
