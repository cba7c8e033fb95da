"""Every bad input to `kfops run`: one clear message, exit code 2, an unchanged registry."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kfops.datasets import default_data_path, make_messy
from tests.conftest import free_port

pytestmark = pytest.mark.integration


def kfops(registry: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KFOPS_REGISTRY_ROOT": str(registry)}
    return subprocess.run(
        [sys.executable, "-m", "kfops", "run", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def registry_state(root: Path) -> dict[str, str]:
    """Every file under models/ with its hash: what 'changes nothing' is checked against."""
    models = root / "models"
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(models.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def champion_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad-input") / "registry"
    done = kfops(
        root, "--data", str(default_data_path()), "--target", "species", "--model", "penguins"
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root


def penguins() -> pd.DataFrame:
    return pd.read_csv(default_data_path())


def write(tmp: Path, name: str, make: Callable[[Path], None]) -> str:
    path = tmp / name
    make(path)
    return str(path)


CASES: list[tuple[str, Callable[[Path], list[str]], str]] = [
    (
        "misspelled target",
        lambda t: [
            "--data",
            write(t, "p.csv", lambda p: penguins().to_csv(p, index=False)),
            "--target",
            "specie",
        ],
        "did you mean 'species'",
    ),
    (
        "empty file",
        lambda t: [
            "--data",
            write(t, "empty.csv", lambda p: p.write_text("")),
            "--target",
            "species",
        ],
        "is empty",
    ),
    (
        "binary file",
        lambda t: [
            "--data",
            write(t, "blob.csv", lambda p: p.write_bytes(bytes(range(256)) * 8)),
            "--target",
            "species",
        ],
        "binary",
    ),
    (
        "url that does not answer",
        lambda t: ["--data", f"http://127.0.0.1:{free_port()}/data.csv", "--target", "species"],
        "could not download",
    ),
    (
        "target with one class",
        lambda t: [
            "--data",
            write(
                t, "one.csv", lambda p: penguins().assign(species="Adelie").to_csv(p, index=False)
            ),
            "--target",
            "species",
        ],
        "one class",
    ),
    (
        "all-null column",
        lambda t: [
            "--data",
            write(t, "null.csv", lambda p: penguins().assign(empty=np.nan).to_csv(p, index=False)),
            "--target",
            "species",
        ],
        "'empty'",
    ),
    (
        "constant column",
        lambda t: [
            "--data",
            write(t, "const.csv", lambda p: penguins().assign(site="lab").to_csv(p, index=False)),
            "--target",
            "species",
        ],
        "'site'",
    ),
    (
        "mixed types",
        lambda t: [
            "--data",
            write(
                t,
                "mixed.csv",
                lambda p: (
                    penguins()
                    .assign(
                        body_mass_g=lambda d: (
                            d["body_mass_g"].astype(object).where(d.index % 50 != 0, "heavy")
                        )
                    )
                    .to_csv(p, index=False)
                ),
            ),
            "--target",
            "species",
        ],
        "body_mass_g",
    ),
    (
        "unknown estimator",
        lambda t: ["--estimator", "random_forrest"],
        "random_forest",
    ),
    (
        "unknown parameter",
        lambda t: ["--estimator", "random_forest", "--params", '{"n_trees": 10}'],
        "n_trees",
    ),
    (
        "data violating the champion's contract",
        lambda t: [
            "--data",
            write(
                t, "drop.csv", lambda p: penguins().drop(columns=["island"]).to_csv(p, index=False)
            ),
            "--target",
            "species",
            "--model",
            "penguins",
        ],
        "island",
    ),
]


@pytest.mark.parametrize(("case", "make_args", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_error_and_changes_nothing(
    case: str,
    make_args: Callable[[Path], list[str]],
    expected: str,
    champion_registry: Path,
    tmp_path: Path,
) -> None:
    before = registry_state(champion_registry)
    done = kfops(champion_registry, *make_args(tmp_path))
    assert done.returncode == 2, f"{case}: {done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), f"{case}: last line {last!r}"
    assert expected in last, f"{case}: {last!r}"
    assert "Traceback" not in done.stderr
    # The error is not buried: a few step lines at most, and the log file named when a task ran.
    assert len((done.stdout + done.stderr).splitlines()) <= 15, done.stdout + done.stderr
    logs = [line[len("log: ") :] for line in done.stderr.splitlines() if line.startswith("log: ")]
    assert all(Path(log).is_file() for log in logs), logs
    if "FAILED" in done.stdout:
        assert logs and logs[0].startswith(str(champion_registry)), done.stderr
    assert registry_state(champion_registry) == before


def test_messy_csv_it_has_never_seen_trains_without_code_changes(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    make_messy(400, seed=3).to_csv(path, index=False)
    done = kfops(
        tmp_path / "registry",
        "--data",
        str(path),
        "--target",
        "churned",
        "--threshold",
        "f1_macro=0.3",
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "version       v1" in done.stdout
    assert "champion -> v1" in done.stdout
