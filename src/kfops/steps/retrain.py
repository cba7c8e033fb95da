"""Retrain: the training pipeline again, on fresh data, repeating the champion's target, task,
estimator and parameters.

One flow for every caller:

- ``plan``: after a monitoring window that crossed the policy (the monitor step), decide the
  data: a given URI, or the window's captured rows joined with their late labels plus a share
  of the champion's reference training rows (``mix_training_data``, recorded in the lineage),
  and the bar: the champion's thresholds (``champion_thresholds``), as for any run;
- ``labelled_window``: the captured rows of a time range joined with their labels, as a
  training table (what ``plan`` and the trigger's local launcher train on);
- ``run``: the training pipeline on this machine (kfp.local), recorded with why it ran.

On a cluster the monitoring pipeline's If and the trigger's Kubeflow launcher submit the same
training pipeline with ``training_params``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kfops import tracking
from kfops.contract_model import Contract
from kfops.errors import DataError
from kfops.monitoring.result import MonitoringResult
from kfops.monitoring.training_data import build_training_data
from kfops.params import DEFAULTS, TrainingParams, default_thresholds
from kfops.registry import ModelVersion, Registry

if TYPE_CHECKING:
    import pandas as pd

    from kfops.local_runner import RunSummary

log = logging.getLogger(__name__)

MIN_LABELLED_ROWS = 50  # fewer labelled captured rows than this is no training set


def training_params(registry_root: str | Path, model: str, data_uri: str) -> TrainingParams:
    """TrainingParams that repeat the champion's target, task, estimator and params."""
    champion = Registry(registry_root).verify(model)
    contract = Contract.load(champion.file("contract.json"))
    lineage = champion.lineage or {}
    extra: dict[str, Any] = {}
    if isinstance(lineage.get("estimator"), str):
        extra["estimator"] = lineage["estimator"]
    if isinstance(lineage.get("params"), dict):
        extra["params"] = lineage["params"]
    extra.update(champion_thresholds(champion, contract.task))
    return TrainingParams(
        data_uri=data_uri,
        target=contract.target.name,
        task=contract.task,
        model_name=model,
        registry_root=str(registry_root),
        **extra,
    )


def champion_thresholds(champion: ModelVersion | None, task: str) -> dict[str, Any]:
    """``thresholds``/``max_regression`` for a retrain: the policy the champion was blessed
    under (its lineage), else the defaults of ``kfops run``; never no thresholds at all, so an
    alert-started run is held to the same bar as any run."""
    from kfops.blessing import policy_of_lineage

    policy = policy_of_lineage(champion.lineage or {}, task) if champion is not None else None
    if policy is None:
        if champion is not None:
            log.warning(
                "%s %s records no blessing policy: retraining against the default thresholds %s",
                champion.model, champion.version, default_thresholds(task),
            )  # fmt: skip
        return {"thresholds": default_thresholds(task)}
    return {"thresholds": dict(policy.thresholds), "max_regression": policy.max_regression}


def data_path(
    registry_root: str | Path, model: str, run_id: str, work_dir: str | Path | None = None
) -> Path:
    """Where the labelled window of a retraining run is written: under ``work_dir``, by default
    ``<registry>/retrain-data`` (everything kfops writes stays under the registry root)."""
    root = Path(work_dir) if work_dir else Path(registry_root) / "retrain-data"
    return root / model / f"{run_id}.parquet"


def labelled_window(
    registry_root: str | Path,
    model: str,
    capture_dir: str | Path,
    labels_dir: str | Path,
    start: float,
    end: float,
    out_path: str | Path,
    min_rows: int = MIN_LABELLED_ROWS,
) -> tuple[Path, int]:
    """The champion's captured rows in [start, end) that have a late label, as a training table
    with the champion's features and target. DataError when fewer than ``min_rows`` have one."""
    champion = Registry(registry_root).verify(model)
    contract = Contract.load(champion.file("contract.json"))
    return build_training_data(
        capture_dir, labels_dir, model, contract, out_path, start=start, end=end, min_rows=min_rows
    )


