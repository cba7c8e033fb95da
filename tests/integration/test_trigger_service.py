"""`kfops trigger` as a real process, fed by a real Alertmanager."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.integration._stack import get_json, http, metric_value, stack, wait_for

pytestmark = pytest.mark.integration

NO_KFP = {"KFOPS_KFP_HOST": "", "KF_PIPELINES_ENDPOINT": ""}


def _alert(model: str, feature: str) -> dict:
    return {
        "labels": {"alertname": "KfopsFeatureDrift", "model": model, "feature": feature,
                   "version": "v1", "severity": "warning", "kfops_action": "retrain"},
        "annotations": {"summary": f"{feature} drifted"},
        "startsAt": datetime.now(UTC).isoformat(),
    }  # fmt: skip


def _metrics(url: str) -> str:
    return http("GET", f"{url}/metrics")[1].decode()


def _am_delivered(url: str) -> float:
    """Webhook notifications Alertmanager completed: attempted minus failed (all reasons)."""
    sent = failed = 0.0
    for line in http("GET", f"{url}/metrics")[1].decode().splitlines():
        if 'integration="webhook"' not in line:
            continue
        name, value = line.split("{", 1)[0], float(line.rsplit(" ", 1)[1])
        if name == "alertmanager_notifications_total":
            sent += value
        elif name == "alertmanager_notifications_failed_total":
            failed += value
    return sent - failed


def _webhook(*alerts: dict) -> dict:
    return {"version": "4", "status": "firing", "receiver": "kfops-trigger", "groupKey": "g",
            "alerts": [{**a, "status": "firing", "fingerprint": a["labels"]["feature"]}
                       for a in alerts]}  # fmt: skip


def test_http_surface(tmp_path: Path) -> None:
    with stack(tmp_path) as s:
        trig = s.trigger("--registry", str(tmp_path / "reg"), "--data-uri", "/nonexistent.csv",
                         env=NO_KFP)  # fmt: skip
        assert get_json(f"{trig.url}/healthz") == {"status": "ok"}
        status, body = http("POST", f"{trig.url}/alerts", raw=b"{oops")
        assert status == 400 and "not valid JSON" in json.loads(body)["error"]
        status, body = http("POST", f"{trig.url}/alerts", raw=b'{"alerts": 3}')
        assert status == 400 and "'alerts' must be a list" in json.loads(body)["error"]
        assert http("POST", f"{trig.url}/nope", raw=b"{}")[0] == 404
        assert http("GET", f"{trig.url}/nope")[0] == 404
        text = _metrics(trig.url)
        assert metric_value(text, "kfops_trigger_webhooks_total", status="bad_request") == 2
        assert get_json(f"{trig.url}/status")["launcher"] == "local"


def test_alert_storm_through_alertmanager_makes_one_run(tmp_path: Path) -> None:
    with stack(tmp_path) as s:
        # No champion in this registry: the single run fails fast, and says why.
        trig = s.trigger("--registry", str(tmp_path / "reg"), "--data-uri", "/data.csv",
                         "--cooldown", "3600", "--models", "storm", env=NO_KFP)  # fmt: skip
        am = s.alertmanager(trig.url)
        storm = [_alert("storm", f"f{i}") for i in range(100)]
        assert http("POST", f"{am.url}/api/v2/alerts", storm)[0] == 200
        # And webhooks straight at the trigger, concurrently.
        direct = [threading.Thread(target=http, args=("POST", f"{trig.url}/alerts",
                                                      _webhook(_alert("storm", f"d{i}"))))
                  for i in range(50)]  # fmt: skip
        for t in direct:
            t.start()
        for t in direct:
            t.join()
        wait_for(
            "the run to end",
            lambda: get_json(f"{trig.url}/status")["models"]["storm"]["last_outcome"] == "failed",
            60, [trig, am],
        )  # fmt: skip

        # Alertmanager's (grouped) notifications: wait until the trigger has answered every one
        # Alertmanager says it delivered (its own counters), and at least one; all skipped.
        def delivered_all() -> bool:
            sent = _am_delivered(am.url)
            accepted = metric_value(_metrics(trig.url), "kfops_trigger_webhooks_total",
                                    status="accepted")  # fmt: skip
            return sent >= 1 and accepted == len(direct) + sent

        wait_for("the trigger to answer Alertmanager's notifications", delivered_all, 60,
                 [trig, am])  # fmt: skip
        text = _metrics(trig.url)
        assert metric_value(text, "kfops_trigger_runs_total", outcome="started") == 1
        assert metric_value(text, "kfops_trigger_runs_total", outcome="failed") == 1
        state = get_json(f"{trig.url}/status")["models"]["storm"]
        assert state["runs"] == 1
        # The one run failed fast, and says why: this registry has no model called storm.
        assert state["last_detail"].startswith(f"run {state['last_run']} failed: unknown model "
                                               "'storm' in "), state  # fmt: skip
        log = trig.text()
        assert "not triggering" in log and "started local training run" in log


def test_unreachable_kubeflow_answers_503_and_alertmanager_retries(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    with stack(tmp_path) as s:
        trig = s.trigger(
            "--registry", str(tmp_path / "reg"), "--kfp-host", dead, "--data-uri",
            "gs://bucket/data.csv", "--target", "species", "--task", "classification",
            "--models", "m", env={"KFOPS_KFP_TOKEN": "", "KFOPS_KFP_TOKEN_FILE": ""},
        )  # fmt: skip
        assert get_json(f"{trig.url}/status")["launcher"] == "kubeflow"
        status, body = http("POST", f"{trig.url}/alerts", _webhook(_alert("m", "x")), timeout=60)
        assert status == 503, body
        assert dead.split("//")[1] in json.loads(body)["error"]
        am = s.alertmanager(trig.url)
        assert http("POST", f"{am.url}/api/v2/alerts", [_alert("m", "y")])[0] == 200
        wait_for(
            "alertmanager to retry",
            lambda: (metric_value(_metrics(trig.url), "kfops_trigger_webhooks_total",
                                  status="retry") or 0) >= 3, 60, [trig, am],
        )  # fmt: skip
        text = _metrics(trig.url)
        assert metric_value(text, "kfops_trigger_runs_total", outcome="started") == 0
        assert (metric_value(text, "kfops_trigger_runs_total", outcome="submit_failed") or 0) >= 3
        # Nothing lost: the alert is still active in Alertmanager.
        active = get_json(f"{am.url}/api/v2/alerts?active=true")
        assert any(a["labels"].get("feature") == "y" for a in active)
        assert "could not start a training run" in trig.text()
