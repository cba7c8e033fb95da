"""kfops.trigger: the decisions behind POST /alerts (de-duplication, cooldown, in-flight)."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from prometheus_client import generate_latest

from kfops.errors import ClusterError, ConfigError
from kfops.trigger import BadRequest, RetrainRequest, RetrainTrigger, RunOutcome, parse_notification


class Launcher:
    """A launcher whose runs end when the test says so (the real ones are in integration)."""

    where = "test"

    def __init__(self) -> None:
        self.submitted: list[RetrainRequest] = []
        self.release = threading.Event()
        self.fail_submit: Exception | None = None
        self.fail_run = False

    def submit(self, request: RetrainRequest) -> str:
        if self.fail_submit is not None:
            raise self.fail_submit
        self.submitted.append(request)
        return f"run-{len(self.submitted)}"

    def wait(self, request: RetrainRequest, handle: str) -> RunOutcome:
        self.release.wait(10)
        if self.fail_run:
            raise RuntimeError("training blew up")
        return RunOutcome(True, f"{handle} blessed", blessed=True, version="v2")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def alert(
    model: str | None = "m",
    name: str = "KfopsFeatureDrift",
    feature: str = "x",
    starts: str = "2026-11-26T10:00:00Z",
    status: str = "firing",
) -> dict[str, Any]:
    labels = {"alertname": name, "feature": feature, "kfops_action": "retrain"}
    if model is not None:
        labels["model"] = model
    return {
        "status": status,
        "labels": labels,
        "annotations": {},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": f"{name}-{model}-{feature}",
    }


def notification(*alerts: dict[str, Any]) -> bytes:
    return json.dumps({
        "version": "4", "groupKey": '{}:{model="m"}', "status": "firing",
        "receiver": "kfops-trigger", "groupLabels": {}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "", "truncatedAlerts": 0, "alerts": list(alerts),
    }).encode()  # fmt: skip


@pytest.fixture
def setup() -> Any:
    launcher, clock = Launcher(), Clock()
    trigger = RetrainTrigger(launcher, cooldown=600, clock=clock)
    yield trigger, launcher, clock
    launcher.release.set()
    trigger.wait_idle(5)
    trigger.close()


def metric(trigger: RetrainTrigger, name: str, **labels: str) -> float:
    value = trigger.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_a_firing_alert_starts_one_run(setup: Any) -> None:
    trigger, launcher, _ = setup
    status, body = trigger.handle(notification(alert(), alert(feature="y")))
    assert status == 200
    (decision,) = body["decisions"]
    assert decision["action"] == "started" and decision["run_id"] == "run-1"
    assert launcher.submitted[0].model == "m"
    assert launcher.submitted[0].alerts == (
        "KfopsFeatureDrift{feature=x}",
        "KfopsFeatureDrift{feature=y}",
    )
    assert trigger.status()["models"]["m"]["in_flight"] == "run-1"
    launcher.release.set()
    assert trigger.wait_idle(5)
    state = trigger.status()["models"]["m"]
    assert state["in_flight"] is None and state["last_outcome"] == "succeeded"
    assert metric(trigger, "kfops_trigger_runs_total", outcome="started") == 1
    assert metric(trigger, "kfops_trigger_runs_total", outcome="succeeded") == 1


def test_an_alert_storm_makes_one_run(setup: Any) -> None:
    trigger, launcher, _ = setup
    bodies = [notification(alert(feature=f"f{i % 7}", starts=f"2026-11-26T10:{i % 60:02d}:00Z"))
              for i in range(300)]  # fmt: skip
    threads = [threading.Thread(target=trigger.handle, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(launcher.submitted) == 1
    assert metric(trigger, "kfops_trigger_webhooks_total", status="accepted") == 300
    skipped = sum(metric(trigger, "kfops_trigger_skipped_total", reason=r)
                  for r in ("duplicate", "in_flight", "cooldown"))  # fmt: skip
    assert skipped == 299


def test_repeats_of_an_alert_are_duplicates_even_after_the_cooldown(setup: Any) -> None:
    trigger, launcher, clock = setup
    trigger.handle(notification(alert()))
    launcher.release.set()
    trigger.wait_idle(5)
    clock.now += 3600  # Alertmanager's repeat_interval: the same alert instance again
    status, body = trigger.handle(notification(alert()))
    assert status == 200 and body["decisions"][0]["reason"] == "duplicate"
    assert len(launcher.submitted) == 1


def test_new_alert_waits_for_the_cooldown(setup: Any) -> None:
    trigger, launcher, clock = setup
    trigger.handle(notification(alert()))
    launcher.release.set()
    trigger.wait_idle(5)
    clock.now += 60
    _, body = trigger.handle(notification(alert(feature="z")))
    assert body["decisions"][0]["reason"] == "cooldown"
    assert "cooldown 600s" in body["decisions"][0]["message"]
    clock.now += 600
    _, body = trigger.handle(notification(alert(feature="w")))
    assert body["decisions"][0]["action"] == "started"
    assert len(launcher.submitted) == 2


def test_at_most_one_run_in_flight_per_model(setup: Any) -> None:
    trigger, launcher, clock = setup
    trigger.handle(notification(alert()))
    clock.now += 10_000  # long past the cooldown, but the run is still going
    _, body = trigger.handle(notification(alert(feature="other")))
    assert body["decisions"][0]["reason"] == "in_flight"
    # Another model is independent.
    _, body = trigger.handle(notification(alert(model="other-model")))
    assert body["decisions"][0]["action"] == "started"
    assert [r.model for r in launcher.submitted] == ["m", "other-model"]


def test_resolved_and_unlabelled_alerts_are_ignored(setup: Any) -> None:
    trigger, launcher, _ = setup
    status, body = trigger.handle(notification(alert(status="resolved"), alert(model=None)))
    assert status == 200 and body["decisions"] == []
    assert not launcher.submitted
    assert metric(trigger, "kfops_trigger_skipped_total", reason="resolved") == 1
    assert metric(trigger, "kfops_trigger_skipped_total", reason="no_model") == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"alerts": "x"}', "'alerts' must be a list"),
        (b'{"alerts": [1]}', "alerts[0] must be an object"),
        (b'{"alerts": [{"labels": []}]}', "alerts[0].labels"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_bad_json_is_a_400_naming_the_problem(setup: Any, body: bytes, message: str) -> None:
    trigger, launcher, _ = setup
    status, out = trigger.handle(body)
    assert status == 400 and message in out["error"]
    with pytest.raises(BadRequest):
        parse_notification(body)
    assert not launcher.submitted
    assert metric(trigger, "kfops_trigger_webhooks_total", status="bad_request") == 1


def test_unreachable_kubeflow_is_a_503_and_nothing_is_lost(setup: Any) -> None:
    trigger, launcher, _ = setup
    launcher.fail_submit = ClusterError("cannot reach Kubeflow Pipelines at http://kfp:8888")
    status, body = trigger.handle(notification(alert()))
    assert status == 503
    assert "cannot reach Kubeflow" in body["error"]
    assert metric(trigger, "kfops_trigger_runs_total", outcome="submit_failed") == 1
    assert trigger.status()["models"]["m"]["in_flight"] is None
    # Alertmanager retries the same notification; once Kubeflow is back, the run starts.
    launcher.fail_submit = None
    status, body = trigger.handle(notification(alert()))
    assert status == 200 and body["decisions"][0]["action"] == "started"


def test_a_crashing_launcher_is_a_503_not_a_500(setup: Any) -> None:
    trigger, launcher, _ = setup
    launcher.fail_submit = ValueError("bug")
    status, _ = trigger.handle(notification(alert()))
    assert status == 503


def test_a_failed_run_lets_the_alert_retry_after_the_cooldown(setup: Any) -> None:
    trigger, launcher, clock = setup
    launcher.fail_run = True
    launcher.release.set()
    trigger.handle(notification(alert()))
    trigger.wait_idle(5)
    state = trigger.status()["models"]["m"]
    assert state["last_outcome"] == "failed" and "training blew up" in state["last_detail"]
    assert metric(trigger, "kfops_trigger_runs_total", outcome="failed") == 1
    _, body = trigger.handle(notification(alert()))
    assert body["decisions"][0]["reason"] == "cooldown"
    clock.now += 601
    _, body = trigger.handle(notification(alert()))
    assert body["decisions"][0]["action"] == "started"


def test_metrics_exposition_names(setup: Any) -> None:
    trigger, _, _ = setup
    text = generate_latest(trigger.registry).decode()
    for name in ("kfops_trigger_webhooks_total", "kfops_trigger_runs_total",
                 "kfops_trigger_skipped_total", "kfops_trigger_runs_in_flight"):  # fmt: skip
        assert name in text


def test_negative_cooldown_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cooldown"):
        RetrainTrigger(Launcher(), cooldown=-1)


def test_kubeflow_launcher_submits_and_follows_the_run(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A webhook becomes a Kubeflow run: against a replay of the v2beta1 API (kfp.Client)."""
    import copy
    from http.server import ThreadingHTTPServer

    from kfops.submit import KfpTarget
    from kfops.trigger import KubeflowLauncher
    from tests.unit.test_submit import FIXTURES, Replay, _handler

    for var in ("KFOPS_KFP_HOST", "KF_PIPELINES_ENDPOINT", "KFOPS_KFP_TOKEN",
                "KFOPS_KFP_TOKEN_FILE", "KFOPS_KFP_NAMESPACE"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # kfp.Client writes ~/.config/kfp
    exchanges = json.loads((FIXTURES / "submit_run_wait.json").read_text())["exchanges"]
    # submit (healthz x2, experiment, run) and then, from the worker thread, a new client
    # (healthz) polling the run to SUCCEEDED.
    exchanges = [*exchanges[:5], copy.deepcopy(exchanges[0]), *exchanges[5:]]
    replay = Replay(exchanges)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(replay))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    replay.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        launcher = KubeflowLauncher(
            KfpTarget.resolve(replay.url, environ={}), "gs://bucket/fresh.parquet",
            "/mnt/registry", training_target="target", task="classification",
            deploy={"deploy_target": "cluster", "namespace": "team-a"}, poll_seconds=0.01,
        )  # fmt: skip
        trigger = RetrainTrigger(launcher, cooldown=600)
        status, body = trigger.handle(notification(alert()))
        assert status == 200, body
        assert body["decisions"][0]["run_id"] == "5c2d9a10-run"
        assert trigger.wait_idle(30)
        state = trigger.status()["models"]["m"]
        assert state["last_outcome"] == "succeeded", state
        assert "SUCCEEDED" in state["last_detail"]
        run_body = replay.requests[4].json()
        params = run_body["runtime_config"]["parameters"]
        assert params["data_uri"] == "gs://bucket/fresh.parquet"
        assert params["model_name"] == "m" and params["target"] == "target"
        # The retrained model is deployed where the served one lives.
        assert params["deploy_target"] == "cluster" and params["namespace"] == "team-a"
        assert run_body["display_name"] == "kfops-retrain-m"
        assert replay.calls() == replay.expected_calls()
        trigger.close()
    finally:
        server.shutdown()
        server.server_close()


def test_cli_config_errors_are_one_line(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kfops.cli import main

    for var in ("KFOPS_KFP_HOST", "KF_PIPELINES_ENDPOINT", "KFOPS_RETRAIN_DATA_URI",
                "KFOPS_LABELS_DIR", "KFOPS_TRIGGER_COOLDOWN"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    reg = ["--registry", str(tmp_path / "reg")]
    assert main(["trigger", *reg, "--kfp-host", "http://kfp:8888"]) == 2
    assert "--data-uri (or KFOPS_RETRAIN_DATA_URI) is required" in capsys.readouterr().err
    assert main(["trigger", *reg]) == 2
    assert "local retraining needs --data-uri" in capsys.readouterr().err
    monkeypatch.setenv("KFOPS_TRIGGER_COOLDOWN", "soon")
    assert main(["trigger", *reg, "--data-uri", "x.csv"]) == 2
    assert "KFOPS_TRIGGER_COOLDOWN: expected seconds, got 'soon'" in capsys.readouterr().err
