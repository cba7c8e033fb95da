"""`kfops run` as a person and as CI see it: real runs of the CLI on the local runner.

A person gets one line per step and the decision, not the executor's logs (those go to the
run's log file); CI gets exactly one JSON document on stdout with --json and a distinct exit
code for a rejected challenger with --fail-if-not-blessed. Old run roots are pruned under the
registry root, never outside it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kfops import tracking
from kfops.cli.run import EXIT_NOT_BLESSED
from kfops.datasets import default_data_path
from kfops.run_roots import RunRoot

pytestmark = pytest.mark.integration

STEP = re.compile(r"^  (?P<task>[a-z0-9-]+) +(?P<outcome>ok|FAILED) +\d+\.\d+s$")
EXECUTOR_NOISE = ("Executing task", "executor_input", "KFP Executor")


def kfops(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KFOPS_")}
    return subprocess.run(
        [sys.executable, "-m", "kfops", "run", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_a_rejected_run_for_ci_then_a_blessed_run_for_a_person(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    data = tmp_path / "penguins.csv"
    data.write_bytes(default_data_path().read_bytes())
    common = ["--data", str(data), "--target", "species", "--registry", str(registry)]

    # CI: --json --verbose, a threshold nothing meets, and the gate.
    ci = kfops(
        *common,
        "--json",
        "--verbose",
        "--fail-if-not-blessed",
        "--threshold",
        "log_loss=0.000001",
        cwd=tmp_path,
    )
    assert ci.returncode == EXIT_NOT_BLESSED, ci.stderr[-3000:]
    summary = json.loads(ci.stdout)  # the whole of stdout is one JSON document
    assert summary["blessed"] is False and summary["version"] is None
    assert summary["status"] == "succeeded"
    assert any("log_loss" in r for r in summary["reasons"])
    # --verbose streamed the executor's logs, to stderr since stdout is the document's.
    assert "Executing task" in ci.stderr
    rejected = RunRoot(registry, summary["run_id"])
    assert Path(summary["log"]) == rejected.log and rejected.pipeline_root.is_dir()

    # A person: no flags but the data, target and retention.
    person = kfops(*common, "--keep-runs", "1", cwd=tmp_path)
    assert person.returncode == 0, person.stderr[-3000:]
    lines = person.stdout.splitlines()
    assert 12 <= len(lines) <= 35, person.stdout
    steps = {m["task"]: m["outcome"] for m in map(STEP.match, lines) if m}
    for task in ("extract", "validate", "prepare", "train", "evaluate", "bless", "register"):
        assert steps.get(task) == "ok", (task, person.stdout)
    for noise in EXECUTOR_NOISE:
        assert noise not in person.stdout and noise not in person.stderr, noise
    assert "blessed       yes" in person.stdout
    assert re.search(r"^version       v1 \(sha256 [0-9a-f]{64}\)$", person.stdout, re.M)
    assert "champion -> v1" in person.stdout
    log = Path(re.search(r"^log +(\S+)$", person.stdout, re.M)[1])  # type: ignore[index]
    text = log.read_text()
    assert "Executing task 'train'" in text and "executor_input" in text.replace("\n", "")

    # Retention: the rejected run lost its pipeline root and log, kept its record; the new
    # run keeps both; nothing was written next to the registry.
    assert not rejected.pipeline_root.exists() and not rejected.log.exists()
    assert tracking.load_run(registry, summary["run_id"]).blessed is False
    assert log.parent.joinpath("pipeline").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["penguins.csv", "registry"]
