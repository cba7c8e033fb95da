"""Which runtime answers (issue 12): the verified ONNX twin, else the sklearn pipeline; a twin
the lineage promises but that cannot be loaded means the version is not ready."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY

from kfops.errors import RegistryError
from kfops.io import read_json
from kfops.registry import Registry
from kfops.serving.model import ModelSource, load_version
from kfops.serving.predictor import KfopsPredictor, ServingOptions
from kfops.serving.validation import RequestError
from kfops.twin.format import TWIN_FILE, TwinError
from kfops.twin.verify import PROBA_TOLERANCE
from tests.unit.test_serving_fixtures import MODEL, penguins, register_version, tamper


def _rows() -> list[dict[str, Any]]:
    df = penguins().drop(columns=["species"]).sample(40, random_state=1)
    return [
        {k: (None if v != v else v.item() if hasattr(v, "item") else v) for k, v in r.items()}
        for r in df.to_dict("records")
    ]


def test_auto_serves_the_verified_twin_without_unpickling(tmp_path: Path) -> None:
    version = register_version(tmp_path / "reg")
    served = load_version(version.path, drift=False)
    assert served.runtime == "onnx" and served.estimator is None
    sklearn = load_version(version.path, drift=False, runtime="sklearn")
    assert sklearn.runtime == "sklearn" and sklearn.twin is None
    batch = served.schema.parse_v1({"instances": _rows()})
    labels, proba = served.predict(batch.columns, True)
    expected_labels, expected_proba = sklearn.predict(batch.columns, True)
    assert labels == expected_labels
    atol, rtol = PROBA_TOLERANCE
    np.testing.assert_allclose(proba, expected_proba, atol=atol, rtol=rtol)
    # The pipeline is still there for whoever needs it (explanations), loaded on demand.
    assert served.pipeline() is not None and served.estimator is not None


def test_a_version_without_a_verified_twin_is_served_by_sklearn(tmp_path: Path) -> None:
    version = register_version(tmp_path / "reg", twin=False)
    assert load_version(version.path, drift=False).runtime == "sklearn"
    with pytest.raises(RegistryError, match=r"no verified ONNX twin.*--runtime onnx"):
        load_version(version.path, drift=False, runtime="onnx")


def test_runtime_onnx_names_why_a_failed_twin_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    version = register_version(root, twin=False)
    lineage = read_json(version.path / "lineage.json")
    record = {"status": "failed", "file": None, "reason": "labels differ on row 3",
              "conversion": {}, "verdict": None}  # fmt: skip
    files = {n: version.path / n for n in ("model.joblib", "contract.json")}
    failed = Registry(root).register(MODEL, files, {**lineage, "twin": record})
    with pytest.raises(RegistryError, match="its twin is failed: labels differ on row 3"):
        load_version(failed.path, drift=False, runtime="onnx")
    assert load_version(failed.path, drift=False).runtime == "sklearn"


def test_twin_promised_but_not_in_the_manifest_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    with_twin = register_version(root)
    files = {n: with_twin.path / n for n in ("model.joblib", "contract.json")}
    lineage = read_json(with_twin.path / "lineage.json")
    version = Registry(root).register(MODEL, files, lineage)
    with pytest.raises(RegistryError, match=r"model\.onnx: the lineage says the twin was verified"):
        load_version(version.path, drift=False)


def test_unloadable_twin_with_a_valid_hash_is_an_error_naming_it(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    with_twin = register_version(root)
    junk = tmp_path / TWIN_FILE
    junk.write_bytes(b"not an onnx graph")
    files = {n: with_twin.path / n for n in ("model.joblib", "contract.json")}
    files[TWIN_FILE] = junk
    lineage = read_json(with_twin.path / "lineage.json")
    version = Registry(root).register(MODEL, files, lineage)
    with pytest.raises(TwinError, match=rf"ONNX twin {version.path / TWIN_FILE} cannot be loaded"):
        load_version(version.path, drift=False)


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_corrupt_or_missing_twin_means_not_ready_with_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    root = tmp_path / "reg"
    version = register_version(root, aliases=("champion",))
    if damage == "corrupt":
        tamper(version.path, TWIN_FILE)
    else:
        (version.path / TWIN_FILE).unlink()
    p = KfopsPredictor(f"twin-{damage}", ModelSource(registry_root=root, model=MODEL))
    with caplog.at_level(logging.ERROR):
        assert p.load() is False
    assert p.ready is False
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and TWIN_FILE in errors[0] and "NOT ready" in errors[0]


def _call(p: KfopsPredictor, body: Any) -> Any:
    return asyncio.run(p(body))[0]


def test_model_info_shows_the_runtime_and_unseen_categories_are_counted(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    register_version(root, aliases=("champion",))
    for runtime in ("onnx", "sklearn"):
        name = f"info-{runtime}"
        p = KfopsPredictor(
            name,
            ModelSource(registry_root=root, model=MODEL),
            ServingOptions(drift=False, runtime=runtime),
        )
        assert p.load()
        sha = p.served.sha256 if p.served else ""
        labels = {"model": name, "version": "v1", "sha256": sha, "runtime": runtime}
        assert REGISTRY.get_sample_value("kfops_model_info", labels) == 1
        row = {**_rows()[0], "island": "Atlantis", "species": "Adelie"}
        out = _call(p, {"instances": [row, row]})
        assert len(out["predictions"]) == 2
        unseen = {"model": name, "version": "v1", "feature": "island"}
        assert REGISTRY.get_sample_value("kfops_unseen_category_total", unseen) == 2
    strict = KfopsPredictor(
        "info-strict",
        ModelSource(registry_root=root, model=MODEL),
        ServingOptions(drift=False, strict_categories=True),
    )
    assert strict.load()
    with pytest.raises(RequestError) as exc:
        _call(strict, {"instances": [{**_rows()[0], "island": "Atlantis"}]})
    assert [(e.field, e.reason) for e in exc.value.errors] == [
        ("instances[0].island", "out_of_domain")
    ]
