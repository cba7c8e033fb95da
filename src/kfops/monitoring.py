"""Batch monitoring of a served model: one window of captured traffic at a time.

``run_monitoring`` reads the payload capture of a model for a time range (skipping and counting
truncated or malformed lines), checks the rows against the version's data contract, compares
them with the version's reference profile (``kfops.drift``), joins late labels by request id to
measure the model's quality against its training metrics, and decides under a
``MonitoringPolicy`` whether the model needs retraining. ``push_metrics`` sends the figures to a
Prometheus Pushgateway; ``build_training_data`` turns a labelled window into a training table
that ``retrain`` (or ``kfops trigger``) feeds to the training pipeline.

Formats: docs/ARCHITECTURE.md, "Payload capture".
"""

from __future__ import annotations

import csv
import html
import io
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kfops.contract_model import Contract
from kfops.errors import ClusterError, ConfigError, DataError, KfopsError, RegistryError
from kfops.evaluation import HIGHER_IS_BETTER, PRIMARY_METRIC

log = logging.getLogger(__name__)

DEFAULT_JOB = "kfops-monitoring"
CHAMPION = "champion"
MAX_EXAMPLES = 5  # malformed-line examples kept in a result
_HOUR_FILE = re.compile(r"^(\d{2})-")
_DAY_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# ----------------------------------------------------------------------------------------------
# Reading the capture


@dataclass
class CaptureWindow:
    """Captured rows of one model in [start, end): features and prediction metadata, aligned."""

    model: str
    start: float
    end: float
    features: pd.DataFrame  # one column per captured feature
    meta: pd.DataFrame  # id, ts, version, prediction, proba (dict or None)
    files: int = 0
    lines: int = 0
    malformed: int = 0
    outside_window: int = 0
    examples: list[str] = field(default_factory=list)  # "file:line: reason"

    @property
    def rows(self) -> int:
        return len(self.meta)

    def stats(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "start_ts": self.start,
            "end_ts": self.end,
            "rows": self.rows,
            "files": self.files,
            "lines": self.lines,
            "malformed": self.malformed,
            "outside_window": self.outside_window,
            "malformed_examples": list(self.examples),
        }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def parse_time(value: str | float | datetime | None, default: float) -> float:
    """A window bound: epoch seconds, ISO 8601 (naive = UTC), ``now`` or ``-2h``/``-30m``."""
    if value is None:
        return default
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    if text == "now":
        return time.time()
    rel = re.fullmatch(r"-(\d+(?:\.\d+)?)([smhd])", text)
    if rel:
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}[rel.group(2)]
        return time.time() - float(rel.group(1)) * unit
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"bad time {value!r}: use ISO 8601, epoch seconds, 'now' or '-2h'"
        ) from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _fs(uri: str | Path) -> tuple[Any, str]:
    import fsspec

    fs, root = fsspec.core.url_to_fs(str(uri))
    return fs, root.rstrip("/")


def _capture_files(capture_dir: str | Path, model: str, start: float, end: float) -> list[str]:
    """Capture files whose hour (from the documented layout) can overlap [start, end)."""
    fs, root = _fs(capture_dir)
    model_dir = f"{root}/{model}"
    if not fs.isdir(model_dir):
        return []
    out = []
    for day_path in sorted(fs.ls(model_dir, detail=False)):
        day = day_path.rstrip("/").rsplit("/", 1)[-1]
        if not _DAY_DIR.match(day):
            continue
        day_start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
        if day_start >= end or day_start + 86400 <= start:
            continue
        for path in sorted(fs.ls(day_path, detail=False)):
            name = path.rsplit("/", 1)[-1]
            if not name.endswith(".jsonl"):
                continue
            hour = _HOUR_FILE.match(name)
            if hour:
                h0 = day_start + 3600 * int(hour.group(1))
                # Rows are stamped before the file is chosen: allow a minute of slack.
                if h0 >= end + 60 or h0 + 3600 + 60 <= start:
                    continue
            out.append(path)
    return out