@dataclass(frozen=True)
class DataMix:
    """What a retraining run trains on: the labelled window plus a share of the champion's
    reference training rows. Recorded in the new version's lineage (``data_mix``)."""

    path: str  # the mixed training table (Parquet)
    rows: int
    window_rows: int
    reference_rows: int  # reference rows kept (after sampling)
    reference_share: float  # the policy's share of the reference rows
    reference_uri: str = ""  # where the reference rows were read ("" when none)
    reference_fingerprint: str = ""  # the champion's data fingerprint (its lineage)
    champion: str = ""  # the version whose training data is the reference
    window_start: float | None = None
    window_end: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reference_rows(champion: ModelVersion, contract: Contract) -> tuple[pd.DataFrame, str]:
    """The champion's training data (features + target) and the URI it was read from: its
    Parquet snapshot when it is still there, else the data URI it was trained on."""
    from kfops import data

    lineage = champion.lineage or {}
    columns = [*contract.feature_names, contract.target.name]
    errors = []
    for key in ("snapshot_uri", "data_uri"):
        uri = lineage.get(key)
        if not isinstance(uri, str) or not uri:
            continue
        try:
            frame = data.read_table(uri)
        except (DataError, OSError) as exc:
            errors.append(f"{key} {uri}: {exc}")
            continue
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            errors.append(f"{key} {uri} lacks columns {missing}")
            continue
        return frame[columns], uri
    raise DataError(
        f"the training data of {champion.model} {champion.version} cannot be read "
        + ("(" + "; ".join(errors) + ")" if errors else "(its lineage records no data URI)")
    )


def mix_training_data(
    registry_root: str | Path,
    model: str,
    window_path: str | Path,
    reference_share: float,
    out_path: str | Path | None = None,
    window: tuple[float, float] | None = None,
) -> DataMix:
    """The labelled window at ``window_path`` plus ``reference_share`` of the champion's
    training rows (sampled with the champion's seed), written to ``out_path`` (default: over
    ``window_path``). With share 0 the window alone. DataError when the reference is needed
    but cannot be read: a retrain on 160 fresh rows must not silently replace a model
    trained on thousands."""
    import pandas as pd

    from kfops.data import write_snapshot

    champion = Registry(registry_root).verify(model)
    contract = Contract.load(champion.file("contract.json"))
    fresh = pd.read_parquet(window_path)
    lineage = champion.lineage or {}
    fp = lineage.get("data_fingerprint")
    mix: dict[str, Any] = {
        "window_rows": len(fresh), "reference_share": float(reference_share),
        "champion": champion.version,
        "window_start": None if window is None else window[0],
        "window_end": None if window is None else window[1],
        "reference_fingerprint": fp.get("sha256", "") if isinstance(fp, dict) else str(fp or ""),
    }  # fmt: skip
    frames = [fresh]
    if reference_share > 0:
        ref, uri = reference_rows(champion, contract)
        seed = lineage.get("seed", DEFAULTS.seed)
        if reference_share < 1:
            ref = ref.sample(frac=reference_share, random_state=int(seed))
        frames.insert(0, ref)
        mix.update(reference_uri=uri, reference_rows=len(ref))
    else:
        mix["reference_rows"] = 0
    table = pd.concat(frames, ignore_index=True) if len(frames) > 1 else fresh
    target = Path(out_path or window_path)
    write_snapshot(table, target)
    return DataMix(path=str(target), rows=len(table), **mix)


