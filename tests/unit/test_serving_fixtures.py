"""Test helper: real registry versions made with the library (no pipeline needed).

Imported by the serving/deploy unit tests and the server integration tests. Training the
penguins model takes about a second, so artifacts are built once per session and copied.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kfops.contract import infer_contract
from kfops.datasets import default_data_path
from kfops.drift import build_reference_profile
from kfops.explain.contributions import EXPLAINER_FILE, write_explainer_file
from kfops.io import read_json, write_json_atomic
from kfops.registry import ModelVersion, Registry
from kfops.training import save_model, train

MODEL = "penguins"
# The regression twin of the penguins fixture: body mass from the other columns.
REGRESSION_TARGET = "body_mass_g"
FILES = ("model.joblib", "contract.json", "reference_profile.json", EXPLAINER_FILE)
TWIN_LINEAGE = "twin-lineage.json"  # next to the cached artifacts, not one of them


@functools.cache
def penguins() -> pd.DataFrame:
    return pd.read_csv(default_data_path())


@functools.cache
def _artifacts(cache_dir: str, estimator: str | None, task: str) -> dict[str, Path]:
    """A version's files: model, contract, profile, explainer.json and, as registration makes
    them, its ONNX twin verified on the rows it was trained on (``model.onnx``) and the lineage
    saying so."""
    from kfops.twin import convert
    from kfops.twin.record import TWIN_FILE, TwinRecord, judge

    df = penguins()
    if task == "regression":
        df = df.drop(columns=["species"])
        contract = infer_contract(df, REGRESSION_TARGET, "regression")
    else:
        contract = infer_contract(df, "species", "classification")
    model = train(df, contract, estimator=estimator)
    out = Path(cache_dir) / f"{task}-{estimator or 'default'}"
    out.mkdir(parents=True, exist_ok=True)
    save_model(model, out / "model.joblib")
    contract.save(out / "contract.json")
    build_reference_profile(df, contract).save(out / "reference_profile.json")
    write_explainer_file(out / EXPLAINER_FILE, model, df)
    twin = convert(model, contract)
    assert twin.convertible, twin.to_dict()
    (out / TWIN_FILE).write_bytes(twin.onnx)  # type: ignore[union-attr]
    record = judge(TwinRecord.from_conversion(twin.to_dict()), model, out / TWIN_FILE, df, contract)
    assert record.verified, record.to_dict()
    # The lineage a registration would write (not a version file: the registry writes it).
    write_json_atomic(out / TWIN_LINEAGE, {"test": True, "twin": record.to_dict()})
    return {n: out / n for n in (*FILES, TWIN_FILE)}


_CACHE: dict[str, str] = {}


def artifacts(estimator: str | None = None, task: str = "classification") -> dict[str, Path]:
    if "dir" not in _CACHE:
        import tempfile

        _CACHE["dir"] = tempfile.mkdtemp(prefix="kfops-test-artifacts-")
    return _artifacts(_CACHE["dir"], estimator, task)


def register_version(
    root: Path,
    *,
    estimator: str | None = None,
    aliases: tuple[str, ...] = (),
    without: tuple[str, ...] = (),
    task: str = "classification",
    model: str = MODEL,
    twin: bool = True,
) -> ModelVersion:
    """A penguins version; with ``twin`` (the default) it has a verified ONNX twin, which
    ``kfops serve`` serves by default (runtime auto), else it is a version without one."""
    files = {n: p for n, p in artifacts(estimator, task).items() if n not in without}
    lineage: dict[str, Any] = {"test": True}
    if twin and "model.onnx" in files:
        lineage = read_json(files["model.onnx"].parent / TWIN_LINEAGE)
    else:
        files.pop("model.onnx", None)
    return Registry(root).register(model, files, lineage, aliases=aliases)


def make_registry(root: Path) -> Registry:
    """A registry with penguins v1 as champion."""
    register_version(root, aliases=("champion",))
    return Registry(root)


def valid_row() -> dict[str, Any]:
    return {
        "island": "Torgersen",
        "bill_length_mm": 39.1,
        "bill_depth_mm": 18.7,
        "flipper_length_mm": 181.0,
        "body_mass_g": 3750.0,
        "sex": "male",
        "year": 2007,
    }


def tamper(version_dir: Path, name: str = "model.joblib") -> None:
    path = version_dir / name
    path.chmod(0o644)
    with open(path, "ab") as fh:
        fh.write(b"tampered")


@pytest.fixture
def penguins_registry(tmp_path: Path) -> Registry:
    return make_registry(tmp_path / "registry")


def copy_version(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_fixture_registry_has_a_champion(penguins_registry: Registry) -> None:
    assert penguins_registry.get_alias(MODEL, "champion") == "v1"