def _json_loader() -> Callable[[bytes], Any]:
    # orjson (a kserve dependency, so present wherever the server runs) parses faster.
    try:
        import orjson
    except ImportError:  # pragma: no cover
        return json.loads
    return orjson.loads


def _iter_lines(fs: Any, path: str) -> Iterator[bytes]:
    with fs.open(path, "rb") as fh:
        yield from fh


def read_capture(
    capture_dir: str | Path,
    model: str,
    start: float | None = None,
    end: float | None = None,
) -> CaptureWindow:
    """Read the captured rows of ``model`` with ``start <= ts < end`` (default: last 24 hours).

    Truncated or malformed lines (not JSON, not an object, no ``features`` object, no numeric
    ``ts``) are skipped and counted; they never fail the window.
    """
    end = time.time() if end is None else end
    start = end - 86400 if start is None else start
    if start >= end:
        raise ConfigError(f"window start {_iso(start)} is not before its end {_iso(end)}")
    window = CaptureWindow(model, start, end, pd.DataFrame(), pd.DataFrame())
    fs, _ = _fs(capture_dir)
    loads = _json_loader()
    feats: list[dict[str, Any]] = []
    meta: list[dict[str, Any]] = []
    for path in _capture_files(capture_dir, model, start, end):
        window.files += 1
        for number, raw in enumerate(_iter_lines(fs, path), start=1):
            if not raw.strip():
                continue
            window.lines += 1
            reason = None
            try:
                rec = loads(raw)
            except ValueError:  # orjson.JSONDecodeError and json's are ValueErrors
                reason = "not valid JSON (truncated?)"
            else:
                if not isinstance(rec, dict):
                    reason = "not a JSON object"
                elif not isinstance(rec.get("features"), dict):
                    reason = "no 'features' object"
                elif not isinstance(rec.get("ts"), int | float) or isinstance(rec["ts"], bool):
                    reason = "no numeric 'ts'"
            if reason is not None:
                window.malformed += 1
                if len(window.examples) < MAX_EXAMPLES:
                    window.examples.append(f"{path}:{number}: {reason}")
                continue
            ts = float(rec["ts"])
            if not start <= ts < end or rec.get("model", model) != model:
                window.outside_window += 1
                continue
            feats.append(rec["features"])
            proba = rec.get("proba")
            meta.append(
                {
                    "id": None if rec.get("id") is None else str(rec["id"]),
                    "ts": ts,
                    "version": None if rec.get("version") is None else str(rec["version"]),
                    "prediction": rec.get("prediction"),
                    "proba": proba if isinstance(proba, dict) else None,
                }
            )
    window.features = pd.DataFrame.from_records(feats) if feats else pd.DataFrame()
    window.meta = pd.DataFrame.from_records(
        meta, columns=["id", "ts", "version", "prediction", "proba"]
    )
    if window.malformed:
        log.warning(
            "%s: skipped %d malformed of %d captured lines, e.g. %s",
            model,
            window.malformed,
            window.lines,
            window.examples[0],
        )
    return window


@dataclass
class Labels:
    """Late labels by request id (``<request_id>:<row>``); the last label of an id wins."""

    frame: pd.DataFrame  # id, label
    files: int = 0
    lines: int = 0
    malformed: int = 0


