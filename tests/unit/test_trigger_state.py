"""kfops.trigger.state and its use by RetrainTrigger: bounded de-duplication that expires in
order, known models only, state that survives a new trigger instance, and the HTTP guards
(token, loopback, body, nesting) through a real in-process server."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from kfops.errors import ConfigError
from kfops.trigger import RetrainTrigger, parse_notification
from kfops.trigger.http import HttpLimits, WebhookAuth, check_bind, make_server
from kfops.trigger.state import AlertLedger, ModelCatalog, StateStore, alert_key
from tests.unit.test_serving_fixtures import MODEL, register_version
from tests.unit.test_trigger import Clock, Launcher, alert, notification

TOKEN = "s3cr3t-token-0123456789abcdef"


def metric(trigger: RetrainTrigger, name: str, **labels: str) -> float:
    value = trigger.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


# --- AlertLedger ---------------------------------------------------------------------------


def test_ledger_expires_oldest_first_without_touching_live_keys() -> None:
    ledger = AlertLedger(ttl=100)
    ledger.mark(["a", "b"], now=0)
    ledger.mark(["c"], now=50)
    assert ledger.expire(now=120) == 2  # a and b are older than 100 s; c is not
    assert "c" in ledger and "a" not in ledger and len(ledger) == 1
    ledger.mark(["c"], now=130)  # re-marking refreshes: c now expires after 230
    assert ledger.expire(now=200) == 0 and "c" in ledger


def test_ledger_cap_evicts_the_oldest_and_reports_it() -> None:
    evicted: list[int] = []
    ledger = AlertLedger(ttl=1e9, max_keys=3, on_evict=evicted.append)
    ledger.mark([f"k{i}" for i in range(10)], now=1)
    assert len(ledger) == 3 and [k for k, _ in ledger.items()] == ["k7", "k8", "k9"]
    assert evicted == [7]


def test_ledger_restore_skips_expired_and_malformed_items() -> None:
    ledger = AlertLedger(ttl=100, max_keys=2)
    ledger.restore([["old", 0], ["x" * 65, 150], "junk", ["a", 140], ["b", 145], ["c", 150]], 160)
    assert [k for k, _ in ledger.items()] == ["b", "c"]


def test_alert_keys_have_a_fixed_size_whatever_the_client_sends() -> None:
    assert len(alert_key("f" * 100_000, "2026")) == 32
    assert alert_key("a", "b") != alert_key("a", "c")


# --- known models ----------------------------------------------------------------------------


def test_catalog_lists_the_registry_or_an_allowlist(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    register_version(root, aliases=("champion",))
    assert ModelCatalog(root).known() == {MODEL}
    assert ModelCatalog.parse(root, "a, b-2").known() == {"a", "b-2"}
    assert ModelCatalog(tmp_path / "nothing-here").known() == frozenset()
    with pytest.raises(ConfigError, match="KFOPS_TRIGGER_MODELS"):
        ModelCatalog.parse(root, "ok,../evil")


def test_alerts_for_unknown_models_are_ignored_and_counted(tmp_path: Path) -> None:
    launcher = Launcher()
    trigger = RetrainTrigger(launcher, cooldown=600, models=ModelCatalog.parse(None, "m"))
    names = [f"forged-{i}" for i in range(500)] + ["../evil", "M", "m"]
    status, body = trigger.handle(notification(*[alert(model=n) for n in names]))
    assert status == 200
    assert [d["model"] for d in body["decisions"]] == ["m"]
    assert body["ignored"]["unknown_model"]["alerts"] == 502
    assert metric(trigger, "kfops_trigger_skipped_total", reason="unknown_model") == 502
    assert list(trigger.status()["models"]) == ["m"]  # no state for names it does not serve
    assert [r.model for r in launcher.submitted] == ["m"]
    launcher.release.set()
    assert trigger.wait_idle(10)


# --- persistence ---------------------------------------------------------------------------


def test_cooldown_and_dedup_survive_a_new_trigger(tmp_path: Path) -> None:
    clock, store = Clock(), StateStore(tmp_path / "state")
    launcher = Launcher()
    launcher.release.set()
    first = RetrainTrigger(launcher, cooldown=600, clock=clock, state=store)
    _, body = first.handle(notification(alert(feature="x")))
    assert body["decisions"][0]["action"] == "started"
    assert first.wait_idle(10)
    first.close()  # SIGTERM path: the last state is written
    saved = json.loads(store.path.read_text())
    assert saved["models"]["m"]["last_outcome"] == "succeeded" and saved["seen"]

    clock.now += 60
    second = RetrainTrigger(
        launcher, cooldown=600, clock=clock, state=StateStore(store.path.parent)
    )
    _, again = second.handle(notification(alert(feature="x")))
    assert again["decisions"][0]["reason"] == "duplicate"
    _, other = second.handle(notification(alert(feature="y")))
    assert other["decisions"][0]["reason"] == "cooldown"
    assert len(launcher.submitted) == 1
    second.close()


def test_a_run_in_flight_at_a_crash_still_counts_for_the_cooldown(tmp_path: Path) -> None:
    clock, launcher = Clock(), Launcher()  # its runs never end: the "crash" happens mid-run
    first = RetrainTrigger(launcher, cooldown=600, clock=clock, state=StateStore(tmp_path))
    first.handle(notification(alert()))
    # No close(): the run start was written synchronously, before the webhook was answered.
    second = RetrainTrigger(launcher, cooldown=600, clock=clock, state=StateStore(tmp_path))
    state = second.status()["models"]["m"]
    assert state["last_outcome"] == "interrupted" and state["in_flight"] is None
    _, body = second.handle(notification(alert(feature="other")))
    assert body["decisions"][0]["reason"] == "cooldown"
    launcher.release.set()
    first.close()
    second.close()


def test_a_corrupt_or_unwritable_state_file_is_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("{not json")
    trigger = RetrainTrigger(Launcher(), state=StateStore(tmp_path))
    assert trigger.status()["models"] == {}
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    broken = RetrainTrigger(Launcher(), state=StateStore(blocked))
    broken._persist(now=True)
    assert metric(broken, "kfops_trigger_state_write_failures_total") == 1
    trigger.close()
    broken.close()


def test_absurd_nesting_is_a_bad_request() -> None:
    with pytest.raises(Exception, match="nested too deeply"):
        parse_notification(b"[" * 100_000 + b"]" * 100_000)


# --- HTTP guards (in-process server) ----------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, RetrainTrigger, Launcher]]:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    launcher = Launcher()
    trigger = RetrainTrigger(launcher, cooldown=600, models=ModelCatalog.parse(None, "m"))
    limits = HttpLimits(max_body=64 << 10, header_timeout=1.0, body_timeout=1.0, workers=2,
                        max_pending=2)  # fmt: skip
    server = make_server(trigger, "127.0.0.1", 0, auth=WebhookAuth(token_file), limits=limits)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", trigger, launcher
    finally:
        launcher.release.set()
        server.shutdown()
        server.server_close()
        trigger.close()


def post(url: str, data: bytes, token: str | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url + "/alerts", data=data, method="POST")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_forged_alerts_without_or_with_a_wrong_token_start_nothing(
    served: tuple[str, RetrainTrigger, Launcher],
) -> None:
    url, trigger, launcher = served
    body = notification(alert())
    assert post(url, body)[0] == 401
    assert post(url, body, token="wrong")[0] == 401
    assert post(url, body, token=TOKEN[:-1])[0] == 401
    assert launcher.submitted == []
    assert metric(trigger, "kfops_trigger_webhooks_total", status="unauthorized") == 3
    status, data = post(url, body, token=TOKEN)
    assert status == 200 and data["decisions"][0]["action"] == "started"
    # /status needs the token too; /healthz and /metrics do not.
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url + "/status", timeout=5)
    assert info.value.code == 401
    assert urllib.request.urlopen(url + "/healthz", timeout=5).status == 200
    assert b"kfops_trigger_webhooks_total" in urllib.request.urlopen(url + "/metrics").read()


def test_oversized_unknown_length_and_nested_bodies_are_4xx(
    served: tuple[str, RetrainTrigger, Launcher],
) -> None:
    url, _, _ = served
    assert post(url, b"x" * (65 << 10), token=TOKEN)[0] == 413
    status, data = post(url, b"[" * 20_000 + b"]" * 20_000, token=TOKEN)
    assert status == 400 and "nested too deeply" in data["error"]
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=5) as sock:
        sock.sendall(f"POST /alerts HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
        assert sock.recv(100).startswith(b"HTTP/1.0 411")


def test_a_stalled_client_is_cut_at_the_deadline(
    served: tuple[str, RetrainTrigger, Launcher],
) -> None:
    url, _, _ = served
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /alerts HTTP/1.0\r\n")
        # Drip a header byte at a time, slower than the 1 s deadline allows in total.
        closed = False
        for _ in range(40):
            try:
                sock.sendall(b"X")
                if sock.recv(1, socket.MSG_DONTWAIT) == b"":
                    closed = True
                    break
            except BlockingIOError:
                pass
            except OSError:
                closed = True
                break
            time.sleep(0.1)
        assert closed, "the server kept a dripping client past its header deadline"
    assert urllib.request.urlopen(url + "/healthz", timeout=5).status == 200


def test_no_token_means_loopback_only(tmp_path: Path) -> None:
    check_bind("127.0.0.1", WebhookAuth(None))
    check_bind("localhost", WebhookAuth(None))
    for host in ("0.0.0.0", "", "::"):
        with pytest.raises(ConfigError, match="without a webhook token"):
            check_bind(host, WebhookAuth(None))
    token = tmp_path / "t"
    token.write_text(TOKEN)
    check_bind("0.0.0.0", WebhookAuth(token))
    token.write_text("short")
    with pytest.raises(ConfigError, match="at least 16"):
        WebhookAuth(token)


def test_the_token_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    token = tmp_path / "t"
    token.write_text(TOKEN)
    auth = WebhookAuth(token)
    assert auth.allows(f"Bearer {TOKEN}") and not auth.allows("Basic abc")
    rotated = "rotated-token-abcdef0123456789"
    token.write_text(rotated)
    assert auth.allows(f"Bearer {rotated}") and not auth.allows(f"Bearer {TOKEN}")


def test_metrics_name_every_new_counter() -> None:
    text = generate_latest(RetrainTrigger(Launcher()).registry).decode()
    for name in (
        "kfops_trigger_dedup_keys",
        "kfops_trigger_dedup_evictions_total",
        "kfops_trigger_state_write_failures_total",
        "kfops_trigger_connections_rejected_total",
        'kfops_trigger_skipped_total{reason="unknown_model"}',
        'kfops_trigger_webhooks_total{status="unauthorized"}',
    ):
        assert name in text, name
