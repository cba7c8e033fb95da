"""Batch monitoring of a served model: one window of captured traffic at a time.

- ``capture``: the captured rows of a model in a time window (malformed lines counted);
- ``labels``: late labels, joined to captured rows by capture id (ambiguous ids left out);
- ``quality``: window metrics from late labels vs the version's training metrics;
- ``policy``: ``MonitoringPolicy``, when a window asks for retraining;
- ``window``: ``run_monitoring``, one window checked end to end -> ``MonitoringResult``;
- ``result``: the verdict and the figures behind it;
- ``push``: the figures to a Prometheus Pushgateway;
- ``training_data``: a labelled window as a training table.

The monitoring flow (window -> reports -> Pushgateway -> retraining plan) is the monitor step,
``kfops.steps.monitor``; retraining is ``kfops.steps.retrain``.
"""

from kfops.monitoring.capture import (
    CaptureWindow,
    default_window,
    parse_time,
    read_capture,
)
from kfops.monitoring.labels import LabelJoin, Labels, join_labels, match_labels, read_labels
from kfops.monitoring.policy import MonitoringPolicy
from kfops.monitoring.push import push_metrics
from kfops.monitoring.quality import QualityResult, compare_quality, window_metrics
from kfops.monitoring.result import NO_ROWS, OK, RETRAIN, TOO_FEW, MonitoringResult
from kfops.monitoring.training_data import build_training_data
from kfops.monitoring.window import run_monitoring

__all__ = [
    "NO_ROWS",
    "OK",
    "RETRAIN",
    "TOO_FEW",
    "CaptureWindow",
    "LabelJoin",
    "Labels",
    "MonitoringPolicy",
    "MonitoringResult",
    "QualityResult",
    "build_training_data",
    "compare_quality",
    "default_window",
    "join_labels",
    "match_labels",
    "parse_time",
    "push_metrics",
    "read_capture",
    "read_labels",
    "run_monitoring",
    "window_metrics",
]