@dataclass(frozen=True)
class RetrainPlan:
    """What the training pipeline needs to retrain a model after a window, or why not."""

    retrain: bool
    reason: str
    data_uri: str = ""
    target: str = ""
    task: str = ""
    estimator: str = DEFAULTS.estimator
    params: dict[str, Any] = field(default_factory=dict)
    # The champion's blessing bar (champion_thresholds): a retrain passes the same thresholds.
    thresholds: dict[str, float] = field(default_factory=dict)
    max_regression: float = DEFAULTS.max_regression
    data_mix: dict[str, Any] = field(default_factory=dict)  # DataMix.to_dict(), for lineage

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PlanInputs:
    window: MonitoringResult
    registry_root: Path
    capture_dir: str | Path | None = None
    labels_dir: str | Path | None = None
    data_uri: str | None = None  # train on this instead of the labelled window
    out_path: Path | None = None  # where the labelled window is written
    min_rows: int = MIN_LABELLED_ROWS
    reference_share: float = 1.0  # MonitoringPolicy.retrain_reference_share


def plan(inputs: PlanInputs) -> RetrainPlan:
    """Decide the data of the retraining run: ``data_uri`` when given, else the window's
    captured rows joined with their late labels plus ``reference_share`` of the champion's
    training rows (written to ``out_path``); the champion's thresholds in every case."""
    window = inputs.window
    if not window.retrain:
        return RetrainPlan(False, f"no retraining: window status {window.status}")
    params = training_params(inputs.registry_root, window.model, inputs.data_uri or "")
    base: dict[str, Any] = {
        "target": params.target,
        "task": params.task,
        "estimator": params.estimator,
        "params": params.params,
        "thresholds": dict(params.thresholds),
        "max_regression": params.max_regression,
    }
    why = "; ".join(window.reasons)
    if inputs.data_uri:
        reason = f"{why}; training on {inputs.data_uri}"
        return RetrainPlan(True, reason, data_uri=inputs.data_uri, **base)
    if inputs.capture_dir is None or inputs.labels_dir is None or inputs.out_path is None:
        return RetrainPlan(False, f"{why}; but no labels and no data URI to retrain on")
    span = (window.capture["start_ts"], window.capture["end_ts"])
    try:
        path, rows = labelled_window(
            inputs.registry_root, window.model, inputs.capture_dir, inputs.labels_dir,
            span[0], span[1], inputs.out_path, inputs.min_rows,
        )  # fmt: skip
        mix = mix_training_data(
            inputs.registry_root, window.model, path, inputs.reference_share, window=span
        )
    except DataError as exc:
        log.warning("%s: retraining needed but %s", window.model, exc)
        return RetrainPlan(False, f"{why}; but {exc}")
    reason = f"{why}; training on {rows} labelled captured rows" + (
        f" plus {mix.reference_rows} reference training rows" if mix.reference_rows else ""
    )
    return RetrainPlan(True, reason, data_uri=mix.path, data_mix=mix.to_dict(), **base)


@dataclass(frozen=True)
class RetrainInputs:
    model_name: str
    registry_root: Path
    data_uri: str
    runner: str = "subprocess"  # kfp.local runner: subprocess | docker
    run_id: str | None = None
    # Why the run exists (e.g. the alerts that asked for it): recorded as its "trigger" step.
    trigger: dict[str, Any] | None = None
    data_mix: dict[str, Any] | None = None  # DataMix.to_dict(): kept in the lineage


def run(inputs: RetrainInputs) -> RunSummary:
    """Run the training pipeline locally on ``data_uri`` with the champion's target and task."""
    from kfops.local_runner import run_training

    params = training_params(inputs.registry_root, inputs.model_name, inputs.data_uri)
    if inputs.data_mix:
        params = replace(params, data_mix=dict(inputs.data_mix))
    run_id = inputs.run_id or tracking.new_run_id()
    if inputs.trigger is not None:
        # Why this run exists, next to what it did (kfops.tracking run record).
        why = {"model": inputs.model_name, **inputs.trigger, "data_uri": inputs.data_uri}
        tracking.record_step(inputs.registry_root, run_id, "trigger", why)
    log.info("retraining %s on %s (runner=%s)", inputs.model_name, inputs.data_uri, inputs.runner)
    return run_training(params, runner=inputs.runner, run_id=run_id)