def read_labels(labels_dir: str | Path) -> Labels:
    """Read ``*.jsonl`` (``{"id", "label"}``) and ``*.csv`` (``id,label``) label files."""
    fs, root = _fs(labels_dir)
    result = Labels(pd.DataFrame(columns=["id", "label"]))
    if not fs.exists(root):
        raise DataError(f"labels directory {labels_dir} does not exist")
    paths = [root] if fs.isfile(root) else sorted(fs.ls(root, detail=False))
    rows: list[tuple[str, Any]] = []
    for path in paths:
        if path.endswith(".jsonl"):
            result.files += 1
            for raw in _iter_lines(fs, path):
                if not raw.strip():
                    continue
                result.lines += 1
                try:
                    rec = json.loads(raw)
                    rows.append((str(rec["id"]), rec["label"]))
                except (ValueError, TypeError, KeyError):
                    result.malformed += 1
        elif path.endswith(".csv"):
            result.files += 1
            with fs.open(path, "rb") as fh:
                text = fh.read().decode("utf-8", errors="replace")
            for rec in csv.DictReader(io.StringIO(text)):
                result.lines += 1
                if rec.get("id") and rec.get("label") not in (None, ""):
                    rows.append((str(rec["id"]), rec["label"]))
                else:
                    result.malformed += 1
    if rows:
        frame = pd.DataFrame(rows, columns=["id", "label"])
        result.frame = frame.drop_duplicates("id", keep="last").reset_index(drop=True)
    if result.malformed:
        log.warning("labels: skipped %d malformed of %d lines", result.malformed, result.lines)
    return result


def join_labels(window: CaptureWindow, labels: Labels) -> pd.DataFrame:
    """Window rows that have a label: the window's index, meta columns and ``label``."""
    meta = window.meta.reset_index(names="row")
    joined = meta.merge(labels.frame, on="id", how="inner")
    return joined.set_index("row")


# ----------------------------------------------------------------------------------------------
# Quality


def _cast_like(values: pd.Series, classes: tuple[Any, ...] | None) -> pd.Series:
    """Labels from CSV are strings; map them onto the contract's class values where they match."""
    if not classes:
        return values
    by_text = {str(c): c for c in classes}
    return values.map(lambda v: by_text.get(str(v), v))


def window_metrics(joined: pd.DataFrame, contract: Contract) -> dict[str, float]:
    """Evaluation metrics (kfops.evaluation names) of captured predictions vs late labels."""
    from sklearn import metrics as skm

    from kfops.evaluation import label_metrics, regression_metrics

    if contract.task == "regression":
        y_true = pd.to_numeric(joined["label"], errors="coerce")
        y_pred = pd.to_numeric(joined["prediction"], errors="coerce")
        ok = y_true.notna() & y_pred.notna()
        yt, yp = y_true[ok].to_numpy(float), y_pred[ok].to_numpy(float)
        return regression_metrics(yt, yp) if len(yt) else {}
    classes = contract.target.classes
    yt_s = _cast_like(joined["label"], classes)
    yp_s = _cast_like(joined["prediction"], classes)
    ok = yt_s.notna() & yp_s.notna()
    yt, yp = yt_s[ok].astype(str).to_numpy(), yp_s[ok].astype(str).to_numpy()
    if len(yt) == 0:
        return {}
    out = label_metrics(yt, yp, labels=sorted(set(yt) | set(yp)))
    probas = joined["proba"][ok]
    if classes and probas.map(lambda p: isinstance(p, dict)).all():
        names = [str(c) for c in classes]
        matrix = np.array(
            [[float({str(k): v for k, v in p.items()}.get(n, 0.0)) for n in names] for p in probas]
        )
        if set(yt) <= set(names):
            matrix = np.clip(matrix, 1e-15, 1.0)
            matrix = matrix / matrix.sum(axis=1, keepdims=True)
            out["log_loss"] = float(skm.log_loss(yt, matrix, labels=names))
    return out


@dataclass
class QualityResult:
    labeled_rows: int
    metrics: dict[str, float]
    training_metrics: dict[str, float]
    primary_metric: str
    degradation: float | None  # relative change for the worse of the primary metric
    decayed: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_quality(
    metrics: dict[str, float],
    training: dict[str, Any],
    task: str,
    labeled_rows: int,
    policy: MonitoringPolicy,
) -> QualityResult:
    """Window metrics vs the version's training metrics under the policy's decay threshold."""
    primary = PRIMARY_METRIC[task]
    train = {k: float(v) for k, v in training.items() if isinstance(v, int | float)}
    result = QualityResult(labeled_rows, metrics, train, primary, None, False, "")
    now, then = metrics.get(primary), train.get(primary)
    if labeled_rows < policy.min_labeled_rows:
        result.reason = f"{labeled_rows} labelled rows (< {policy.min_labeled_rows}): no verdict"
        return result
    if now is None or then is None or not math.isfinite(now) or not math.isfinite(then):
        result.reason = f"{primary} not available for the window or the training run"
        return result
    worse = (then - now) if HIGHER_IS_BETTER[primary] else (now - then)
    result.degradation = worse / abs(then) if then else (math.inf if worse > 0 else 0.0)
    result.decayed = result.degradation > policy.max_metric_drop
    result.reason = (
        f"{primary} {now:.4f} vs {then:.4f} at training: "
        f"{result.degradation:+.1%} worse ({'>' if result.decayed else '<='} "
        f"{policy.max_metric_drop:.0%} allowed)"
    )
    return result


