"""A labelled window of captured traffic as a training table, for retraining on fresh data."""

from __future__ import annotations

import time
from pathlib import Path

from kfops.contract_model import Contract
from kfops.defaults import MONITORING_WINDOW_HOURS
from kfops.errors import DataError
from kfops.monitoring.capture import iter_capture
from kfops.monitoring.fold import StreamingLabelJoin
from kfops.monitoring.labels import cast_labels, read_labels


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

    labels = read_labels(labels_dir)
    # Streamed: only the labelled rows are kept, so memory follows the labels, not the window.
    join = StreamingLabelJoin(labels, keep_features=True)
    end = time.time() if end is None else end
    start = end - MONITORING_WINDOW_HOURS * 3600 if start is None else start
    for chunk in iter_capture(capture_dir, model, start, end):
        join.add(chunk.features, chunk.meta)
    joined = join.joined
    if len(joined) < min_rows:
        raise DataError(
            f"only {len(joined)} captured rows of {model} have a label in the window "
            f"(need {min_rows}) : cannot retrain on it"
        )
    frame = join.features.reset_index(drop=True)
    missing = [n for n in contract.feature_names if n not in frame.columns]
    if missing:
        raise DataError(f"captured traffic of {model} lacks contract features {missing}")
    frame = frame[contract.feature_names].copy()
    frame[contract.target.name] = cast_labels(
        joined["label"].reset_index(drop=True), contract.target.classes
    )
    path = write_snapshot(frame, out_path)
    return Path(path), len(frame)
