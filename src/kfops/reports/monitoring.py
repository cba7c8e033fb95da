"""The monitoring window's report: verdict, window, data quality, model quality and drift, as
one HTML page and as a Markdown summary."""

from __future__ import annotations

from kfops.monitoring import MonitoringResult
from kfops.reports import drift, fmt
from kfops.reports.html import escape, page, table


def _title(result: MonitoringResult) -> str:
    return f"Monitoring: {result.model} {result.version or ''}"


def _verdict(result: MonitoringResult) -> str:
    return "; ".join(result.reasons) or "nothing to report"


def markdown(result: MonitoringResult) -> str:
    cap = result.capture
    lines = [
        f"# {_title(result)}",
        "",
        f"**{result.status.upper()}**: {_verdict(result)}",
        "",
        f"Window {cap['start']} to {cap['end']}: {result.rows} rows "
        f"({result.other_version_rows} of other versions), {cap['files']} files, "
        f"{cap['malformed']} malformed lines skipped.",
        "",
    ]
    if result.quality is not None:
        q = result.quality
        lines += ["## Quality", "", q.reason, "", "| metric | window | training |"]
        lines.append("|---|---:|---:|")
        for name, value in sorted(q.metrics.items()):
            train = fmt.number(q.training_metrics.get(name))
            lines.append(f"| {name} | {fmt.number(value)} | {train} |")
        lines.append("")
    if result.drift is not None:
        lines.append(drift.markdown(result.drift, heading="## Drift"))
    return "\n".join(lines) + "\n"


def html(result: MonitoringResult) -> str:
    """One self-contained page (the Kubeflow dashboard renders it as an HTML artifact)."""
    cap = result.capture
    parts = [
        f"<p class='verdict {escape(result.status)}'><b>{escape(result.status.upper())}</b>: "
        f"{escape(_verdict(result))}</p>",
        f"<p>Window {escape(cap['start'])} to {escape(cap['end'])}: {result.rows} rows "
        f"({result.other_version_rows} of other versions) from {cap['files']} files; "
        f"{cap['malformed']} malformed lines skipped.</p>",
    ]
    if cap.get("malformed_examples"):
        items = "".join(f"<li>{escape(e)}</li>" for e in cap["malformed_examples"])
        parts.append(f"<details><summary>Malformed lines</summary><ul>{items}</ul></details>")
    if result.data_quality is not None:
        dq = result.data_quality
        parts.append(
            f"<h2>Data quality</h2><p>{dq['errors']} errors, {dq['warnings']} warnings.</p>"
        )
        if dq["violations"]:
            head = ("severity", "column", "rule", "count", "message")
            violations = [
                (v["severity"], str(v["column"] or ""), v["rule"], str(v["count"]), v["message"])
                for v in dq["violations"]
            ]
            parts.append(table(head, violations))
    if result.quality is not None:
        q = result.quality
        metrics = [
            (name, fmt.number(value), fmt.number(q.training_metrics.get(name)))
            for name, value in sorted(q.metrics.items())
        ]
        parts.append(
            f"<h2>Quality ({q.labeled_rows} labelled rows)</h2><p>{escape(q.reason)}</p>"
            + table(("metric", "window", "training"), metrics)
        )
    if result.drift is not None:
        parts.append(f"<h2>Drift</h2>{drift.html_section(result.drift)}")
    return page(_title(result), "".join(parts))
