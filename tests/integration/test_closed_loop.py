"""The closed loop, end to end, with real processes on 127.0.0.1:

train a champion -> `kfops serve` -> normal traffic (no alert) -> traffic with planted drift ->
Prometheus scrapes the server's drift gauges -> KfopsFeatureDrift fires -> Alertmanager calls
`kfops trigger` -> a training run starts on the labelled captured traffic -> the challenger is
validated and blessed -> the champion alias moves -> the server switches to the new version.

Every hop is asserted, and the outcome is decided by the data, not by timing: the drifted
traffic comes with a changed concept (its late labels are the opposite class), so the champion
is far worse on it than the challenger and blessing is not a near tie; Alertmanager holds the
alert (a silence) until every drifted row is captured and labelled, so the retraining set is
exactly the drifted traffic however slowly the capture writer runs.

Then `kfops monitor` pushes the window's figures to a real Pushgateway, and every panel of the
Grafana dashboard returns data from the same Prometheus (server, trigger and Pushgateway).

Also: `kfops monitor` pushes its figures to a real Pushgateway that Prometheus scrapes, and the
decay alert's annotation names the most important drifted features.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kfops.datasets import make_synthetic, write_table
from kfops.registry import Registry
from tests.conftest import free_port, require_binary
from tests.integration._grafana import DASHBOARD, check_dashboard
from tests.integration._stack import (
    firing_alerts,
    get_json,
    http,
    metric_value,
    query,
    stack,
    wait_for,
)

pytestmark = pytest.mark.integration

MODEL = "synth"
FEATURES = {"n_numeric": 4, "n_categorical": 2}
DRIFTED = "num_01"


def _predict(url: str, frame: pd.DataFrame, request_id: str) -> dict[str, Any]:
    rows = frame.drop(columns=["target"]).to_dict("records")
    req = json.dumps({"instances": rows}).encode()
    import urllib.request

    r = urllib.request.Request(
        f"{url}/v1/models/{MODEL}:predict", data=req, method="POST",
        headers={"Content-Type": "application/json", "X-Request-Id": request_id},
    )  # fmt: skip
    with urllib.request.urlopen(r, timeout=30) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


def _send(url: str, frame: pd.DataFrame, prefix: str, batch: int = 250) -> dict[str, int]:
    """Predict ``frame`` in batches with known request ids; the true target of each row id."""
    truth: dict[str, int] = {}
    for start in range(0, len(frame), batch):
        part = frame.iloc[start : start + batch]
        rid = f"{prefix}-{start // batch}"
        out = _predict(url, part, rid)
        assert len(out["predictions"]) == len(part)
        # Labels go with the id the answer returns: the client's id made unique.
        assert out["id"].startswith(f"{rid}.")
        truth.update({f"{out['id']}:{i}": int(t) for i, t in enumerate(part["target"])})
    return truth


def _captured_ids(capture: Path, prefix: str) -> set[str]:
    marker = f'{{"id":"{prefix}-'
    return {
        json.loads(line)["id"]
        for f in capture.glob(f"{MODEL}/*/*.jsonl")
        for line in f.read_text().splitlines()
        if line.startswith(marker)
    }


def _rule(prom: Any, name: str) -> dict[str, Any]:
    groups = get_json(f"{prom.url}/api/v1/rules")["data"]["groups"]
    return next(r for g in groups for r in g["rules"] if r.get("name") == name)


def _prom_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_drift_alert_retrains_and_the_server_switches(tmp_path: Path) -> None:
    for binary in ("prometheus", "prometheus-alertmanager", "prometheus-pushgateway"):
        require_binary(binary)
    from kfops.local_runner import TrainingParams, run_training

    registry_root = tmp_path / "registry"
    capture, labels = tmp_path / "capture", tmp_path / "labels"
    labels.mkdir()
    train = make_synthetic(3000, seed=1, **FEATURES)
    write_table(train, tmp_path / "train.csv")

    # Hop 0: a champion, trained by the real training pipeline (kfp.local).
    first = run_training(TrainingParams(
        data_uri=str(tmp_path / "train.csv"), target="target", task="classification",
        model_name=MODEL, registry_root=str(registry_root),
    ))  # fmt: skip
    assert first.blessed and first.version == "v1", first
    # The pipeline's deploy step moved the champion alias (what `kfops serve` follows).
    assert first.aliases.get("champion") == "v1", first.aliases
    registry = Registry(registry_root)
    assert registry.get_alias(MODEL, "champion") == "v1"

    with stack(tmp_path) as s:
        port = free_port()
        server = s.start(
            "server",
            [sys.executable, "-m", "kfops", "serve", "--registry", str(registry_root),
             "--model", MODEL, "--port", str(port), "--capture", str(capture),
             "--poll-interval", "0.5"],
            f"http://127.0.0.1:{port}", "/v1/models/" + MODEL, timeout=120,
        )  # fmt: skip
        trigger = s.trigger(
            "--registry", str(registry_root), "--capture-dir", str(capture),
            "--labels-dir", str(labels), "--window-hours", "1", "--cooldown", "3600",
            # A complete change of concept (the old labels are now wrong, below): retrain on
            # the window alone. The default mix with the champion's rows is unit-tested.
            "--reference-share", "0",
            env={"KFOPS_KFP_HOST": "", "KF_PIPELINES_ENDPOINT": ""},
        )  # fmt: skip
        am = s.alertmanager(trigger.url)
        pgw = s.pushgateway()
        prom = s.prometheus(
            {"kfops-serving": f"127.0.0.1:{port}", "kfops-trigger": trigger.url.split("://")[1],
             "pushgateway": pgw.url.split("://")[1]},
            am.url, for_seconds=3,
        )  # fmt: skip
        procs = [server, trigger, am, pgw, prom]

        # Hop 1: normal traffic -> drift gauges scraped, all small, no alert.
        # (Labels of this traffic never arrive: the retraining set is the drifted traffic.)
        _send(server.url, make_synthetic(2000, seed=2, **FEATURES), "normal")
        psi = wait_for(
            "drift gauges in Prometheus",
            lambda: query(prom, f'kfops_feature_drift_psi{{model="{MODEL}",version="v1"}}'),
            60, procs,
        )  # fmt: skip
        assert {r["metric"]["feature"] for r in psi} >= {"num_00", DRIFTED, "cat_00"}
        # Let Prometheus evaluate the alert rule, on its own clock, for longer than its `for:`
        # with these gauges present: a false alarm would be firing by then.
        seen = float(psi[0]["value"][0])
        wait_for(
            "KfopsFeatureDrift evaluated for longer than its `for:`",
            lambda: _prom_time(_rule(prom, "KfopsFeatureDrift")["lastEvaluation"]) > seen + 5,
            60, procs,
        )  # fmt: skip
        rule = _rule(prom, "KfopsFeatureDrift")
        assert rule["state"] == "inactive" and not rule["alerts"], rule  # not even pending
        assert max(float(r["value"][1]) for r in query(prom, "kfops_feature_drift_psi")) < 0.2

        # Hop 2: planted drift in one feature -> the alert fires for that feature only.
        # Alertmanager holds it (a silence, as an operator would set one) until the drifted
        # rows are all captured and labelled: the writer thread flushes after the answers.
        now = datetime.now(UTC)
        status, body = http("POST", f"{am.url}/api/v2/silences", {
            "matchers": [{"name": "alertname", "value": "KfopsFeatureDrift", "isRegex": False,
                          "isEqual": True}],
            "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat(),
            "createdBy": "test_closed_loop", "comment": "until the drifted traffic is labelled",
        })  # fmt: skip
        assert status == 200, body
        silence = json.loads(body)["silenceID"]
        drifted = make_synthetic(6000, seed=3, drift={DRIFTED: 2.0}, **FEATURES)
        truth = _send(server.url, drifted, "drifted")
        alerts = wait_for("KfopsFeatureDrift to fire",
                          lambda: firing_alerts(prom, "KfopsFeatureDrift"), 90, procs)  # fmt: skip
        assert {a["labels"]["feature"] for a in alerts} == {DRIFTED}
        assert alerts[0]["labels"]["model"] == MODEL
        assert alerts[0]["labels"]["kfops_action"] == "retrain"
        wait_for(f"all {len(truth)} drifted rows captured",
                 lambda: _captured_ids(capture, "drifted") == set(truth), 60, procs)  # fmt: skip
        # The late labels: the concept changed along with the inputs (the opposite class).
        (labels / "drifted.jsonl").write_text(
            "".join(json.dumps({"id": rid, "label": 1 - t}) + "\n" for rid, t in truth.items())
        )
        held = get_json(f"{trigger.url}/status")["models"].get(MODEL)
        assert held is None or held["runs"] == 0, held  # nothing got through the silence
        assert http("DELETE", f"{am.url}/api/v2/silence/{silence}")[0] == 200

        # Hop 3: Alertmanager -> trigger -> a local training run on the labelled window.
        def started() -> Any:
            st = get_json(f"{trigger.url}/status")["models"].get(MODEL)
            return st if st and st["runs"] >= 1 else None

        state = wait_for("the trigger to start a run", started, 60, procs)
        assert state["runs"] == 1
        run_id = state["last_run"]
        assert "KfopsFeatureDrift{feature=num_01" in trigger.text()

        # Hop 4: the run ends: trained on the labelled window, validated and judged.
        state = wait_for(
            "the training run to finish",
            lambda: (st := get_json(f"{trigger.url}/status")["models"][MODEL])["in_flight"] is None
            and st,
            600, procs, every=2,
        )  # fmt: skip
        assert state["last_outcome"] == "succeeded", state["last_detail"]
        metrics = http("GET", f"{trigger.url}/metrics")[1].decode()
        assert metric_value(metrics, "kfops_trigger_runs_total", outcome="started") == 1
        from kfops import tracking

        record = tracking.load_run(registry_root, run_id)
        assert record.status == "succeeded"
        # Trained on the labelled captured traffic of the last hour (reference share 0),
        # recorded as the mix.
        params = json.loads((registry_root / "runs" / run_id / "params.json").read_text())
        data_uri = params["data_uri"]
        assert f"retrain-data/{MODEL}/{run_id}.parquet" in data_uri
        assert len(pd.read_parquet(data_uri)) == len(drifted)
        why = json.loads((registry_root / "runs" / run_id / "trigger.json").read_text())
        assert why["alerts"] == [f"KfopsFeatureDrift{{feature={DRIFTED},version=v1}}"]
        assert why["data_uri"] == data_uri

        # Judged against the champion on the same held-out rows: clearly better, so blessed.
        assert f"run {run_id} blessed as v2" in state["last_detail"], state["last_detail"]
        assert "versus champion v1: pass" in state["last_detail"], state["last_detail"]
        v2 = registry.resolve(MODEL, "v2")
        decision = v2.lineage["blessing"]
        assert decision["blessed"] is True and decision["champion_version"] == "v1"
        assert decision["challenger"]["accuracy"] > decision["champion"]["accuracy"] + 0.3, decision

        # Hop 5: blessed -> registered as v2 -> the champion alias moved -> the server swapped.
        assert v2.lineage["data_uri"].endswith(f"{run_id}.parquet")
        mix = v2.lineage["data_mix"]
        assert (mix["window_rows"], mix["reference_rows"], mix["reference_share"]) == (
            len(drifted), 0, 0.0,
        )  # fmt: skip
        wait_for("the champion alias to move",
                 lambda: registry.get_alias(MODEL, "champion") == "v2", 60, procs)  # fmt: skip

        def served_v2() -> bool:
            text = http("GET", f"{server.url}/metrics")[1].decode()
            return metric_value(text, "kfops_model_info", model=MODEL, version="v2") == 1.0

        wait_for("the server to switch to v2", served_v2, 60, procs)
        out = _predict(server.url, drifted.head(5), "after-swap")
        assert len(out["predictions"]) == 5
        text = http("GET", f"{server.url}/metrics")[1].decode()
        assert metric_value(text, "kfops_model_info", model=MODEL, version="v1") == 0.0
        # The new version's reference is the drifted data: its drift gauges are small.
        _send(server.url, make_synthetic(2000, seed=4, drift={DRIFTED: 2.0}, **FEATURES), "after")
        wait_for(
            "v2 drift gauges",
            lambda: query(prom, f'kfops_feature_drift_psi{{model="{MODEL}",version="v2"}}'),
            60, procs,
        )  # fmt: skip
        v2_psi = query(prom, f'kfops_feature_drift_psi{{model="{MODEL}",version="v2"}}')
        assert max(float(r["value"][1]) for r in v2_psi) < 0.2

        # Hop 6: the monitoring job over the last hour, pushed; then the Grafana dashboard:
        # every panel's query returns data from this Prometheus.
        from kfops.cli import main

        code = main([
            "monitor", "--model", MODEL, "--registry", str(registry_root), "--capture-dir",
            str(capture), "--start", "-1h", "--report-dir", str(tmp_path / "report"),
            "--pushgateway", pgw.url, "--no-retrain",
        ])  # fmt: skip
        assert code == 0
        board = json.loads(DASHBOARD.read_text())
        problems: list[str] = []

        def all_panels_have_data() -> bool:
            problems[:] = check_dashboard(board, prom.url, rate_interval="1m")
            return not problems

        with contextlib.suppress(AssertionError):  # the list of empty panels below says which
            wait_for("every dashboard panel to return data", all_panels_have_data, 90, procs,
                     every=1)  # fmt: skip
        assert problems == []


def test_monitoring_job_pushes_to_the_pushgateway(tmp_path: Path, registry: Any) -> None:
    """`kfops monitor` -> Pushgateway -> Prometheus; the stale-job rule sees a fresh job."""
    require_binary("prometheus-pushgateway")
    from kfops.cli import main
    from tests.unit.test_monitoring import MODEL as UMODEL
    from tests.unit.test_monitoring import T0, write_capture

    capture = tmp_path / "capture"
    frame = make_synthetic(500, n_numeric=4, n_categorical=2, seed=6, drift={"num_01": 1.5})
    frame.loc[:49, "cat_01"] = "brand-new"  # 50 rows outside the contract's domain
    write_capture(capture, frame)
    with stack(tmp_path) as s:
        pgw = s.pushgateway()
        prom = s.prometheus({"pushgateway": pgw.url.split("://")[1]}, None)
        pushed_after = time.time()
        code = main([
            "monitor", "--model", UMODEL, "--registry", str(registry.root), "--capture-dir",
            str(capture), "--start", str(T0), "--end", str(T0 + 3600), "--report-dir",
            str(tmp_path / "report"), "--pushgateway", pgw.url, "--no-retrain",
        ])  # fmt: skip
        assert code == 0
        pushed_before = time.time()
        text = http("GET", f"{pgw.url}/metrics")[1].decode()
        assert (
            metric_value(text, "kfops_monitoring_rows", job="kfops-monitoring", model=UMODEL) == 500
        )
        assert metric_value(text, "kfops_monitoring_retrain_required", model=UMODEL) == 1
        assert metric_value(text, "kfops_monitoring_feature_drifted", feature="num_01") == 1
        # Issue 16: the drifted feature the policy acts on, valued by its importance share.
        assert metric_value(
            text, "kfops_monitoring_drifted_feature_importance", feature="num_01"
        ) == pytest.approx(0.3)
        assert metric_value(
            text, "kfops_monitoring_feature_importance_share", feature="num_00"
        ) == pytest.approx(0.5)
        # Missing values and unseen categories, per feature; the label join is absent (no
        # labels directory given).
        assert metric_value(text, "kfops_monitoring_feature_null_share", feature="num_02") == 0
        assert metric_value(text, "kfops_monitoring_feature_null_share_changed",
                            feature="num_02") == 0  # fmt: skip
        assert metric_value(text, "kfops_monitoring_unseen_category_rows", feature="cat_01") == 50
        last = wait_for(
            "Prometheus to scrape the pushed figures",
            lambda: query(prom, "kfops_monitoring_last_success_timestamp_seconds"), 30, [pgw, prom],
        )  # fmt: skip
        assert last[0]["metric"]["job"] == "kfops-monitoring"
        assert last[0]["metric"]["model"] == UMODEL
        # The job's own clock, read while it ran (not a bound on how long it took).
        assert pushed_after <= float(last[0]["value"][1]) <= pushed_before
        # The rule the stale-job alert uses is false for a job that just succeeded.
        assert not query(
            prom,
            "time() - max by (model) (kfops_monitoring_last_success_timestamp_seconds) > 3 * 3600",
        )
        decay = wait_for("KfopsModelDecay", lambda: firing_alerts(prom, "KfopsModelDecay"), 30,
                         [pgw, prom])  # fmt: skip
        assert decay[0]["labels"]["model"] == UMODEL
        # The annotation names the most important drifted features, from the pushed gauges
        # (cat_01 drifted too: its new category; the model does not rely on it).
        assert decay[0]["annotations"]["drifted_features"] == (
            "num_01 (30% of importance), cat_01 (0% of importance)"
        )


@pytest.fixture
def registry(tmp_path: Path) -> Any:
    from tests.unit.test_monitoring import make_registry
    from tests.unit.test_monitoring_findings import SHARES, importance

    return make_registry(tmp_path, lineage={"importance": importance(SHARES)})
