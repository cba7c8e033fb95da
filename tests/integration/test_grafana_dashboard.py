"""Every panel of the Grafana dashboard shows data from the real exporters.

Real processes on 127.0.0.1: `kfops serve` (penguins champion, payload capture) under traffic,
`kfops trigger`, a Pushgateway fed by `kfops monitor` over the captured window, and Prometheus
scraping all three. tests/integration/_grafana.py then runs each panel's query (template
variables as Grafana expands them) and reports the empty ones.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import free_port, require_binary
from tests.integration._grafana import DASHBOARD, check_dashboard, metric_names
from tests.integration._stack import http, query, stack, wait_for
from tests.unit.test_serving_fixtures import MODEL, make_registry, penguins

pytestmark = pytest.mark.integration


def _predict(url: str, rows: list[dict[str, object]]) -> int:
    req = urllib.request.Request(
        f"{url}/v1/models/{MODEL}:predict",
        data=json.dumps({"instances": rows}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_every_panel_has_data(tmp_path: Path) -> None:
    for binary in ("prometheus", "prometheus-pushgateway"):
        require_binary(binary)
    from kfops.cli import main

    registry = tmp_path / "registry"
    make_registry(registry)
    capture = tmp_path / "capture"
    (tmp_path / "labels").mkdir()
    with stack(tmp_path) as s:
        port = free_port()
        server = s.start(
            "server",
            [sys.executable, "-m", "kfops", "serve", "--registry", str(registry),
             "--model", MODEL, "--port", str(port), "--capture", str(capture)],
            f"http://127.0.0.1:{port}", f"/v1/models/{MODEL}", timeout=120,
        )  # fmt: skip
        trigger = s.trigger(
            "--registry", str(registry), "--capture-dir", str(capture),
            "--labels-dir", str(tmp_path / "labels"),
            env={"KFOPS_KFP_HOST": "", "KF_PIPELINES_ENDPOINT": ""},
        )  # fmt: skip
        pgw = s.pushgateway()
        prom = s.prometheus(
            {"kfops-serving": f"127.0.0.1:{port}", "kfops-trigger": trigger.url.split("://")[1],
             "pushgateway": pgw.url.split("://")[1]},
            None,
        )  # fmt: skip
        procs = [server, trigger, pgw, prom]

        # Traffic: penguins rows (some shifted, so drift scores move), plus rejected requests.
        rows = penguins().drop(columns=["species"])
        shifted = rows.assign(bill_length_mm=rows["bill_length_mm"] + 8.0)
        frame = pd.concat([rows, shifted, rows, shifted], ignore_index=True)
        records = json.loads(frame.to_json(orient="records"))
        for start in range(0, len(records), 50):
            assert _predict(server.url, records[start : start + 50]) == 200
        for _ in range(3):
            assert 400 <= _predict(server.url, [{"island": "Atlantis"}]) < 500
        wait_for(
            "drift gauges and captured rows in Prometheus",
            lambda: query(prom, "kfops_feature_drift_psi")
            and query(prom, "kfops_capture_records_total"),
            90, procs,
        )  # fmt: skip

        # The monitoring job over the captured window, pushed to the Pushgateway.
        code = main([
            "monitor", "--model", MODEL, "--registry", str(registry), "--capture-dir",
            str(capture), "--start=-1h", "--report-dir", str(tmp_path / "report"),
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

        # The dashboard names only metrics the processes declare (# HELP lines, so a counter
        # that has not counted yet, like capture drops, counts too).
        exported = set()
        for proc in (server, trigger, pgw):
            text = http("GET", f"{proc.url}/metrics")[1].decode()
            exported |= set(re.findall(r"^# HELP (kfops_\w+) ", text, re.M))
        used = metric_names(board)
        assert {re.sub(r"_bucket$", "", n) for n in used} <= exported
        assert {"kfops_requests_total", "kfops_feature_drift_psi", "kfops_model_info",
                "kfops_capture_dropped_total", "kfops_trigger_runs_total",
                "kfops_monitoring_last_success_timestamp_seconds"} <= used  # fmt: skip


def test_checker_reports_what_has_no_data_or_fails(tmp_path: Path) -> None:
    for binary in ("prometheus", "prometheus-pushgateway"):
        require_binary(binary)
    board = {
        "templating": {"list": [{"type": "query", "name": "job", "allValue": ".*"}]},
        "panels": [
            {"title": "up", "targets": [{"refId": "A", "expr": 'up{job=~"$job"}'}]},
            {"title": "typo", "targets": [{"refId": "A", "expr": "kfops_no_such_metric"}]},
            {"title": "bad", "targets": [{"refId": "B", "expr": "rate(up[$__rate_interval]"}]},
        ],
    }
    with stack(tmp_path) as s:
        pgw = s.pushgateway()
        prom = s.prometheus({"pushgateway": pgw.url.split("://")[1]}, None)
        wait_for("a first scrape", lambda: query(prom, "up"), 30, [pgw, prom])
        problems = check_dashboard(board, prom.url)
    assert [p.split(":")[0] for p in problems] == ["typo [A]", "bad [B]"]
    assert "no data" in problems[0] and "error" in problems[1]
