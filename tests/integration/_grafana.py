"""Check a Grafana dashboard against a real Prometheus: every panel target must return data.

Reusable from any integration test that runs Prometheus (this one's dashboard test, the
closed-loop test)::

    from tests.integration._grafana import DASHBOARD, check_dashboard
    problems = check_dashboard(DASHBOARD, prometheus_url)
    assert not problems, problems

Grafana's template variables are replaced the way Grafana would with "All" selected (the
dashboard's ``allValue``, ``.*``), ``$__rate_interval`` by ``rate_interval`` (at least four
scrape intervals), then each target runs as an instant query. A target is a problem when
Prometheus refuses it (syntax, unknown function) or when it returns no series.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import REPO_ROOT

DASHBOARD = REPO_ROOT / "monitoring" / "grafana" / "kfops.json"


@dataclass(frozen=True)
class Target:
    panel: str
    ref_id: str
    expr: str


def targets(dashboard: dict[str, Any]) -> list[Target]:
    """Every query of every panel (rows' nested panels included)."""
    out = []
    panels = list(dashboard.get("panels", []))
    while panels:
        panel = panels.pop(0)
        panels.extend(panel.get("panels", []))  # a collapsed row holds its panels
        for target in panel.get("targets", []):
            if target.get("expr"):
                out.append(
                    Target(panel.get("title", "?"), target.get("refId", "?"), target["expr"])
                )
    return out


def expand(expr: str, dashboard: dict[str, Any], rate_interval: str) -> str:
    """Replace template variables as Grafana does with "All" selected."""
    values = {"__rate_interval": rate_interval, "__interval": rate_interval,
              "__range": rate_interval}  # fmt: skip
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") in ("query", "custom"):
            values[var["name"]] = var.get("allValue") or ".*"

    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise ValueError(f"unknown template variable ${name} in {expr!r}")
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", sub, expr)


def run_query(prometheus_url: str, expr: str, timeout: float = 10.0) -> tuple[str | None, int]:
    """(error, number of series) of an instant query."""
    url = f"{prometheus_url}/api/v1/query?query={urllib.parse.quote(expr)}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read() or b"{}")
        return str(body.get("error") or f"HTTP {exc.code}"), 0
    if body.get("status") != "success":
        return str(body.get("error")), 0
    return None, len(body["data"]["result"])


def check_dashboard(
    dashboard: Path | dict[str, Any], prometheus_url: str, rate_interval: str = "1m"
) -> list[str]:
    """One line per target that errors or returns no data; [] when every panel has data."""
    board = json.loads(Path(dashboard).read_text()) if isinstance(dashboard, Path) else dashboard
    problems = []
    for target in targets(board):
        expr = expand(target.expr, board, rate_interval)
        error, series = run_query(prometheus_url, expr)
        if error is not None:
            problems.append(f"{target.panel} [{target.ref_id}]: error {error}: {expr}")
        elif series == 0:
            problems.append(f"{target.panel} [{target.ref_id}]: no data: {expr}")
    return problems


def metric_names(dashboard: dict[str, Any]) -> set[str]:
    """The kfops_* metric names the dashboard's queries use."""
    names = set()
    for target in targets(dashboard):
        names |= set(re.findall(r"\b(kfops_[a-z_]+)\b", target.expr))
    return names