# ----------------------------------------------------------------------------------------------
# Policy and the whole window


@dataclass(frozen=True)
class MonitoringPolicy:
    """When a window asks for retraining.

    Retrain when the drift verdict (``kfops.drift.DriftPolicy``) says the dataset drifted
    (``retrain_on_drift``) or the primary metric got worse than at training by more than
    ``max_metric_drop`` (relative, e.g. 0.05 = 5%) on at least ``min_labeled_rows`` labelled
    rows. Windows with fewer than ``min_rows`` rows give no verdict; a window whose data
    violates the contract is reported but never retrained on.
    """

    min_rows: int = 100
    retrain_on_drift: bool = True
    max_metric_drop: float = 0.05
    min_labeled_rows: int = 50
    drift: dict[str, Any] = field(default_factory=dict)  # DriftPolicy settings

    def __post_init__(self) -> None:
        if self.min_rows < 1:
            raise ConfigError(f"policy min_rows must be at least 1, got {self.min_rows}")
        if self.min_labeled_rows < 1:
            raise ConfigError(
                f"policy min_labeled_rows must be at least 1, got {self.min_labeled_rows}"
            )
        if not (0 <= self.max_metric_drop < 10):
            raise ConfigError(
                f"policy max_metric_drop must be a share in [0, 10), got {self.max_metric_drop}"
            )
        self.drift_policy()  # validate early

    def drift_policy(self) -> Any:
        from kfops.drift import DriftPolicy

        return DriftPolicy.from_dict(dict(self.drift))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MonitoringPolicy:
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(
                f"unknown monitoring policy settings {unknown}; known: "
                f"{sorted(cls.__dataclass_fields__)}"
            )
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"bad monitoring policy: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> MonitoringPolicy:
        import yaml

        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read monitoring policy {path}: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"monitoring policy {path} must be a mapping")
        return cls.from_dict(data)


NO_ROWS, TOO_FEW, OK, RETRAIN = "no_rows", "too_few_rows", "ok", "retrain"


