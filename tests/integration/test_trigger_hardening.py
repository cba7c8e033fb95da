"""`kfops trigger` as a real process under attack: forged alerts (no token, wrong token),
storms of unknown models and stalled connections (bounded state, threads and memory), and a
crash/restart that keeps cooldowns and de-duplication."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kfops.registry import Registry
from tests.integration._stack import Proc, metric_value, stack, wait_for
from tests.unit.test_serving_fixtures import MODEL, register_version

pytestmark = pytest.mark.integration

NO_KFP = {"KFOPS_KFP_HOST": "", "KF_PIPELINES_ENDPOINT": ""}
TOKEN = "9f4c1e0b7a2d4c8e9b1f3a5d7c9e1b2a"


def _alert(model: str, feature: str, fingerprint: str | None = None) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {"alertname": "KfopsFeatureDrift", "model": model, "feature": feature,
                   "kfops_action": "retrain"},
        "startsAt": datetime.now(UTC).isoformat(),
        "fingerprint": fingerprint or f"{model}-{feature}",
    }  # fmt: skip


def _body(*alerts: dict[str, Any]) -> bytes:
    return json.dumps({"version": "4", "status": "firing", "alerts": list(alerts)}).encode()


def _call(
    method: str, url: str, data: bytes | None = None, token: str | None = None
) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=data, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def _metrics(proc: Proc) -> str:
    return _call("GET", f"{proc.url}/metrics")[1]


def _proc_status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    root = tmp_path / "registry"
    register_version(root, aliases=("champion",))
    return root


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "webhook-token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


def _start(s: Any, registry: Path, token_file: Path, state: Path, *extra: str) -> Proc:
    return s.trigger(
        "--registry", str(registry), "--data-uri", "/nonexistent.csv",
        "--webhook-token-file", str(token_file), "--state-dir", str(state),
        "--cooldown", "3600", *extra, env=NO_KFP,
    )  # fmt: skip


def test_forged_alerts_change_nothing(tmp_path: Path, registry: Path, token_file: Path) -> None:
    before = [v.version for v in Registry(registry).versions(MODEL)]
    with stack(tmp_path) as s:
        trig = _start(s, registry, token_file, tmp_path / "state")
        body = _body(_alert(MODEL, "bill_length_mm"))
        assert _call("POST", f"{trig.url}/alerts", body)[0] == 401
        assert _call("POST", f"{trig.url}/alerts", body, token="not-the-token")[0] == 401
        assert _call("POST", f"{trig.url}/alerts", body, token=TOKEN.upper())[0] == 401
        assert _call("GET", f"{trig.url}/status")[0] == 401
        text = _metrics(trig)
        assert metric_value(text, "kfops_trigger_webhooks_total", status="unauthorized") == 4
        assert metric_value(text, "kfops_trigger_runs_total", outcome="started") == 0
        status, data = _call("GET", f"{trig.url}/status", token=TOKEN)
        assert status == 200 and data["models"] == {}
        assert "missing or wrong bearer token" in trig.text()
    assert [v.version for v in Registry(registry).versions(MODEL)] == before
    assert Registry(registry).get_alias(MODEL, "champion") == "v1"


def test_no_token_refuses_every_address_but_loopback(tmp_path: Path, registry: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kfops", "trigger", "--host", "0.0.0.0", "--port", "0",
         "--registry", str(registry), "--data-uri", "/nonexistent.csv"],
        capture_output=True, text=True, timeout=60, env={**os.environ, **NO_KFP},
    )  # fmt: skip
    assert proc.returncode == 2
    assert "refusing to listen on '0.0.0.0' without a webhook token" in proc.stderr
    with stack(tmp_path) as s:
        trig = s.trigger("--registry", str(registry), "--data-uri", "/nonexistent.csv",
                         env=NO_KFP)  # fmt: skip
        wait_for("the loopback warning", lambda: "listening on loopback only" in trig.text(),
                 30, [trig])  # fmt: skip


def test_storm_of_unknown_models_and_stalled_clients_stays_bounded(
    tmp_path: Path, registry: Path, token_file: Path
) -> None:
    with stack(tmp_path) as s:
        trig = _start(s, registry, token_file, tmp_path / "state", "--request-timeout", "2")
        pid = trig.popen.pid
        threads_before = _proc_status(pid, "Threads")
        # 200 notifications of 50 forged model names each, from 8 clients at once ...
        results: list[int] = []

        def client(start: int) -> None:
            for n in range(start, 200, 8):
                alerts = [_alert(f"forged-{n}-{i}", "x") for i in range(50)]
                results.append(_call("POST", f"{trig.url}/alerts", _body(*alerts), TOKEN)[0])

        clients = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        assert results == [200] * 200
        # ... and one notification naming 25,000 different models (1.3 MB, under the limit).
        huge = _body(
            *[{"labels": {"model": f"m{i}"}, "fingerprint": f"{i}"} for i in range(25_000)]
        )
        status, data = _call("POST", f"{trig.url}/alerts", huge, TOKEN)
        assert status == 200, data
        assert data["ignored"]["unknown_model"] == {
            "alerts": 25_000, "models": 25_000, "some": ["m0", "m1", "m10", "m100", "m1000"]
        }  # fmt: skip
        status, state = _call("GET", f"{trig.url}/status", token=TOKEN)
        assert state["models"] == {} and state["dedup_keys"] == 0
        text = _metrics(trig)
        assert metric_value(text, "kfops_trigger_skipped_total", reason="unknown_model") == 35_000
        assert metric_value(text, "kfops_trigger_runs_total", outcome="started") == 0
        # One log line per notification, not one per forged model.
        assert trig.text().count("does not serve") == 201

        # 300 clients connect and send nothing: a fixed pool serves them, the rest are refused.
        port = int(trig.url.rsplit(":", 1)[1])
        stalled = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(300)]
        try:
            threads_during = _proc_status(pid, "Threads")
            assert threads_during <= threads_before + 8 + 1, (threads_before, threads_during)
            for sock in stalled:  # each is answered (503) or cut at its deadline
                sock.settimeout(120)
                data = b""
                while chunk := sock.recv(4096):
                    data += chunk
                assert data == b"" or data.startswith(b"HTTP/1.0 503"), data[:80]
        finally:
            for sock in stalled:
                sock.close()
        text = _metrics(trig)
        assert (metric_value(text, "kfops_trigger_connections_rejected_total") or 0) > 0
        assert _call("GET", f"{trig.url}/healthz")[0] == 200
        assert _proc_status(pid, "Threads") <= threads_before + 8 + 1
        # Memory: the storm left no per-name state behind (VmHWM: the peak resident set).
        assert _proc_status(pid, "VmHWM") < 400 * 1024, _proc_status(pid, "VmHWM")


def test_restart_keeps_cooldown_and_dedup(tmp_path: Path, registry: Path, token_file: Path) -> None:
    state = tmp_path / "state"
    first = _alert(MODEL, "bill_length_mm")
    with stack(tmp_path) as s:
        trig = _start(s, registry, token_file, state)
        status, data = _call("POST", f"{trig.url}/alerts", _body(first), TOKEN)
        assert status == 200 and data["decisions"][0]["action"] == "started", data
        run_id = data["decisions"][0]["run_id"]
        # Crash while the run is (most likely) in flight: no chance to flush anything.
        os.killpg(trig.popen.pid, signal.SIGKILL)
        trig.popen.wait(30)
    assert json.loads((state / "state.json").read_text())["models"][MODEL]["last_started"]

    with stack(tmp_path / "again") as s:
        (tmp_path / "again").mkdir(exist_ok=True)
        trig = _start(s, registry, token_file, state)
        status, data = _call("POST", f"{trig.url}/alerts", _body(first), TOKEN)
        assert data["decisions"][0]["reason"] == "duplicate", data
        other = _alert(MODEL, "flipper_length_mm")
        status, data = _call("POST", f"{trig.url}/alerts", _body(other), TOKEN)
        assert data["decisions"][0]["reason"] == "cooldown", data
        status, st = _call("GET", f"{trig.url}/status", token=TOKEN)
        model_state = st["models"][MODEL]
        assert model_state["last_run"] == run_id
        assert model_state["last_outcome"] == "interrupted"
        assert metric_value(_metrics(trig), "kfops_trigger_runs_total", outcome="started") == 0
        # A clean stop (SIGTERM) writes the state too, and the next start still holds it.
        os.killpg(trig.popen.pid, signal.SIGTERM)
        trig.popen.wait(30)
        assert trig.popen.returncode == 0, trig.text()[-2000:]
    with stack(tmp_path / "third") as s:
        (tmp_path / "third").mkdir(exist_ok=True)
        trig = _start(s, registry, token_file, state)
        status, data = _call("POST", f"{trig.url}/alerts", _body(other), TOKEN)
        assert data["decisions"][0]["reason"] == "duplicate", data


def test_the_committed_alertmanager_config_authenticates(
    tmp_path: Path, registry: Path, token_file: Path
) -> None:
    """Alertmanager with monitoring/alertmanager/alertmanager.yml (its credentials_file set to
    the test's token) gets through; the same Alertmanager with a wrong token does not."""
    from tests.integration._stack import http

    alert = {"labels": {"alertname": "KfopsFeatureDrift", "model": MODEL, "feature": "x",
                        "kfops_action": "retrain"}}  # fmt: skip
    wrong = tmp_path / "wrong-token"
    wrong.write_text("a-wrong-token-of-enough-length-000")
    with stack(tmp_path) as s:
        trig = _start(s, registry, token_file, tmp_path / "state")
        am = s.alertmanager(trig.url, token_file=wrong)
        assert http("POST", f"{am.url}/api/v2/alerts", [alert])[0] == 200
        wait_for("a refused delivery", lambda: (metric_value(
            _metrics(trig), "kfops_trigger_webhooks_total", status="unauthorized") or 0) >= 1,
            60, [trig, am])  # fmt: skip
        assert metric_value(_metrics(trig), "kfops_trigger_runs_total", outcome="started") == 0
        am.popen.terminate()
        am.popen.wait(10)
    with stack(tmp_path / "right") as s:
        (tmp_path / "right").mkdir(exist_ok=True)
        trig = _start(s, registry, token_file, tmp_path / "state2")
        am = s.alertmanager(trig.url, token_file=token_file)
        assert http("POST", f"{am.url}/api/v2/alerts", [alert])[0] == 200
        wait_for("the authenticated delivery", lambda: (metric_value(
            _metrics(trig), "kfops_trigger_runs_total", outcome="started") or 0) >= 1,
            60, [trig, am])  # fmt: skip
        assert metric_value(_metrics(trig), "kfops_trigger_webhooks_total",
                            status="unauthorized") == 0  # fmt: skip
