"""Kubeflow runs that do not succeed: FAILED, CANCELED (after CANCELING) and a wait that times
out, through `kfops submit --wait` and through the retraining trigger's KubeflowLauncher.

kfp.Client talks over real HTTP to the replay server of test_submit.py, which answers with the
recorded v2beta1 exchanges in tests/fixtures/kfp/submit_run_{failed,canceled,still_running}.json.
The states are those of the v2beta1 API (kubeflow/pipelines 2.17.0,
backend/api/v2beta1/run.proto, `enum RuntimeState`): CANCELING is not final ("may only change
its state to SUCCEEDED, FAILED or CANCELED"), so a wait keeps polling through it.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kfops import submit
from kfops.cli import main
from kfops.errors import ClusterError
from kfops.trigger import KubeflowLauncher, RetrainTrigger
from tests.unit.test_submit import FIXTURES, Replay, _handler, required_args
from tests.unit.test_trigger import alert, notification

RUN = "5c2d9a10-run"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("KFOPS_KFP_HOST", "KF_PIPELINES_ENDPOINT", "KFOPS_KFP_NAMESPACE",
                "KFOPS_KFP_TOKEN", "KFOPS_KFP_TOKEN_FILE", "KF_PIPELINES_UI_ENDPOINT",
                "KFOPS_IMAGE"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # kfp.Client writes ~/.config/kfp
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def replay() -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []

    def start(scenario: str, *, from_trigger: bool = False) -> Replay:
        exchanges = json.loads((FIXTURES / f"{scenario}.json").read_text())["exchanges"]
        if from_trigger:
            # The trigger follows the run from a worker thread with a client of its own: one
            # more healthz between creating the run and polling it.
            exchanges = [*exchanges[:5], copy.deepcopy(exchanges[0]), *exchanges[5:]]
        rep = Replay(exchanges)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rep))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        rep.url = f"http://127.0.0.1:{server.server_address[1]}"
        return rep

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("spec") / "training.yaml"
    return submit.compile_package("training", out, "kfops:0.1.0")


def _target(rep: Replay) -> submit.KfpTarget:
    return submit.KfpTarget.resolve(host=rep.url, environ={})


def _polls(rep: Replay) -> int:
    return rep.calls().count(("GET", f"/apis/v2beta1/runs/{RUN}"))


# --- submit --wait ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "state", "polls"),
    [("submit_run_failed", "FAILED", 2), ("submit_run_canceled", "CANCELED", 3)],
)
def test_submit_wait_returns_the_final_state(
    replay: Any, package: Path, scenario: str, state: str, polls: int
) -> None:
    rep = replay(scenario)
    result = submit.submit_run(
        _target(rep), package, arguments=required_args(package), wait=True, poll_seconds=0.01
    )
    assert result.state == state and result.run_id == RUN
    assert result.url == f"{rep.url}/#/runs/details/{RUN}"
    assert rep.calls() == rep.expected_calls()  # polled until final, then stopped
    assert _polls(rep) == polls  # CANCELING was polled through, not taken as the end


@pytest.mark.parametrize(
    ("scenario", "state"), [("submit_run_failed", "FAILED"), ("submit_run_canceled", "CANCELED")]
)
def test_cli_submit_wait_exits_1_naming_the_state(
    replay: Any, package: Path, capsys: pytest.CaptureFixture[str], scenario: str, state: str
) -> None:
    rep = replay(scenario)
    params = [f"--param={k}={json.dumps(v)}" for k, v in required_args(package).items()]
    code = main(["submit", "training", "--host", rep.url, "--package", str(package), "--wait",
                 "--poll", "0.01", *params])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1, out
    assert f"run {RUN} finished: {state}" in out
    assert f"run details: {rep.url}/#/runs/details/{RUN}" in out
    assert rep.calls() == rep.expected_calls()


def test_submit_wait_timeout_names_the_run_its_state_and_url(replay: Any, package: Path) -> None:
    rep = replay("submit_run_still_running")
    with pytest.raises(ClusterError) as err:
        submit.submit_run(_target(rep), package, arguments=required_args(package), wait=True,
                          timeout=0, poll_seconds=0.01)  # fmt: skip
    assert str(err.value) == (
        f"run {RUN} is still RUNNING after 0 s: {rep.url}/#/runs/details/{RUN}"
    )
    assert rep.calls() == rep.expected_calls()  # the run was created; one poll, then it gave up


def test_cli_submit_wait_timeout_is_one_error_line(
    replay: Any, package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rep = replay("submit_run_still_running")
    params = [f"--param={k}={json.dumps(v)}" for k, v in required_args(package).items()]
    code = main(["submit", "training", "--host", rep.url, "--package", str(package), "--wait",
                 "--timeout", "0", *params])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert (
        err.strip()
        == f"error: run {RUN} is still RUNNING after 0 s: {rep.url}/#/runs/details/{RUN}"
    )


# --- the retraining trigger -----------------------------------------------------------------


def _launcher(rep: Replay, **kw: Any) -> KubeflowLauncher:
    return KubeflowLauncher(
        _target(rep), "gs://bucket/fresh.parquet", "/mnt/registry", training_target="target",
        task="classification", poll_seconds=0.01, **kw,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("scenario", "state"), [("submit_run_failed", "FAILED"), ("submit_run_canceled", "CANCELED")]
)
def test_trigger_records_a_run_that_did_not_succeed_and_lets_the_alert_retry(
    replay: Any, scenario: str, state: str
) -> None:
    rep = replay(scenario, from_trigger=True)
    now = [1_000_000.0]
    trigger = RetrainTrigger(_launcher(rep), cooldown=600, clock=lambda: now[0])
    try:
        status, body = trigger.handle(notification(alert()))
        assert status == 200 and body["decisions"][0]["run_id"] == RUN, body
        assert trigger.wait_idle(60)
        st = trigger.status()["models"]["m"]
        assert st["last_outcome"] == "failed" and st["in_flight"] is None, st
        assert st["last_detail"] == f"Kubeflow run {RUN} ended {state}"
        assert trigger.registry.get_sample_value("kfops_trigger_runs_total", {"outcome": "failed"})
        assert rep.calls() == rep.expected_calls()
        # The same alert, still firing, is not a duplicate of a failed run: inside the cooldown
        # it waits; after it, it would start a new run.
        status, body = trigger.handle(notification(alert()))
        assert body["decisions"][0]["reason"] == "cooldown", body
    finally:
        trigger.close()


def test_trigger_wait_that_times_out_is_a_failed_run_naming_the_state(replay: Any) -> None:
    rep = replay("submit_run_still_running", from_trigger=True)
    trigger = RetrainTrigger(_launcher(rep, wait_timeout=0), cooldown=600)
    try:
        status, _ = trigger.handle(notification(alert()))
        assert status == 200
        assert trigger.wait_idle(60)
        st = trigger.status()["models"]["m"]
        assert st["last_outcome"] == "failed" and st["in_flight"] is None, st
        assert st["last_detail"] == (
            f"run {RUN} failed: run {RUN} is still RUNNING after 0 s: "
            f"{rep.url}/#/runs/details/{RUN}"
        )
        assert rep.calls() == rep.expected_calls()
    finally:
        trigger.close()
