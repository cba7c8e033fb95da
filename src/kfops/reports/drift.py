"""The drift report: a summary sentence and one table row per feature, as Markdown or HTML,
on its own page or as a section of another report (monitoring)."""

from __future__ import annotations

from kfops.drift.report import NO_DATA, DriftReport
from kfops.reports import fmt
from kfops.reports.html import escape, page, table

HEAD = ["feature", "kind", "status", "PSI corrected", "PSI", "KS", "JS", "p", "p adj", "reason"]


def summary(report: DriftReport) -> str:
    if report.status == NO_DATA:
        return f"No drift verdict: the window has {report.window_rows} rows."
    verdict = "DRIFT" if report.dataset_drift else "no drift"
    text = (
        f"Dataset: {verdict}. {len(report.drifted)} of {report.tested} tested features drifted "
        f"(share {report.drift_share:.0%}) in {report.window_rows} rows vs "
        f"{report.reference_rows} reference rows."
    )
    if report.drifted:
        text += f" Drifted: {', '.join(report.drifted)}."
    if report.missing:
        text += f" Missing from the window: {', '.join(report.missing)}."
    return text


def rows(report: DriftReport) -> list[list[str]]:
    return [
        [
            f.name,
            f.kind,
            f.status,
            fmt.number(f.psi_corrected),
            fmt.number(f.psi),
            fmt.number(f.ks),
            fmt.number(f.js),
            fmt.number(f.p_value, fmt.P_VALUE),
            fmt.number(f.p_adjusted, fmt.P_VALUE),
            f.reason,
        ]
        for f in report.features
    ]


def markdown(report: DriftReport, heading: str = "# Drift report") -> str:
    lines = [heading, "", summary(report), ""]
    lines.append("| " + " | ".join(HEAD) + " |")
    lines.append("|" + "---|" * len(HEAD))
    lines += ["| " + " | ".join(fmt.cell(c) for c in r) + " |" for r in rows(report)]
    lines += ["", f"Policy: {report.policy.describe()}."]
    return "\n".join(lines) + "\n"


def html_section(report: DriftReport) -> str:
    """The summary, the table and the policy, without a heading."""
    return (
        f"<p>{escape(summary(report))}</p>{table(HEAD, rows(report), row_class=2)}"
        f"<p>Policy: {escape(report.policy.describe())}.</p>"
    )


def html_page(report: DriftReport, title: str = "Drift report") -> str:
    return page(title, html_section(report))