@dataclass
class MonitoringResult:
    model: str
    version: str | None
    status: str  # no_rows | too_few_rows | ok | retrain
    retrain: bool
    reasons: list[str]
    capture: dict[str, Any]
    rows: int  # rows of the monitored version in the window
    other_version_rows: int = 0
    data_quality: dict[str, Any] | None = None
    drift: Any = None  # kfops.drift.DriftReport
    quality: QualityResult | None = None
    labels: dict[str, Any] | None = None
    finished_at: float = field(default_factory=time.time)

    @property
    def drift_scores(self) -> dict[str, float]:
        return {} if self.drift is None else dict(self.drift.scores())

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "status": self.status,
            "retrain": self.retrain,
            "reasons": list(self.reasons),
            "rows": self.rows,
            "other_version_rows": self.other_version_rows,
            "capture": self.capture,
            "data_quality": self.data_quality,
            "drift": None if self.drift is None else self.drift.to_dict(),
            "quality": None if self.quality is None else self.quality.to_dict(),
            "labels": self.labels,
            "finished_at": _iso(self.finished_at),
        }

    def summary(self) -> str:
        head = f"{self.model} {self.version or '-'}: {self.status}"
        return f"{head} ({'; '.join(self.reasons)})" if self.reasons else head

    def to_markdown(self) -> str:
        cap = self.capture
        lines = [
            f"# Monitoring: {self.model} {self.version or ''}",
            "",
            f"**{self.status.upper()}**: {'; '.join(self.reasons) or 'nothing to report'}",
            "",
            f"Window {cap['start']} to {cap['end']}: {self.rows} rows "
            f"({self.other_version_rows} of other versions), {cap['files']} files, "
            f"{cap['malformed']} malformed lines skipped.",
            "",
        ]
        if self.quality is not None:
            q = self.quality
            lines += ["## Quality", "", q.reason, "", "| metric | window | training |"]
            lines.append("|---|---:|---:|")
            for name, value in sorted(q.metrics.items()):
                train = q.training_metrics.get(name)
                lines.append(
                    f"| {name} | {value:.4f} | {'' if train is None else f'{train:.4f}'} |"
                )
            lines.append("")
        if self.drift is not None:
            lines.append(self.drift.to_markdown().replace("# Drift report", "## Drift"))
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        """One self-contained page (the Kubeflow dashboard renders it as an HTML artifact)."""
        esc = html.escape
        cap = self.capture
        color = {"retrain": "#fdd", "ok": "#dfd"}.get(self.status, "#ffd")
        parts = [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>Monitoring {esc(self.model)}</title><style>",
            "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}",
            "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}",
            "tr.drift{background:#fdd}tr.missing{background:#ffd}tr.untested{color:#888}",
            f".verdict{{background:{color};padding:.6em;border:1px solid #ccc}}",
            "</style></head><body>",
            f"<h1>Monitoring: {esc(self.model)} {esc(self.version or '')}</h1>",
            f"<p class='verdict'><b>{esc(self.status.upper())}</b>: "
            f"{esc('; '.join(self.reasons) or 'nothing to report')}</p>",
            f"<p>Window {esc(cap['start'])} to {esc(cap['end'])}: {self.rows} rows "
            f"({self.other_version_rows} of other versions) from {cap['files']} files; "
            f"{cap['malformed']} malformed lines skipped.</p>",
        ]
        if cap.get("malformed_examples"):
            items = "".join(f"<li>{esc(e)}</li>" for e in cap["malformed_examples"])
            parts.append(f"<details><summary>Malformed lines</summary><ul>{items}</ul></details>")
        if self.data_quality is not None:
            dq = self.data_quality
            parts.append(
                f"<h2>Data quality</h2><p>{dq['errors']} errors, {dq['warnings']} warnings.</p>"
            )
            if dq["violations"]:
                rows = "".join(
                    f"<tr><td>{esc(v['severity'])}</td><td>{esc(str(v['column'] or ''))}</td>"
                    f"<td>{esc(v['rule'])}</td><td>{v['count']}</td>"
                    f"<td>{esc(v['message'])}</td></tr>"
                    for v in dq["violations"]
                )
                parts.append(
                    "<table><tr><th>severity</th><th>column</th><th>rule</th><th>count</th>"
                    f"<th>message</th></tr>{rows}</table>"
                )
        if self.quality is not None:
            q = self.quality
            rows = "".join(
                f"<tr><td>{esc(name)}</td><td>{value:.4f}</td>"
                f"<td>{_fmt(q.training_metrics.get(name))}</td></tr>"
                for name, value in sorted(q.metrics.items())
            )
            parts.append(
                f"<h2>Quality ({q.labeled_rows} labelled rows)</h2><p>{esc(q.reason)}</p>"
                f"<table><tr><th>metric</th><th>window</th><th>training</th></tr>{rows}</table>"
            )
        if self.drift is not None:
            body = self.drift.to_html(title="Drift")
            start, stop = body.find("<body>"), body.rfind("</body>")
            parts.append(body[start + len("<body>") : stop].replace("<h1>", "<h2>", 1))
        parts.append("</body></html>\n")
        return "".join(parts)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _version_dir(registry_root: str | Path, model: str, version: str | None) -> Any:
    from kfops.registry import Registry

    registry = Registry(registry_root)
    ref = version or CHAMPION
    try:
        mv = registry.resolve(model, ref)
    except RegistryError:
        raise
    except KfopsError as exc:
        raise RegistryError(f"cannot resolve {model}:{ref}: {exc}") from exc
    registry.verify_dir(mv.path)
    return mv


