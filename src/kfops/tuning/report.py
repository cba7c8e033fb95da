"""Results of a study: the best trial and parameters, per-round progress, importances, report."""

from __future__ import annotations

import html
import json
from typing import Any

from kfops.reports import fmt
from kfops.tuning.study import StudyState, TrialRecord, TuningError, build_study


def best_trial(state: StudyState) -> TrialRecord:
    """The best COMPLETE trial; TuningError when none completed (nothing must be trained)."""
    done = state.trials_in("COMPLETE")
    if not done:
        failed = state.trials_in("FAIL")
        if failed:
            raise TuningError(
                f"all {len(failed)} tuning trial(s) of {state.estimator!r} failed; "
                f"first error: {failed[0].error}"
            )
        raise TuningError(
            f"no tuning trial of {state.estimator!r} ran"
            + (f" ({state.stop_reason})" if state.stop_reason else "")
        )
    sign = 1.0 if state.direction == "maximize" else -1.0
    # Ties go to the earliest trial, so the answer does not depend on completion order.
    return max(done, key=lambda t: (sign * float(t.value or 0.0), -t.number))


def best_params(state: StudyState) -> dict[str, Any]:
    """Fixed params plus the best trial's params: what the train step should use."""
    return {**state.fixed_params, **best_trial(state).params}


def best_per_round(state: StudyState) -> list[dict[str, Any]]:
    """Per round: trials run, best score in the round and best score so far."""
    sign = 1.0 if state.direction == "maximize" else -1.0
    rounds = sorted({t.round for t in state.trials})
    rows: list[dict[str, Any]] = []
    so_far: float | None = None
    for r in rounds:
        trials = [t for t in state.trials if t.round == r]
        values = [float(t.value) for t in trials if t.state == "COMPLETE" and t.value is not None]
        best = max(values, key=lambda v: sign * v) if values else None
        if best is not None and (so_far is None or sign * best > sign * so_far):
            so_far = best
        rows.append(
            {
                "round": r,
                "trials": len(trials),
                "complete": len(values),
                "failed": sum(t.state == "FAIL" for t in trials),
                "best": best,
                "best_so_far": so_far,
            }
        )
    return rows


def param_importances(state: StudyState) -> dict[str, float] | None:
    """Optuna's fANOVA parameter importances, or None with too few trials to say anything."""
    import optuna

    done = state.trials_in("COMPLETE")
    if len(done) < 4 or len(state.space) < 2:
        return None
    values = {float(t.value or 0.0) for t in done}
    if len(values) < 2:
        return None
    study = build_study(state)
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=state.seed)
    try:
        importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (RuntimeError, ValueError):  # e.g. a parameter that never varied
        return None
    return {k: float(v) for k, v in importances.items()}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return fmt.number(value, fmt.SIGNIFICANT)
    return "" if value is None else fmt.cell(html.escape(str(value)))


def summary(state: StudyState) -> dict[str, Any]:
    """Numbers for metrics/lineage: counts, best score and params (None when nothing completed)."""
    done = state.trials_in("COMPLETE")
    best = best_trial(state) if done else None
    return {
        "estimator": state.estimator,
        "metric": state.metric,
        "direction": state.direction,
        "trials": len(state.trials_in("COMPLETE", "FAIL")),
        "complete": len(done),
        "failed": len(state.trials_in("FAIL")),
        "skipped": len(state.trials_in("SKIPPED")),
        "best_value": best.value if best else None,
        "best_trial": best.number if best else None,
        "best_params": {**state.fixed_params, **best.params} if best else None,
        "stop_reason": state.stop_reason,
    }


def render_report(state: StudyState) -> str:
    """Markdown for the dashboard: summary, best score per round, importances, all trials."""
    info = summary(state)
    arrow = "higher" if state.direction == "maximize" else "lower"
    lines = [
        f"# Tuning: {state.estimator}",
        "",
        f"Cross-validated **{state.metric}** ({arrow} is better) on the training split, "
        f"{state.cv_folds} folds, seed {state.seed}.",
        "",
        f"- trials: {info['trials']} ({info['complete']} complete, {info['failed']} failed"
        + (f", {info['skipped']} skipped" if info["skipped"] else "")
        + ")",
    ]
    if info["best_value"] is not None:
        lines.append(
            f"- best {state.metric}: **{info['best_value']:.4f}** (trial {info['best_trial']})"
        )
        lines.append(f"- best params: `{json.dumps(info['best_params'], sort_keys=True)}`")
    else:
        lines.append("- no trial completed: nothing to train")
    if state.stop_reason:
        lines.append(f"- stopped early: {state.stop_reason}")
    lines += ["", "## Best score per round", "", "| round | trials | failed | best | best so far |"]
    lines.append("| --- | --- | --- | --- | --- |")
    for row in best_per_round(state):
        lines.append(
            f"| {row['round']} | {row['trials']} | {row['failed']} | {_fmt(row['best'])} "
            f"| {_fmt(row['best_so_far'])} |"
        )
    lines += ["", "## Parameter importance", ""]
    importances = param_importances(state)
    if importances is None:
        lines.append("Not enough completed trials (or parameters) for fANOVA importances.")
    else:
        lines += ["| parameter | importance |", "| --- | --- |"]
        lines += [f"| {_fmt(k)} | {v:.3f} |" for k, v in importances.items()]
    names = list(state.space)
    lines += ["", "## Trials", ""]
    lines.append(
        "| # | round | state | "
        + " | ".join(_fmt(n) for n in names)
        + f" | {state.metric} | seconds | error |"
    )
    lines.append("| " + " | ".join(["---"] * (len(names) + 6)) + " |")
    for t in state.trials:
        cells = [_fmt(t.params.get(n)) for n in names]
        lines.append(
            f"| {t.number} | {t.round} | {t.state} | "
            + " | ".join(cells)
            + f" | {_fmt(t.value)} | {_fmt(t.duration_s)} | {_fmt(t.error)} |"
        )
    return "\n".join(lines) + "\n"
