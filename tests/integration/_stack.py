"""Real Prometheus, Alertmanager, Pushgateway and kfops processes for integration tests.

Every process binds 127.0.0.1 on a free port and logs to a file under the test's tmp_path; the
configs are derived from the committed files in monitoring/ (same rules, same routes) with
short intervals so that a drift alert fires within seconds.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO_ROOT, free_port, require_binary

RULES = REPO_ROOT / "monitoring" / "prometheus" / "kfops-rules.yml"
ALERTMANAGER_CONFIG = REPO_ROOT / "monitoring" / "alertmanager" / "alertmanager.yml"


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    url: str

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.popen.poll() is None


def http(
    method: str, url: str, body: Any = None, timeout: float = 10.0, raw: bytes | None = None
) -> tuple[int, bytes]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def get_json(url: str) -> Any:
    status, body = http("GET", url)
    assert status == 200, f"GET {url}: {status} {body[:300]!r}"
    return json.loads(body)


def wait_for(
    what: str, check: Callable[[], Any], timeout: float, procs: list[Proc] = (), every: float = 0.25
) -> Any:  # type: ignore[assignment]
    """Poll ``check`` until it returns something truthy; on timeout fail with the process logs."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, AssertionError, ValueError, KeyError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        for p in procs:
            if not p.alive():
                raise AssertionError(
                    f"{p.name} exited while waiting for {what}:\n{p.text()[-3000:]}"
                )
        time.sleep(every)
    logs = "\n".join(f"--- {p.name} ---\n{p.text()[-2500:]}" for p in procs)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})\n{logs}")


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """A sample from a Prometheus text exposition (labels must all match)."""
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)", line)
        if not m or m.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(m.group(4))
    return None


class Stack:
    """Starts processes and stops every one of them (by pid) at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: list[Proc] = []

    def start(
        self, name: str, cmd: list[str], url: str, ready: str | None = None,
        env: dict[str, str] | None = None, timeout: float = 60.0,
    ) -> Proc:  # fmt: skip
        log = self.root / f"{name}.log"
        fh = log.open("wb")
        popen = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=self.root,
            env={**os.environ, **(env or {})}, start_new_session=True,
        )  # fmt: skip
        proc = Proc(name, popen, log, url)
        self.procs.append(proc)
        if ready is not None:
            wait_for(f"{name} ready", lambda: http("GET", url + ready, timeout=2)[0] == 200,
                     timeout, [proc])  # fmt: skip
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.alive():
                os.killpg(proc.popen.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait(5)

    # -- the pieces ---------------------------------------------------------------------------

    def trigger(self, *args: str, env: dict[str, str] | None = None) -> Proc:
        port = free_port()
        cmd = [sys.executable, "-m", "kfops", "trigger", "--host", "127.0.0.1",
               "--port", str(port), *args]  # fmt: skip
        return self.start("trigger", cmd, f"http://127.0.0.1:{port}", "/healthz", env=env)

    def alertmanager(self, trigger_url: str, token_file: Path | None = None) -> Proc:
        """Alertmanager with the committed routes, pointed at ``trigger_url`` and made fast.
        The committed bearer token file becomes ``token_file`` (none: no Authorization)."""
        binary = require_binary("prometheus-alertmanager")
        config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
        fast = {"group_wait": "1s", "group_interval": "2s", "repeat_interval": "1m"}
        config["route"].update(fast)
        for route in config["route"]["routes"]:
            route.update(fast)
        for receiver in config["receivers"]:
            for hook in receiver.get("webhook_configs", []):
                hook["url"] = f"{trigger_url}/alerts"
                auth = (hook.get("http_config") or {}).get("authorization")
                if auth and token_file is not None:
                    auth["credentials_file"] = str(token_file)
                elif auth:
                    del hook["http_config"]["authorization"]
        path = self.root / "alertmanager.yml"
        path.write_text(yaml.safe_dump(config))
        port = free_port()
        cmd = [binary, f"--config.file={path}", f"--storage.path={self.root / 'am-data'}",
               f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="]  # fmt: skip
        return self.start("alertmanager", cmd, f"http://127.0.0.1:{port}", "/-/ready")

    def pushgateway(self) -> Proc:
        binary = require_binary("prometheus-pushgateway")
        port = free_port()
        # Debian's build persists every group to /var/lib/prometheus/pushgateway.data by
        # default: without this, groups pushed by earlier runs (anyone's) show up in this one.
        cmd = [binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="]
        return self.start("pushgateway", cmd, f"http://127.0.0.1:{port}", "/-/ready")

    def prometheus(
        self, targets: dict[str, str], alertmanager_url: str | None, for_seconds: int = 2,
        honor_labels: tuple[str, ...] = ("pushgateway",),
    ) -> Proc:  # fmt: skip
        """Prometheus scraping ``targets`` (job -> host:port) every second with the kfops rules,
        every ``for:`` shortened to ``for_seconds`` (the expressions are the committed ones)."""
        binary = require_binary("prometheus")
        rules = yaml.safe_load(RULES.read_text())
        for group in rules["groups"]:
            group["interval"] = "1s"
            for rule in group["rules"]:
                if rule.get("for") not in (None, "0m", "0s"):
                    rule["for"] = f"{for_seconds}s"
        rules_path = self.root / "kfops-rules.yml"
        rules_path.write_text(yaml.safe_dump(rules, sort_keys=False))
        config: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules_path)],
            "scrape_configs": [
                {
                    "job_name": job,
                    "static_configs": [{"targets": [target]}],
                    "honor_labels": job in honor_labels,
                }
                for job, target in targets.items()
            ],
        }
        if alertmanager_url:
            config["alerting"] = {"alertmanagers": [
                {"static_configs": [{"targets": [alertmanager_url.split("://", 1)[1]]}]}
            ]}  # fmt: skip
        path = self.root / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        port = free_port()
        cmd = [
            binary, f"--config.file={path}", f"--storage.tsdb.path={self.root / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--rules.alert.resend-delay=2s",
        ]  # fmt: skip
        return self.start("prometheus", cmd, f"http://127.0.0.1:{port}", "/-/ready")


@contextmanager
def stack(root: Path) -> Iterator[Stack]:
    s = Stack(root)
    try:
        yield s
    finally:
        s.stop()


def firing_alerts(prometheus: Proc, name: str) -> list[dict[str, Any]]:
    data = get_json(f"{prometheus.url}/api/v1/alerts")["data"]["alerts"]
    return [a for a in data if a["labels"].get("alertname") == name and a["state"] == "firing"]


def query(prometheus: Proc, expr: str) -> list[dict[str, Any]]:
    url = f"{prometheus.url}/api/v1/query?query={urllib.request.quote(expr)}"
    return list(get_json(url)["data"]["result"])