def run_monitoring(
    model: str,
    registry_root: str | Path,
    capture_dir: str | Path,
    *,
    start: float | None = None,
    end: float | None = None,
    labels_dir: str | Path | None = None,
    version: str | None = None,
    policy: MonitoringPolicy | None = None,
) -> MonitoringResult:
    """Monitor one window of ``model`` against ``version`` (default: its champion)."""
    from kfops.contract import validate
    from kfops.drift import ReferenceProfile, detect_drift, profile_window
    from kfops.io import read_json

    policy = policy or MonitoringPolicy()
    mv = _version_dir(registry_root, model, version)
    contract = Contract.load(mv.path / "contract.json")
    window = read_capture(capture_dir, model, start, end)
    result = MonitoringResult(model, mv.version, NO_ROWS, False, [], window.stats(), 0)
    if window.rows == 0:
        result.reasons.append(
            f"no rows captured for {model} between {result.capture['start']} and "
            f"{result.capture['end']}"
        )
        return result

    # Drift is measured against the version that served the rows: rows of an older version
    # (before a hot swap) would flag the very shift the new version was trained on.
    served = window.meta["version"].fillna(mv.version) == mv.version
    feats = window.features[served.to_numpy()].reset_index(drop=True)
    result.rows = int(served.sum())
    result.other_version_rows = window.rows - result.rows
    if result.rows < policy.min_rows:
        result.status = TOO_FEW if result.rows else NO_ROWS
        result.reasons.append(
            f"{result.rows} rows of {mv.version} in the window (< {policy.min_rows}): no verdict"
        )
        return result

    report = validate(feats, contract, check_target=False)
    result.data_quality = report.to_dict()
    reference = ReferenceProfile.load(mv.path)
    result.drift = detect_drift(reference, profile_window(feats, reference), policy.drift_policy())

    if labels_dir is not None:
        labels = read_labels(labels_dir)
        meta = window.meta[served.to_numpy()].reset_index(drop=True)
        joined = join_labels(CaptureWindow(model, window.start, window.end, feats, meta), labels)
        result.labels = {"files": labels.files, "lines": labels.lines,
                         "malformed": labels.malformed, "joined": len(joined)}  # fmt: skip
        training = (
            read_json(mv.path / "metrics.json") if (mv.path / "metrics.json").is_file() else {}
        )
        result.quality = compare_quality(
            window_metrics(joined, contract) if len(joined) else {},
            training,
            contract.task,
            len(joined),
            policy,
        )

    result.status = OK
    if not report.ok:
        result.reasons.append(
            f"data violates the contract ({len(report.errors)} errors: "
            + "; ".join(v.message for v in report.errors[:3])
            + "): not retraining on it"
        )
        return result
    if policy.retrain_on_drift and result.drift.dataset_drift:
        result.reasons.append(f"drift in {', '.join(result.drift.drifted)}")
    if result.quality is not None and result.quality.decayed:
        result.reasons.append(f"quality decay: {result.quality.reason}")
    if result.reasons:
        result.status, result.retrain = RETRAIN, True
    return result


# ----------------------------------------------------------------------------------------------
# Pushgateway


def push_metrics(
    result: MonitoringResult, gateway: str, job: str = DEFAULT_JOB, timeout: float = 10.0
) -> None:
    """Push the window's figures (grouped by model) to a Prometheus Pushgateway.

    ``kfops_monitoring_last_success_timestamp_seconds`` is what the stale-job alert watches.
    An unreachable gateway raises ClusterError.
    """
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    reg = CollectorRegistry()

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, labels, registry=reg)

    gauge("kfops_monitoring_rows", "Rows of the monitored version in the window.").set(result.rows)
    gauge("kfops_monitoring_malformed_lines", "Captured lines skipped as malformed.").set(
        result.capture["malformed"]
    )
    gauge("kfops_monitoring_retrain_required", "1 when the window crossed the policy.").set(
        1 if result.retrain else 0
    )
    if result.drift is not None:
        psi = gauge("kfops_monitoring_feature_drift_psi", "PSI per feature.", ("feature",))
        for name, value in result.drift_scores.items():
            psi.labels(name).set(value)
        drifted = gauge(
            "kfops_monitoring_feature_drifted", "1 when a feature drifted.", ("feature",)
        )
        for f in result.drift.features:
            drifted.labels(f.name).set(1 if f.drifted else 0)
        gauge("kfops_monitoring_dataset_drift", "1 when the dataset drifted.").set(
            1 if result.drift.dataset_drift else 0
        )
    if result.data_quality is not None:
        gauge("kfops_monitoring_data_quality_errors", "Contract violations (errors).").set(
            result.data_quality["errors"]
        )
    if result.quality is not None:
        gauge("kfops_monitoring_labeled_rows", "Window rows with a late label.").set(
            result.quality.labeled_rows
        )
        quality = gauge("kfops_monitoring_quality", "Window metric from late labels.", ("metric",))
        for name, value in result.quality.metrics.items():
            quality.labels(name).set(value)
    gauge("kfops_monitoring_last_success_timestamp_seconds", "End of the last good run.").set(
        result.finished_at
    )
    try:
        push_to_gateway(
            gateway, job=job, registry=reg, grouping_key={"model": result.model}, timeout=timeout
        )
    except OSError as exc:  # URLError, connection refused, timeouts
        raise ClusterError(f"cannot push to the Pushgateway at {gateway}: {exc}") from None
    log.info("pushed monitoring figures of %s to %s (job=%s)", result.model, gateway, job)


# ----------------------------------------------------------------------------------------------
# Retraining data


def build_training_data(
    capture_dir: str | Path,
    labels_dir: str | Path,
    model: str,
    contract: Contract,
    out_path: str | Path,
    *,
    start: float | None = None,
    end: float | None = None,
    min_rows: int = 50,
) -> tuple[Path, int]:
    """The captured window joined with its labels, as a training table (Parquet).

    Columns: the contract's features plus its target (from the labels). Returns (path, rows).
    """
    from kfops.data import write_snapshot

    window = read_capture(capture_dir, model, start, end)
    labels = read_labels(labels_dir)
    joined = join_labels(window, labels)
    if len(joined) < min_rows:
        raise DataError(
            f"only {len(joined)} captured rows of {model} have a label in the window "
            f"(need {min_rows}) : cannot retrain on it"
        )
    frame = window.features.loc[joined.index].reset_index(drop=True)
    missing = [n for n in contract.feature_names if n not in frame.columns]
    if missing:
        raise DataError(f"captured traffic of {model} lacks contract features {missing}")
    frame = frame[contract.feature_names].copy()
    frame[contract.target.name] = _cast_like(
        joined["label"].reset_index(drop=True), contract.target.classes
    )
    path = write_snapshot(frame, out_path)
    return Path(path), len(frame)


def retrain(
    model: str,
    registry_root: str | Path,
    data_uri: str,
    *,
    runner: str = "subprocess",
    run_id: str | None = None,
) -> Any:
    """Run the training pipeline locally on ``data_uri`` with the champion's target and task."""
    from kfops.local_runner import run_training

    params = training_params(model, registry_root, data_uri)
    log.info("retraining %s on %s (runner=%s)", model, data_uri, runner)
    return run_training(params, runner=runner, run_id=run_id)


def training_params(model: str, registry_root: str | Path, data_uri: str) -> Any:
    """TrainingParams that repeat the champion's target, task and estimator on new data."""
    from kfops.local_runner import TrainingParams

    mv = _version_dir(registry_root, model, None)
    contract = Contract.load(mv.path / "contract.json")
    lineage = mv.lineage or {}
    extra: dict[str, Any] = {}
    if isinstance(lineage.get("estimator"), str):
        extra["estimator"] = lineage["estimator"]
    params = lineage.get("params")
    if isinstance(params, dict):
        extra["params"] = params
    extra.update(champion_thresholds(mv, contract.task))
    return TrainingParams(
        data_uri=data_uri,
        target=contract.target.name,
        task=contract.task,
        model_name=model,
        registry_root=str(registry_root),
        **extra,
    )


def champion_thresholds(mv: Any, task: str) -> dict[str, Any]:
    """``thresholds``/``max_regression`` for a retrain of ``mv`` (a ModelVersion): the policy
    it was blessed under (its lineage), else the defaults of ``kfops run``, never none at all."""
    from kfops.blessing import DEFAULT_THRESHOLDS, policy_of_lineage

    policy = policy_of_lineage(mv.lineage or {}, task)
    if policy is None:
        log.warning(
            "%s %s records no blessing policy: retraining against the default thresholds %s",
            mv.model, mv.version, DEFAULT_THRESHOLDS[task],
        )  # fmt: skip
        return {"thresholds": dict(DEFAULT_THRESHOLDS[task])}
    return {"thresholds": dict(policy.thresholds), "max_regression": policy.max_regression}


def default_window(hours: float, end: float | None = None) -> tuple[float, float]:
    stop = time.time() if end is None else end
    return stop - timedelta(hours=hours).total_seconds(), stop


# ----------------------------------------------------------------------------------------------
# From a verdict to a training run


@dataclass(frozen=True)
class RetrainPlan:
    """What the training pipeline needs to retrain ``model`` after a window, or why not."""

    retrain: bool
    reason: str
    data_uri: str = ""
    target: str = ""
    task: str = ""
    estimator: str = "logistic_regression"
    params_json: str = "{}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_retraining(
    result: MonitoringResult,
    registry_root: str | Path,
    *,
    capture_dir: str | Path | None = None,
    labels_dir: str | Path | None = None,
    data_uri: str | None = None,
    out_path: str | Path | None = None,
    min_rows: int = 50,
) -> RetrainPlan:
    """Decide the data of the retraining run: ``data_uri`` when given, else the window's
    captured rows joined with their late labels (written to ``out_path``)."""
    if not result.retrain:
        return RetrainPlan(False, f"no retraining: window status {result.status}")
    params = training_params(result.model, registry_root, data_uri or "")
    base = {
        "target": params.target,
        "task": params.task,
        "estimator": params.estimator,
        "params_json": json.dumps(params.params, sort_keys=True),
    }
    why = "; ".join(result.reasons)
    if data_uri:
        return RetrainPlan(True, f"{why}; training on {data_uri}", data_uri=data_uri, **base)
    if capture_dir is None or labels_dir is None or out_path is None:
        return RetrainPlan(False, f"{why}; but no labels and no data URI to retrain on")
    contract = Contract.load(_version_dir(registry_root, result.model, None).path / "contract.json")
    try:
        path, rows = build_training_data(
            capture_dir, labels_dir, result.model, contract, out_path,
            start=result.capture["start_ts"], end=result.capture["end_ts"], min_rows=min_rows,
        )  # fmt: skip
    except DataError as exc:
        log.warning("%s: retraining needed but %s", result.model, exc)
        return RetrainPlan(False, f"{why}; but {exc}")
    return RetrainPlan(
        True, f"{why}; training on {rows} labelled captured rows", data_uri=str(path), **base
    )


def write_reports(result: MonitoringResult, out_dir: str | Path) -> dict[str, Path]:
    """report.html, report.md and result.json in ``out_dir``."""
    from kfops.io import write_json_atomic, write_text_atomic

    out = Path(out_dir)
    paths = {
        "html": out / "report.html",
        "markdown": out / "report.md",
        "json": out / "result.json",
    }
    write_text_atomic(paths["html"], result.to_html())
    write_text_atomic(paths["markdown"], result.to_markdown())
    write_json_atomic(paths["json"], result.to_dict())
    return paths
